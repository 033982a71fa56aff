import { z } from 'zod';
import { isGenerationId } from '../generation/names.js';

/*
 * Run records: what a job writes when it ends, read by `baton status` and the metrics.
 *   source host: `<stateDir>/last-run.json`, one per `baton source backup`;
 *   sink host:   `<stateDir>/runs/<source>-<stream>.json`, one per source and stream of `baton sink pull`.
 * The writer builds a typed record and writes it with formatRunRecord; the reader parses it with the
 * same schema (a state file is not trusted to be well formed). Fields are only ever added: a record
 * written by an older version still parses (a field it lacks is optional or has a default).
 */

/** The longest error text a record may hold (a run's error is one line per quarantined generation). */
export const MAX_RUN_ERROR_CHARS = 1024 * 1024;
/** The most generations (or warnings) one record names. */
export const MAX_RUN_RECORD_ITEMS = 100_000;

const instant = z.iso.datetime();
const generationId = z.string().refine(isGenerationId, { error: 'not a generation id' });
const job = z.string().max(200);
const errorText = z.string().max(MAX_RUN_ERROR_CHARS);
const ids = z.array(generationId).max(MAX_RUN_RECORD_ITEMS).default([]);

/** `baton source backup`: one run makes the generation of every stream. */
export const sourceRunRecordSchema = z.object({
  job,
  ok: z.boolean(),
  startedAt: instant,
  finishedAt: instant,
  /** the generation a successful backup made */
  id: generationId.optional(),
  /** how long the app was down (a successful backup) */
  downtimeMs: z.number().optional(),
  /** of downtimeMs: the app's own stop command, and its start command with the health check */
  appStopMs: z.number().optional(),
  appStartMs: z.number().optional(),
  /** the previous generations were still not taken by the sink (a successful backup) */
  transportFailed: z.boolean().optional(),
  /** why the run failed */
  error: errorText.optional(),
});
export type SourceRunRecord = z.infer<typeof sourceRunRecordSchema>;

/** `baton sink pull STREAM`, for one source. */
export const sinkRunRecordSchema = z.object({
  job,
  source: z.string().max(64),
  ok: z.boolean(),
  startedAt: instant,
  finishedAt: instant,
  /** published in the sink store by this run, oldest first */
  pulled: ids,
  /** removed from the sink store by this run's retention */
  pruned: ids,
  /** where the generations that failed verification were put */
  quarantined: z.array(z.string().max(4096)).max(MAX_RUN_RECORD_ITEMS).default([]),
  /** things that did not fail the run but need a human (a suspicious size drop); added after the first version */
  warnings: z
    .array(z.string().max(64 * 1024))
    .max(MAX_RUN_RECORD_ITEMS)
    .default([]),
  /** why the run failed */
  error: errorText.optional(),
});
export type SinkRunRecord = z.infer<typeof sinkRunRecordSchema>;

/** The bytes of a run record file (pretty JSON, one trailing newline). */
export function formatRunRecord(record: SourceRunRecord | SinkRunRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

/** How many runs a run history file keeps per job (the newest; `baton status --html` draws them). */
export const RUN_HISTORY_MAX = 30;
/** The longest error text one history entry keeps (the last-run record keeps the whole error). */
export const RUN_HISTORY_ERROR_CHARS = 16 * 1024;

/**
 * Beside each run record, `<record>.history.json`: `{ "runs": [record, …] }`, oldest first, at most
 * RUN_HISTORY_MAX, each a record of the same schema (a bad entry is skipped by the reader).
 */
export function runHistoryFile(runRecordFile: string): string {
  return `${runRecordFile.replace(/\.json$/, '')}.history.json`;
}

/** The history after `record`: the newest RUN_HISTORY_MAX entries of `previous` (parsed or not) and it. */
export function nextRunHistory(
  previous: unknown,
  record: SourceRunRecord | SinkRunRecord,
): { runs: unknown[] } {
  const prev =
    typeof previous === 'object' && previous !== null && 'runs' in previous && Array.isArray(previous.runs)
      ? (previous.runs as unknown[])
      : [];
  const error = record.error;
  const kept =
    error !== undefined && error.length > RUN_HISTORY_ERROR_CHARS
      ? {
          ...record,
          error: `${error.slice(0, RUN_HISTORY_ERROR_CHARS)}… (${error.length - RUN_HISTORY_ERROR_CHARS} more characters in the run record)`,
        }
      : record;
  return { runs: [...prev.slice(-(RUN_HISTORY_MAX - 1)), kept] };
}

/** The records of a history file that parse with `schema`, oldest first (at most RUN_HISTORY_MAX). */
export function parseRunHistory<S extends z.ZodType>(raw: unknown, schema: S): z.infer<S>[] {
  if (typeof raw !== 'object' || raw === null || !('runs' in raw) || !Array.isArray(raw.runs)) return [];
  const out: z.infer<S>[] = [];
  for (const r of (raw.runs as unknown[]).slice(-RUN_HISTORY_MAX)) {
    const p = schema.safeParse(r);
    if (p.success) out.push(p.data);
  }
  return out;
}

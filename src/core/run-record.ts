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

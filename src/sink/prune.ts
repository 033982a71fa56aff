import {
  calendarPolicy,
  planRetention,
  retentionReference,
  type CalendarRetention,
  type RetentionPlan,
} from '../core/retention.js';
import { deletingName, parseGenerationId, sortNewestFirst } from '../generation/names.js';
import { listGenerations } from '../generation/list.js';
import { readJsonIfExists, removeTreeSafely } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { clearBadMark, listBadMarks } from './bad-marks.js';
import { STREAMS, type SinkConfig, type StreamName } from '../config/schema.js';
import { BatonError, ExitCode, JobError, LockedError, oneLine } from '../errors.js';
import { acquireLock } from '../adapters/lock.js';
import { sinkRunRecordSchema } from '../core/run-record.js';
import { checkStoreMarker } from './check-store.js';
import { sinkPaths } from './state.js';

export interface SinkRetention extends CalendarRetention {
  /** verified generations kept */
  keep: number;
  /** milliseconds: generations this close to the newest one are never pruned by count */
  keepWithin?: number | undefined;
}

/**
 * Step 2.b (second half): drops the oldest generations beyond `keep` verified ones in the sink
 * store. Every published generation was verified before it was published, so all count as verified
 * unless a later `baton verify` marked it bad (`.bad/<id>`); the newest verified is never removed.
 * Each removal renames first, so a crash never leaves half a generation under its real name.
 *
 * `keepWithin` is counted back from the newest generation's id, not from the sink's clock: a sink
 * clock that is wrong (years behind: every id "in the future" would count as young and nothing would
 * ever be pruned; ahead: nothing would count as young) or jumps during a run changes nothing here.
 * Ids come from the source, which keeps them increasing whatever its clock does. With `future`,
 * ids further ahead of the sink clock than the skew (a planted `9999-…` id) are kept but neither
 * counted nor used as the reference.
 */
export async function pruneSinkStream(
  streamDir: string,
  retention: SinkRetention,
  protect: readonly string[],
  log: Logger,
  /** the sink clock and allowed skew: ids further ahead neither count nor anchor keepWithin */
  future?: { clock: Date; skewMs: number },
  /** plan only: nothing is removed (`baton sink prune --dry-run`) */
  dryRun = false,
): Promise<RetentionPlan> {
  const gens = await listGenerations(streamDir);
  const bad = await listBadMarks(streamDir);
  const [newest] = sortNewestFirst(gens.map((g) => g.id));
  const reference = future
    ? retentionReference(
        gens.map((g) => g.id),
        future.clock,
        future.skewMs,
      )
    : newest === undefined
      ? undefined
      : parseGenerationId(newest);
  const plan = planRetention(
    gens.map((g) => ({ id: g.id, verified: !bad.has(g.id) })),
    {
      keep: retention.keep,
      ...calendarPolicy(retention),
      protect,
      ...(future ? { futureAfter: new Date(future.clock.getTime() + future.skewMs) } : {}),
      ...(retention.keepWithin === undefined || reference === undefined
        ? {}
        : { keepWithin: retention.keepWithin, now: reference }),
    },
  );
  if (dryRun) return plan;
  for (const r of plan.remove) {
    await removeTreeSafely(streamDir, r.id, deletingName(r.id));
    if (bad.has(r.id)) await clearBadMark(streamDir, r.id);
    log.info({ step: 'prune', id: r.id, reason: r.reason }, `pruned ${r.id}`);
  }
  return plan;
}

export interface StreamPruneResult {
  source: string;
  stream: StreamName;
  dryRun: boolean;
  /** why nothing was planned or pruned for this stream (last pull failed, lock held, …) */
  skipped?: string;
  /** newest first, each with every rule that keeps it */
  keep: Array<{ id: string; rules: string[]; reason: string }>;
  /** newest first; removed unless dryRun */
  remove: Array<{ id: string; reason: string }>;
}

/**
 * `baton sink prune`: the retention of each configured source and stream applied outside a pull
 * (after a config change, or with `dryRun` to see which rule keeps which generation). The same
 * rules as the prune inside a pull: it holds the stream's pull lock, never prunes a stream whose
 * last pull failed or froze retention (a size-drop warning), and never an unmarked store.
 */
export async function runSinkPrune(
  config: SinkConfig,
  opts: {
    only?: string | undefined;
    stream?: StreamName | undefined;
    dryRun: boolean;
    now: () => Date;
    log: Logger;
  },
): Promise<StreamPruneResult[]> {
  const storeProblem = await checkStoreMarker(config.store);
  if (storeProblem !== undefined)
    throw new BatonError(storeProblem, { exitCode: ExitCode.usage, step: 'store' });
  const sources = config.sources.filter((s) => opts.only === undefined || s.name === opts.only);
  if (sources.length === 0)
    throw new BatonError(`no source "${opts.only ?? ''}" in the config`, {
      exitCode: ExitCode.usage,
      step: 'config',
    });
  const out: StreamPruneResult[] = [];
  for (const src of sources) {
    for (const stream of STREAMS) {
      const cfg = src.streams[stream];
      if (cfg === undefined || (opts.stream !== undefined && opts.stream !== stream)) continue;
      const log = opts.log.child({ source: src.name, stream });
      const res: StreamPruneResult = { source: src.name, stream, dryRun: opts.dryRun, keep: [], remove: [] };
      out.push(res);
      const paths = sinkPaths(config, src.name, stream);
      let lock;
      try {
        lock = await acquireLock(paths.lock, `baton sink prune --source ${src.name} --stream ${stream}`);
      } catch (e) {
        if (!(e instanceof LockedError)) throw e;
        res.skipped = `another run holds the lock: ${e.message}`;
        log.warn({ step: 'prune' }, res.skipped);
        continue;
      }
      try {
        // under the lock: a pull that finishes meanwhile has written its record
        const refusal = await lastRunRefusal(paths.lastRun);
        if (refusal !== undefined) {
          res.skipped = refusal;
          log.warn({ step: 'prune' }, `${src.name}/${stream}: nothing pruned: ${refusal}`);
          continue;
        }
        const plan = await pruneSinkStream(
          paths.streamDir,
          { keep: cfg.generations, keepWithin: cfg.keepWithin, ...calendarPolicy(cfg) },
          [],
          log,
          { clock: opts.now(), skewMs: config.limits.futureSkew },
          opts.dryRun,
        );
        res.keep = plan.keep.map((k) => ({ id: k.id, rules: k.rules, reason: k.reason }));
        res.remove = plan.remove.map((r) => ({ id: r.id, reason: r.reason }));
      } finally {
        await lock.release();
      }
    }
  }
  return out;
}

/** Why the last pull forbids a prune now (it failed, or froze retention), else undefined. */
async function lastRunRefusal(file: string): Promise<string | undefined> {
  const raw = await readJsonIfExists(file).catch((e: unknown) => {
    throw new JobError(`cannot read the last run record ${file}: ${oneLine(e)}`, { step: 'prune' });
  });
  if (raw === undefined) return undefined;
  const run = sinkRunRecordSchema.safeParse(raw);
  if (!run.success) return `${file} is not a baton run record: not pruning blind`;
  if (!run.data.ok)
    return `the last pull (${run.data.finishedAt}) failed: retention waits for a successful pull`;
  if (run.data.warnings.length > 0)
    return `the last pull (${run.data.finishedAt}) froze retention: ${run.data.warnings[0]?.split('\n')[0] ?? ''}`;
  return undefined;
}

/** The plan as text: `keep  ID  last(1) daily(1)` / `drop  ID  removed: …` per generation, per stream. */
export function formatPruneResults(results: readonly StreamPruneResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const head = `${r.source}/${r.stream}${r.dryRun ? ' (dry run: nothing removed)' : ''}`;
    if (r.skipped !== undefined) {
      lines.push(`${head}: skipped: ${r.skipped}`);
      continue;
    }
    lines.push(`${head}: keep ${r.keep.length}, ${r.dryRun ? 'would drop' : 'dropped'} ${r.remove.length}`);
    const rows = [
      ...r.keep.map((k) => ({ id: k.id, line: `  keep  ${k.id}  ${k.rules.join(' ')}` })),
      ...r.remove.map((d) => ({ id: d.id, line: `  drop  ${d.id}  ${d.reason.replace(/^removed: /, '')}` })),
    ].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    lines.push(...rows.map((x) => x.line));
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

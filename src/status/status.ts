import { readdir } from 'node:fs/promises';
import type { SinkConfig, SourceConfig, StreamName } from '../config/schema.js';
import { formatDuration } from '../core/duration.js';
import { isGenerationId } from '../generation/names.js';
import {
  parseRunHistory,
  runHistoryFile,
  sinkRunRecordSchema,
  sourceRunRecordSchema,
  type SinkRunRecord,
  type SourceRunRecord,
} from '../core/run-record.js';
import { outsideWindow } from '../sink/pull-schedule.js';
import { DEFAULT_FUTURE_SKEW_MS, judgeOverdueHandovers, judgeStale } from '../core/stale.js';
import { readJsonIfExists } from '../adapters/fsx.js';
import { readStoreContents, type StoreGeneration } from '../generation/list.js';
import { sourceState } from '../source/state.js';
import { listBadMarks } from '../sink/bad-marks.js';
import { checkStoreMarker } from '../sink/check-store.js';
import { sinkPaths } from '../sink/state.js';
import { streamFreshness } from '../sink/check-stale.js';
import { offsiteLagFacts } from '../sink/check-offsite-lag.js';
import { judgeOffsiteLag } from '../core/offsite-lag.js';
import { parseGenerationId } from '../generation/names.js';
import { errnoCode, JobError, oneLine, singleLine } from '../errors.js';
import { unmailedGateEvents } from '../source/report-gate-events.js';
import { describeGateEvent } from '../core/gate-events.js';
import {
  STATUS_FORMAT,
  type GenerationReport,
  type OffsiteReport,
  type Problem,
  type QuarantineReport,
  type RecoveryPoint,
  type RunReport,
  type StaleReport,
  type StatusReport,
  type StoreKind,
  type StoreReport,
  type StreamReport,
} from './report.js';

const seconds = (ms: number) => Math.round(ms / 1000);

function generationReport(g: StoreGeneration, now: Date, verified: boolean): GenerationReport {
  return {
    id: g.id,
    createdAt: g.createdAt.toISOString(),
    // an id ahead of this host's clock (the clocks disagree) is as new as it gets: age 0, never negative
    ageSeconds: Math.max(0, seconds(now.getTime() - g.createdAt.getTime())),
    files: g.meta?.files ?? null,
    bytes: g.meta?.bytes ?? null,
    bytesNew: g.meta?.bytesCopied ?? null,
    downtimeMs: g.meta?.downtimeMs ?? null,
    verified,
  };
}

async function storeReport(kind: StoreKind, dir: string, now: Date): Promise<StoreReport> {
  let gens: StoreGeneration[];
  try {
    gens = await readStoreContents(dir);
  } catch (e) {
    throw new JobError(`cannot read the ${kind} ${dir}: ${errnoCode(e) ?? oneLine(e)}`, {
      step: 'status',
      cause: e,
    });
  }
  return { kind, dir, generations: gens.map((g) => generationReport(g, now, kind !== 'handover')) };
}

/** Is this generation dated further ahead of `now` than `skewMs` (a clock problem or a planted id)? */
function isAhead(g: GenerationReport, now: Date, skewMs: number): boolean {
  return Date.parse(g.createdAt) - now.getTime() > skewMs;
}

/** The newest generation of the stores, ids from the future left out: they never read as "age 0". */
function newestOf(
  stores: readonly StoreReport[],
  now: Date,
  skewMs = DEFAULT_FUTURE_SKEW_MS,
): StreamReport['newest'] {
  const all = stores
    .flatMap((s) => s.generations)
    .filter((g) => !isAhead(g, now, skewMs))
    .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const g = all[0];
  return g ? { id: g.id, ageSeconds: g.ageSeconds } : null;
}

/** One problem per store holding generations dated ahead of this host's clock. */
function futureProblems(
  stores: readonly StoreReport[],
  who: { source: string; stream: StreamName },
  now: Date,
  skewMs = DEFAULT_FUTURE_SKEW_MS,
): Problem[] {
  return stores.flatMap((st) => {
    const ahead = st.generations.filter((g) => isAhead(g, now, skewMs)).map((g) => g.id);
    if (ahead.length === 0) return [];
    return [
      {
        kind: 'future' as const,
        ...who,
        message: `${who.source}/${who.stream}: ${ahead.length} generation(s) in the ${st.kind} dated more than ${formatDuration(skewMs)} ahead of this host's clock (a clock problem or a planted id; not counted as fresh, never a retention reference): ${ahead.join(', ')}`,
      },
    ];
  });
}

function storePoints(r: StreamReport, scope: string): RecoveryPoint[] {
  return r.stores
    .filter((s) => s.generations.length > 0)
    .map((s) => ({
      kind: s.kind,
      name: `${r.source}/${r.stream}`,
      source: r.source,
      stream: r.stream,
      scope,
      count: s.generations.length,
      oldest: s.generations[0]?.createdAt ?? null,
      newest: s.generations.at(-1)?.createdAt ?? null,
      keepDays: null,
    }));
}

type RunRead = { run: RunReport } | { problem: Problem } | undefined;

/** The run record `file` (parsed with the schema of its writer, src/core/run-record.ts) as a RunReport. */
async function readRun(
  file: string,
  schema: typeof sourceRunRecordSchema | typeof sinkRunRecordSchema,
  source: string,
  stream: StreamName | null,
  fallbackJob: string,
): Promise<RunRead> {
  let raw: unknown;
  try {
    raw = await readJsonIfExists(file);
  } catch (e) {
    return { problem: { kind: 'run-record', source, stream, message: `cannot read ${file}: ${oneLine(e)}` } };
  }
  if (raw === undefined) return undefined;
  const p = schema.safeParse(raw);
  if (!p.success) {
    return {
      problem: { kind: 'run-record', source, stream, message: `${file} is not a baton run record` },
    };
  }
  return { run: toRunReport(p.data, source, stream, fallbackJob) };
}

function toRunReport(
  r: SourceRunRecord | SinkRunRecord,
  source: string,
  stream: StreamName | null,
  fallbackJob: string,
): RunReport {
  return {
    job: r.job || fallbackJob,
    source,
    stream,
    ok: r.ok,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    durationSeconds: Math.max(0, Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000,
    error: r.ok ? null : (r.error ?? 'failed'),
    generation: r.ok && 'id' in r ? (r.id ?? null) : null,
  };
}

/** The run history beside a run record (the last RUN_HISTORY_MAX runs, oldest first); [] when none or unreadable. */
async function readRunHistory(
  file: string,
  schema: typeof sourceRunRecordSchema | typeof sinkRunRecordSchema,
  source: string,
  stream: StreamName | null,
  fallbackJob: string,
): Promise<RunReport[]> {
  const raw = await readJsonIfExists(runHistoryFile(file)).catch(() => undefined);
  return parseRunHistory(raw, schema).map((r) => toRunReport(r, source, stream, fallbackJob));
}

function addRun(read: RunRead, runs: RunReport[], problems: Problem[]): RunReport | undefined {
  if (read === undefined) return undefined;
  if ('problem' in read) {
    problems.push(read.problem);
    return undefined;
  }
  runs.push(read.run);
  if (!read.run.ok) {
    problems.push({
      kind: 'run-failed',
      source: read.run.source,
      stream: read.run.stream,
      message: `${read.run.job}${read.run.stream === null ? ` (${read.run.source})` : ` ${read.run.source}/${read.run.stream}`} failed at ${read.run.finishedAt}: ${singleLine(read.run.error ?? '')}`,
    });
  }
  return read.run;
}

function finish(base: Omit<StatusReport, 'format' | 'ok' | 'problems'>, problems: Problem[]): StatusReport {
  return { format: STATUS_FORMAT, ...base, ok: problems.length === 0, problems };
}

/** The source host: per stream its handover (pending) and source store, the last backup, overdue transports. */
export async function sourceStatus(config: SourceConfig, now: Date): Promise<StatusReport> {
  const problems: Problem[] = [];
  const lastRuns: RunReport[] = [];
  const lastRunFile = sourceState(config).lastRun;
  const run = addRun(
    await readRun(lastRunFile, sourceRunRecordSchema, config.name, null, 'source backup'),
    lastRuns,
    problems,
  );
  const runHistory = await readRunHistory(
    lastRunFile,
    sourceRunRecordSchema,
    config.name,
    null,
    'source backup',
  );
  const overdueMs = config.alerts.transportOverdue;
  const streams: StreamReport[] = [];
  const recoveryPoints: RecoveryPoint[] = [];
  const configured = [
    { stream: 'data' as const, cfg: config.streams.data, store: config.streams.data.store },
    ...(config.streams.logs ? [{ stream: 'logs' as const, cfg: config.streams.logs, store: undefined }] : []),
  ];
  for (const { stream, cfg, store } of configured) {
    const handover = await storeReport('handover', cfg.handover, now);
    const stores = [
      handover,
      ...(store === undefined ? [] : [await storeReport('source store', store, now)]),
    ];
    const overdue = judgeOverdueHandovers(
      handover.generations.map((g) => ({ id: g.id, createdAt: new Date(g.createdAt) })),
      now,
      overdueMs,
      run && { startedAt: new Date(run.startedAt), id: run.generation ?? undefined },
    );
    const overdueIds = new Set(overdue.map((o) => o.id));
    const oldest = overdue[0];
    const who = `${config.name}/${stream}`;
    let stale: StaleReport | null = null;
    if (oldest) {
      const ageMs = now.getTime() - oldest.createdAt.getTime();
      const message =
        `${who}: ${overdue.length} generation(s) not taken by the sink, oldest ${oldest.id} ` +
        (overdueMs === undefined
          ? '(left from an earlier run)'
          : `(older than transportOverdue ${formatDuration(overdueMs)})`);
      stale = {
        reason: 'transport-overdue',
        ageSeconds: seconds(ageMs),
        limitSeconds: overdueMs === undefined ? null : seconds(overdueMs),
        message,
      };
      problems.push({ kind: 'transport-overdue', source: config.name, stream, message });
    }
    const r: StreamReport = {
      source: config.name,
      stream,
      stores,
      pending: handover.generations.map((g) => ({
        id: g.id,
        createdAt: g.createdAt,
        ageSeconds: g.ageSeconds,
        overdue: overdueIds.has(g.id),
      })),
      quarantined: [],
      newest: newestOf(stores, now),
      stale,
      lastRunOk: run?.ok ?? null,
      offsite: null,
    };
    problems.push(...futureProblems(stores, { source: config.name, stream }, now));
    streams.push(r);
    recoveryPoints.push(...storePoints(r, cfg.paths.join(', ')));
  }
  // refused acks and rejects the gate recorded that no backup has mailed yet
  for (const { stream, events } of await unmailedGateEvents(config, now)) {
    const newest = events.at(-1);
    if (!newest) continue;
    problems.push({
      kind: 'gate-event',
      source: config.name,
      stream,
      message: `${config.name}/${stream}: ${events.length} gate event(s) not yet mailed, newest: ${describeGateEvent(newest.event)}`,
    });
  }
  return finish(
    {
      host: 'source',
      name: config.name,
      now: now.toISOString(),
      checks: {
        staleAfterSeconds: null,
        transportOverdueSeconds: overdueMs === undefined ? null : seconds(overdueMs),
        offsiteStaleAfterSeconds: null,
      },
      streams,
      lastRuns,
      runHistory,
      recoveryPoints,
    },
    problems,
  );
}

/** The offsite tier of one sink source/stream from what the last push recorded (no network). */
async function offsiteReport(
  config: SinkConfig,
  source: string,
  stream: StreamName,
  now: Date,
): Promise<{ report: OffsiteReport; staleMessage: string | undefined }> {
  const facts = await offsiteLagFacts(config, source, stream, now);
  const limit = config.alerts.offsiteStaleAfter;
  const v = judgeOffsiteLag(facts, now, limit ?? Number.MAX_SAFE_INTEGER);
  const p = facts.pushed;
  const at = p?.newest === undefined ? undefined : parseGenerationId(p.newest);
  const report: OffsiteReport = {
    newest:
      p?.newest !== undefined && at !== undefined
        ? {
            id: p.newest,
            createdAt: at.toISOString(),
            ageSeconds: Math.max(0, seconds(now.getTime() - at.getTime())),
          }
        : null,
    checkedAt: p?.checkedAt ?? null,
    lastError: p?.lastError ?? null,
    lastErrorAt: p?.lastError === undefined ? null : (p.lastErrorAt ?? null),
    lagSeconds: v.lagMs === undefined ? null : seconds(v.lagMs),
    stale: limit !== undefined && v.stale,
  };
  return { report, staleMessage: report.stale ? v.message : undefined };
}

function offsiteProblems(
  o: OffsiteReport,
  staleMessage: string | undefined,
  who: string,
  where: { source: string; stream: StreamName },
): Problem[] {
  const out: Problem[] = [];
  if (o.lastError !== null)
    out.push({
      kind: 'offsite-push-failed',
      ...where,
      message: `${who}: the last offsite push failed${o.lastErrorAt === null ? '' : ` at ${o.lastErrorAt}`}: ${o.lastError}`,
    });
  if (staleMessage !== undefined) out.push({ kind: 'offsite-stale', ...where, message: staleMessage });
  return out;
}

/** `.quarantine/<id>.<UTC time without : and .>` → its id and when it was quarantined. */
export function parseQuarantineName(name: string): QuarantineReport {
  const dot = name.indexOf('.');
  const id = dot > 0 ? name.slice(0, dot) : name;
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(dot > 0 ? name.slice(dot + 1) : '');
  const at = m ? new Date(`${m[1]}T${m[2]}:${m[3]}:${m[4]}.${m[5]}Z`) : undefined;
  return {
    name,
    id: isGenerationId(id) ? id : null,
    quarantinedAt: at && !Number.isNaN(at.getTime()) ? at.toISOString() : null,
  };
}

/** The sink host: per source and stream the sink store, quarantined generations, the last pull, staleness, tiers. */
export async function sinkStatus(config: SinkConfig, now: Date): Promise<StatusReport> {
  const problems: Problem[] = [];
  // an unmounted store disk shows here before the next pull refuses it
  const storeProblem = await checkStoreMarker(config.store);
  if (storeProblem !== undefined)
    problems.push({ kind: 'store-unusable', source: null, stream: null, message: storeProblem });
  const lastRuns: RunReport[] = [];
  const runHistory: RunReport[] = [];
  const streams: StreamReport[] = [];
  const recoveryPoints: RecoveryPoint[] = [];
  const staleAfter = config.alerts.staleAfter;
  for (const src of config.sources) {
    for (const stream of ['data', 'logs'] as const) {
      if (!src.streams[stream]) continue;
      const p = sinkPaths(config, src.name, stream);
      const store = await storeReport('sink store', p.streamDir, now);
      const bad = await listBadMarks(p.streamDir);
      for (const g of store.generations) if (bad.has(g.id)) Object.assign(g, { verified: false, bad: true });
      const damaged = store.generations.filter((g) => g.bad === true).map((g) => g.id);
      if (damaged.length > 0) {
        problems.push({
          kind: 'damaged',
          source: src.name,
          stream,
          message: `${src.name}/${stream}: ${damaged.length} generation(s) failed \`baton verify\` and no longer count as good: ${damaged.join(', ')} (see .bad/ in ${p.streamDir}; restore from an older one)`,
        });
      }
      const quarantined = (await readdir(p.quarantine).catch(() => [] as string[]))
        .filter((n) => !n.startsWith('.'))
        .sort()
        .map(parseQuarantineName);
      const run = addRun(
        await readRun(p.lastRun, sinkRunRecordSchema, src.name, stream, `sink pull ${stream}`),
        lastRuns,
        problems,
      );
      runHistory.push(
        ...(await readRunHistory(p.lastRun, sinkRunRecordSchema, src.name, stream, `sink pull ${stream}`)),
      );
      let stale: StaleReport | null = null;
      if (staleAfter !== undefined) {
        const [v] = judgeStale(
          [await streamFreshness(config, src.name, stream, now)],
          now,
          staleAfter,
          config.limits.futureSkew,
        );
        if (v?.stale) {
          stale = {
            reason: 'no-new-generation',
            ageSeconds: v.ageMs === undefined ? null : seconds(v.ageMs),
            limitSeconds: seconds(staleAfter),
            message: v.message,
          };
          problems.push({ kind: 'stale', source: src.name, stream, message: v.message });
        }
      }
      const r: StreamReport = {
        source: src.name,
        stream,
        stores: [store],
        pending: [],
        quarantined,
        newest: newestOf([store], now, config.limits.futureSkew),
        stale,
        lastRunOk: run?.ok ?? null,
        offsite: null,
      };
      const waiting = outsideWindow(src, now);
      if (waiting !== undefined) r.waiting = waiting;
      if (config.offsite !== undefined) {
        const o = await offsiteReport(config, src.name, stream, now);
        r.offsite = o.report;
        const where = { source: src.name, stream };
        problems.push(...offsiteProblems(o.report, o.staleMessage, `${src.name}/${stream}`, where));
        const n = r.offsite.newest;
        if (n !== null)
          recoveryPoints.push({
            kind: 'offsite',
            name: `${src.name}/${stream}`,
            source: src.name,
            stream,
            scope: `s3://${config.offsite.bucket}/${config.offsite.prefix} (as of the last push${r.offsite.checkedAt === null ? '' : `, ${r.offsite.checkedAt}`})`,
            count: null,
            oldest: null,
            newest: n.createdAt,
            keepDays: null,
          });
      }
      problems.push(...futureProblems([store], { source: src.name, stream }, now, config.limits.futureSkew));
      streams.push(r);
      recoveryPoints.push(...storePoints(r, `the ${stream} stream of ${src.name}`));
    }
  }
  for (const t of config.recoveryTiers) {
    recoveryPoints.push({
      kind: 'tier',
      name: t.name,
      source: null,
      stream: null,
      scope: t.scope,
      count: null,
      oldest: new Date(now.getTime() - t.keepDays * 86_400_000).toISOString(),
      newest: now.toISOString(),
      keepDays: t.keepDays,
    });
  }
  return finish(
    {
      host: 'sink',
      name: null,
      now: now.toISOString(),
      checks: {
        staleAfterSeconds: staleAfter === undefined ? null : seconds(staleAfter),
        transportOverdueSeconds: null,
        offsiteStaleAfterSeconds:
          config.alerts.offsiteStaleAfter === undefined ? null : seconds(config.alerts.offsiteStaleAfter),
      },
      streams,
      lastRuns,
      runHistory,
      recoveryPoints,
    },
    problems,
  );
}

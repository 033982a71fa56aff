import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SinkConfig, SinkSourceConfig, SinkStreamConfig, StreamName } from '../config/schema.js';
import { BatonError, ExitCode, JobError, LockedError, oneLine } from '../errors.js';
import {
  MAX_LIST_HEAD_BYTES,
  MAX_LISTING_BYTES,
  parseListingWithHead,
  type ListingWithHead,
} from '../core/gate-replies.js';
import { parseGenerationId, parseWorkName } from '../generation/names.js';
import type { SinkRunRecord } from '../core/run-record.js';
import { writeRunRecord } from '../adapters/run-history.js';
import { formatAge, formatDuration } from '../core/duration.js';
import { acquireLock, HeldLockError, releaseHeldLocksSync } from '../adapters/lock.js';
import { describeExceeded } from '../adapters/run.js';
import { mkdirp } from '../adapters/fsx.js';
import { alertFooter, alertSubject, flushPendingAlerts, sendAlert } from '../adapters/notify.js';
import { ping } from '../adapters/ping.js';
import { pullSummary } from '../core/run-summary.js';
import { recentLogLines, type Logger } from '../adapters/log.js';
import { mapLimited } from '../adapters/concurrency.js';
import { withChildRecords } from '../adapters/children.js';
import { describeSshFailure } from '../adapters/ssh.js';
import { sshTransport, type Transport } from './transport.js';
import { openGateSession } from './gate-session.js';
import { cleanIncoming } from './publish.js';
import { sinkPaths, type SinkPaths } from './state.js';
import { useReflinkStore } from './reflink-store.js';
import { checkStaleStreams } from './check-stale.js';
import { recordPullMetrics } from './record-metrics.js';
import { checkStoreMarker } from './check-store.js';
import { pullOne, type PullContext } from './pull-one.js';
import { outsideWindow, schedulePulls } from './pull-schedule.js';

export type TransportFactory = (
  src: SinkSourceConfig,
  stream: SinkStreamConfig,
  controlDir: string,
  ioTimeoutMs: number,
) => Promise<Transport>;

export interface SinkPullOptions {
  stream: StreamName;
  /** only this source (`--source NAME`) */
  only?: string;
  now: () => Date;
  log: Logger;
  /** how to reach a source; ssh unless the demo says otherwise */
  transportFor?: TransportFactory;
  /** progress bars on stderr (a terminal, not cron) */
  progress?: boolean;
}

export interface StreamOutcome {
  source: string;
  stream: StreamName;
  ok: boolean;
  locked: boolean;
  pulled: string[];
  acked: string[];
  pruned: string[];
  quarantined: string[];
  /** things that did not fail the run but need a human (e.g. a suspicious size drop) */
  warnings: string[];
  /** files and bytes of the generations pulled this run (for the ping's summary) */
  pulledFiles?: number;
  pulledBytes?: number;
  /** not pulled this run, and not a failure: outside the source's `window:` */
  waiting?: string;
  error?: string;
}

function emptyOutcome(source: string, stream: StreamName): StreamOutcome {
  return {
    source,
    stream,
    ok: false,
    locked: false,
    pulled: [],
    acked: [],
    pruned: [],
    quarantined: [],
    warnings: [],
  };
}

/** While it is in place, an uncaught exception or unhandled rejection rejects `crashed` instead of killing the process. */
function catchCrash(): { crashed: Promise<never>; dispose: () => void } {
  let fail: (e: unknown) => void = () => undefined;
  const crashed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  crashed.catch(() => undefined);
  const onCrash = (e: unknown) => fail(e);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  return {
    crashed,
    dispose: () => {
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
    },
  };
}

/**
 * The lock is held by a live run that started longer ago than `alerts.lockHeldAfter` (default
 * maxPullDuration + 1h): that run should have ended by now. Returns the one-line error, else undefined.
 */
function lockHeldTooLong(config: SinkConfig, e: unknown, now: Date): string | undefined {
  if (!(e instanceof HeldLockError) || e.owner.startedAt === undefined) return undefined;
  const limit = config.alerts.lockHeldAfter ?? config.limits.maxPullDuration + 3_600_000;
  const heldMs = now.getTime() - e.owner.startedAt.getTime();
  if (heldMs <= limit) return undefined;
  return `lock: pid ${e.owner.pid} on ${e.owner.host} has held the lock for ${formatAge(heldMs)}, longer than alerts.lockHeldAfter (${formatDuration(limit)}): that run is stuck; check it and end it (${e.owner.command})`;
}

/**
 * Steps 2 / 3 for every configured source that has the stream: list, then each pending
 * generation oldest first: pull, verify, publish, prune, ack. A failure on one source does not
 * stop the others; after a failure nothing more is pruned or acked for that source and stream.
 */
export async function runSinkPull(config: SinkConfig, opts: SinkPullOptions): Promise<StreamOutcome[]> {
  const sources = config.sources.filter(
    (s) => s.streams[opts.stream] !== undefined && (opts.only === undefined || s.name === opts.only),
  );
  if (opts.only !== undefined && sources.length === 0) {
    throw new BatonError(`no source "${opts.only}" with a ${opts.stream} stream in the config`, {
      exitCode: 2,
      step: 'config',
    });
  }
  const pendingAlerts = join(config.stateDir, 'pending-alerts');
  // Before anything is written anywhere: an unmounted store disk must not be filled from scratch.
  const storeProblem = await checkStoreMarker(config.store);
  if (storeProblem !== undefined) await refuseStore(config, sources, opts, storeProblem);
  await mkdirp(config.stateDir, 0o700);
  await flushPendingAlerts(config.alerts.mail, pendingAlerts, opts.log);
  await ping(config.alerts.ping, 'start');
  // The crash path: an unexpected error anywhere in the pulls (even one thrown from an event
  // handler, which no try/catch sees) still releases the locks and reaches the alert below.
  const runAbort = new AbortController();
  const crash = catchCrash();
  let outcomes: StreamOutcome[];
  try {
    outcomes = await Promise.race([
      // started by priority, then the oldest last success; reported in the configured order
      schedulePulls(config, sources, opts.stream, (order) =>
        mapLimited(order, config.parallel, (src) => pullSourceStream(config, src, opts, runAbort.signal)),
      ),
      crash.crashed,
    ]);
  } catch (e) {
    runAbort.abort(new JobError(`unexpected error: ${oneLine(e)}`, { step: 'pull' }));
    releaseHeldLocksSync();
    opts.log.error({ step: 'pull' }, `unexpected error: ${oneLine(e)}`);
    outcomes = sources.map((src) => ({
      ...emptyOutcome(src.name, opts.stream),
      error: `unexpected error: ${oneLine(e)} (locks released)`,
    }));
  } finally {
    crash.dispose();
  }
  const failed = outcomes.filter((o) => !o.ok && !o.locked);
  if (failed.length > 0) {
    const lines = failed.map((o) => `${o.source}/${o.stream}: ${o.error ?? 'failed'}`);
    await sendAlert(
      config.alerts,
      pendingAlerts,
      {
        subject: alertSubject(
          'sink',
          `pull of ${opts.stream} FAILED for ${failed.map((o) => o.source).join(', ')}`,
        ),
        reportsFailure: true,
        text:
          `baton sink pull ${opts.stream} failed:\n\n${lines.join('\n')}\n\n` +
          `Nothing was acked or pruned for the failed sources: the sources keep their generations and the next run retries.\n` +
          (failed.some((o) => o.quarantined.length)
            ? `Generations that failed verification were moved to .quarantine/ in the sink store for inspection.\n`
            : '') +
          `\nLast log lines:\n${recentLogLines().join('\n')}\n` +
          alertFooter(),
      },
      opts.log,
    );
    await ping(config.alerts.ping, 'fail', lines.join('\n'));
  } else {
    await ping(config.alerts.ping, 'success', pullSummary(outcomes));
  }
  await checkStaleStreams(config, outcomes, opts);
  await recordPullMetrics(config, opts.stream, outcomes, opts.now(), opts.log);
  return outcomes;
}

/**
 * The store root is missing or unmarked: nothing is written into it. The refusal is recorded per
 * source (state dir, outside the store) so `baton status` shows it, alerted, and thrown (exit 2).
 */
async function refuseStore(
  config: SinkConfig,
  sources: readonly SinkSourceConfig[],
  opts: SinkPullOptions,
  problem: string,
): Promise<never> {
  const at = opts.now().toISOString();
  if (!isInside(config.stateDir, config.store)) {
    await mkdirp(join(config.stateDir, 'runs'), 0o755);
    for (const src of sources) {
      await recordRun(sinkPaths(config, src.name, opts.stream).lastRun, {
        job: `sink pull ${opts.stream}`,
        source: src.name,
        ok: false,
        startedAt: at,
        finishedAt: at,
        pulled: [],
        pruned: [],
        quarantined: [],
        warnings: [],
        error: problem,
      }).catch((e: unknown) => opts.log.error({ step: 'record' }, `could not record the run: ${oneLine(e)}`));
    }
    await sendAlert(
      config.alerts,
      join(config.stateDir, 'pending-alerts'),
      {
        subject: alertSubject('sink', `pull of ${opts.stream} REFUSED: sink store not usable`),
        reportsFailure: true,
        text:
          `baton sink pull ${opts.stream} refused to run:\n\n${problem}\n\n` +
          `Nothing was pulled, written, acked or pruned; the sources keep their generations.\n` +
          alertFooter(),
      },
      opts.log,
    );
  }
  await ping(config.alerts.ping, 'fail', problem);
  throw new BatonError(problem, { exitCode: ExitCode.usage, step: 'store' });
}

function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

async function recordRun(file: string, record: SinkRunRecord): Promise<void> {
  await writeRunRecord(file, record);
}

/** One source and stream, in phases: lock → pull under the lock → record the run. */
async function pullSourceStream(
  config: SinkConfig,
  src: SinkSourceConfig,
  opts: SinkPullOptions,
  runSignal?: AbortSignal,
): Promise<StreamOutcome> {
  const stream = opts.stream;
  const streamCfg = src.streams[stream];
  const out = emptyOutcome(src.name, stream);
  if (!streamCfg) return { ...out, ok: true };
  const waiting = outsideWindow(src, opts.now());
  if (waiting !== undefined) {
    opts.log.info({ step: 'window', source: src.name, stream }, `${src.name}/${stream}: ${waiting}`);
    return { ...out, ok: true, waiting };
  }
  const paths = sinkPaths(config, src.name, stream);
  const log = opts.log.child({ source: src.name, stream });
  const startedAt = opts.now();
  const lock = await lockStream(config, paths, `baton sink pull ${stream} --source ${src.name}`, opts, log);
  if ('error' in lock) return { ...out, ...lock };
  try {
    await pullLocked(config, src, streamCfg, paths, opts, log, out, runSignal);
  } finally {
    await lock.release();
  }
  await recordStreamRun(config, paths, stream, src.name, startedAt, opts, out, log);
  return out;
}

/** The stream's lock, or why not: held by another run (`locked`), held far too long, or unusable. */
async function lockStream(
  config: SinkConfig,
  paths: SinkPaths,
  command: string,
  opts: SinkPullOptions,
  log: Logger,
): Promise<{ release: () => Promise<void> } | { error: string; locked?: boolean }> {
  try {
    return await acquireLock(paths.lock, command);
  } catch (e) {
    if (e instanceof LockedError) {
      // the same live run holding it for far too long is a failure to hear about, not a skip
      const stuck = lockHeldTooLong(config, e, opts.now());
      if (stuck !== undefined) {
        log.error({ step: 'lock' }, stuck);
        return { error: stuck };
      }
      log.warn({ step: 'lock' }, e.message);
      return { locked: true, error: e.message };
    }
    log.error({ step: 'lock' }, oneLine(e));
    return { error: oneLine(e) };
  }
}

/** Under the lock: the pull of every pending generation, ended by limits.maxPullDuration (and with the run). */
async function pullLocked(
  config: SinkConfig,
  src: SinkSourceConfig,
  streamCfg: SinkStreamConfig,
  paths: SinkPaths,
  opts: SinkPullOptions,
  log: Logger,
  out: StreamOutcome,
  runSignal: AbortSignal | undefined,
): Promise<void> {
  const deadline = startDeadline(config.limits.maxPullDuration, runSignal);
  let transport: Transport | undefined;
  try {
    // First end what a killed run left running (its rsync into .incoming, an `ssh … ack`), then
    // record ours; only then the store and the gate are touched.
    await withChildRecords(paths.children, log, async () => {
      // checked again per source: a disk unmounted since the start of the run is not refilled either
      const storeProblem = await checkStoreMarker(config.store);
      if (storeProblem !== undefined) throw new JobError(storeProblem, { step: 'store' });
      await mkdirp(paths.streamDir, 0o755);
      transport = await (opts.transportFor ?? sshTransport)(src, streamCfg, paths.controlDir, config.timeout);
      // one gate process for the list, acks and rejects of this pull (an older gate: one per command)
      transport = await openGateSession(transport, config.timeout, log);
      await pullPending({
        config,
        src,
        stream: opts.stream,
        streamCfg,
        transport,
        paths,
        log,
        now: opts.now,
        progress: opts.progress === true,
        deadline: deadline.signal,
        out,
        retentionFrozen: false,
        failures: [],
      });
    });
    out.ok = true;
  } catch (e) {
    out.error = oneLine(e);
    log.error({ step: e instanceof BatonError ? e.step : 'pull' }, out.error);
  } finally {
    deadline.dispose();
    await transport?.close().catch(() => undefined);
  }
}

async function recordStreamRun(
  config: SinkConfig,
  paths: SinkPaths,
  stream: StreamName,
  source: string,
  startedAt: Date,
  opts: SinkPullOptions,
  out: StreamOutcome,
  log: Logger,
): Promise<void> {
  await mkdirp(join(config.stateDir, 'runs'), 0o755);
  await recordRun(paths.lastRun, {
    job: `sink pull ${stream}`,
    source,
    ok: out.ok,
    startedAt: startedAt.toISOString(),
    finishedAt: opts.now().toISOString(),
    pulled: out.pulled,
    pruned: out.pruned,
    quarantined: out.quarantined,
    warnings: out.warnings,
    error: out.error,
  }).catch((e: unknown) => log.error({ step: 'record' }, `could not record the run: ${oneLine(e)}`));
}

/** Aborted after `limitMs` or with the run; dispose() when the pull ends. */
function startDeadline(
  limitMs: number,
  runSignal?: AbortSignal,
): { signal: AbortSignal; dispose: () => void } {
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new JobError(
          `the pull ran longer than limits.maxPullDuration (${formatDuration(limitMs)}) and was ended; nothing acked for the generation in transfer, its partial copy is kept for the next run`,
          { step: 'deadline' },
        ),
      ),
    Math.min(limitMs, 2 ** 31 - 1),
  );
  timer.unref();
  const onRunAbort = () => deadline.abort(runSignal?.reason);
  runSignal?.addEventListener('abort', onRunAbort, { once: true });
  return {
    signal: deadline.signal,
    dispose: () => {
      clearTimeout(timer);
      runSignal?.removeEventListener('abort', onRunAbort);
    },
  };
}

/**
 * The pending generations of one source and stream: list them, clear what a killed run left, then
 * {@link pullOne} each, oldest first. Generations set aside or dated ahead fail the run at its end.
 */
async function pullPending(shared: Omit<PullContext, 'reflink'>): Promise<void> {
  const { config, paths, log } = shared;
  const { listing, head } = await listPending(shared);
  // Ids ahead of the sink clock (a planted 9999-… id, a source clock far ahead) are never pulled:
  // they would anchor retention and staleness. The others are pulled first, then the run fails.
  const aheadAfter = shared.now().getTime() + config.limits.futureSkew;
  const future = listing.generations.filter((g) => (parseGenerationId(g.id)?.getTime() ?? 0) > aheadAfter);
  const pending = listing.generations.filter((g) => !future.includes(g));
  await removeDeletingLeftovers(paths.streamDir, log);
  const incomingNames = await readdir(paths.incoming).catch(() => [] as string[]);
  await cleanIncoming(paths.incoming, new Set(pending.map((g) => g.id)), incomingNames);
  const ctx: PullContext = {
    ...shared,
    reflink: await useReflinkStore(config.storeMode, paths.streamDir, log),
    inlineHead: head,
  };
  for (const g of pending) {
    ctx.deadline.throwIfAborted();
    await pullOne(g, ctx);
  }
  if (future.length > 0) {
    ctx.failures.push(
      `generation(s) ${future.map((g) => g.id).join(', ')} dated more than ${formatDuration(config.limits.futureSkew)} ahead of this sink's clock (${ctx.now().toISOString()}): refused, not pulled, not acked (a source clock problem or a planted id; limits.futureSkew)`,
    );
  }
  if (ctx.failures.length > 0) throw new JobError(ctx.failures.join('\n'), { step: 'verify' });
}

/**
 * Asks the gate what is pending, and for the oldest one's manifest with it (`list-head`: the pull of
 * one generation then needs no rsync session for its head). The reply is bounded while read and parsed
 * as hostile input. A gate of an older baton refuses `list-head`: then plain `list`.
 */
async function listPending(ctx: Omit<PullContext, 'reflink'>): Promise<ListingWithHead> {
  const { transport, config } = ctx;
  // the configured timeout, not a fixed one: a hung gate must not hold the run (issue 10, hole 11);
  // read up to the most a listing and a small manifest may be: a hostile gate cannot fill the sink's memory
  let cap = MAX_LIST_HEAD_BYTES;
  let listed = await transport.run('list-head', config.timeout, cap, true);
  if (listed.code === 1 && listed.stderr.includes('baton gate: refused: not an allowed command')) {
    // a plain listing is one line of at most 4 MiB: no more than that is read
    cap = MAX_LISTING_BYTES;
    listed = await transport.run('list', config.timeout, cap, true);
  }
  if (listed.exceeded) {
    throw new JobError(
      `list over ${transport.describe}: the reply is ${describeExceeded(cap)} (the gate's session was ended)`,
      { step: 'list' },
    );
  }
  ctx.deadline.throwIfAborted();
  if (listed.code !== 0) {
    const gateSaid = listed.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(`list over ${transport.describe} failed: ${gateSaid ?? describeSshFailure(listed)}`, {
      step: 'list',
    });
  }
  let reply;
  try {
    reply = parseListingWithHead(listed.stdoutBytes ?? Buffer.from(listed.stdout), {
      source: ctx.src.name,
      stream: ctx.stream,
    });
  } catch (e) {
    throw new JobError(oneLine(e), { step: 'list' });
  }
  ctx.log.info(
    { step: 'list', pending: reply.listing.generations.map((g) => g.id), head: reply.head?.id },
    `${reply.listing.generations.length} generation(s) pending`,
  );
  return reply;
}

/** A prune killed half-way leaves `.<id>.deleting`: finish it (it was already out of the store's count). */
async function removeDeletingLeftovers(streamDir: string, log: Logger): Promise<void> {
  for (const n of await readdir(streamDir).catch(() => [] as string[])) {
    if (parseWorkName(n)?.kind !== 'deleting') continue;
    await rm(join(streamDir, n), { recursive: true, force: true });
    log.warn({ step: 'prune' }, `finished removing ${n} left by an interrupted prune`);
  }
}

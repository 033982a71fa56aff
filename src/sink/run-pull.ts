import { lstat, readdir, rm } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import type { SinkConfig, SinkSourceConfig, SinkStreamConfig, StreamName } from '../config/schema.js';
import { BatonError, ExitCode, JobError, LockedError, oneLine } from '../errors.js';
import { MAX_LISTING_BYTES, parseGateListing } from '../core/listing.js';
import { parseGenerationId } from '../generation/names.js';
import { formatAge, formatDuration } from '../core/duration.js';
import { acquireLock, HeldLockError, releaseHeldLocksSync } from '../adapters/lock.js';
import { describeExceeded } from '../adapters/run.js';
import { boundQuarantine } from './quarantine-bound.js';
import { mkdirp, sha256File, writeFileAtomic } from '../adapters/fsx.js';
import { listGenerations } from '../generation/list.js';
import { ManifestError } from '../generation/manifest-file.js';
import { alertFooter, alertSubject, flushPendingAlerts, sendAlert } from '../adapters/notify.js';
import { ping } from '../adapters/ping.js';
import { recentLogLines, type Logger } from '../adapters/log.js';
import { describeSshFailure, sshTransport, type Transport } from './transport.js';
import { freeBytes, pullGeneration, pullHead } from './pull.js';
import { precheckManifest } from './precheck.js';
import { EarlyHashes } from './early-hash.js';
import { crashPoint } from '../adapters/crash-point.js';
import { withChildRecords } from '../adapters/children.js';
import { describeProblems, pulledManifestSha256, verifyGeneration } from '../generation/verify.js';
import { cleanIncoming, publishGeneration, quarantineGeneration } from './publish.js';
import { pruneSinkStream } from './prune.js';
import { checkSizeAnomaly } from './check-anomaly.js';
import { ackGeneration, rejectGeneration } from './ack.js';
import { sinkPaths } from './state.js';
import { prepareClonedTree, useReflinkStore } from './reflink-store.js';
import { checkStaleStreams } from './check-stale.js';
import { recordPullMetrics } from './record-metrics.js';
import { checkStoreMarker } from './check-store.js';

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

/** Runs `fn` over items with at most `limit` at once, in order of the items. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(workers);
  return out;
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
      mapLimited(sources, config.parallel, (src) => pullSourceStream(config, src, opts, runAbort.signal)),
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
      config.alerts.mail,
      pendingAlerts,
      {
        subject: alertSubject(
          'sink',
          `pull of ${opts.stream} FAILED for ${failed.map((o) => o.source).join(', ')}`,
        ),
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
    await ping(config.alerts.ping, 'success');
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
      config.alerts.mail,
      join(config.stateDir, 'pending-alerts'),
      {
        subject: alertSubject('sink', `pull of ${opts.stream} REFUSED: sink store not usable`),
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

async function recordRun(file: string, record: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
}

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
  const paths = sinkPaths(config, src.name, stream);
  const log = opts.log.child({ source: src.name, stream });
  const startedAt = opts.now();
  let lock;
  try {
    lock = await acquireLock(paths.lock, `baton sink pull ${stream} --source ${src.name}`);
  } catch (e) {
    if (e instanceof LockedError) {
      // the same live run holding it for far too long is a failure to hear about, not a skip
      const stuck = lockHeldTooLong(config, e, opts.now());
      if (stuck !== undefined) {
        log.error({ step: 'lock' }, stuck);
        return { ...out, error: stuck };
      }
      log.warn({ step: 'lock' }, e.message);
      return { ...out, locked: true, error: e.message };
    }
    out.error = oneLine(e);
    log.error({ step: 'lock' }, out.error);
    return out;
  }
  // The whole pull of this source and stream ends by limits.maxPullDuration (and with the run).
  const deadline = new AbortController();
  const limitMs = config.limits.maxPullDuration;
  const deadlineTimer = setTimeout(
    () =>
      deadline.abort(
        new JobError(
          `the pull ran longer than limits.maxPullDuration (${formatDuration(limitMs)}) and was ended; nothing acked for the generation in transfer, its partial copy is kept for the next run`,
          { step: 'deadline' },
        ),
      ),
    Math.min(limitMs, 2 ** 31 - 1),
  );
  deadlineTimer.unref();
  const onRunAbort = () => deadline.abort(runSignal?.reason);
  runSignal?.addEventListener('abort', onRunAbort, { once: true });
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
      await pullPending(
        config,
        src,
        stream,
        transport,
        paths,
        out,
        log,
        opts.now,
        opts.progress === true,
        deadline.signal,
      );
    });
    out.ok = true;
  } catch (e) {
    out.error = oneLine(e);
    log.error({ step: e instanceof BatonError ? e.step : 'pull' }, out.error);
  } finally {
    clearTimeout(deadlineTimer);
    runSignal?.removeEventListener('abort', onRunAbort);
    await transport?.close().catch(() => undefined);
    await lock.release();
  }
  await mkdirp(join(config.stateDir, 'runs'), 0o755);
  await recordRun(paths.lastRun, {
    job: `sink pull ${stream}`,
    source: src.name,
    ok: out.ok,
    startedAt: startedAt.toISOString(),
    finishedAt: opts.now().toISOString(),
    pulled: out.pulled,
    pruned: out.pruned,
    quarantined: out.quarantined,
    warnings: out.warnings,
    error: out.error,
  }).catch((e: unknown) => log.error({ step: 'record' }, `could not record the run: ${oneLine(e)}`));
  return out;
}

async function pullPending(
  config: SinkConfig,
  src: SinkSourceConfig,
  stream: StreamName,
  transport: Transport,
  paths: ReturnType<typeof sinkPaths>,
  out: StreamOutcome,
  log: Logger,
  now: () => Date,
  progress: boolean,
  deadline: AbortSignal,
): Promise<void> {
  const streamCfg = src.streams[stream];
  if (!streamCfg) return;
  // the configured timeout, not a fixed one: a hung gate must not hold the run (issue 10, hole 11);
  // read up to the most a listing may be: a hostile gate cannot fill the sink's memory
  const listed = await transport.run('list', config.timeout, MAX_LISTING_BYTES);
  if (listed.exceeded) {
    throw new JobError(
      `list over ${transport.describe}: the reply is ${describeExceeded(MAX_LISTING_BYTES)} (the gate's session was ended)`,
      { step: 'list' },
    );
  }
  deadline.throwIfAborted();
  if (listed.code !== 0) {
    const gateSaid = listed.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(`list over ${transport.describe} failed: ${gateSaid ?? describeSshFailure(listed)}`, {
      step: 'list',
    });
  }
  let listing;
  try {
    listing = parseGateListing(listed.stdout, { source: src.name, stream });
  } catch (e) {
    throw new JobError(oneLine(e), { step: 'list' });
  }
  log.info(
    { step: 'list', pending: listing.generations.map((g) => g.id) },
    `${listing.generations.length} generation(s) pending`,
  );
  // Ids ahead of the sink clock (a planted 9999-… id, a source clock far ahead) are never pulled:
  // they would anchor retention and staleness. The others are pulled first, then the run fails.
  const aheadAfter = now().getTime() + config.limits.futureSkew;
  const future = listing.generations.filter((g) => (parseGenerationId(g.id)?.getTime() ?? 0) > aheadAfter);
  const pending = listing.generations.filter((g) => !future.includes(g));
  await removeDeletingLeftovers(paths.streamDir, log);
  const incomingNames = await readdir(paths.incoming).catch(() => [] as string[]);
  await cleanIncoming(paths.incoming, new Set(pending.map((g) => g.id)), incomingNames);
  const maxManifestBytes =
    config.limits.maxManifestBytes ?? Math.min(config.limits.maxBytes, config.limits.maxFiles * 1024);
  const minThroughput = {
    bytes: config.limits.minThroughput.bytes,
    windowMs: config.limits.minThroughput.window,
  };
  const quarantine = async (id: string): Promise<string> => {
    const q = await quarantineGeneration(paths.incoming, paths.quarantine, id, now());
    out.quarantined.push(q);
    await boundQuarantine(
      paths.quarantine,
      { maxCount: config.limits.maxQuarantined, maxBytes: config.limits.maxQuarantineBytes },
      log,
    );
    return q;
  };

  // storeMode: each generation starts as a reflink clone of the previous one, or hard links
  const reflink = await useReflinkStore(config.storeMode, paths.streamDir, log);

  // set by a suspicious size drop: nothing is pruned for this stream for the rest of this run
  let retentionFrozen = false;
  // A quarantined generation does not block the newer ones behind it (issue 10, hole 12): it is
  // rejected on the source (set aside there), the pull goes on, and the run still fails at the end.
  const quarantineErrors: string[] = [];
  const setAside = async (
    g: { id: string; manifestSha256: string },
    message: string,
    reusedBase: string | undefined,
  ): Promise<void> => {
    quarantineErrors.push(message);
    // a failed run prunes nothing, this one included
    retentionFrozen = true;
    log.error({ step: 'verify', id: g.id }, message);
    if (reusedBase !== undefined) {
      // Files may have come from our own generation (hard links, a clone), not the source: the fault
      // may be on this side, so the source's copy is not set aside. The next run pulls it again.
      quarantineErrors.push(
        `  not rejected on the source: the pull reused ${reusedBase} from this store, which may be at fault; the next run pulls it again`,
      );
      return;
    }
    try {
      const keptIn = await rejectGeneration(transport, g.id, g.manifestSha256, config.timeout, log);
      quarantineErrors.push(`  rejected on the source: kept in ${keptIn}, no longer pending`);
    } catch (e) {
      quarantineErrors.push(`  ${oneLine(e)}: it stays pending on the source`);
    }
  };
  for (const g of pending) {
    deadline.throwIfAborted();
    const stored = await listGenerations(paths.streamDir);
    const already = stored.find((s) => s.id === g.id);
    if (already) {
      // Published by an earlier run that died before its ack: ack it now, if it is the same generation.
      const have = await sha256File(join(already.dir, 'manifest'));
      if (have !== g.manifestSha256) {
        throw new JobError(
          `generation ${g.id} differs from the one already in the sink store (manifest hash); not acked`,
          { step: 'verify' },
        );
      }
      await ackGeneration(transport, g.id, g.manifestSha256, already.dir, config.timeout, log);
      out.acked.push(g.id);
      continue;
    }
    const base = stored.filter((s) => s.id < g.id).at(-1) ?? stored.at(-1);
    const pullInput = {
      transport,
      id: g.id,
      incoming: paths.incoming,
      linkDest: base?.dir,
      inplace: reflink && base !== undefined,
      ioTimeoutMs: config.timeout,
      stream,
      log,
      progress,
      signal: deadline,
      minThroughput,
    };
    const pulledDir = join(paths.incoming, g.id);
    // read alongside the new manifest in tree order, never loaded whole (1,000,000 files fit in constant memory)
    const baseManifest = base ? join(base.dir, 'manifest') : undefined;
    // Phase one: manifest and meta.json only. A hostile, oversized or too-large generation is
    // rejected here, before its tree takes any space.
    if (g.manifestBytes > maxManifestBytes) {
      throw new JobError(
        `generation ${g.id} announces a manifest of ${g.manifestBytes} bytes, over limits.maxManifestBytes (${maxManifestBytes}); not pulled, not acked`,
        { step: 'pull' },
      );
    }
    // no file of the head larger than announced (meta.json: at most 1 MiB), nothing read beyond that
    const headMax = Math.max(g.manifestBytes, META_MAX_BYTES);
    const baseManifestBytes = baseManifest
      ? ((await lstat(baseManifest).catch(() => undefined))?.size ?? 0)
      : 0;
    await pullHead({
      ...pullInput,
      maxFileBytes: headMax,
      maxReadBytes: 3 * (headMax + META_MAX_BYTES) + 2 * baseManifestBytes + READ_SLACK_BYTES,
    });
    // Never follows a symlink from the source (to a FIFO, /dev/zero, /etc/shadow): not a hash then.
    const manifestHash = await pulledManifestSha256(pulledDir);
    let pre;
    try {
      if (manifestHash !== g.manifestSha256)
        throw new ManifestError(
          /^[0-9a-f]{64}$/.test(manifestHash)
            ? 'manifest hash differs from the one listed'
            : `manifest ${manifestHash}`,
        );
      // a tree left by an interrupted pull of this generation is resumed: its complete files cost nothing more
      pre = await precheckManifest(pulledDir, config.limits.maxFiles, baseManifest, join(pulledDir, 'tree'));
    } catch (e) {
      if (!(e instanceof ManifestError)) throw e;
      const q = await quarantine(g.id);
      // the head is fetched whole from the source (no --link-dest): a bad manifest is the source's
      await setAside(
        g,
        `generation ${g.id} has a bad manifest (quarantined in ${q}, not acked): ${e.message}`,
        undefined,
      );
      continue;
    }
    if (pre.bytes > config.limits.maxBytes) {
      await rm(pulledDir, { recursive: true, force: true });
      throw new JobError(
        `generation ${g.id} holds ${pre.bytes} bytes, over limits.maxBytes (${config.limits.maxBytes}); not pulled, nothing deleted to make room`,
        { step: 'pull' },
      );
    }
    const { free, headroom } = await freeBytes(paths.streamDir);
    if (pre.newBytes + headroom > free) {
      await rm(pulledDir, { recursive: true, force: true });
      throw new JobError(
        `generation ${g.id} needs about ${Math.ceil(pre.newBytes / 2 ** 20)} MiB new in ${paths.streamDir}${pre.resumedBytes > 0 ? ` (besides ${Math.ceil(pre.resumedBytes / 2 ** 20)} MiB already in .incoming)` : ''}, only ${Math.floor(free / 2 ** 20)} MiB free; not pulled, nothing deleted to make room`,
        { step: 'pull' },
      );
    }
    if (pullInput.inplace && base) {
      await prepareClonedTree(pulledDir, base.dir, log);
      await crashPoint('sink-cloned');
    }
    // files are hashed as rsync completes them, while it transfers the next ones
    const early = config.verify ? new EarlyHashes(pulledDir) : undefined;
    await pullGeneration({
      ...pullInput,
      ...(early ? { early } : {}),
      // no file larger than the largest declared one (SHA256SUMS and meta.json are smaller than the manifest)
      maxFileBytes: Math.max(pre.largest, g.manifestBytes, META_MAX_BYTES),
      // what rsync may read: the declared data, the delta bases of changed files (read by the
      // generator and the receiver), a resumed partial copy, the file list; more means the source
      // sends more than it declared
      maxReadBytes: 3 * pre.bytes + 2 * pre.basisBytes + 2 * g.manifestBytes + READ_SLACK_BYTES,
    });
    const v = await verifyGeneration({
      dir: pulledDir,
      expect: { id: g.id, source: src.name, stream },
      hashes: config.verify,
      // a clone written in place shares no inode with the base: every file is hashed (no shortcut)
      ...(base && baseManifest && !pullInput.inplace
        ? { linkBase: { tree: join(base.dir, 'tree'), manifest: baseManifest } }
        : {}),
      maxFiles: config.limits.maxFiles,
      maxBytes: config.limits.maxBytes,
      ...(early ? { knownHash: (rel: Buffer, st: BigIntStats) => early.lookup(rel, st) } : {}),
    });
    if ((await pulledManifestSha256(pulledDir)) !== g.manifestSha256) {
      v.ok = false;
      v.problems.unshift({ kind: 'manifest', path: 'manifest', detail: 'manifest changed during the pull' });
    }
    if (!v.ok) {
      const q = await quarantine(g.id);
      await setAside(
        g,
        `generation ${g.id} failed verification (quarantined in ${q}, not acked):\n${describeProblems(v.problems)}`,
        base?.id,
      );
      continue;
    }
    log.info(
      {
        step: 'verify',
        id: g.id,
        files: v.files,
        bytes: v.bytes,
        hashed: v.hashed,
        hashedDuringTransfer: early?.hashed ?? 0,
        reused: v.reused,
      },
      `verified ${g.id}`,
    );
    // -- anomaly check (retention under attack) --
    const anomaly = await checkSizeAnomaly({
      source: src.name,
      stream,
      streamDir: paths.streamDir,
      id: g.id,
      size: { files: v.files, bytes: v.bytes },
      dropPercent: streamCfg.anomalyDropPercent,
      mail: config.alerts.mail,
      pendingAlerts: paths.pendingAlerts,
      log,
    });
    if (anomaly !== undefined) {
      out.warnings.push(anomaly);
      retentionFrozen = true;
    }
    // -- end anomaly check --
    await crashPoint('sink-verified');
    await publishGeneration(paths.incoming, paths.streamDir, g.id, log);
    out.pulled.push(g.id);
    await crashPoint('sink-published');
    if (retentionFrozen) {
      log.warn(
        { step: 'prune' },
        quarantineErrors.length > 0
          ? 'a generation was quarantined in this run: nothing pruned'
          : `retention frozen after a suspicious size drop: nothing pruned`,
      );
    } else {
      const plan = await pruneSinkStream(
        paths.streamDir,
        { keep: streamCfg.generations, keepWithin: streamCfg.keepWithin },
        [g.id],
        log,
        { clock: now(), skewMs: config.limits.futureSkew },
      );
      out.pruned.push(...plan.remove.map((r) => r.id));
    }
    await crashPoint('sink-pruned');
    await ackGeneration(transport, g.id, g.manifestSha256, join(paths.streamDir, g.id), config.timeout, log);
    out.acked.push(g.id);
    await crashPoint('sink-acked');
  }
  if (future.length > 0) {
    quarantineErrors.push(
      `generation(s) ${future.map((g) => g.id).join(', ')} dated more than ${formatDuration(config.limits.futureSkew)} ahead of this sink's clock (${now().toISOString()}): refused, not pulled, not acked (a source clock problem or a planted id; limits.futureSkew)`,
    );
  }
  if (quarantineErrors.length > 0) throw new JobError(quarantineErrors.join('\n'), { step: 'verify' });
}

/** meta.json is a few hundred bytes; this much is the most pulled for it. */
const META_MAX_BYTES = 2 ** 20;
/** Reads of rsync beyond the declared bytes that are never suspicious (protocol, file list, checksums). */
const READ_SLACK_BYTES = 64 * 2 ** 20;

/** A prune killed half-way leaves `.<id>.deleting`: finish it (it was already out of the store's count). */
async function removeDeletingLeftovers(streamDir: string, log: Logger): Promise<void> {
  for (const n of await readdir(streamDir).catch(() => [] as string[])) {
    if (!/^\.[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z\.deleting$/.test(n)) continue;
    await rm(join(streamDir, n), { recursive: true, force: true });
    log.warn({ step: 'prune' }, `finished removing ${n} left by an interrupted prune`);
  }
}

import { chown, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SourceConfig } from '../config/schema.js';
import { formatDuration } from '../core/duration.js';
import { BatonError, CombinedError, JobError, oneLine } from '../errors.js';
import type { SourceRunRecord } from '../core/run-record.js';
import { writeRunRecord } from '../adapters/run-history.js';
import { describeCommand } from '../adapters/run.js';
import { loadNameMaps } from '../adapters/accounts.js';
import { acquireLock } from '../adapters/lock.js';
import { mkdirp } from '../adapters/fsx.js';
import { alertFooter, alertSubject, flushPendingAlerts, sendAlert } from '../adapters/notify.js';
import { ping } from '../adapters/ping.js';
import { backupSummary } from '../core/run-summary.js';
import { recentLogLines, type Logger } from '../adapters/log.js';
import { planBackup, type BackupPlan } from './preflight.js';
import { checkPreviousTransport } from './check-previous-transport.js';
import { clearAppStoppedRecord, recordAppStopping, stopApp } from './stop-app.js';
import { startApp } from './start-app.js';
import { raisePriority } from '../adapters/priority.js';
import { streamCollector } from './collect.js';
import { removeSnapshotRoot, SnapshotLedger } from './snapshot.js';
import { buildGeneration, type BuiltGeneration } from './build-generation.js';
import { publishHandover } from './publish-handover.js';
import { recoverSource } from './recover.js';
import { crashPoint } from '../adapters/crash-point.js';
import { withChildRecords } from '../adapters/children.js';
import { sourceState } from './state.js';
import { recordBackupMetrics } from './record-metrics.js';
import { reportGateEvents } from './report-gate-events.js';

export interface BackupOptions {
  dryRun: boolean;
  now: () => Date;
  log: Logger;
  /** aborted on SIGTERM / SIGINT: running rsyncs are stopped, the app is still started again */
  signal?: AbortSignal;
  /** a progress bar for the data collection on stderr (a terminal, not cron) */
  progress?: boolean;
}

export interface BackupResult {
  id: string;
  generations: BuiltGeneration[];
  downtimeMs: number;
  /** the app's own stop command, and its start command with the health check: part of downtimeMs */
  appStopMs?: number;
  appStartMs?: number;
  transportFailed: boolean;
}

function describeCollect(s: BackupPlan['streams'][number]): string {
  const pre = s.config.prepass ? 'after a pre-pass while the app runs, ' : '';
  switch (s.config.collect) {
    case 'reflink':
      return `      ${pre}clone with cp --reflink=always into ${s.reflinkStage} while the app is down, then replace mirror ${s.mirror}`;
    case 'snapshot':
      return `      btrfs read-only snapshot of each path's subvolume while the app is down; refresh mirror ${s.mirror} from it once the app runs`;
    case 'command':
      return `      snapshot.create \`${s.config.snapshot ? describeCommand(s.config.snapshot.create) : ''}\` while the app is down; refresh mirror ${s.mirror} from ${s.config.snapshot?.path ?? ''} once the app runs, then snapshot.remove`;
    default:
      return `      ${pre}refresh mirror ${s.mirror} with rsync while the app is down`;
  }
}

/** What a dry run prints: the plan, nothing changed. */
export function describePlan(config: SourceConfig, plan: BackupPlan): string {
  const lines = [
    `baton source backup --dry-run (${config.name}): nothing was changed`,
    `  stop app:    ${describeCommand(config.app.stop)}  (timeout ${config.app.stopTimeout / 1000}s)`,
    `  app down at most ${formatDuration(config.app.maxDowntime)} (app.maxDowntime): a longer collection is aborted`,
  ];
  for (const s of plan.streams) {
    lines.push(
      `  collect ${s.name}: ${s.config.paths.join(', ')}${s.config.exclude.length ? `  (exclude ${s.config.exclude.join(', ')})` : ''}`,
    );
    lines.push(describeCollect(s));
  }
  lines.push(
    `  start app:   ${describeCommand(config.app.start)}${config.app.healthCheck ? `, then until healthy: ${describeCommand(config.app.healthCheck)}` : ''}  (timeout ${config.app.startTimeout / 1000}s)`,
  );
  for (const s of plan.streams) {
    lines.push(
      `  hand over ${s.name}: ${s.handover}/${plan.id}  owned by ${s.owner.name}` +
        (s.previous ? `, unchanged files hard-linked to ${s.previous.id}` : ', first generation (full copy)'),
    );
    if (s.pending.length)
      lines.push(
        `      ${s.pending.length} generation(s) still pending: ${s.pending.map((p) => p.id).join(', ')}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

async function recordLastRun(config: SourceConfig, rec: SourceRunRecord): Promise<void> {
  const state = sourceState(config);
  await mkdirp(state.root, 0o700);
  await writeRunRecord(state.lastRun, rec, 0o644);
}

/**
 * Steps 1.a–1.d and the handover. The app is started again in `finally`, whatever failed; the
 * stop is recorded durably first so that a killed run can be repaired by the next command.
 * Only the mirror refresh happens while the app is down; hashing and building come after.
 */
export async function runSourceBackup(
  config: SourceConfig,
  opts: BackupOptions,
): Promise<BackupResult | undefined> {
  const { log } = opts;
  const state = sourceState(config);
  if (opts.dryRun) {
    const plan = await planBackup(config, opts.now());
    process.stdout.write(describePlan(config, plan));
    return undefined;
  }
  await mkdirp(state.root, 0o700);
  const lock = await acquireLock(state.lock, 'baton source backup');
  const startedAt = opts.now();
  let result: BackupResult | undefined;
  try {
    await ping(config.alerts.ping, 'start');
    // first ends what a killed run left running (rsync, the stop command), then records ours
    result = await withChildRecords(state.children, log, () => backupLocked(config, opts));
    await recordLastRun(config, {
      job: 'source backup',
      ok: true,
      startedAt: startedAt.toISOString(),
      finishedAt: opts.now().toISOString(),
      id: result.id,
      downtimeMs: result.downtimeMs,
      appStopMs: result.appStopMs,
      appStartMs: result.appStartMs,
      transportFailed: result.transportFailed,
    });
    await ping(
      config.alerts.ping,
      'success',
      backupSummary(
        result.id,
        result.downtimeMs,
        result.generations.map((g) => g.meta),
      ),
    );
    await recordBackupMetrics(config, { ok: true, startedAt, finishedAt: opts.now() }, log);
    return result;
  } catch (err) {
    const message = oneLine(err);
    await recordLastRun(config, {
      job: 'source backup',
      ok: false,
      startedAt: startedAt.toISOString(),
      finishedAt: opts.now().toISOString(),
      error: message,
    }).catch((e: unknown) => log.error({ step: 'record' }, `could not record the run: ${oneLine(e)}`));
    const appDown = message.includes('APP DOWN');
    const step = err instanceof BatonError ? (err.step ?? 'backup') : 'backup';
    await sendAlert(
      config.alerts,
      state.pendingAlerts,
      {
        subject: alertSubject(
          config.name,
          appDown ? 'APP DOWN after backup — start it now' : `source backup FAILED (${step})`,
        ),
        reportsFailure: true,
        text:
          `baton source backup failed on "${config.name}".\n\n${message}\n\n` +
          (appDown
            ? `The app server is NOT running. Start it by hand (${describeCommand(config.app.start)}) or run \`baton source recover\`.\n\n`
            : `The app server was started again. The previous generations are untouched.\n\n`) +
          `Last log lines:\n${recentLogLines().join('\n')}\n` +
          alertFooter(),
      },
      log,
    );
    await ping(config.alerts.ping, 'fail', message);
    await recordBackupMetrics(config, { ok: false, startedAt, finishedAt: opts.now() }, log);
    throw err;
  } finally {
    await lock.release();
  }
}

async function backupLocked(config: SourceConfig, opts: BackupOptions): Promise<BackupResult> {
  const { log } = opts;
  const state = sourceState(config);
  await recoverSource(config, log);
  await flushPendingAlerts(config.alerts.mail, state.pendingAlerts, log);
  // what the gate refused or set aside since the last run (it may not be able to mail itself)
  await reportGateEvents(config, opts.now(), log);
  const plan = await planBackup(config, opts.now());
  const transport = await checkPreviousTransport(config, plan, opts.now(), log);
  const names = await loadNameMaps();
  for (const s of plan.streams) {
    // The stream user (the sink's login, through the gate) moves and deletes generations here.
    for (const dir of s.store ? [s.handover, s.store] : [s.handover]) {
      await mkdirp(dirname(dir), 0o755);
      await mkdirp(dir, 0o750);
      await chown(dir, s.owner.uid, s.owner.gid);
    }
  }
  // collect.ts: per stream, a live pre-pass, what runs while the app is down, and what runs after
  const ledger = new SnapshotLedger(state.snapshots, state.root);
  const collectors = plan.streams.map((s) =>
    streamCollector(s, { state, ledger, log, progress: opts.progress === true && s.name === 'data' }),
  );
  const prepassLimit = AbortSignal.timeout(config.app.maxDowntime);
  try {
    for (const c of collectors)
      await c.beforeStop(opts.signal ? AbortSignal.any([opts.signal, prepassLimit]) : prepassLimit);
    if (opts.signal?.aborted)
      throw new JobError('interrupted before the app was stopped', { step: 'stop-app' });
    // durable before the stop (a killed run leaves it for recover), written while the app still runs
    await recordAppStopping(state.root, state.appStopped, opts.now());
  } catch (e) {
    await Promise.allSettled(collectors.map((c) => c.cleanup()));
    throw e;
  }

  // 1.a – 1.d: the app is down only for the mirror refresh (or the snapshot). The downtime counts
  // from the stop command's start to the end of the start command (and its health check).
  const appStoppedAt = opts.now();
  const failures: Error[] = [];
  let appStartedAt: Date | undefined;
  let appStopMs: number | undefined;
  let appStartMs: number | undefined;
  // The app's downtime is bounded: a collection that hangs (a stalled disk or network mount) or runs
  // far longer than planned is aborted (its processes killed) and the app is started again.
  const downLimit = AbortSignal.timeout(config.app.maxDowntime);
  const collectSignal = opts.signal ? AbortSignal.any([opts.signal, downLimit]) : downLimit;
  // baton's own wake-ups while the app is down get the CPU first on a busy machine (root only);
  // the stop command itself runs as configured, and the start command after the old value is back
  let restorePriority: () => void = () => undefined;
  try {
    appStopMs = await stopApp(config.app, log, (pid) => {
      restorePriority = raisePriority();
      try {
        for (const c of collectors) c.stopStarted?.(pid);
      } catch {
        /* a speed-up only: the snapshot is then taken when the stop's end is seen here */
      }
    });
    await crashPoint('app-stopped');
    const collected = await Promise.allSettled(collectors.map((c) => c.whileDown(collectSignal)));
    await crashPoint('snapshot-taken');
    if (downLimit.aborted && !opts.signal?.aborted)
      failures.push(
        new JobError(
          `collecting kept the app down longer than app.maxDowntime (${formatDuration(config.app.maxDowntime)}): aborted, the app is started again (raise maxDowntime for a first backup of a large data set)`,
          { step: 'collect' },
        ),
      );
    for (const c of collected) if (c.status === 'rejected') failures.push(asError(c.reason));
    await crashPoint('collected');
    if (opts.signal?.aborted)
      failures.push(new JobError('interrupted by a signal while collecting', { step: 'collect' }));
  } catch (e) {
    failures.push(asError(e));
  } finally {
    try {
      const startAt = Date.now();
      appStartedAt = await startApp(config.app, log, opts.now, restorePriority);
      appStartMs = Date.now() - startAt;
      await clearAppStoppedRecord(state.appStopped);
    } catch (e) {
      failures.push(asError(e));
    } finally {
      restorePriority();
    }
  }
  // no clone or snapshot of a failed run is left behind (the next run clones afresh)
  if (failures.length > 0) {
    for (const c of await Promise.allSettled(collectors.map((x) => x.cleanup())))
      if (c.status === 'rejected') failures.push(asError(c.reason));
    await rm(state.reflinkRoot, { recursive: true, force: true }).catch(() => undefined);
    await removeSnapshotRoot(state.snapshotRoot).catch(() => undefined);
  }
  if (failures.length === 1 && failures[0]) throw failures[0];
  if (failures.length > 1) throw new CombinedError(failures);
  const startedAt = appStartedAt ?? opts.now();
  const downtimeMs = startedAt.getTime() - appStoppedAt.getTime();
  log.info(
    { step: 'start-app', downtimeMs, appStopMs, appStartMs },
    `app was down for ${(downtimeMs / 1000).toFixed(1)}s`,
  );

  // collect: reflink / snapshot / command — the clone or the frozen view becomes what the build
  // reads, now that the app runs again; then it is removed, whatever failed
  try {
    for (const c of collectors) {
      await c.afterUp(opts.signal);
      await c.cleanup();
    }
  } catch (e) {
    await Promise.allSettled(collectors.map((c) => c.cleanup()));
    throw e;
  } finally {
    await rm(state.reflinkRoot, { recursive: true, force: true });
    // collect: snapshot: the streams' snapshot dirs are gone, so is the dir that held them
    await removeSnapshotRoot(state.snapshotRoot);
  }

  // After the app is back: build, hash and hand over each stream's generation.
  const generations: BuiltGeneration[] = [];
  for (const s of plan.streams) {
    if (opts.signal?.aborted) throw new JobError('interrupted by a signal while building', { step: 'build' });
    const gen = await buildGeneration({
      source: config.name,
      stream: s.name,
      id: plan.id,
      mirror: s.mirror,
      paths: s.config.paths,
      parent: s.handover,
      owner: s.owner,
      names,
      previous: s.previous,
      appStoppedAt,
      appStartedAt: startedAt,
      log,
    });
    await crashPoint('before-publish');
    await publishHandover(gen, log);
    generations.push(gen);
  }
  return { id: plan.id, generations, downtimeMs, appStopMs, appStartMs, transportFailed: transport.failed };
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

import { lstat, readFile, rename, rm, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SourceStreamConfig, StreamName } from '../config/schema.js';
import { JobError } from '../errors.js';
import { describeExit, runProcess } from '../adapters/run.js';
import { describeRsyncResult, rsyncEnv } from '../adapters/rsync.js';
import { mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { createProgress, rsyncProgressArgs } from '../adapters/progress.js';
import { cloneInto } from '../adapters/reflink.js';
import { TREE } from '../generation/names.js';
import type { StreamPlan } from './preflight.js';
import {
  changedSince,
  journalArgv,
  planJournalPass,
  startJournal,
  type PrepassJournal,
} from './prepass-journal.js';
import type { SourceState } from './state.js';
import {
  copyAncestorAttributes,
  removeStreamSnapshots,
  runSnapshotCreate,
  armBtrfsSnapshots,
  type ArmedBtrfsSnapshots,
  type FrozenView,
  type SnapshotLedger,
} from './snapshot.js';

export interface CollectResult {
  stream: StreamName;
  mirror: string;
  ms: number;
}

/** rsync argv that refreshes a kept mirror of the stream's paths (full paths kept with -R). */
export function mirrorArgv(stream: SourceStreamConfig, mirror: string): string[] {
  return [
    'rsync',
    '-a',
    // the data's hard links: the manifest's link groups are read off the mirror's shared inodes
    '-H',
    '--relative',
    '--delete',
    '--delete-excluded',
    '--numeric-ids',
    '--no-inc-recursive',
    // compare and keep mtimes to the nanosecond: the default window matches whole seconds only, so a
    // file rewritten with the same size in the same second would be skipped, and a new directory,
    // symlink or device whose mtime is in the current second would keep its creation time
    '--modify-window=-1',
    ...stream.exclude.map((p) => `--exclude=${p}`),
    '--',
    ...stream.paths,
    `${mirror}/`,
  ];
}

/**
 * Steps 1.b / 1.d, run while the app is down: refreshes the kept mirror with rsync, so only
 * what changed since the last backup is copied. The mirror is wiped when the configured paths
 * changed (it would otherwise keep data of paths no longer backed up).
 */
export async function collectStream(
  name: StreamName,
  stream: SourceStreamConfig,
  mirror: string,
  pathsFile: string,
  log: Logger,
  signal?: AbortSignal,
  progress = false,
  /** collect: snapshot / command — the frozen view's `<root>/./<path>` for each path, read instead of the live paths */
  from?: readonly string[],
  /** the live pre-pass: files vanishing while the app runs (rsync exit 24) are expected, the pass while it is down sees them gone */
  vanishedOk = false,
): Promise<CollectResult> {
  const want = JSON.stringify({ paths: stream.paths, exclude: stream.exclude });
  const had = await readJsonIfExists(pathsFile).catch(() => undefined);
  if (JSON.stringify(had) !== want) {
    await rm(mirror, { recursive: true, force: true });
  }
  await mkdirp(mirror, 0o700);
  const argv = mirrorArgv(from ? { ...stream, paths: [...from] } : stream, mirror);
  log.info(
    { step: 'collect', stream: name },
    `refreshing the ${name} mirror${from ? ' from the snapshot' : ''}`,
  );
  const bar = createProgress(`collect ${name}`, progress);
  const shown = rsyncProgressArgs(progress ? bar : undefined);
  const [rsync, ...rest] = argv;
  const r = await runProcess([rsync ?? 'rsync', ...shown.args, ...rest], {
    env: rsyncEnv(),
    signal,
    tailBytes: 16 * 1024,
    ...(shown.onStdout ? { onStdout: shown.onStdout } : {}),
  });
  bar.stop();
  // (rsync skips deletions only for other I/O errors, which it says: then it is a failure)
  const vanishedOnly =
    vanishedOk &&
    r.code === 24 &&
    !r.timedOut &&
    r.signal === null &&
    !r.stderr.includes('skipping file deletion');
  const problem = vanishedOnly ? undefined : describeRsyncResult(r);
  if (problem) {
    throw new JobError(`collecting ${name}: ${problem}`, { step: 'collect' });
  }
  await writeFileAtomic(pathsFile, want, 0o600);
  log.info({ step: 'collect', stream: name, ms: r.durationMs }, `${name} collected`);
  return { stream: name, mirror, ms: r.durationMs };
}

/**
 * `collect: reflink`, run while the app is down: clones the stream's paths (full paths kept, as
 * the mirror keeps them) into `<stage>/clone` with `cp -a --reflink=always`. No data is copied,
 * so the time grows with the file count only. A failed or interrupted clone is removed.
 */
export async function cloneStream(
  name: StreamName,
  stream: SourceStreamConfig,
  stage: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<CollectResult> {
  await rm(stage, { recursive: true, force: true });
  const clone = join(stage, 'clone');
  try {
    await mkdirp(clone, 0o700);
    log.info({ step: 'collect', stream: name }, `cloning the ${name} paths (reflink)`);
    const r = await cloneInto(stream.paths, clone, { parents: true, archive: true, signal });
    if (signal?.aborted) throw new JobError(`cloning ${name}: interrupted by a signal`, { step: 'collect' });
    if (r.problem)
      throw new JobError(`cloning ${name} with cp --reflink=always: ${r.problem}`, { step: 'collect' });
    log.info({ step: 'collect', stream: name, ms: r.ms }, `${name} cloned`);
    return { stream: name, mirror: clone, ms: r.ms };
  } catch (e) {
    await rm(stage, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/**
 * `collect: reflink`, after the app is back: applies the excludes to the clone with the same
 * rsync filter as the mirror refresh (hard links into the clone, no data copied), then puts the
 * result in the kept mirror's place, so the generation is built from it exactly as from a mirror.
 * Whatever fails, the stage is removed.
 */
export async function finishClone(
  name: StreamName,
  stream: SourceStreamConfig,
  stage: string,
  mirror: string,
  pathsFile: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const clone = join(stage, 'clone');
  const tree = join(stage, TREE);
  try {
    if (stream.exclude.length === 0) {
      await rename(clone, tree);
    } else {
      await mkdirp(tree, 0o700);
      const argv = mirrorArgv({ ...stream, paths: stream.paths.map((p) => `${clone}/.${p}`) }, tree);
      argv.splice(1, 0, `--link-dest=${clone}`);
      const r = await runProcess(argv, { env: rsyncEnv(), signal, tailBytes: 16 * 1024 });
      const problem = describeRsyncResult(r);
      if (problem)
        throw new JobError(`applying the excludes of ${name} to its clone: ${problem}`, { step: 'collect' });
      await rm(clone, { recursive: true, force: true });
    }
    await rm(mirror, { recursive: true, force: true });
    await mkdirp(dirname(mirror), 0o700);
    await rename(tree, mirror);
    // the mirror now holds exactly what an rsync refresh would: a later `collect: rsync` refreshes it
    await writeFileAtomic(pathsFile, JSON.stringify({ paths: stream.paths, exclude: stream.exclude }), 0o600);
    log.info({ step: 'collect', stream: name }, `${name} clone ready to build from`);
  } finally {
    await rm(stage, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * The pre-pass's "racily clean" margin (git's rule): a file whose mtime is within the margin of the
 * pre-pass's start, or later, may have been rewritten within the same timestamp tick after it was
 * copied (same size, same mtime: rsync's quick check would skip it), so it is copied again while
 * the app is down. The margin is the filesystem's real timestamp granularity:
 *
 * - local filesystems that keep nanosecond mtimes (ext4 with large inodes, xfs, btrfs, tmpfs, f2fs)
 *   stamp them from the kernel's coarse clock, one tick (1/HZ, at most 10 ms) behind the clock
 *   baton reads: two ticks, FINE_RACY_MARGIN_MS;
 * - anything else (ext4 with 128-byte inodes, NFS, FAT, a fuse mount, a filesystem mounted inside a
 *   path): two whole seconds below the start's second, as before.
 */
export const FINE_RACY_MARGIN_MS = 20;
export const COARSE_RACY_MARGIN_MS = 2000;

/** statfs f_type of the local filesystems whose inodes keep nanosecond timestamps */
const NANOSECOND_FILESYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010]);

/** The mount points in /proc/self/mountinfo text (field 5, octal escapes undone). */
export function mountPoints(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5 || f[4] === undefined) continue;
    out.push(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/**
 * The racy margin for a stream's paths: fine only when every path is on a filesystem known to keep
 * nanosecond mtimes and shows it (its own mtime has a non-zero sub-second part: ext4 with 128-byte
 * inodes never does), and no other filesystem is mounted below a path (rsync crosses into it).
 */
export async function racyMarginMs(paths: readonly string[]): Promise<number> {
  try {
    const mounts = mountPoints(await readFile('/proc/self/mountinfo', 'utf8'));
    for (const p of paths) {
      if (mounts.some((m) => m !== p && m.startsWith(p === '/' ? '/' : `${p}/`)))
        return COARSE_RACY_MARGIN_MS;
      if (!NANOSECOND_FILESYSTEMS.has((await statfs(p)).type)) return COARSE_RACY_MARGIN_MS;
      if ((await lstat(p, { bigint: true })).mtimeNs % 1_000_000_000n === 0n) return COARSE_RACY_MARGIN_MS;
    }
    return FINE_RACY_MARGIN_MS;
  } catch {
    return COARSE_RACY_MARGIN_MS;
  }
}

/** The mtime (ms) from which a copy made by a pass that started at `startedMs` is racily clean. */
export function racyCutoffMs(startedMs: number, marginMs: number): number {
  return marginMs >= 1000 ? Math.floor(startedMs / 1000) * 1000 - marginMs : startedMs - marginMs;
}

/**
 * Removes from `dir` (a mirror or a clone) every regular file whose mtime is at or after
 * `cutoffMs`, so the pass while the app is down copies it again whatever its size and mtime say.
 * Returns the files removed (paths inside `dir`).
 */
export async function dropRacyFiles(dir: string, cutoffMs: number, signal?: AbortSignal): Promise<string[]> {
  const at = `@${(cutoffMs / 1000).toFixed(3)}`;
  // -newermt is strictly newer: one millisecond earlier makes it "at or after"
  const r = await runProcess(
    ['find', dir, '-type', 'f', '-newermt', `@${((cutoffMs - 1) / 1000).toFixed(3)}`, '-print0'],
    { captureStdout: true, maxStdoutBytes: 256 * 2 ** 20, signal, timeoutMs: 60 * 60_000 },
  );
  if (r.code !== 0 || r.exceeded)
    throw new JobError(`finding files changed since ${at} in ${dir} failed: ${describeExit(r)}`, {
      step: 'collect',
    });
  const dropped: string[] = [];
  for (const f of r.stdout.split('\0')) {
    if (f === '') continue;
    await unlink(f);
    dropped.push(f);
  }
  return dropped;
}

/** What a pre-pass leaves for the pass while the app is down. */
export interface Prepassed {
  /** undefined: no journal (coarse timestamps, a failed walk): the full pass runs */
  journal: PrepassJournal | undefined;
  /** the live files whose copies were dropped as racily clean: copied again whatever their ctime */
  racy: string[];
}

/**
 * The live pre-pass (collect: rsync / reflink with `prepass: true`), run while the app still runs:
 * refreshes the mirror (rsync) or takes the clone (reflink), then drops the racily clean copies.
 * The pass while the app is down then copies only what changed since. Returns false (logged, not
 * thrown) when it failed: the pass while the app is down then does all the work, as without it.
 */
export async function prepassStream(
  name: StreamName,
  stream: SourceStreamConfig,
  target: { mirror: string; pathsFile: string } | { stage: string },
  log: Logger,
  signal?: AbortSignal,
  /** a progress bar on the terminal for the pre-pass's refresh (it copies nearly all that changed) */
  progress = false,
): Promise<Prepassed | undefined> {
  const marginMs = await racyMarginMs(stream.paths);
  const startedMs = Date.now();
  const cutoffMs = racyCutoffMs(startedMs, marginMs);
  try {
    // only where timestamps are fine-grained: a coarse margin leaves the full pass to rsync
    const journal =
      marginMs === FINE_RACY_MARGIN_MS ? await startJournal(stream.paths, cutoffMs, signal) : undefined;
    let dir: string;
    if ('stage' in target) {
      dir = (await cloneStream(name, stream, target.stage, log, signal)).mirror;
    } else {
      await collectStream(
        name,
        stream,
        target.mirror,
        target.pathsFile,
        log,
        signal,
        progress,
        undefined,
        true,
      );
      dir = target.mirror;
    }
    const racy = (await dropRacyFiles(dir, cutoffMs, signal)).map((f) => f.slice(dir.length));
    log.info(
      {
        step: 'prepass',
        stream: name,
        ms: Date.now() - startedMs,
        racy: racy.length,
        racyMarginMs: marginMs,
      },
      `${name} pre-pass done while the app runs (${racy.length} recently changed file(s) will be copied again while it is down)`,
    );
    return { journal, racy };
  } catch (e) {
    log.warn(
      { step: 'prepass', stream: name },
      `${name} pre-pass failed, the pass while the app is down copies everything: ${e instanceof Error ? e.message : String(e)}`,
    );
    if ('stage' in target) await rm(target.stage, { recursive: true, force: true }).catch(() => undefined);
    return undefined;
  }
}

/**
 * While the app is down, after a pre-pass with a journal: brings `dir` (the mirror or the clone)
 * up to date from what changed since the pre-pass started (prepass-journal.ts): the names gone
 * are removed, the changed and new ones copied, then the changed dirs' own attributes. Returns
 * undefined when the journal cannot tell (logged with `via=full`): the caller runs the full pass.
 */
export async function journalPass(
  name: StreamName,
  stream: SourceStreamConfig,
  dir: string,
  prepassed: Prepassed & { journal: PrepassJournal },
  log: Logger,
  signal?: AbortSignal,
): Promise<CollectResult | undefined> {
  const t = Date.now();
  const v = await changedSince(prepassed.journal, stream.paths, signal);
  const plan =
    v.kind === 'full'
      ? { full: v.why }
      : await planJournalPass(
          prepassed.journal,
          stream.paths,
          { files: [...v.files, ...prepassed.racy], dirs: v.dirs },
          dir,
        );
  if ('full' in plan) {
    log.info({ step: 'collect', stream: name, via: 'full' }, `${name}: the full pass runs: ${plan.full}`);
    return undefined;
  }
  for (const p of plan.remove) await rm(p, { recursive: true, force: true });
  const base = mirrorArgv({ ...stream, paths: [] }, dir);
  // new dirs are copied with all below them (-r); the changed dirs' own attributes then in a run
  // without -r (listed in a recursive run, a dir would be walked whole)
  const runs = plan.recursive
    ? [
        { names: plan.copy, recursive: true },
        { names: plan.dirs, recursive: false },
      ]
    : [{ names: [...plan.copy, ...plan.dirs], recursive: false }];
  for (const run of runs) {
    if (run.names.length === 0) continue;
    const r = await runProcess(journalArgv(base, run.recursive), {
      env: rsyncEnv(),
      signal,
      input: `${run.names.join('\0')}\0`,
      tailBytes: 16 * 1024,
    });
    const problem = describeRsyncResult(r);
    if (problem) throw new JobError(`copying the changes of ${name}: ${problem}`, { step: 'collect' });
  }
  const ms = Date.now() - t;
  log.info(
    {
      step: 'collect',
      stream: name,
      via: 'journal',
      copied: plan.copy.length,
      removed: plan.remove.length,
      dirs: plan.dirs.length,
      ms,
    },
    `${name}: ${plan.copy.length} name(s) changed or new, ${plan.remove.length} gone since the pre-pass started`,
  );
  return { stream: name, mirror: dir, ms };
}

/**
 * collect: reflink after its pre-pass, while the app is down: brings the clone taken while the
 * app ran up to date from the live paths with the mirror's rsync (only what changed is copied).
 */
export async function refreshClone(
  name: StreamName,
  stream: SourceStreamConfig,
  stage: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<CollectResult> {
  const clone = join(stage, 'clone');
  log.info({ step: 'collect', stream: name }, `refreshing the ${name} clone`);
  const r = await runProcess(mirrorArgv(stream, clone), { env: rsyncEnv(), signal, tailBytes: 16 * 1024 });
  const problem = describeRsyncResult(r);
  if (problem) {
    await rm(stage, { recursive: true, force: true }).catch(() => undefined);
    throw new JobError(`refreshing the clone of ${name}: ${problem}`, { step: 'collect' });
  }
  log.info({ step: 'collect', stream: name, ms: r.durationMs }, `${name} clone refreshed`);
  return { stream: name, mirror: clone, ms: r.durationMs };
}

/** What one stream's collection does before the stop, while the app is down and once it is up again. */
export interface StreamCollector {
  /** while the app still runs: the live pre-pass (rsync / reflink with prepass on) */
  beforeStop(signal?: AbortSignal): Promise<void>;
  /** the app's stop command was started as `pid` (collect: snapshot takes its snapshot when it ends) */
  stopStarted?(pid: number): void;
  /** while the app is down, bounded by app.maxDowntime */
  whileDown(signal: AbortSignal): Promise<void>;
  /** once the app runs again and nothing failed: the tree to build from is put in the mirror's place */
  afterUp(signal?: AbortSignal): Promise<void>;
  /** once the app runs again, always (also after afterUp): removes this run's snapshot or clone */
  cleanup(): Promise<void>;
}

export interface CollectorContext {
  state: SourceState;
  ledger: SnapshotLedger;
  log: Logger;
  progress: boolean;
}

/** The collection of one stream by its `collect:` mode (see the config reference). */
export function streamCollector(s: StreamPlan, ctx: CollectorContext): StreamCollector {
  const { state, ledger, log } = ctx;
  const stage = state.reflinkStage(s.name);
  const mode = s.config.collect;
  if (mode === 'snapshot' || mode === 'command') {
    let view: FrozenView | undefined;
    let armed: ArmedBtrfsSnapshots | undefined;
    const base = join(state.snapshotRoot, s.name);
    const cleanup = async () => {
      // no snapshot can appear after this: the helper is gone before the records are acted on
      await armed?.disarm();
      await removeStreamSnapshots(s.name, ledger, state.snapshotRoot, log);
    };
    return {
      // collect: snapshot — recorded and armed while the app runs; a failure stops the run before the stop
      beforeStop: async () => {
        if (mode !== 'snapshot') return;
        try {
          armed = await armBtrfsSnapshots(s.name, s.config, base, ledger, log);
        } catch (e) {
          await cleanup().catch(() => undefined);
          throw e;
        }
      },
      stopStarted: (pid) => armed?.afterStop(pid),
      whileDown: async (signal) => {
        if (armed) {
          await armed.take(signal);
          view = armed.view;
        } else view = await runSnapshotCreate(s.name, s.config, ledger, log, signal);
      },
      afterUp: async (signal) => {
        if (!view) throw new JobError(`${s.name}: no snapshot was taken`, { step: 'collect' });
        if (mode === 'snapshot') await copyAncestorAttributes(view);
        await collectStream(
          s.name,
          s.config,
          s.mirror,
          s.mirrorPathsFile,
          log,
          signal,
          ctx.progress,
          view.sources,
        );
      },
      // also after a failed create: its remove runs; a recorded btrfs target never made is skipped
      cleanup,
    };
  }
  let prepassed: Prepassed | undefined;
  const journalled = async (dir: string, signal: AbortSignal): Promise<boolean> => {
    const p = prepassed;
    if (p?.journal === undefined) return false;
    return (
      (await journalPass(s.name, s.config, dir, { ...p, journal: p.journal }, log, signal)) !== undefined
    );
  };
  if (mode === 'reflink')
    return {
      beforeStop: async (signal) => {
        if (s.config.prepass) prepassed = await prepassStream(s.name, s.config, { stage }, log, signal);
      },
      whileDown: async (signal) => {
        if (!prepassed) await cloneStream(s.name, s.config, stage, log, signal);
        else if (!(await journalled(join(stage, 'clone'), signal)))
          await refreshClone(s.name, s.config, stage, log, signal);
      },
      afterUp: (signal) => finishClone(s.name, s.config, stage, s.mirror, s.mirrorPathsFile, log, signal),
      cleanup: () => rm(stage, { recursive: true, force: true }),
    };
  return {
    beforeStop: async (signal) => {
      if (s.config.prepass)
        prepassed = await prepassStream(
          s.name,
          s.config,
          { mirror: s.mirror, pathsFile: s.mirrorPathsFile },
          log,
          signal,
          ctx.progress,
        );
    },
    whileDown: async (signal) => {
      if (!(await journalled(s.mirror, signal)))
        await collectStream(s.name, s.config, s.mirror, s.mirrorPathsFile, log, signal, ctx.progress);
    },
    afterUp: () => Promise.resolve(),
    cleanup: () => Promise.resolve(),
  };
}

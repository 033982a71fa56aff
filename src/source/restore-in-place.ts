import { lstat, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SourceConfig } from '../config/schema.js';
import { formatGenerationId, isGenerationId } from '../generation/names.js';
import { isSameOrBelow, undoCommands, type ReplacedPath } from '../core/restore-plan.js';
import { pathKey } from '../core/manifest.js';
import { CombinedError, ConfigError, JobError, errnoCode, oneLine } from '../errors.js';
import { acquireLock } from '../adapters/lock.js';
import { withChildRecords } from '../adapters/children.js';
import { exists, fsyncDir, mkdirp } from '../adapters/fsx.js';
import { listGenerations } from '../generation/list.js';
import { runProcess } from '../adapters/run.js';
import { describeRsyncResult, rsyncEnv } from '../adapters/rsync.js';
import type { Logger } from '../adapters/log.js';
import { LinkRestore, openGeneration, restoreGeneration, scanManifest } from '../generation/restore.js';
import { describeProblems, readGenerationMeta, verifyGeneration } from '../generation/verify.js';
import { clearAppStoppedRecord, recordAppStopping, stopApp } from './stop-app.js';
import { startApp } from './start-app.js';
import { dropRacyFiles, racyCutoffMs } from './collect.js';
import { sourceState } from './state.js';

const STEP = 'source restore';

export interface RestoreCandidate {
  id: string;
  dir: string;
  /** where it was found */
  from: 'source store' | 'handover' | 'directory';
}

/**
 * GENERATION as given: an id is looked up in the source store, then in the data handover; anything
 * else must be a generation directory. ConfigError (exit 2) when there is no such generation.
 */
export async function findRestoreCandidate(config: SourceConfig, arg: string): Promise<RestoreCandidate> {
  if (isGenerationId(arg)) {
    const data = config.streams.data;
    for (const [from, parent] of [
      ['source store', data.store],
      ['handover', data.handover],
    ] as const) {
      const g = (await listGenerations(parent)).find((x) => x.id === arg);
      if (g) return { id: g.id, dir: g.dir, from };
    }
    throw new ConfigError(
      `generation ${arg} is in neither the source store (${data.store}) nor the data handover (${data.handover})`,
      { step: STEP },
    );
  }
  const gen = await openGeneration(arg);
  // never follows a symlink nor reads past 1 MiB: a directory named on the command line is not verified yet
  const meta = await readGenerationMeta(gen.dir);
  return { id: typeof meta === 'string' ? basename(gen.dir) : meta.id, dir: gen.dir, from: 'directory' };
}

export interface InPlaceOptions {
  now: () => Date;
  log: Logger;
  signal?: AbortSignal;
  /** asked once the generation and the paths are known, before anything is touched; throws to refuse */
  confirm?: (what: { id: string; dir: string; paths: readonly string[] }) => Promise<void>;
}

export interface InPlaceResult {
  id: string;
  dir: string;
  paths: string[];
  safetyDir: string;
  /** argv lists that put the data back as it was before the restore (run with the app stopped) */
  undo: string[][];
  files: number;
  bytes: number;
  /** entries given back their setuid/setgid bits from the manifest (the stores keep none) */
  setIdRestored: number;
  downtimeMs: number;
}

interface PathPlan extends ReplacedPath {
  rel: Buffer;
  /** `<parent>/.<name>.baton-restore`: the generation's copy is built here while the app runs */
  staging: string;
  /** the restored path inside `staging` */
  staged: string;
  /** `<parent>/.<name>.baton-replaced`: the current data, moved aside for the swap */
  replaced: string;
}

/** The configured data paths, without trailing slashes and without paths inside another one. */
function dataPaths(config: SourceConfig): string[] {
  const paths = config.streams.data.paths.map((p) => p.replace(/\/+$/, ''));
  if (paths.some((p) => p === ''))
    throw new ConfigError('cannot restore / in place: use `baton restore` into a directory', { step: STEP });
  const unique = [...new Set(paths)];
  // a path inside another configured path is restored with it
  return unique.filter((p) => !unique.some((q) => q !== p && isSameOrBelow(Buffer.from(p), Buffer.from(q))));
}

async function planPath(path: string): Promise<PathPlan> {
  const parent = dirname(path);
  const name = basename(path);
  const st = await lstat(path).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  });
  if (st) {
    const pst = await lstat(parent);
    if (pst.dev !== st.dev) {
      throw new ConfigError(
        `${path} is a mount point and cannot be swapped: restore it with \`baton restore GENERATION --to DIR --path ${path.slice(1)}\` and rsync (docs/restore-runbook.md)`,
        { step: STEP },
      );
    }
  }
  const staging = join(parent, `.${name}.baton-restore`);
  const replaced = join(parent, `.${name}.baton-replaced`);
  if (await exists(replaced)) {
    throw new ConfigError(
      `${replaced} is left from an interrupted restore: check it (it held the data before that restore), then remove it`,
      { step: STEP },
    );
  }
  return {
    path,
    before: st === undefined ? 'missing' : st.isDirectory() ? 'dir' : 'other',
    rel: Buffer.from(path.slice(1)),
    staging,
    staged: join(staging, path),
    replaced,
  };
}

async function rsyncSafetyCopy(
  paths: readonly string[],
  safetyDir: string,
  signal?: AbortSignal,
): Promise<void> {
  if (paths.length === 0) return;
  // -H: the data's hard links are kept in the safety copy too. --modify-window=-1: the pass while
  // the app is down must not skip a file changed within the same second as the live pass's copy.
  const argv = [
    'rsync',
    '-a',
    '-H',
    '--modify-window=-1',
    '--relative',
    '--numeric-ids',
    '--delete',
    '--',
    ...paths,
    `${safetyDir}/`,
  ];
  const r = await runProcess(argv, { env: rsyncEnv(), tailBytes: 16 * 1024, ...(signal ? { signal } : {}) });
  const problem = describeRsyncResult(r);
  if (problem) throw new JobError(`safety copy into ${safetyDir}: ${problem}`, { step: 'safety-copy' });
}

async function uniqueSafetyDir(root: string, now: Date): Promise<string> {
  const base = join(root, 'restore-safety', formatGenerationId(now));
  for (let i = 0; ; i++) {
    const dir = i === 0 ? base : `${base}.${i}`;
    if (!(await exists(dir))) {
      await mkdirp(dir, 0o700);
      return dir;
    }
  }
}

/** Moves each current data path aside and the restored copy into its place; undoes all on a failure. */
async function swapPaths(plans: readonly PathPlan[], log: Logger): Promise<void> {
  const done: PathPlan[] = [];
  try {
    for (const p of plans) {
      if (p.before !== 'missing') await rename(p.path, p.replaced);
      try {
        await rename(p.staged, p.path);
      } catch (e) {
        if (p.before !== 'missing') await rename(p.replaced, p.path);
        throw e;
      }
      done.push(p);
      await fsyncDir(dirname(p.path));
    }
  } catch (e) {
    const undoFailures: Error[] = [];
    for (const p of done.reverse()) {
      try {
        await rename(p.path, p.staged);
        if (p.before !== 'missing') await rename(p.replaced, p.path);
      } catch (u) {
        undoFailures.push(new JobError(`could not put ${p.path} back: ${oneLine(u)}`, { step: 'swap' }));
      }
    }
    const err = new JobError(
      `swapping in the restored data failed: ${oneLine(e)}${undoFailures.length ? '' : '; the data paths are as before'}`,
      { step: 'swap' },
    );
    if (undoFailures.length) throw new CombinedError([err, ...undoFailures]);
    throw err;
  }
  log.info({ step: 'swap', paths: plans.map((p) => p.path) }, 'restored data swapped in');
}

/**
 * `baton source restore`: puts the data paths back as a generation has them. Under the source
 * lock: verifies the generation (every byte), restores each data path from it next to the live one
 * while the app still runs, takes a safety copy of the current data (rsync, again while stopped
 * for the changes), stops the app, swaps the restored paths in (files that were not in the
 * generation are gone; they are in the safety copy), and starts the app again in `finally`.
 */
export async function restoreInPlace(
  config: SourceConfig,
  candidate: RestoreCandidate,
  opts: InPlaceOptions,
): Promise<InPlaceResult> {
  const state = sourceState(config);
  const paths = dataPaths(config);
  if (opts.confirm) await opts.confirm({ id: candidate.id, dir: candidate.dir, paths });
  await mkdirp(state.root, 0o700);
  const lock = await acquireLock(state.lock, 'baton source restore');
  try {
    return await withChildRecords(state.children, opts.log, () =>
      restoreLocked(config, candidate, paths, opts),
    );
  } finally {
    await lock.release();
  }
}

async function restoreLocked(
  config: SourceConfig,
  candidate: RestoreCandidate,
  paths: readonly string[],
  opts: InPlaceOptions,
): Promise<InPlaceResult> {
  const { log } = opts;
  const state = sourceState(config);
  const gen = await openGeneration(candidate.dir);

  // Everything that can fail before the app is touched: the generation, its paths, the targets.
  log.info({ step: 'verify', generation: gen.dir }, 'verifying the generation (every byte)');
  const checked = await verifyGeneration({
    dir: gen.dir,
    hashes: true,
    ...(candidate.from === 'directory'
      ? {}
      : { expect: { id: candidate.id, source: config.name, stream: 'data' } }),
  });
  if (!checked.ok) {
    throw new JobError(
      `generation ${gen.dir} failed verification, nothing was changed: ${describeProblems(checked.problems, 1)} (${checked.problems.length} problem(s); see \`baton verify --deep ${gen.dir}\`)`,
      { step: 'verify' },
    );
  }
  const meta = await readGenerationMeta(gen.dir);
  if (typeof meta !== 'string' && meta.stream !== 'data')
    throw new ConfigError(`${gen.dir} is a ${meta.stream} generation, not data`, { step: STEP });
  const plans: PathPlan[] = [];
  for (const p of paths) plans.push(await planPath(p));
  const scan = await scanManifest(gen.manifest, { wanted: plans.map((p) => p.rel) });
  const missing = plans.filter((p) => !scan.found.has(pathKey(p.rel)));
  if (missing.length) {
    throw new JobError(
      `generation ${candidate.id} does not hold ${missing.map((p) => p.path).join(', ')} (added to the config after it was made?): nothing was changed`,
      { step: STEP },
    );
  }

  let swapped = false;
  try {
    // While the app runs: build each path's restored copy next to it, and a first safety copy.
    let files = 0;
    let bytes = 0;
    let setIdRestored = 0;
    // one registry for all paths: a hard-link group spread over two data paths is linked again too
    const links = new LinkRestore();
    for (const p of plans) {
      await rm(p.staging, { recursive: true, force: true });
      const r = await restoreGeneration({
        generation: gen.dir,
        to: p.staging,
        subPath: p.path,
        force: false,
        log,
        links,
      });
      files += r.files;
      bytes += r.bytes;
      setIdRestored += r.setIdRestored;
    }
    if (links.copiedAcrossDevices > 0)
      log.warn(
        { step: STEP, copies: links.copiedAcrossDevices },
        `${links.copiedAcrossDevices} hard link(s) of the data span two filesystems now: restored as copies`,
      );
    const safetyDir = await uniqueSafetyDir(state.root, opts.now());
    const present = plans.filter((p) => p.before !== 'missing').map((p) => p.path);
    log.info({ step: 'safety-copy', safetyDir }, 'copying the current data aside');
    const liveCopyStartedMs = Date.now();
    await rsyncSafetyCopy(present, safetyDir, opts.signal);
    // a file rewritten with the same size within the same timestamp tick after this copy would
    // look unchanged to the pass while the app is down: drop the racily clean copies (the pre-pass's
    // rule), so that pass copies them again
    await dropRacyFiles(safetyDir, racyCutoffMs(liveCopyStartedMs), opts.signal);
    if (opts.signal?.aborted)
      throw new JobError('interrupted before the app was stopped', { step: 'stop-app' });

    // The app is down only for the last safety-copy changes and the renames.
    const stoppedAt = opts.now();
    await recordAppStopping(state.root, state.appStopped, stoppedAt);
    const failures: Error[] = [];
    let startedAt: Date | undefined;
    try {
      await stopApp(config.app, log);
      await rsyncSafetyCopy(present, safetyDir, opts.signal);
      if (opts.signal?.aborted)
        throw new JobError('interrupted by a signal before the swap', { step: 'swap' });
      await swapPaths(plans, log);
      swapped = true;
    } catch (e) {
      failures.push(e instanceof Error ? e : new Error(String(e)));
    } finally {
      try {
        startedAt = await startApp(config.app, log);
        await clearAppStoppedRecord(state.appStopped);
      } catch (e) {
        failures.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    if (failures.length > 0 && swapped) {
      // the app did not come back, but the data were restored: say where the old data are
      failures.push(
        new JobError(
          `the data paths were restored from ${candidate.id}; the data from before are in ${safetyDir}`,
          {
            step: 'swap',
          },
        ),
      );
    }
    if (failures.length === 1 && failures[0]) throw failures[0];
    if (failures.length > 1) throw new CombinedError(failures);
    return {
      id: candidate.id,
      dir: gen.dir,
      paths: plans.map((p) => p.path),
      safetyDir,
      undo: undoCommands(safetyDir, plans),
      files,
      bytes,
      setIdRestored,
      downtimeMs: (startedAt ?? opts.now()).getTime() - stoppedAt.getTime(),
    };
  } finally {
    // Work dirs next to the data paths: the rebuilt copies (what is left of them), and the data
    // moved aside by a swap that happened (the safety copy has it). A swap that failed and could
    // not be undone leaves its `.baton-replaced` dirs: they may hold the only live copy.
    for (const p of plans) {
      for (const doomed of swapped ? [p.staging, p.replaced] : [p.staging]) {
        await rm(doomed, { recursive: true, force: true }).catch((e: unknown) =>
          log.warn({ step: 'cleanup', dir: doomed }, `could not remove: ${oneLine(e)}`),
        );
      }
    }
  }
}

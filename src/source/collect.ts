import { rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SourceStreamConfig, StreamName } from '../config/schema.js';
import { JobError } from '../errors.js';
import { runProcess } from '../adapters/run.js';
import { describeRsyncResult, rsyncEnv } from '../adapters/rsync.js';
import { mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { createProgress, rsyncProgressArgs } from '../adapters/progress.js';
import { cloneInto } from '../adapters/reflink.js';
import { TREE } from '../generation/names.js';

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
): Promise<CollectResult> {
  const want = JSON.stringify({ paths: stream.paths, exclude: stream.exclude });
  const had = await readJsonIfExists(pathsFile).catch(() => undefined);
  if (JSON.stringify(had) !== want) {
    await rm(mirror, { recursive: true, force: true });
  }
  await mkdirp(mirror, 0o700);
  const argv = mirrorArgv(stream, mirror);
  log.info({ step: 'collect', stream: name }, `refreshing the ${name} mirror`);
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
  const problem = describeRsyncResult(r);
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

import { rm } from 'node:fs/promises';
import type { SourceStreamConfig, StreamName } from '../config/schema.js';
import { JobError } from '../errors.js';
import { runProcess } from '../adapters/run.js';
import { describeRsyncResult, rsyncEnv } from '../adapters/rsync.js';
import { mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { createProgress, rsyncProgressArgs } from '../adapters/progress.js';

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

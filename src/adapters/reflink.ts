import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describeExit, runProcess } from './run.js';

/**
 * Why files in `dir` cannot be cloned (shared extents, `cp --reflink=always`), or undefined when
 * they can: a tiny temp file is written in `dir`, cloned and both are removed again. XFS made with
 * `-m reflink=1` and btrfs can; ext4 and tmpfs cannot.
 */
export async function reflinkProblem(dir: string): Promise<string | undefined> {
  const base = join(dir, `.baton-reflink-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(base, 'baton reflink probe\n', { mode: 0o600 });
  } catch (e) {
    return `cannot write a probe file there (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  }
  try {
    const r = await runProcess(['cp', '--reflink=always', '--', base, `${base}.clone`], {
      timeoutMs: 60_000,
      env: { ...process.env, LC_ALL: 'C' },
    });
    return r.code === 0 ? undefined : `cp --reflink=always failed: ${describeExit(r)}`;
  } finally {
    await rm(base, { force: true });
    await rm(`${base}.clone`, { force: true });
  }
}

export interface CloneOptions {
  signal?: AbortSignal;
  /** keep each source's full path below `dest` (`cp --parents`), as the rsync mirror does with -R */
  parents?: boolean;
  /**
   * preserve owners and hard links between the sources as well as modes and times (`cp -a`);
   * without it every file gets its own inode, so writing one in place never changes another path
   */
  archive?: boolean;
}

/**
 * Clones `sources` into the existing directory `dest` with `cp --reflink=always`: no data is
 * copied, only metadata, so the time grows with the file count. Fails (non-zero exit) where the
 * filesystem cannot clone; the caller removes the partial `dest`.
 */
export async function cloneInto(
  sources: readonly string[],
  dest: string,
  opts: CloneOptions = {},
): Promise<{ ms: number; problem: string | undefined }> {
  const preserve = opts.archive ? ['-a'] : ['-R', '-P', '--preserve=mode,timestamps'];
  // coreutils 9.1's `cp -a --parents /abs/src dest` copies, then fails restoring the parents'
  // attributes ("'abs': No such file or directory"); relative sources from / work everywhere
  const args = opts.parents ? sources.map((s) => s.replace(/^\/+/, '') || '.') : sources;
  const r = await runProcess(
    [
      'cp',
      ...preserve,
      '--reflink=always',
      ...(opts.parents ? ['--parents'] : []),
      '--',
      ...args,
      `${dest}/`,
    ],
    {
      env: { ...process.env, LC_ALL: 'C' },
      tailBytes: 16 * 1024,
      signal: opts.signal,
      ...(opts.parents ? { cwd: '/' } : {}),
    },
  );
  return { ms: r.durationMs, problem: r.code === 0 ? undefined : describeExit(r) };
}

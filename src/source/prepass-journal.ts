import { lstat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runProcess } from '../adapters/run.js';

/**
 * The pre-pass's change journal (collect: rsync / reflink with the pre-pass): what changed since
 * the pre-pass started, found while the app is down by one `find` over the paths instead of an
 * rsync walk that compares every file with its copy. It rests on the inode change time, which
 * the kernel sets on every change of a file's data, size, mtime, mode, owner or links and which no
 * program can set back:
 *
 * - no directory below the paths has a ctime at or after the pre-pass's start (less the racy
 *   margin): no name was created, removed or renamed anywhere, so the names are the ones the
 *   pre-pass copied; the paths and the dirs above them are the same inodes, unchanged;
 * - then only the files (any non-directory) with such a ctime can differ from their copies: they,
 *   and nothing else, are passed to rsync (`--files-from`, the same options as the full pass).
 *
 * Any doubt means the full pass: a changed directory, a coarse timestamp granularity (the racy
 * margin is then 2 s), a wall clock that went back, a path replaced, a failed or too large walk.
 */
export interface PrepassJournal {
  /** Date.now() and performance.now() when the pre-pass started */
  startedMs: number;
  monoMs: number;
  /** the ctime from which a file counts as changed since the pre-pass started */
  cutoffMs: number;
  /** the paths and every dir above them: device, inode and ctime, as the pre-pass started */
  anchors: string;
}

/** The largest `find` output read: beyond it the full pass does the work. */
const MAX_LISTING_BYTES = 64 * 2 ** 20;

/** Device, inode and ctime (ns) of each path and every dir above it. */
async function anchorsOf(paths: readonly string[]): Promise<string> {
  const out: string[] = [];
  for (const p of paths)
    for (let a = p; ; a = dirname(a)) {
      const st = await lstat(a, { bigint: true });
      out.push(`${a} ${st.dev} ${st.ino} ${st.ctimeNs}`);
      if (dirname(a) === a) break;
    }
  return out.join('\n');
}

/** Taken as the pre-pass starts, before it reads anything. */
export async function startJournal(paths: readonly string[], cutoffMs: number): Promise<PrepassJournal> {
  const startedMs = Date.now();
  const monoMs = performance.now();
  return { startedMs, monoMs, cutoffMs: Math.min(cutoffMs, startedMs), anchors: await anchorsOf(paths) };
}

export type JournalVerdict = { kind: 'changed'; files: string[] } | { kind: 'full'; why: string };

/**
 * While the app is down: the files changed since the pre-pass started (absolute paths), or why
 * the full pass must run.
 */
export async function changedSince(
  j: PrepassJournal,
  paths: readonly string[],
  signal?: AbortSignal,
): Promise<JournalVerdict> {
  // the kernel stamps ctimes from the wall clock: one set back meanwhile could stamp a change
  // before the cutoff (a slewed clock never goes back; 5 ms for the two clocks' reading)
  const wall = Date.now() - j.startedMs;
  const mono = performance.now() - j.monoMs;
  if (wall + 5 < mono) return { kind: 'full', why: 'the wall clock went back since the pre-pass' };
  const anchors = await anchorsOf(paths).catch(() => undefined);
  if (anchors !== j.anchors) return { kind: 'full', why: 'a path or a dir above it changed' };
  // -newerct is "strictly after": one millisecond earlier makes it "at or after" the cutoff
  const since = `@${((j.cutoffMs - 1) / 1000).toFixed(3)}`;
  const r = await runProcess(['find', ...paths, '-newerct', since, '-printf', '%y %p\\0'], {
    captureStdout: true,
    maxStdoutBytes: MAX_LISTING_BYTES,
    env: { ...process.env, LC_ALL: 'C' },
    signal,
    timeoutMs: 60 * 60_000,
  });
  if (r.code !== 0 || r.exceeded || r.signal)
    return { kind: 'full', why: `find failed: ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.code}`}` };
  const files: string[] = [];
  for (const rec of r.stdout.split('\0')) {
    if (rec === '') continue;
    if (rec.startsWith('d ')) return { kind: 'full', why: `a directory changed (${rec.slice(2)})` };
    files.push(rec.slice(2));
  }
  return { kind: 'changed', files };
}

/**
 * rsync argv that copies only the names on stdin (`--files-from`, NUL-separated, relative to /)
 * into `dir`, with the mirror refresh's own options (`base`: mirrorArgv's argv without paths).
 */
export function journalArgv(base: readonly string[]): string[] {
  const dash = base.indexOf('--');
  return [...base.slice(0, dash), '--files-from=-', '--from0', '--', '/', ...base.slice(dash + 1)];
}

/**
 * The changed files whose dir is in the copy (`dir` holds the full paths, as the mirror does): a
 * file whose dir is not there lies in an excluded dir (rsync's --files-from does not apply a
 * dir's exclude to the names below it), or its dir was dropped, which the walk would have seen.
 */
export async function filesToCopy(files: readonly string[], dir: string): Promise<string[]> {
  const present = new Map<string, boolean>();
  const out: string[] = [];
  for (const f of files) {
    const parent = dirname(f);
    let ok = present.get(parent);
    if (ok === undefined) {
      ok = (await lstat(join(dir, parent)).catch(() => undefined))?.isDirectory() === true;
      present.set(parent, ok);
    }
    if (ok) out.push(f.replace(/^\/+/, ''));
  }
  return out;
}

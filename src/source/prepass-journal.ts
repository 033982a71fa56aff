import { lstat, readdir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { dirname, join } from 'node:path';
import { runProcess } from '../adapters/run.js';

/**
 * The pre-pass's change journal (collect: rsync / reflink with the pre-pass): what changed since
 * the pre-pass started, found while the app is down by one `find` over the paths instead of an
 * rsync walk that compares every file with its copy. It rests on the inode change time, which
 * the kernel sets on every change of a file's data, size, mtime, mode, owner or links, on the
 * file renamed and on the dir a name is created in, removed from or renamed in, and which no
 * program can set back (the journal runs only on the local filesystems of `racyMarginMs`, which
 * all do so):
 *
 * - a file (any non-directory) whose ctime is at or after the pre-pass's start (less the racy
 *   margin) may differ from its copy: it is copied again;
 * - a directory with such a ctime may have gained, lost or renamed names: its entries are listed
 *   and compared with the copy's. A name only the copy has is removed from it; a name only the
 *   source has (or of another type: file, dir, symlink, other) is copied, a dir with all below it;
 *   a dir on both sides that is not the inode it was when the pre-pass started (one renamed in
 *   with everything below it, whose ctimes are old) is copied whole too. Then the dir's own
 *   attributes are copied;
 * - a dir whose ctime is older is the same inode with the same names as when the pre-pass
 *   started, and so is everything below it that has an old ctime: the copy holds them.
 *
 * Any doubt means the full pass: a coarse timestamp granularity (the racy margin is then 2 s), a
 * wall clock that went back, a path replaced or a dir above one changed, a name that is not
 * UTF-8, a failed or too large walk, a renamed dir the comparison did not reach.
 */
export interface PrepassJournal {
  /** Date.now() and performance.now() when the pre-pass started */
  startedMs: number;
  monoMs: number;
  /** the ctime from which a file counts as changed since the pre-pass started */
  cutoffMs: number;
  /** the paths (device, inode) and every dir above them (also ctime), as the pre-pass started */
  anchors: string;
  /** every dir below the paths and its inode, as the pre-pass started (before it read anything) */
  dirInodes: Map<string, string>;
}

/** Whether a non-dir below `dirs` has more than one link (or the walk fails). */
async function hasLinkedFile(dirs: readonly string[]): Promise<boolean> {
  const recs = await findRecords([...dirs, '!', '-type', 'd', '-links', '+1', '-printf', '%p\\0', '-quit']);
  return recs === undefined || recs.length > 0;
}

const rel = (p: string): string => p.replace(/^\/+/, '');

/** The largest `find` output read: beyond it the full pass does the work. */
const MAX_LISTING_BYTES = 64 * 2 ** 20;
const FIND_TIMEOUT_MS = 60 * 60_000;

/**
 * Device and inode of each path and every dir above it: none may be replaced. (Their ctimes move
 * with every name made in them, the mirror's paths file among them when the stateDir is beside a
 * path: a changed path is compared like any changed dir, the dirs above are compared by attributes.)
 */
async function anchorsOf(paths: readonly string[]): Promise<string> {
  const out: string[] = [];
  for (const p of paths)
    for (let a = p; ; a = dirname(a)) {
      const st = await lstat(a, { bigint: true });
      out.push(`${a} ${st.dev} ${st.ino}`);
      if (dirname(a) === a) break;
    }
  return out.join('\n');
}

/** The dirs above the paths whose mode, owner or mtime differ from their copies' in `dir`. */
async function changedAncestors(paths: readonly string[], dir: string): Promise<string[]> {
  const out = new Set<string>();
  for (const p of paths)
    for (let a = dirname(p); dirname(a) !== a; a = dirname(a)) {
      const s = await lstat(a, { bigint: true });
      const c = await lstat(join(dir, a), { bigint: true }).catch(() => undefined);
      if (c?.mode !== s.mode || c.uid !== s.uid || c.gid !== s.gid || c.mtimeNs !== s.mtimeNs)
        out.add(rel(a));
    }
  return [...out];
}

/** `find` over the paths, NUL-separated records; undefined when it failed, was too large or a name is not UTF-8. */
async function findRecords(args: readonly string[], signal?: AbortSignal): Promise<string[] | undefined> {
  const r = await runProcess(['find', ...args], {
    captureStdout: true,
    maxStdoutBytes: MAX_LISTING_BYTES,
    env: { ...process.env, LC_ALL: 'C' },
    signal,
    timeoutMs: FIND_TIMEOUT_MS,
  });
  if (r.code !== 0 || r.exceeded || r.signal) return undefined;
  // a name that is not UTF-8 cannot be named to rsync or compared exactly here
  if (r.stdout.includes('\uFFFD')) return undefined;
  return r.stdout.split('\0').filter((rec) => rec !== '');
}

/** Taken as the pre-pass starts, before it reads anything. Undefined: no journal (the full pass runs). */
export async function startJournal(
  paths: readonly string[],
  cutoffMs: number,
  signal?: AbortSignal,
): Promise<PrepassJournal | undefined> {
  const startedMs = Date.now();
  const monoMs = performance.now();
  const anchors = await anchorsOf(paths);
  const recs = await findRecords([...paths, '-type', 'd', '-printf', '%i %p\\0'], signal);
  if (recs === undefined) return undefined;
  const dirInodes = new Map<string, string>();
  for (const rec of recs) {
    const sp = rec.indexOf(' ');
    dirInodes.set(rec.slice(sp + 1), rec.slice(0, sp));
  }
  return { startedMs, monoMs, cutoffMs: Math.min(cutoffMs, startedMs), anchors, dirInodes };
}

export type JournalVerdict =
  { kind: 'changed'; files: string[]; dirs: string[] } | { kind: 'full'; why: string };

/**
 * While the app is down: the files and the dirs changed since the pre-pass started (absolute
 * paths), or why the full pass must run.
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
  const recs = await findRecords([...paths, '-newerct', since, '-printf', '%y %p\\0'], signal);
  if (recs === undefined) return { kind: 'full', why: 'the walk for changes failed' };
  const files: string[] = [];
  const dirs: string[] = [];
  for (const rec of recs) (rec.startsWith('d ') ? dirs : files).push(rec.slice(2));
  return { kind: 'changed', files, dirs };
}

/** What the pass while the app is down does in `dir` (the mirror or the clone), after the journal. */
export interface JournalPlan {
  /** entries of the copy to remove first (absolute paths inside `dir`) */
  remove: string[];
  /** names relative to / for one rsync --files-from: changed files, new entries (a dir with all below it) */
  copy: string[];
  /** whether `copy` holds a dir, to be copied with all below it (rsync -r) */
  recursive: boolean;
  /** the changed dirs (relative to /) whose own attributes are copied once their entries are */
  dirs: string[];
}

type Kind = 'd' | 'f' | 'l' | 'o';
const kindOf = (e: Dirent): Kind =>
  e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : e.isFile() ? 'f' : 'o';

/** A dir's entries by name and kind; undefined when it is not a dir (gone, replaced) or not UTF-8. */
async function entriesOf(path: string): Promise<Map<string, Kind> | undefined | 'bad'> {
  const list = await readdir(path, { withFileTypes: true }).catch(() => undefined);
  if (list === undefined) return undefined;
  const out = new Map<string, Kind>();
  for (const e of list) {
    if (e.name.includes('\uFFFD')) return 'bad';
    out.set(e.name, kindOf(e));
  }
  return out;
}

/**
 * Compares each changed dir with its copy in `dir` and lists what to remove and what to copy, or
 * says why the full pass must run. `files`: the changed files, plus the files whose copies the
 * pre-pass dropped as racily clean (they must be copied again whatever their ctime).
 */
export async function planJournalPass(
  j: PrepassJournal,
  paths: readonly string[],
  changed: { files: readonly string[]; dirs: readonly string[] },
  dir: string,
): Promise<JournalPlan | { full: string }> {
  const remove: string[] = [];
  const copy = new Set<string>();
  /** source dirs copied whole (new, or another inode than at the pre-pass's start) */
  const whole = new Set<string>();
  const inWhole = (p: string): boolean => {
    for (let a = p; ; a = dirname(a)) {
      if (whole.has(a)) return true;
      if (dirname(a) === a) return false;
    }
  };
  const dirs: string[] = [];
  const sorted = [...new Set(changed.dirs)].sort();
  for (const d of sorted) {
    const inCopy = await lstat(join(dir, d)).catch(() => undefined);
    // excluded, below an excluded dir, or new: a new dir is copied whole from its parent's comparison
    if (!inCopy?.isDirectory()) continue;
    if (inWhole(d)) continue;
    const src = await entriesOf(d);
    if (src === 'bad') return { full: `a name in ${d} is not UTF-8` };
    // gone or no longer a dir: its parent changed too and drops or replaces it
    if (src === undefined) continue;
    const copied = await entriesOf(join(dir, d));
    if (copied === 'bad' || copied === undefined) return { full: `the copy of ${d} cannot be listed` };
    for (const [name, kind] of copied) {
      const s = src.get(name);
      if (s !== kind) remove.push(join(dir, d, name));
    }
    for (const [name, kind] of src) {
      const p = join(d, name);
      let isNew = copied.get(name) !== kind;
      if (!isNew && kind === 'd') {
        // the same name and kind, but another dir than the pre-pass copied (renamed in, old ctimes below)
        const st = await lstat(p, { bigint: true }).catch(() => undefined);
        isNew = st === undefined || j.dirInodes.get(p) !== String(st.ino);
      }
      if (!isNew) continue;
      if (kind === 'd') {
        // another dir under the same name: its old copy goes, the new one is copied whole
        if (copied.get(name) === 'd') remove.push(join(dir, d, name));
        whole.add(p);
      }
      copy.add(rel(p));
    }
    dirs.push(rel(d));
  }
  // a dir that is not the inode it was but that no comparison above copies whole: only the full pass is sure
  for (const d of sorted) {
    if (inWhole(d)) continue;
    const st = await lstat(d, { bigint: true }).catch(() => undefined);
    if (st === undefined) continue;
    if (j.dirInodes.get(d) !== String(st.ino) && (await lstat(join(dir, d)).catch(() => undefined)))
      return { full: `${d} was replaced by another dir` };
  }
  // changed files whose dir is in the copy: a file whose dir is not lies in an excluded dir (rsync's
  // --files-from does not apply a dir's exclude to the names below it), or in a new dir copied whole
  const present = new Map<string, boolean>();
  for (const f of changed.files) {
    if (inWhole(f)) continue;
    const parent = dirname(f);
    let ok = present.get(parent);
    if (ok === undefined) {
      ok = (await lstat(join(dir, parent)).catch(() => undefined))?.isDirectory() === true;
      present.set(parent, ok);
    }
    // a file gone since (removed or renamed away): its dir's comparison removes the copy
    if (ok && (await lstat(f).catch(() => undefined)) !== undefined) copy.add(rel(f));
  }
  // a file below a dir copied whole that has other links: they are not in the same rsync run, so
  // the copy would not share the inode (its ctime says nothing: a dir renamed in keeps its files')
  if (whole.size > 0 && (await hasLinkedFile([...whole])))
    return { full: 'a dir renamed in holds a file with several hard links' };
  for (const a of await changedAncestors(paths, dir)) if (!dirs.includes(a)) dirs.push(a);
  const names = [...copy];
  if (names.some((n) => n === '') || dirs.some((n) => n === '')) return { full: 'a path is /' };
  return { remove, copy: names, recursive: whole.size > 0, dirs };
}

/**
 * rsync argv that copies only the names on stdin (`--files-from`, NUL-separated, relative to /)
 * into `dir`, with the mirror refresh's own options (`base`: mirrorArgv's argv without paths);
 * `recursive`: a dir named is copied with all below it.
 */
export function journalArgv(base: readonly string[], recursive = false): string[] {
  const dash = base.indexOf('--');
  return [
    ...base.slice(0, dash),
    ...(recursive ? ['-r'] : []),
    '--files-from=-',
    '--from0',
    '--',
    '/',
    ...base.slice(dash + 1),
  ];
}

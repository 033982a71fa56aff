import { open, lstat, rename, mkdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import {
  constants as fsConstants,
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
  type BigIntStats,
  type Dirent,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errnoCode, JobError } from '../errors.js';
import { hashPool, type FileIdentity, type Reply } from './hash-pool.js';

/** fsync a directory so a rename or create inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/*
 * The same operations failing as a JobError naming the path, the errno code and the step: for a process
 * that must end on the first failure with a one-line reason (the gate's ack, reject and prune).
 */

function failed(what: string, step: string, err: unknown): JobError {
  return new JobError(`${what}: ${errnoCode(err) ?? String(err)}`, { step, cause: err });
}

/** Like {@link exists}, but any error other than ENOENT is a JobError of `step`. */
export async function existsOrFail(path: string, step: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw failed(`cannot inspect ${path}`, step, err);
  }
}

/** rename(2); a failure is a JobError of `step`. */
export async function renameOrFail(from: string, to: string, step: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    throw failed(`cannot rename ${from} to ${to}`, step, err);
  }
}

/** Like rm -rf (symlinks inside are removed, never followed); a failure is a JobError of `step`. */
export async function removeTreeOrFail(path: string, step: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    throw failed(`cannot remove ${path}`, step, err);
  }
}

/** Makes a rename in `dir` durable (opened as a directory); a failure is a JobError of `step`. */
export async function fsyncDirOrFail(dir: string, step: string): Promise<void> {
  try {
    const fh = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw failed(`cannot fsync ${dir}`, step, err);
  }
}

/** Write a file and fsync it (the caller renames and fsyncs the directory). */
export async function writeFileSynced(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const fh = await open(file, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface AtomicWriteOptions {
  /** Owner of the new file, set on the open file (fchown) before the rename. */
  owner?: { uid: number; gid: number };
  /** Set the mode exactly (fchmod), not filtered by the umask as an open's mode is. */
  exactMode?: boolean;
  /** fsync the data before the rename (default true); false for a file whose loss a later check catches */
  sync?: boolean;
}

/**
 * Replaces `file` atomically and safely in a directory others may write (a web dir, a node_exporter
 * textfile dir, a user's ~/.ssh): the data goes to a temp file with a random name in the same directory,
 * created with O_CREAT|O_EXCL|O_NOFOLLOW (a name planted beforehand, symlink or not, is never opened),
 * fsynced, renamed over `file` (which replaces a symlink planted at `file` itself instead of following
 * it), and the directory is fsynced. On failure the temp file is removed.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Buffer,
  mode = 0o644,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const dir = dirname(file);
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
  let tmp = '';
  let fh: FileHandle | undefined;
  for (let attempt = 0; fh === undefined; attempt++) {
    tmp = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
    try {
      fh = await open(tmp, flags, mode);
    } catch (e) {
      // A random name taken already (a planted one that happened to match): pick another.
      if (errnoCode(e) !== 'EEXIST' || attempt >= 9) throw e;
    }
  }
  try {
    try {
      if (opts.exactMode === true) await fh.chmod(mode);
      if (opts.owner !== undefined) await fh.chown(opts.owner.uid, opts.owner.gid);
      await fh.writeFile(data);
      if (opts.sync !== false) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fsyncDir(dir);
}

export interface AtomicWriteSyncOptions extends AtomicWriteOptions {
  /** fsync the file and the directory (default true); false for records that do not outlive a crash. */
  durable?: boolean;
}

/**
 * writeFileAtomic for code that must finish in the same turn of the event loop (a record written
 * right after a spawn): the same random temp name opened O_CREAT|O_EXCL|O_NOFOLLOW in the target's
 * directory, written whole, renamed over `file`; on failure the temp file is removed. A reader sees
 * the old file or the new one, never a half-written one.
 */
export function writeFileAtomicSync(
  file: string,
  data: string | Buffer,
  mode = 0o644,
  opts: AtomicWriteSyncOptions = {},
): void {
  const dir = dirname(file);
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let tmp = '';
  let fd: number | undefined;
  for (let attempt = 0; fd === undefined; attempt++) {
    tmp = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
    try {
      fd = openSync(tmp, flags, mode);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST' || attempt >= 9) throw e;
    }
  }
  try {
    try {
      if (opts.exactMode === true) fchmodSync(fd, mode);
      if (opts.owner !== undefined) fchownSync(fd, opts.owner.uid, opts.owner.gid);
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
      if (opts.durable !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created or already gone */
    }
    throw e;
  }
  if (opts.durable !== false) {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

/** Reads a JSON file; undefined when it does not exist. */
export async function readJsonIfExists(file: string): Promise<unknown> {
  const fh = await open(file, 'r').catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  });
  if (!fh) return undefined;
  try {
    return JSON.parse(await fh.readFile('utf8')) as unknown;
  } finally {
    await fh.close();
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export async function mkdirp(dir: string, mode = 0o755): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
}

/**
 * Removes a generation-like directory so that a crash never leaves it half-deleted under its real
 * name: rename to `doomedName` (a work name, `.<id>.deleting`) first, then delete.
 */
export async function removeTreeSafely(parent: string, name: string, doomedName: string): Promise<void> {
  const doomed = join(parent, doomedName);
  await rename(join(parent, name), doomed);
  await fsyncDir(parent);
  await rm(doomed, { recursive: true, force: true });
}

/** A path's bytes as a latin1 string (what the hash pool's messages carry). */
const asBytes = (p: string | Buffer): string =>
  (typeof p === 'string' ? Buffer.from(p) : p).toString('latin1');

/** Starts the hash workers now, so that their start-up overlaps the caller's own (manifest, walk). */
export function startHashWorkers(): void {
  hashPool();
}

/**
 * sha256 of a file, computed on a worker thread (see hash-pool.ts: both cores hash). With `size`
 * (what lstat just said), reading stops after that many bytes instead of asking once more for the
 * end of the file (a file that grew since is hashed as it was).
 */
export async function sha256File(file: string | Buffer, size?: number): Promise<string> {
  return (await hashPool().run({ op: 'hash', path: asBytes(file), size: size ?? -1 })).sha256;
}

/**
 * Copies `from` to the new file `to` (created with `mode`, failing if it exists) while hashing it,
 * on a worker thread: one read of the source. Returns the sha256 and the bytes copied. With
 * `size` (what lstat just said), it stops after that many bytes, as `sha256File` does.
 */
export async function copyFileHashed(
  from: string | Buffer,
  to: string | Buffer,
  mode = 0o600,
  size?: number,
): Promise<{ sha256: string; bytes: number }> {
  return hashPool().run({ op: 'copy', path: asBytes(from), to: asBytes(to), mode, size: size ?? -1 });
}

export interface WalkEntry {
  /** relative path bytes, `/`-separated */
  rel: Buffer;
  abs: Buffer;
  st: BigIntStats;
}

export type WalkDecision = 'include' | 'pass' | 'skip';

const SLASH = Buffer.from('/');

/** Entries a walk handles between two turns of the event loop (timers, signals, child output). */
const WALK_YIELD_EVERY = 256;

/**
 * Depth-first walk in tree order (children sorted bytewise), names as bytes, never following
 * symlinks. `decide(rel)` says whether an entry is yielded and descended into ('include'),
 * only descended into ('pass', for parents of the wanted paths), or ignored ('skip').
 *
 * readdir and lstat are synchronous, one directory and one entry at a time (as rsync, find and
 * cp -al do): a thread-pool round trip costs the main thread 10–15 µs on a small VM (a cross-CPU
 * wake-up), three times a cached lstat, and it was the largest cost of walking 1,000,000 files.
 * The walk gives the event loop a turn every few hundred entries.
 */
export async function* walkTree(
  root: string,
  decide: (rel: Buffer) => WalkDecision = () => 'include',
): AsyncGenerator<WalkEntry> {
  const rootBuf = Buffer.from(root);
  let sinceYield = 0;
  async function* visit(relDir: Buffer | undefined): AsyncGenerator<WalkEntry> {
    const absDir = relDir === undefined ? rootBuf : Buffer.concat([rootBuf, SLASH, relDir]);
    const names = readdirSync(absDir, { encoding: 'buffer' }).sort((a, b) => Buffer.compare(a, b));
    for (const name of names) {
      const rel = relDir === undefined ? name : Buffer.concat([relDir, SLASH, name]);
      const d = decide(rel);
      if (d === 'skip') continue;
      if (++sinceYield >= WALK_YIELD_EVERY) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const abs = Buffer.concat([absDir, SLASH, name]);
      const st = lstatSync(abs, { bigint: true });
      if (d === 'include') yield { rel, abs, st };
      if (st.isDirectory()) yield* visit(rel);
    }
  }
  yield* visit(undefined);
}

/** An entry's type as the directory itself says it (d_type): file, directory, symlink, anything else. */
export type DirentKind = 'f' | 'd' | 'l' | 'other';

export interface TypedWalkEntry {
  /** relative path bytes, `/`-separated */
  rel: Buffer;
  /** the absolute path's bytes as a latin1 string (what the hash workers take) */
  abs: string;
  kind: DirentKind;
}

const kindOf = (d: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): DirentKind =>
  d.isFile() ? 'f' : d.isDirectory() ? 'd' : d.isSymbolicLink() ? 'l' : 'other';

/**
 * `walkTree` without an lstat per entry: depth-first in tree order (children sorted bytewise), never
 * following symlinks, each entry's type taken from readdir (Node lstats an entry itself only where
 * the filesystem gives no type). For a caller that learns the rest on the open file (the hash
 * workers' fstat) or lstats only what it needs. Synchronous: the caller gives the event loop its turns.
 */
export function* walkTreeTyped(root: string): Generator<TypedWalkEntry> {
  const stack: Array<{ rel: Buffer | undefined; abs: string; names: Dirent<Buffer>[]; next: number }> = [];
  const open = (rel: Buffer | undefined, abs: string) => {
    const names = readdirSync(Buffer.from(abs, 'latin1'), { encoding: 'buffer', withFileTypes: true });
    names.sort((a, b) => Buffer.compare(a.name, b.name));
    stack.push({ rel, abs, names, next: 0 });
  };
  open(undefined, Buffer.from(root).toString('latin1'));
  for (;;) {
    const top = stack[stack.length - 1];
    if (top === undefined) return;
    const d = top.names[top.next++];
    if (d === undefined) {
      stack.pop();
      continue;
    }
    const rel = top.rel === undefined ? d.name : Buffer.concat([top.rel, SLASH, d.name]);
    const abs = `${top.abs}/${d.name.toString('latin1')}`;
    const kind = kindOf(d);
    yield { rel, abs, kind };
    if (kind === 'd') open(rel, abs);
  }
}

/**
 * A file checked on a hash worker without an lstat before: opened without following a symlink or
 * blocking on a FIFO, its mode and size taken with fstat on that descriptor, and its sha256 read
 * when the size is `size` (or `known.sha256` when the open file is still that very file). `done`
 * gets the reply: `error` (with the errno code) when it could not be opened or is no regular file.
 */
export function checkFile(
  abs: string,
  size: number,
  known: (FileIdentity & { sha256: string }) | undefined,
  done: (r: Reply) => void,
): void {
  hashPool().submit({ op: 'check', path: abs, size, ...(known ? { known } : {}) }, done);
}

/**
 * Lines of a text file, streamed, each byte one character (latin1: a manifest is ASCII, and a byte
 * above 0x7e stays a character no parser accepts); throws when a line is longer than `maxLineBytes`.
 */
export async function* readLines(file: string, maxLineBytes: number): AsyncGenerator<string> {
  // one buffer for the whole file, refilled in place: a stream's fresh chunk per read left tens of
  // MiB of dead buffers for the collector on a million-line manifest (peak RSS)
  const buf = Buffer.allocUnsafe(Math.max(READ_LINES_CHUNK, 2 * (maxLineBytes + 1)));
  const fh = await open(file, 'r');
  try {
    let start = 0;
    let end = 0;
    for (;;) {
      if (start > 0) {
        buf.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      const { bytesRead } = await fh.read(buf, end, buf.length - end, null);
      if (bytesRead === 0) break;
      end += bytesRead;
      const filled = buf.subarray(0, end);
      let nl: number;
      while ((nl = filled.indexOf(0x0a, start)) >= 0) {
        if (nl - start > maxLineBytes) throw new Error(`line longer than ${maxLineBytes} bytes`);
        yield buf.toString('latin1', start, nl);
        start = nl + 1;
      }
      if (end - start > maxLineBytes) throw new Error(`line longer than ${maxLineBytes} bytes`);
    }
    if (end > start) throw new Error('file does not end with a newline (truncated?)');
  } finally {
    await fh.close();
  }
}

/** Bytes readLines reads at once. */
const READ_LINES_CHUNK = 256 * 1024;

/** A buffered, append-only writer for big generated files (manifest, SHA256SUMS). */
export class BufferedFileWriter {
  private chunks: Buffer[] = [];
  private size = 0;
  private constructor(private readonly fh: Awaited<ReturnType<typeof open>>) {}
  static async create(file: string, mode = 0o644): Promise<BufferedFileWriter> {
    return new BufferedFileWriter(await open(file, 'wx', mode));
  }
  async write(data: Buffer | string): Promise<void> {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    this.chunks.push(b);
    this.size += b.length;
    if (this.size >= 1024 * 1024) await this.flush();
  }
  private async flush(): Promise<void> {
    if (this.size === 0) return;
    const all = Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    await this.fh.write(all);
  }
  /** Flush, fsync and close. */
  async close(): Promise<void> {
    try {
      await this.flush();
      await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

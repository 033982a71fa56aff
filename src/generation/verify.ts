import { lstat, open, opendir, readlink, type FileHandle } from 'node:fs/promises';
import { constants, lstatSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import {
  compareTreeOrder,
  DEFAULT_MANIFEST_LIMITS,
  formatSha256SumsLine,
  pathKey,
  type ManifestEntry,
} from '../core/manifest.js';
import { generationMetaSchema, type GenerationMeta } from '../core/meta.js';
import { SET_ID_BITS } from '../core/tree-mode.js';
import {
  checkFile,
  sha256File,
  startHashWorkers,
  walkTreeTyped,
  type TypedWalkEntry,
} from '../adapters/fsx.js';
import { replyError, type FileIdentity, type Reply } from '../adapters/hash-pool.js';
import { readManifest, ManifestCursor, ManifestError } from './manifest-file.js';
import { GENERATION_NAMES, MANIFEST, META_JSON, SHA256SUMS, TREE } from './names.js';
import { errnoCode } from '../errors.js';

export type ProblemKind =
  | 'manifest'
  | 'meta'
  | 'missing'
  | 'extra'
  | 'type'
  | 'size'
  | 'hash'
  | 'target'
  | 'limit'
  | 'sums'
  | 'mode'
  | 'link';

export interface VerifyProblem {
  kind: ProblemKind;
  /** the path inside tree/, shown escaped-safe (JSON string) */
  path: string;
  detail: string;
}

export interface VerifyOptions {
  dir: string;
  /** what the generation must claim to be (meta.json) */
  expect?: { id: string; source: string; stream: 'data' | 'logs' };
  /** hash file contents (else presence, types, sizes, link targets only) */
  hashes: boolean;
  /** told the size of every file hashed (progress display) */
  onHashed?: (bytes: number) => void;
  /**
   * a verified generation: files hard-linked to it with the same manifest hash need no re-read.
   * Its `manifest` is read alongside the walk, in tree order (constant memory).
   */
  linkBase?: {
    tree: string;
    manifest: string;
    /**
     * whether the manifest entry at this ordinal (every entry counted, from 0) is a file the link
     * base's manifest lists at the same path with the same sha256, already known from an earlier pass
     * over this very manifest (the pull's precheck): then the link base's manifest is not read again
     */
    sameHash?: (ordinal: number) => boolean;
  };
  maxFiles?: number;
  maxBytes?: number;
  /** files hashed at once (reads overlap; both cores busy) */
  concurrency?: number;
  /**
   * a hash already taken of the file at `rel` inside tree/ (e.g. while rsync transferred it; see
   * early-hash.ts), with what made it that file: it is taken instead of a read only when the file
   * opened for the check is still that very file (same dev, inode, size, mtime and ctime)
   */
  knownHash?: (rel: Buffer) => KnownHash | undefined;
}

/** A sha256 taken earlier of the file with this identity. */
export type KnownHash = FileIdentity & { sha256: string };

export interface VerifyResult {
  ok: boolean;
  problems: VerifyProblem[];
  entries: number;
  files: number;
  bytes: number;
  hashed: number;
  reused: number;
}

const MAX_PROBLEMS = 200;
const inTree = (e: ManifestEntry) => e.type === 'f' || e.type === 'd' || e.type === 'l';
const show = (p: Buffer) => JSON.stringify(p.toString('utf8')).slice(1, -1);

/**
 * Checks a generation directory against its manifest, streaming both in tree order (memory does
 * not grow with the file count, beyond the optional link base): every listed file, directory and
 * symlink present with its type, size, link target and (with `hashes`) sha256; nothing unlisted
 * in tree/. The manifest itself is parsed as hostile input first.
 */
export async function verifyGeneration(opts: VerifyOptions): Promise<VerifyResult> {
  const problems: VerifyProblem[] = [];
  const add = (kind: ProblemKind, path: string, detail: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push({ kind, path, detail });
  };
  const res: VerifyResult = { ok: false, problems, entries: 0, files: 0, bytes: 0, hashed: 0, reused: 0 };

  await checkTopLevel(opts.dir, add);
  const meta = await readGenerationMeta(opts.dir);
  if (typeof meta === 'string') add('meta', 'meta.json', meta);
  else if (opts.expect) {
    const m = meta;
    if (m.id !== opts.expect.id || m.source !== opts.expect.source || m.stream !== opts.expect.stream) {
      add(
        'meta',
        'meta.json',
        `claims ${m.source}/${m.stream}/${m.id}, expected ${opts.expect.source}/${opts.expect.stream}/${opts.expect.id}`,
      );
    }
  }

  const tree = join(opts.dir, TREE);
  const treeSt = await lstat(tree).catch(() => undefined);
  if (!treeSt?.isDirectory()) {
    add('missing', 'tree', 'tree/ is not a directory');
    return res;
  }
  const manifestProblem = await checkSourceFile(join(opts.dir, MANIFEST));
  if (manifestProblem) {
    add('manifest', 'manifest', manifestProblem);
    return res;
  }
  const sums = await Sha256SumsCheck.open(join(opts.dir, SHA256SUMS));
  if (typeof sums === 'string') add('sums', 'SHA256SUMS', sums);
  const manifest = readManifest(join(opts.dir, MANIFEST), {
    ...DEFAULT_MANIFEST_LIMITS,
    maxEntries: opts.maxFiles ?? Number.MAX_SAFE_INTEGER,
  });
  const onEntry = typeof sums === 'string' ? undefined : (e: ManifestEntry) => sums.expect(e);
  if (opts.hashes) startHashWorkers();
  const walk = walkTreeTyped(tree);
  const inflight = new InFlight(opts.concurrency ?? DEFAULT_FILES_IN_FLIGHT);
  const baseTree = opts.linkBase ? Buffer.from(`${opts.linkBase.tree}/`) : undefined;
  const sameHash = opts.linkBase?.sameHash;
  const baseCursor = opts.linkBase && !sameHash ? ManifestCursor.open(opts.linkBase.manifest) : undefined;

  const hashed = (m: ManifestEntry, got: string) => {
    res.hashed++;
    opts.onHashed?.(m.size);
    if (got !== m.sha256) add('hash', show(m.path), `sha256 ${got} != manifest ${m.sha256 ?? '-'}`);
  };
  const unreadable = (m: ManifestEntry, e: unknown) =>
    // gone or swapped since the walk saw it: named, like any other mismatch
    add('hash', show(m.path), `unreadable: ${errnoCode(e) ?? String(e)}`);
  const badMode = (m: ManifestEntry, mode: number) =>
    add(
      'mode',
      show(m.path),
      `mode ${(mode & 0o7777).toString(8)} in tree/: a store holds no setuid/setgid bit and nothing writable by group or others (the manifest keeps ${m.mode.toString(8).padStart(4, '0')})`,
    );

  /**
   * A plain file checked wholly on a hash worker (no lstat here): opened without following a
   * symlink or blocking, its mode and size from fstat on that descriptor, then its content.
   */
  const checkOnWorker = (w: TypedWalkEntry, m: ManifestEntry): Promise<void> | undefined => {
    const known = opts.knownHash?.(m.path);
    const room = inflight.enter();
    checkFile(w.abs, m.size, known, (r: Reply) => {
      inflight.leave();
      if (r.error || r.mode === undefined || r.size === undefined) return unreadable(m, replyError(r));
      if ((r.mode & STORE_FORBIDDEN_MODE) !== 0) badMode(m, r.mode);
      if (r.size !== m.size) return add('size', show(m.path), `size ${r.size} != manifest ${m.size}`);
      if (r.sha256 === undefined) return unreadable(m, replyError(r));
      hashed(m, r.sha256);
    });
    return room;
  };

  /** Same inode as the link base's file with the same manifest hash (verified before), else hashed. */
  const contentCheck = async (abs: string, st: BigIntStats, m: ManifestEntry, sameAsBase: boolean) => {
    if (baseTree && sameAsBase) {
      // synchronous: one cached metadata call costs less than a thread-pool round trip (see walkTree)
      const bst = lstatQuiet(Buffer.concat([baseTree, m.path]));
      if (bst && bst.ino === st.ino && bst.dev === st.dev) {
        res.reused++;
        return;
      }
    }
    const known = opts.knownHash?.(m.path);
    let got = known && sameIdentity(known, st) ? known.sha256 : undefined;
    if (got === undefined) {
      try {
        got = await sha256File(Buffer.from(abs, 'latin1'), m.size);
      } catch (e) {
        unreadable(m, e);
        return;
      }
    }
    hashed(m, got);
  };

  /**
   * The data's hard-link groups: the inode of each group's first name, until its later names are seen.
   * Every later name must be that inode (the tree's other shared inodes, links to the previous
   * generation, are not the data's and are not checked here).
   */
  const groupInodes = new Map<string, { dev: bigint; ino: bigint; left: number }>();
  /** True when `m` is a later name of a hard-link group that is the first name's inode (nothing to hash). */
  const checkLink = (st: BigIntStats, m: ManifestEntry): boolean => {
    if (m.links !== undefined) {
      groupInodes.set(pathKey(m.path), { dev: st.dev, ino: st.ino, left: m.links - 1 });
      return false;
    }
    if (m.linkTo === undefined) return false;
    const key = pathKey(m.linkTo);
    const g = groupInodes.get(key);
    if (g && --g.left === 0) groupInodes.delete(key);
    if (!g) {
      add('link', show(m.path), `hard link to ${show(m.linkTo)}, which is not a file in tree/`);
      return false;
    }
    if (g.dev !== st.dev || g.ino !== st.ino) {
      add('link', show(m.path), `not the same inode as ${show(m.linkTo)} (one hard-link group in the data)`);
      return false;
    }
    return true;
  };

  /**
   * The common case without a promise of its own: a file of no hard-link group, not paired with the
   * link base by the precheck, with hashes on, checked wholly on a worker. Returns false for anything
   * else (then `compare`), or the wait for room among the checks in flight.
   */
  const compareOnWorker = (w: TypedWalkEntry, m: ManifestEntry): Promise<void> | undefined | false => {
    if (m.type !== 'f' || w.kind !== 'f' || !opts.hashes || baseCursor) return false;
    if (m.links !== undefined || m.linkTo !== undefined || sameHash?.(res.entries - 1)) return false;
    res.files++;
    res.bytes += m.size;
    if (opts.maxBytes !== undefined && res.bytes > opts.maxBytes) {
      add('limit', show(m.path), `generation larger than the limit of ${opts.maxBytes} bytes`);
      throw new LimitReached();
    }
    return checkOnWorker(w, m);
  };

  const compare = async (w: TypedWalkEntry, m: ManifestEntry) => {
    // the entry's ordinal in the manifest: nothing reads the manifest while this entry is compared
    const ordinal = res.entries - 1;
    if (w.kind !== m.type) {
      add('type', show(m.path), `is ${w.kind}, manifest says ${m.type}`);
      return;
    }
    let sameAsBase = false;
    if (m.type === 'f') {
      res.files++;
      res.bytes += m.size;
      if (opts.maxBytes !== undefined && res.bytes > opts.maxBytes) {
        add('limit', show(m.path), `generation larger than the limit of ${opts.maxBytes} bytes`);
        throw new LimitReached();
      }
      if (opts.hashes) {
        // the lookup runs here, in tree order (the cursor only moves forward); the check itself overlaps others
        sameAsBase = sameHash?.(ordinal) ?? false;
        if (baseCursor) {
          const base = await baseCursor.seek(m.path);
          sameAsBase = base?.type === 'f' && base.sha256 === m.sha256;
        }
        // the common case: a file of no hard-link group, not in the link base, all checked on a worker
        if (!sameAsBase && m.links === undefined && m.linkTo === undefined) {
          await checkOnWorker(w, m);
          return;
        }
      }
    }
    // everything else is looked at here: its inode (link groups, the link base), mode, size, target
    let st: BigIntStats;
    try {
      st = lstatSync(Buffer.from(w.abs, 'latin1'), { bigint: true });
    } catch (e) {
      add('missing', show(m.path), `gone while it was checked: ${errnoCode(e) ?? String(e)}`);
      return;
    }
    const actual = st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'other';
    if (actual !== m.type) {
      add('type', show(m.path), `is ${actual}, manifest says ${m.type}`);
      return;
    }
    if (m.type !== 'l' && (Number(st.mode) & STORE_FORBIDDEN_MODE) !== 0) badMode(m, Number(st.mode));
    if (m.type === 'l') {
      const t = await readlink(Buffer.from(w.abs, 'latin1'), { encoding: 'buffer' });
      if (!m.target || !t.equals(m.target))
        add('target', show(m.path), 'symlink target differs from the manifest');
      return;
    }
    if (m.type !== 'f') return;
    if (Number(st.size) !== m.size) {
      add('size', show(m.path), `size ${st.size} != manifest ${m.size}`);
      return;
    }
    // a later name of a group is the first name's inode: its content was checked with the first name
    if (checkLink(st, m)) {
      res.reused++;
      return;
    }
    if (!opts.hashes) return;
    await inflight.add(contentCheck(w.abs, st, m, sameAsBase));
  };

  try {
    let m = await nextInTree(manifest, res, onEntry);
    let w = walk.next();
    let sinceYield = 0;
    while (m !== undefined || !w.done) {
      // a turn for the event loop now and then (workers' replies, timers, signals) on a long walk
      if (++sinceYield >= WALK_YIELD_EVERY) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const order = m === undefined ? 1 : w.done ? -1 : compareTreeOrder(m.path, w.value.rel);
      if (order < 0 && m) {
        add('missing', show(m.path), `listed in the manifest (${m.type}) but not in tree/`);
        m = await nextInTree(manifest, res, onEntry);
      } else if (order > 0 && !w.done) {
        add('extra', show(w.value.rel), 'in tree/ but not in the manifest');
        w = walk.next();
      } else if (m && !w.done) {
        const room = compareOnWorker(w.value, m);
        if (room === false) await compare(w.value, m);
        else if (room) await room;
        m = await nextInTree(manifest, res, onEntry);
        w = walk.next();
      }
    }
    await inflight.drain();
    if (typeof sums !== 'string') {
      const sumsProblem = await sums.finish();
      if (sumsProblem) add('sums', 'SHA256SUMS', sumsProblem);
    }
  } catch (e) {
    await inflight.settle();
    if (e instanceof ManifestError) add('manifest', 'manifest', e.message);
    else if (!(e instanceof LimitReached)) throw e;
  } finally {
    // a bad link base only costs re-reading: its files are hashed instead
    await baseCursor?.close().catch(() => undefined);
    if (typeof sums !== 'string') await sums.close();
  }
  res.ok = problems.length === 0;
  return res;
}

/** Entries compared between two turns of the event loop. */
const WALK_YIELD_EVERY = 256;

/** Whether `st` is the file `k` was taken of (BigIntStats carries the same fields). */
export const sameIdentity = (k: FileIdentity, st: FileIdentity): boolean =>
  k.dev === st.dev &&
  k.ino === st.ino &&
  k.size === st.size &&
  k.mtimeNs === st.mtimeNs &&
  k.ctimeNs === st.ctimeNs;

class LimitReached extends Error {}

/**
 * Files whose content checks run at once. Enough to keep every hash worker fed with small files
 * (a worker takes them in batches) while the walk goes on; each holds only its entry and lstat.
 */
const DEFAULT_FILES_IN_FLIGHT = 256;

/** At most `limit` checks at once; `add` waits for room. The first failure is kept for `drain`. */
class InFlight {
  private running = 0;
  private wake: (() => void) | undefined;
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  async add(p: Promise<void>): Promise<void> {
    this.running++;
    p.then(
      () => this.done(),
      (e: unknown) => {
        this.failure ??= { error: e };
        this.done();
      },
    );
    while (this.running >= this.limit) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  /** One more check that ends with `leave()`; a promise to wait on when there is no room left. */
  enter(): Promise<void> | undefined {
    this.running++;
    if (this.running < this.limit) return undefined;
    return (async () => {
      while (this.running >= this.limit) await new Promise<void>((resolve) => (this.wake = resolve));
    })();
  }

  leave(): void {
    this.done();
  }

  /** Waits for every check; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every check, whatever their outcome. */
  async settle(): Promise<void> {
    while (this.running > 0) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private done(): void {
    this.running--;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

function lstatQuiet(path: Buffer): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

/** meta.json is small; a larger one is not what baton writes. */
const MAX_META_BYTES = 1024 * 1024;

/**
 * Why a file the source sent (meta.json, manifest) must not be opened, or undefined when it is a regular
 * file. rsync -l brings symlinks as symlinks: following one would read the sink's own files (/etc/shadow
 * into an error message), block forever on a FIFO or never end on /dev/zero.
 */
async function checkSourceFile(
  path: string,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<string | undefined> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    return errnoCode(e) === 'ENOENT' ? 'missing' : `cannot inspect it: ${errnoCode(e) ?? String(e)}`;
  }
  if (!st.isFile()) return 'not a regular file (a symlink, FIFO or device from a source is never opened)';
  if (st.size > maxBytes) return `larger than ${maxBytes} bytes`;
  return undefined;
}

/**
 * sha256 of `<dir>/manifest` as pulled, or why there is none (`missing`, `not a regular file …`): the
 * hash compared with the listed one, computed without ever following a symlink from the source.
 */
export async function pulledManifestSha256(dir: string): Promise<string> {
  const path = join(dir, MANIFEST);
  const problem = await checkSourceFile(path);
  if (problem) return problem;
  return sha256File(path).catch((e: unknown) => `unreadable: ${errnoCode(e) ?? String(e)}`);
}

async function nextInTree(
  it: AsyncGenerator<ManifestEntry>,
  res: VerifyResult,
  onEntry: ((e: ManifestEntry) => Promise<void>) | undefined,
): Promise<ManifestEntry | undefined> {
  for (;;) {
    const n = await it.next();
    if (n.done) return undefined;
    res.entries++;
    await onEntry?.(n.value);
    if (inTree(n.value)) return n.value;
  }
}

/** Mode bits no entry of a store's tree may have (see src/core/tree-mode.ts): setuid, setgid, go+w. */
const STORE_FORBIDDEN_MODE = SET_ID_BITS | 0o022;

/** Unexpected top-level names reported at most (a directory of a million planted names is not listed). */
const MAX_TOP_LEVEL_EXTRAS = 20;

/** Anything at the top of a generation but tree/, manifest, meta.json and SHA256SUMS is a problem. */
async function checkTopLevel(
  dir: string,
  add: (kind: ProblemKind, path: string, detail: string) => void,
): Promise<void> {
  let extras = 0;
  let d;
  try {
    d = await opendir(dir, { bufferSize: 64 });
  } catch (e) {
    add('missing', '.', `cannot list the generation: ${errnoCode(e) ?? String(e)}`);
    return;
  }
  try {
    for await (const e of d) {
      if (GENERATION_NAMES.has(e.name)) continue;
      if (++extras > MAX_TOP_LEVEL_EXTRAS) {
        add('extra', '.', `more than ${MAX_TOP_LEVEL_EXTRAS} unexpected names at the top of the generation`);
        return;
      }
      add(
        'extra',
        JSON.stringify(e.name).slice(1, -1),
        'at the top of the generation: only tree/, manifest, meta.json and SHA256SUMS belong there',
      );
    }
  } finally {
    await d.close().catch(() => undefined);
  }
}

/**
 * Opens a file the source sent without ever following a symlink or blocking on a FIFO: a regular
 * file (checked on the open descriptor, so nothing can be swapped in between) of at most
 * `maxBytes`, or why not.
 */
async function openSourceFile(
  path: string,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<FileHandle | string> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT') return 'missing';
    if (code === 'ELOOP') return 'not a regular file: a symlink (a symlink from a source is never followed)';
    return `cannot open it: ${code ?? String(e)}`;
  }
  const st = await fh.stat().catch(() => undefined);
  const problem = !st?.isFile()
    ? 'not a regular file (a FIFO or device from a source is never read)'
    : st.size > maxBytes
      ? `larger than ${maxBytes} bytes`
      : undefined;
  if (problem === undefined) return fh;
  await fh.close();
  return problem;
}

/**
 * meta.json of a generation, parsed and bounded (1 MiB, the schema), or why it is not usable. Never
 * follows a symlink nor blocks on a FIFO: safe on a generation nobody checked yet.
 */
export async function readGenerationMeta(dir: string): Promise<GenerationMeta | string> {
  const fh = await openSourceFile(join(dir, META_JSON), MAX_META_BYTES);
  if (typeof fh === 'string') return fh;
  let text: string;
  try {
    const buf = Buffer.alloc(MAX_META_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > MAX_META_BYTES) return `larger than ${MAX_META_BYTES} bytes`;
    text = buf.subarray(0, n).toString('utf8');
  } catch (e) {
    return `unreadable: ${errnoCode(e) ?? String(e)}`;
  } finally {
    await fh.close();
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  const meta = generationMetaSchema.safeParse(raw);
  return meta.success ? meta.data : 'not a valid meta.json';
}

/** Bytes of expected SHA256SUMS lines compared at once (one read per batch, constant memory). */
const SUMS_BATCH = 256 * 1024;

/**
 * SHA256SUMS checked line by line against the manifest as the manifest is read: it must be exactly
 * the lines the manifest's files give (`formatSha256SumsLine`, in manifest order) and nothing more,
 * so `sha256sum -c` on a published generation checks what the sink verified and reads only inside
 * tree/ (a `../../etc/passwd` line, a wrong hash, a missing or extra line are refused). Reads never
 * more than the expected bytes plus one.
 */
class Sha256SumsCheck {
  private batch: Array<{ line: Buffer; path: Buffer }> = [];
  private batchBytes = 0;
  private offset = 0;
  private lineNo = 0;
  private problem: string | undefined;

  private constructor(private readonly fh: FileHandle) {}

  static async open(path: string): Promise<Sha256SumsCheck | string> {
    const fh = await openSourceFile(path);
    return typeof fh === 'string' ? fh : new Sha256SumsCheck(fh);
  }

  async expect(e: ManifestEntry): Promise<void> {
    if (this.problem !== undefined || e.type !== 'f' || e.sha256 === undefined) return;
    const line = formatSha256SumsLine(e.sha256, e.path);
    this.batch.push({ line, path: e.path });
    this.batchBytes += line.length;
    if (this.batchBytes >= SUMS_BATCH) await this.compareBatch();
  }

  /** The first difference, or undefined when the file held exactly the expected lines. */
  async finish(): Promise<string | undefined> {
    await this.compareBatch();
    if (this.problem !== undefined) return this.problem;
    const extra = Buffer.alloc(1);
    const { bytesRead } = await this.fh.read(extra, 0, 1, this.offset);
    if (bytesRead > 0)
      return `more than the ${this.lineNo} line(s) the manifest's files give (line ${this.lineNo + 1} has no file)`;
    return undefined;
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }

  private async compareBatch(): Promise<void> {
    if (this.problem !== undefined || this.batch.length === 0) return;
    const want = Buffer.concat(this.batch.map((b) => b.line));
    const got = Buffer.alloc(want.length);
    let n = 0;
    while (n < got.length) {
      const { bytesRead } = await this.fh.read(got, n, got.length - n, this.offset + n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    let at = 0;
    for (const b of this.batch) {
      this.lineNo++;
      const end = at + b.line.length;
      if (end > n || !got.subarray(at, end).equals(b.line)) {
        this.problem =
          end > n && at >= n
            ? `ends at line ${this.lineNo}, the manifest has more files (next: ${show(b.path)})`
            : `line ${this.lineNo} differs from the manifest's line for ${show(b.path)}`;
        break;
      }
      at = end;
    }
    this.offset += n;
    this.batch = [];
    this.batchBytes = 0;
  }
}

/** One line per problem, for messages and mails. */
export function describeProblems(problems: readonly VerifyProblem[], max = 10): string {
  const lines = problems.slice(0, max).map((p) => `${p.kind}: ${p.path}: ${p.detail}`);
  if (problems.length > max) lines.push(`… and ${problems.length - max} more`);
  return lines.join('\n');
}

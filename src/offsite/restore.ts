import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import {
  chmod,
  copyFile,
  link,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { StreamName } from '../config/schema.js';
import { ConfigError, JobError, errnoCode } from '../errors.js';
import { readManifest, ManifestError } from '../generation/manifest-file.js';
import { createTimeSetter } from '../adapters/set-times.js';
import { fsyncDir } from '../adapters/fsx.js';
import { syncFilesystem } from '../adapters/syncfs.js';
import type { Logger } from '../adapters/log.js';
import { pathKey, type ManifestEntry } from '../core/manifest.js';
import { classifyEntry, parseTreePath, showPath } from '../core/restore-plan.js';
import { storedDirMode, storedFileMode } from '../core/tree-mode.js';
import { isGenerationId } from '../generation/names.js';
import { restoreGeneration, type RestoreResult } from '../generation/restore.js';
import { genKey, GEN_OBJECTS, packKey, type GenObject } from './layout.js';
import { OffsiteError, type ObjectStore } from './object-store.js';
import { sha256Hex } from './crypto.js';
import { decompress } from './codec.js';
import {
  BlobLocations,
  DamagedObjectError,
  downloadGenObject,
  listCommits,
  readCommit,
  type BlobLocation,
} from './read.js';
import { FilesMapFile } from './files-map-file.js';
import { RecordError } from '../core/offsite-records.js';
import type { Commit } from '../core/offsite-records.js';
import type { Repo } from './repo.js';

const STEP = 'offsite restore';

/** `SOURCE/STREAM` and `ID|latest` → the committed generation, or a one-line error. */
export async function resolveCommit(
  store: ObjectStore,
  repo: Repo,
  what: string,
  id: string,
): Promise<Commit> {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,62})\/(data|logs)$/.exec(what);
  if (!m?.[1] || !m[2])
    throw new ConfigError(`expected SOURCE/STREAM (e.g. shop-prod/data), got ${JSON.stringify(what)}`, {
      step: STEP,
    });
  const source = m[1];
  const stream = m[2] as StreamName;
  if (id !== 'latest' && !isGenerationId(id))
    throw new ConfigError(
      `expected a generation id like 2026-11-28T061922Z or "latest", got ${JSON.stringify(id)}`,
      { step: STEP },
    );
  const commits = await listCommits(store, source, stream);
  const ref = id === 'latest' ? commits.at(-1) : commits.find((c) => c.id === id);
  if (!ref)
    throw new JobError(
      id === 'latest'
        ? `no committed generation of ${source}/${stream} in ${store.describe}`
        : `${source}/${stream}/${id} is not committed in ${store.describe}`,
      { step: STEP },
    );
  return readCommit(store, repo, ref);
}

/**
 * Bytes of a pack fetched by one ranged GET: the blobs after the one asked for come along. 2 MiB:
 * the windows kept (plus the one read ahead) are most of a restore's memory, 10 MiB in all (8 MiB
 * windows held 40 MiB, and left the heap fragmented); 2 MiB is still one GET per ~7,000 small files.
 */
export const READ_WINDOW = 2 * 1024 * 1024;
/** Windows kept (bounded memory: READ_WINDOW × this, plus the blobs of the files in flight). */
const WINDOWS_KEPT = 4;
/** A window takes along only blobs smaller than this (the chunks of large files come by their own GET). */
export const WINDOW_BLOB_MAX = 256 * 1024;
/** A file of one blob smaller than this is read through the windows; any other file blob by blob. */
export const DIRECT_BLOB_MIN = 1024 * 1024;

interface PackWindow {
  pack: string;
  start: number;
  end: number;
  bytes: Promise<Uint8Array>;
}

/**
 * Reads the blobs of one file in order, checking each blob's id and the file's sha256. A push
 * writes blobs into packs in manifest order, so a restore in manifest order reads the small files
 * of each pack front to back: one ranged GET fetches a window of up to READ_WINDOW bytes of small
 * blobs and the next files' blobs come from it (one GET per blob would be one request per small
 * file). The chunks of a large file (more than one blob, or one of DIRECT_BLOB_MIN or more) come by
 * ranged GETs of their own (one per run of back-to-back blobs, up to READ_WINDOW bytes), the next
 * one downloading while the current one is written, and never pass through (or evict) the windows.
 */
export class FileFetcher {
  /** each pack's blob ends, sorted: a window ends at a blob's end, never beyond the last */
  private packEnds = new Map<string, number[]>();
  /** least recently used first */
  private windows: PackWindow[] = [];

  /** `files` and `blobs` are lookups (on-disk tables in a restore; Maps do in tests). */
  constructor(
    private readonly store: ObjectStore,
    private readonly repo: Repo,
    private readonly files: Lookup<string[]>,
    private readonly blobs: Lookup<BlobLocation>,
    packEnds?: Map<string, number[]>,
  ) {
    if (packEnds) this.packEnds = packEnds;
    else if (blobs instanceof Map) {
      for (const loc of (blobs as Map<string, BlobLocation>).values()) {
        const ends = this.packEnds.get(loc.pack) ?? [];
        if (ends.length === 0) this.packEnds.set(loc.pack, ends);
        ends.push(loc.offset + loc.length);
      }
      for (const ends of this.packEnds.values()) ends.sort((a, b) => a - b);
    }
  }

  /**
   * The window from `start`: at least to `need`, then over the following small blobs (each under
   * WINDOW_BLOB_MAX) while it stays within READ_WINDOW bytes; it ends at a blob's end.
   */
  private window(pack: string, start: number, need: number): PackWindow {
    const ends = this.packEnds.get(pack) ?? [];
    let lo = 0;
    let hi = ends.length; // first end > need
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((ends[mid] ?? 0) <= need) lo = mid + 1;
      else hi = mid;
    }
    let end = need;
    for (let i = lo; i < ends.length; i++) {
      const e = ends[i] ?? end;
      if (e - end >= WINDOW_BLOB_MAX || e - start > READ_WINDOW) break;
      end = e;
    }
    const bytes = this.store.get(packKey(pack), { range: { start, end: end - 1 }, maxBytes: end - start });
    const w: PackWindow = { pack, start, end, bytes };
    // a failed read is not kept: the caller reports it, a later read asks again
    bytes.catch(() => (this.windows = this.windows.filter((x) => x !== w)));
    this.windows.push(w);
    if (this.windows.length > WINDOWS_KEPT) this.windows.shift();
    return w;
  }

  /** A small blob, through the windows (a hit makes its window the most recently used). */
  private async windowedBlob(loc: BlobLocation, what: string): Promise<Uint8Array> {
    const end = loc.offset + loc.length;
    const at = this.windows.findIndex((x) => x.pack === loc.pack && x.start <= loc.offset && end <= x.end);
    let w = this.windows[at];
    if (w) {
      this.windows.splice(at, 1);
      this.windows.push(w);
    } else {
      w = this.window(loc.pack, loc.offset, end);
      // read ahead: the next window of the pack downloads while this one is written out
      const from = w.end;
      const next = this.packEnds.get(loc.pack)?.find((e) => e > from);
      if (
        next !== undefined &&
        next - from < WINDOW_BLOB_MAX &&
        !this.windows.some((x) => x.pack === loc.pack && x.start === from)
      )
        this.window(loc.pack, from, next).bytes.catch(() => undefined);
    }
    const got = await w.bytes;
    return checkLength(got.subarray(loc.offset - w.start, end - w.start), loc, what);
  }

  /** Bytes `[start, end)` of a pack by one ranged GET. */
  private async span(pack: string, start: number, end: number): Promise<Uint8Array> {
    return this.store.get(packKey(pack), { range: { start, end: end - 1 }, maxBytes: end - start });
  }

  async fetch(e: ManifestEntry, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
    const sha = e.sha256 ?? '';
    const ids = this.files.get(sha);
    if (ids === undefined)
      throw new OffsiteError(
        `${showPath(e.path)}: its content (sha256 ${sha}) is not in the generation's files object`,
      );
    const locs = ids.map((id) => {
      const loc = this.blobs.get(id);
      if (!loc) throw new OffsiteError(`${showPath(e.path)}: blob ${id} is in none of the commit's packs`);
      return { id, loc, what: `${packKey(loc.pack)} (blob ${id.slice(0, 16)}… of ${showPath(e.path)})` };
    });
    const first = locs[0];
    const windowed = locs.length === 1 && first !== undefined && first.loc.length < DIRECT_BLOB_MIN;
    // A large file: its blobs, where they lie back to back in a pack, come by one ranged GET per
    // span of up to READ_WINDOW bytes; the next span downloads while the current one is written.
    const spanOf: number[] = [];
    const spans: Array<{ pack: string; start: number; end: number }> = [];
    for (const { loc } of windowed ? [] : locs) {
      const last = spans.at(-1);
      const end = loc.offset + loc.length;
      if (last && last.pack === loc.pack && last.end === loc.offset && end - last.start <= READ_WINDOW)
        last.end = end;
      else spans.push({ pack: loc.pack, start: loc.offset, end });
      spanOf.push(spans.length - 1);
    }
    const fetched = new Map<number, Promise<Uint8Array>>();
    const getSpan = (k: number) => {
      const sp = spans[k];
      if (sp === undefined || fetched.has(k)) return;
      const p = this.span(sp.pack, sp.start, sp.end);
      p.catch(() => undefined); // awaited below in turn; a failure before it must not go unhandled
      fetched.set(k, p);
    };
    const sealedOf = async (i: number, loc: BlobLocation, what: string): Promise<Uint8Array> => {
      if (windowed) return this.windowedBlob(loc, what);
      const k = spanOf[i] ?? 0;
      getSpan(k);
      getSpan(k + 1);
      fetched.delete(k - 1);
      const sp = spans[k] as (typeof spans)[number];
      const got = await (fetched.get(k) as Promise<Uint8Array>);
      return checkLength(got.subarray(loc.offset - sp.start, loc.offset - sp.start + loc.length), loc, what);
    };
    // one file of one blob: that blob's sha256 is the file's, hashed once
    const whole = locs.length === 1 ? undefined : createHash('sha256');
    let wholeSha: string | undefined;
    let size = 0;
    for (let i = 0; i < locs.length; i++) {
      const { id, loc, what } = locs[i] as (typeof locs)[number];
      const sealed = await sealedOf(i, loc, what);
      const plain = await decompress(await this.repo.open(sealed, what), loc.codec, loc.plainLength, what);
      const plainSha = sha256Hex(plain);
      if (plain.length !== loc.plainLength || this.repo.blobId(plainSha) !== id)
        throw new OffsiteError(`${what}: content does not match its id (tampered?)`);
      if (whole) whole.update(plain);
      else wholeSha = plainSha;
      size += plain.length;
      await write(plain);
    }
    const got = whole ? whole.digest('hex') : (wholeSha ?? '');
    if (got !== sha || size !== e.size)
      throw new OffsiteError(
        `${showPath(e.path)}: restored content has sha256 ${got}, the manifest says ${sha}`,
      );
  }
}

function checkLength(sealed: Uint8Array, loc: BlobLocation, what: string): Uint8Array {
  if (sealed.length !== loc.length)
    throw new OffsiteError(`${what}: short read (${sealed.length} of ${loc.length} bytes)`);
  return sealed;
}

/** What FileFetcher looks things up in. */
export interface Lookup<V> {
  get(key: string): V | undefined;
}

export interface OffsiteGeneration {
  commit: Commit;
  /** the downloaded generation objects (checked against the commit), in `tmp` */
  paths: Record<GenObject, string>;
  files: FilesMapFile;
  blobs: BlobLocations;
  fetcher: FileFetcher;
  close(): void;
}

/**
 * Everything a restore needs from the bucket, before anything is written locally, on disk in `tmp`
 * (an empty dir the caller removes): the generation objects streamed to files, the files map and the
 * blob locations as sorted lookups. Memory does not grow with the number of files.
 */
export async function loadOffsiteGeneration(
  store: ObjectStore,
  repo: Repo,
  commit: Commit,
  tmp: string,
): Promise<OffsiteGeneration> {
  const paths = {} as Record<GenObject, string>;
  for (const name of GEN_OBJECTS) {
    paths[name] = join(tmp, name);
    await downloadGenObject(store, repo, commit, name, paths[name]);
  }
  const what = genKey(commit.source, commit.stream, commit.id, 'files');
  let files: FilesMapFile;
  try {
    files = await FilesMapFile.open(paths.files, what);
  } catch (e) {
    if (e instanceof RecordError) throw new DamagedObjectError(e.message);
    throw e;
  }
  let blobs: BlobLocations;
  try {
    blobs = await BlobLocations.build(store, repo, commit.packs, tmp);
  } catch (e) {
    files.close();
    throw e;
  }
  return {
    commit,
    paths,
    files,
    blobs,
    fetcher: new FileFetcher(store, repo, files, blobs, blobs.packEnds),
    close: () => {
      files.close();
      blobs.close();
    },
  };
}

/** Files written at once per configured parallel GET, and the bytes they may hold (see schedule). */
const FILES_PER_GET = 4;
const BYTES_IN_FLIGHT = 16 * 1024 * 1024;
const FILE_COST_MAX = 4 * 1024 * 1024;

async function emptyOrMissing(dir: string): Promise<boolean> {
  const st = await stat(dir).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return true;
  if (!st.isDirectory()) throw new ConfigError(`${dir} exists and is not a directory`, { step: STEP });
  return (await readdir(dir)).length === 0;
}

/**
 * Writes the generation directory `dir` (must not exist): manifest, SHA256SUMS, meta.json as
 * stored, and tree/ as the sink store holds it (files, directories and symlinks with the store's
 * modes and the manifest's mtimes; hard-link groups as one inode; FIFOs, sockets and devices live
 * in the manifest only). With `sub`, only that path (and its parent directories) is written.
 */
async function writeGenerationDir(
  gen: OffsiteGeneration,
  dir: string,
  sub: Buffer | undefined,
  concurrency: number,
) {
  await mkdir(dir, { mode: 0o755 });
  for (const name of ['manifest', 'SHA256SUMS', 'meta.json'] as const) {
    await copyFile(gen.paths[name], join(dir, name));
    await chmod(join(dir, name), 0o644);
  }
  const tree = Buffer.from(join(dir, 'tree'));
  await mkdir(tree, { mode: 0o700 });
  const times = await createTimeSetter();
  const dirs: Array<{ dest: Buffer; e: ManifestEntry }> = [];
  const placed = new Map<string, { dest: Buffer; done: Promise<void> }>();
  // Files in flight: many (each waits mostly on its GET, file I/O and libuv's pool), bounded by count
  // and by bytes (a file counts its size up to FILE_COST_MAX: it holds one or two blobs at a time).
  const inflight = new Set<Promise<void>>();
  const maxFiles = Math.max(1, concurrency) * FILES_PER_GET;
  let bytesInFlight = 0;
  let failure: Error | undefined;
  const schedule = async (p: Promise<void>, size = 0) => {
    const cost = Math.min(size, FILE_COST_MAX);
    bytesInFlight += cost;
    const t: Promise<void> = p
      .catch((e: unknown) => void (failure ??= e instanceof Error ? e : new Error(String(e))))
      .finally(() => {
        inflight.delete(t);
        bytesInFlight -= cost;
      });
    inflight.add(t);
    while (inflight.size >= maxFiles || (inflight.size > 0 && bytesInFlight >= BYTES_IN_FLIGHT))
      await Promise.race(inflight);
  };
  const slash = Buffer.from('/');
  try {
    for await (const e of readManifest(join(dir, 'manifest'))) {
      if (failure !== undefined) break;
      const where = classifyEntry(e.path, sub);
      if (where === 'after') break;
      if (where === 'before') continue;
      const dest = Buffer.concat([tree, slash, e.path]);
      if (e.type === 'd') {
        await mkdir(dest, { mode: 0o700 });
        dirs.push({ dest, e });
      } else if (e.type === 'l') {
        if (!e.target)
          throw new OffsiteError(`${showPath(e.path)}: symlink without a target in the manifest`);
        await symlink(e.target, dest);
        times.add(dest, e.mtimeNs);
      } else if (e.type === 'f') {
        // a hard-link group: later names link to the name written first (its first name may be outside --path)
        const group =
          e.links !== undefined ? pathKey(e.path) : e.linkTo !== undefined ? pathKey(e.linkTo) : undefined;
        const first = group === undefined ? undefined : placed.get(group);
        if (first) {
          await schedule(first.done.then(() => link(first.dest, dest)));
          continue;
        }
        const p = writeFileFromBucket(gen.fetcher, e, dest).then(() => times.add(dest, e.mtimeNs));
        if (group !== undefined) placed.set(group, { dest, done: p });
        await schedule(p, e.size);
      }
      if (times.due) {
        await Promise.all(inflight);
        await times.flush();
      }
    }
    await Promise.all(inflight);
  } catch (e) {
    await Promise.allSettled(inflight);
    if (e instanceof ManifestError)
      throw new JobError(`the manifest in the bucket is damaged: ${e.message}`, { step: STEP });
    throw e;
  }
  if (failure !== undefined) throw failure;
  await times.flush();
  for (const d of dirs.reverse()) {
    await chmod(d.dest, storedDirMode(d.e.mode));
    times.add(d.dest, d.e.mtimeNs);
  }
  await times.flush();
  await chmod(tree, 0o750);
}

async function writeFileFromBucket(fetcher: FileFetcher, e: ManifestEntry, dest: Buffer): Promise<void> {
  const out = await open(
    dest,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await fetcher.fetch(e, async (chunk) => {
      let off = 0;
      while (off < chunk.length) off += (await out.write(chunk, off, chunk.length - off)).bytesWritten;
    });
    // no fsync per file: the whole work dir is flushed (syncfs) before it is renamed into place
    await out.chmod(storedFileMode(e.mode));
  } finally {
    await out.close();
  }
}

export interface OffsiteRestoreResult {
  source: string;
  stream: StreamName;
  id: string;
  /** the generation directory written (without --path) */
  generation?: string;
  /** the copy-out (with --path) */
  copyOut?: RestoreResult;
}

/**
 * `baton offsite restore`: without `subPath`, `to` becomes a generation directory identical to the
 * sink's (written under a dot-name beside it, then renamed), so `sha256sum -c`, `baton verify` and
 * `baton restore` work on it. With `subPath`, that path is copied out faithfully into `to`
 * (owners, modes, special files from the manifest) through a partial generation in a temp dir.
 */
export async function runOffsiteRestore(opts: {
  store: ObjectStore;
  repo: Repo;
  what: string;
  id: string;
  to: string;
  subPath?: string | undefined;
  log: Logger;
  concurrency: number;
}): Promise<OffsiteRestoreResult> {
  let sub: Buffer | undefined;
  if (opts.subPath !== undefined) {
    const p = parseTreePath(opts.subPath);
    if (!p.ok) throw new ConfigError(`--path ${JSON.stringify(opts.subPath)}: ${p.error}`, { step: STEP });
    sub = p.path;
  }
  if (!(await emptyOrMissing(opts.to)))
    throw new ConfigError(`${opts.to} is not empty: restore into a new or empty directory`, { step: STEP });
  if (!opts.repo.canOpen)
    throw new ConfigError(`${opts.store.describe} is encrypted: pass the age identity with --identity FILE`, {
      step: STEP,
    });
  const commit = await resolveCommit(opts.store, opts.repo, opts.what, opts.id);
  const parent = dirname(opts.to);
  await mkdir(parent, { recursive: true });
  const work = join(parent, `.${basename(opts.to)}.offsite-${process.pid}`);
  // the downloaded generation objects and lookups, beside the target (not a tmpfs: it may be large)
  const tmp = `${work}.tmp`;
  await rm(work, { recursive: true, force: true });
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { mode: 0o700 });
  let gen: OffsiteGeneration;
  try {
    gen = await loadOffsiteGeneration(opts.store, opts.repo, commit, tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  opts.log.info(
    { step: STEP, id: commit.id, to: opts.to },
    `restoring ${commit.source}/${commit.stream}/${commit.id} from ${opts.store.describe}`,
  );
  try {
    await writeGenerationDir(gen, work, sub, opts.concurrency);
    const result: OffsiteRestoreResult = { source: commit.source, stream: commit.stream, id: commit.id };
    if (opts.subPath !== undefined) {
      result.copyOut = await restoreGeneration({
        generation: work,
        to: opts.to,
        force: false,
        log: opts.log,
        subPath: opts.subPath,
      });
      return result;
    }
    await syncFilesystem(work);
    await rmdir(opts.to).catch((e: unknown) => {
      if (errnoCode(e) !== 'ENOENT') throw e;
    });
    await rename(work, opts.to);
    await fsyncDir(parent);
    result.generation = opts.to;
    return result;
  } finally {
    gen.close();
    await rm(work, { recursive: true, force: true });
    await rm(tmp, { recursive: true, force: true });
  }
}

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { OffsiteConfig, SinkConfig, StreamName } from '../config/schema.js';
import { STREAMS } from '../config/schema.js';
import { ConfigError, JobError, errnoCode } from '../errors.js';
import { acquireLock } from '../adapters/lock.js';
import { listGenerations } from '../generation/list.js';
import { readManifest } from '../generation/manifest-file.js';
import type { ManifestEntry } from '../core/manifest.js';
import { crashPoint } from '../adapters/crash-point.js';
import { mkdirp } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { listBadMarks } from '../sink/bad-marks.js';
import { sinkPaths } from '../sink/state.js';
import { chunkLengths, findChunkEnd, type ChunkerParams } from './chunker.js';
import { sha256Hex, type BlobSealer } from './crypto.js';
import {
  commitKey,
  commitPrefix,
  genKey,
  GEN_OBJECTS,
  indexKey,
  packKey,
  parseCommitKey,
  type GenObject,
} from './layout.js';
import { LocalIndex, offsiteStateDir } from './local-index.js';
import { ObjectExistsError, type ObjectStore } from './object-store.js';
import {
  formatCommit,
  formatPackIndex,
  MAX_PACK_BLOBS,
  RecordError,
  type Commit,
  type ObjectRef,
  type PackIndex,
  type PackIndexEntry,
} from '../core/offsite-records.js';
import { FilesMapFile, FilesMapWriter } from './files-map-file.js';
import { FileSink, LineSorter } from './sorted-table.js';
import { openRepoForPush, type Repo } from './repo.js';
import { compress, type Encoded } from './codec.js';
import { encodeGenObjects, MAX_DELTA_OBJECT } from './gen-objects.js';
import { configuredRecipients } from './recipients.js';
import { openOffsiteStore } from './open-store.js';
import { recordPushState } from './push-state.js';

const STEP = 'offsite';

export interface PushOptions {
  source?: string | undefined;
  stream?: StreamName | undefined;
  now: () => Date;
  log: Logger;
  /** age identities, only needed when the sink lost its copy of the repository key */
  identities?: string[] | undefined;
  /** for tests: a store instead of the configured one */
  store?: ObjectStore;
}

export interface PushedGeneration {
  source: string;
  stream: StreamName;
  id: string;
  files: number;
  /** files whose content was already offsite (not read) */
  filesReused: number;
  /** new blobs and their plain bytes */
  blobsNew: number;
  bytesNew: number;
  /** bytes of packs, indexes and generation objects sent */
  bytesUploaded: number;
  /** false: another pusher committed it first (nothing lost) */
  committed: boolean;
}

export interface PushResult {
  repository: string;
  pushed: PushedGeneration[];
  /** verified sink generations already offsite */
  alreadyOffsite: number;
  bytesUploaded: number;
}

/** The offsite block of the config, or a ConfigError (exit 2). */
export function offsiteConfig(config: SinkConfig): OffsiteConfig {
  if (!config.offsite)
    throw new ConfigError('no `offsite:` block in the sink config (see docs/offsite.md)', { step: STEP });
  return config.offsite;
}

export function selectStreams(
  config: SinkConfig,
  only: { source?: string | undefined; stream?: StreamName | undefined },
): Array<{ source: string; stream: StreamName }> {
  const out: Array<{ source: string; stream: StreamName }> = [];
  for (const s of config.sources) {
    if (only.source !== undefined && s.name !== only.source) continue;
    for (const st of STREAMS) {
      if (only.stream !== undefined && st !== only.stream) continue;
      if (s.streams[st]) out.push({ source: s.name, stream: st });
    }
  }
  if (out.length === 0)
    throw new ConfigError(
      `no configured source/stream matches${only.source ? ` --source ${only.source}` : ''}${only.stream ? ` --stream ${only.stream}` : ''}`,
      { step: STEP },
    );
  return out;
}

/** Committed generation ids of a stream in the bucket (by key name only). */
export async function listCommittedIds(
  store: ObjectStore,
  source: string,
  stream: StreamName,
): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const o of store.list(commitPrefix(source, stream))) {
    const c = parseCommitKey(o.key);
    if (c && c.source === source && c.stream === stream) ids.add(c.id);
  }
  return ids;
}

/**
 * `baton offsite push`: every verified sink generation not yet committed in the bucket, oldest first,
 * per source and stream. One push per bucket prefix at a time (a lock in the sink state dir).
 */
export async function runOffsitePush(config: SinkConfig, opts: PushOptions): Promise<PushResult> {
  const cfg = offsiteConfig(config);
  const streams = selectStreams(config, opts);
  const state = offsiteStateDir(config.stateDir, cfg);
  await mkdirp(state, 0o700);
  const lock = await acquireLock(join(state, 'push.lock'), 'baton offsite push');
  try {
    const store = opts.store ?? (await openOffsiteStore(cfg));
    const recipients = cfg.encryption ? await configuredRecipients(cfg.encryption) : undefined;
    if (!cfg.encryption)
      opts.log.warn({ step: STEP }, 'offsite.encryption is not set: objects are stored plain');
    const repo = await openRepoForPush(store, { recipients, stateDir: state, identities: opts.identities });
    // what a killed push left: spooled packs, sort runs, sealed objects
    for (const d of await readdir(state))
      if (d.startsWith('tmp-')) await rm(join(state, d), { recursive: true, force: true });
    await mkdirp(join(state, 'files'), 0o700);
    const index = await LocalIndex.load(state);
    await index.refresh(store, repo, opts.log);
    const result: PushResult = {
      repository: store.describe,
      pushed: [],
      alreadyOffsite: 0,
      bytesUploaded: 0,
    };
    const limiter = new Bandwidth(cfg.bwlimit);
    for (const { source, stream } of streams) {
      const streamDir = sinkPaths(config, source, stream).streamDir;
      const bad = await listBadMarks(streamDir);
      const gens = (await listGenerations(streamDir)).filter((g) => !bad.has(g.id));
      const committed = await listCommittedIds(store, source, stream);
      for (const g of gens) {
        if (committed.has(g.id)) {
          result.alreadyOffsite++;
          continue;
        }
        const cache = filesCache(state, source, stream);
        const prevFiles = await openFilesCache(cache);
        const tmp = await mkdtemp(join(state, 'tmp-'));
        try {
          const summary = await pushGeneration({
            store,
            repo,
            index,
            cfg,
            source,
            stream,
            id: g.id,
            dir: g.dir,
            prevFiles,
            tmp,
            cache,
            now: opts.now,
            log: opts.log,
            limiter,
            state,
            isCommitted: (id) => committed.has(id),
          });
          if (summary.committed) committed.add(g.id);
          result.pushed.push(summary);
          result.bytesUploaded += summary.bytesUploaded;
        } finally {
          prevFiles?.close();
          await rm(tmp, { recursive: true, force: true });
        }
      }
      await recordPushState(config, source, stream, {
        newest: newestOf(committed, result.pushed, source, stream),
        at: opts.now(),
      });
    }
    await index.save();
    index.close();
    return result;
  } finally {
    await lock.release();
  }
}

function newestOf(
  committed: Set<string>,
  pushed: readonly PushedGeneration[],
  source: string,
  stream: StreamName,
): string | undefined {
  const ids = [
    ...committed,
    ...pushed.filter((p) => p.source === source && p.stream === stream).map((p) => p.id),
  ];
  return ids.sort().at(-1);
}

const filesCache = (state: string, source: string, stream: StreamName) =>
  join(state, 'files', `${source}-${stream}.files`);

/**
 * The files map of the last generation this sink pushed for the stream (sha256 → blob ids), in the
 * bucket's files-object format, with its sorted lookup (files-map-file.ts). Only a hint (a blob it names
 * is reused only when the local index has it): an unreadable cache is no cache.
 */
async function openFilesCache(path: string): Promise<FilesMapFile | undefined> {
  try {
    return await FilesMapFile.open(path, path);
  } catch (e) {
    if (e instanceof RecordError || errnoCode(e) !== undefined) return undefined;
    throw e;
  }
}

/** Upload bandwidth: waits so that the bytes sent since the start never run ahead of `perSecond`. */
class Bandwidth {
  private sent = 0;
  private readonly start = Date.now();
  constructor(private readonly perSecond: number | undefined) {}
  async take(bytes: number): Promise<void> {
    if (this.perSecond === undefined) return;
    this.sent += bytes;
    const due = this.start + (this.sent / this.perSecond) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

interface GenPush {
  store: ObjectStore;
  repo: Repo;
  index: LocalIndex;
  cfg: OffsiteConfig;
  source: string;
  stream: StreamName;
  id: string;
  dir: string;
  /** the files map of the stream's last push (a hint), looked up on disk */
  prevFiles: FilesMapFile | undefined;
  /** this generation's temp dir in the state dir (spooled packs, sort runs, sealed objects) */
  tmp: string;
  /** the stream's files-map cache path (replaced by this generation's map once committed) */
  cache: string;
  now: () => Date;
  log: Logger;
  limiter: Bandwidth;
  /** the sink state dir of the repository */
  state: string;
  /** whether a generation of this stream is committed in the bucket (a delta base must be) */
  isCommitted: (id: string) => boolean;
}

/**
 * At most this many blobs a pack of the push (below the readers' MAX_PACK_BLOBS): the in-flight
 * packs' blob lists (ids for the index and the pending set) stay a few MiB.
 */
export const PUSH_PACK_BLOBS = Math.min(MAX_PACK_BLOBS, 20_000);

interface Spool {
  path: string;
  sink: FileSink;
  hash: ReturnType<typeof createHash>;
  entries: PackIndexEntry[];
}

/**
 * Packs new blobs into packs of about `packSize` and uploads each pack, then its index, with at most
 * `parallel` uploads in flight. A pack is spooled to a file in the generation's temp dir as it is
 * filled and uploaded from there (a streamed PUT), so no pack is held in memory: the push's memory
 * is one blob and the in-flight packs' blob lists, whatever `packSize` and `parallel` are; the disk
 * holds at most `parallel + 1` packs. A pack is recorded in the local index only once both are stored.
 */
class Packer {
  private spool: Spool | undefined;
  private spools = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | undefined;
  /** ids added to a pack not yet recorded in the local index */
  readonly pending = new Set<string>();
  bytesUploaded = 0;
  packs = 0;

  constructor(
    private readonly g: GenPush,
    private readonly retainUntil: Date | undefined,
  ) {}

  private sealer: BlobSealer | undefined;

  /** Adds a blob of `plainLength` plain bytes, `enc` its compressed form (compress()). */
  async add(id: string, plainLength: number, enc: Encoded): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.spool === undefined) {
      this.sealer = await this.g.repo.newSealer();
      const path = join(this.g.tmp, `pack-${this.spools++}`);
      this.spool = { path, sink: await FileSink.create(path), hash: createHash('sha256'), entries: [] };
    }
    const sp = this.spool;
    const sealed = this.sealer ? this.sealer.seal(enc.bytes) : enc.bytes;
    const entry = { id, offset: sp.sink.size, length: sealed.length, plainLength };
    sp.entries.push(enc.codec === undefined ? entry : { ...entry, codec: enc.codec });
    sp.hash.update(sealed);
    await sp.sink.write(sealed);
    this.pending.add(id);
    // the blob count too: an index the readers refuse (MAX_PACK_BLOBS) would make its pack unreadable
    if (sp.sink.size >= this.g.cfg.packSize || sp.entries.length >= PUSH_PACK_BLOBS) await this.flush();
  }

  async flush(): Promise<void> {
    const sp = this.spool;
    if (sp === undefined) return;
    this.spool = undefined;
    await sp.sink.close();
    const upload = this.upload(sp)
      .catch((e: unknown) => {
        this.failure ??= e instanceof Error ? e : new Error(String(e));
      })
      .finally(() => rm(sp.path, { force: true }));
    const tracked = upload.finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
    while (this.inflight.size >= this.g.cfg.parallel) await Promise.race(this.inflight);
    if (this.failure !== undefined) throw this.failure;
  }

  async drain(): Promise<void> {
    await this.flush();
    await Promise.all(this.inflight);
    if (this.failure !== undefined) throw this.failure;
  }

  /** After a failure: waits for the uploads, removes the unfinished spool. */
  async abandon(): Promise<void> {
    const sp = this.spool;
    this.spool = undefined;
    if (sp) await sp.sink.abort();
    await Promise.allSettled(this.inflight);
  }

  private async upload(sp: Spool): Promise<void> {
    const packId = sp.hash.digest('hex');
    const size = sp.sink.size;
    const opts = this.retainUntil ? { retainUntil: this.retainUntil } : {};
    await this.g.limiter.take(size);
    await this.g.store.putFile(packKey(packId), sp.path, size, opts);
    this.bytesUploaded += size;
    await crashPoint('offsite-pack-stored');
    const index: PackIndex = {
      version: sp.entries.some((e) => e.codec !== undefined) ? 2 : 1,
      pack: packId,
      size,
      encrypted: this.g.repo.encrypted,
      blobs: sp.entries,
    };
    const idx = await this.g.repo.sealIndex(Buffer.from(formatPackIndex(index)));
    await this.g.limiter.take(idx.length);
    await this.g.store.put(indexKey(packId), idx, opts);
    this.bytesUploaded += idx.length;
    const ids = sp.entries.map((e) => e.id);
    await this.g.index.record(packId, this.retainUntil?.getTime() ?? 0, ids);
    for (const id of ids) this.pending.delete(id);
    this.packs++;
    await crashPoint('offsite-pack-indexed');
  }
}

/** Opens a file of the tree for reading, never following a symlink; refuses anything but a regular file. */
async function openTreeFile(path: Buffer): Promise<{ fh: FileHandle; size: number }> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw new JobError(`${path.toString()}: not a regular file in the sink store`, { step: STEP });
    return { fh, size: st.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * Reads a file of the tree, chunking it and hashing it whole. Each chunk yielded is a view into the
 * read buffer, valid until the next one is asked for. The buffer holds up to two maxSize windows, so
 * the bytes left after a cut are moved at most once per maxSize read (not once per chunk); the chunker
 * sees the same bytes as ever (maxSize from the cut, or all that is left), so the cuts are unchanged.
 */
async function* chunkTreeFile(
  path: Buffer,
  p: ChunkerParams,
  whole: ReturnType<typeof createHash>,
): AsyncGenerator<Uint8Array> {
  const { fh, size } = await openTreeFile(path);
  try {
    // +1 to see EOF; a small file does not cost a large allocation (GC)
    const cap = Math.min(2 * p.maxSize, size + 1);
    const buf = Buffer.allocUnsafe(cap);
    let start = 0;
    let filled = 0;
    let eof = false;
    for (;;) {
      if (!eof && filled - start < p.maxSize) {
        if (cap - start < p.maxSize) {
          buf.copyWithin(0, start, filled);
          filled -= start;
          start = 0;
        }
        while (!eof && filled < cap) {
          const { bytesRead } = await fh.read(buf, filled, cap - filled, null);
          if (bytesRead === 0) eof = true;
          else {
            whole.update(buf.subarray(filled, filled + bytesRead));
            filled += bytesRead;
          }
        }
      }
      if (filled === start) return;
      const len = findChunkEnd(buf, start, filled, p);
      yield buf.subarray(start, start + len);
      start += len;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Reads a whole small file of the tree (at most `size` + 1 bytes: a file grown since its manifest
 * was written shows up as a hash mismatch, it is never read further).
 */
async function readTreeFile(path: Buffer, size: number): Promise<Buffer> {
  const { fh } = await openTreeFile(path);
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buf.length) break;
    }
    return buf.subarray(0, filled);
  } finally {
    await fh.close();
  }
}

const show = (p: Buffer) => JSON.stringify(p.toString('utf8'));

/**
 * A generation object up to this size is compressed (or stored as a delta) in memory; a larger one is
 * streamed from its file, whole and plain (memory must not grow with the number of files).
 */
export const IN_MEMORY_GEN_OBJECT = Math.min(MAX_DELTA_OBJECT, 8 * 1024 * 1024);

/** How many recent contents a push remembers (identical files close together are read once). */
const RECENT = 4096;

/**
 * Uploads one generation object from a file: hashes the plaintext as it streams and, when the
 * repository is encrypted, seals it into a temp file first (both in bounded memory); the upload is a
 * streamed PUT of that file. Returns the plaintext's sha256 and size for the commit.
 */
async function putGenObject(
  g: GenPush,
  name: GenObject,
  path: string,
  sealer: BlobSealer | undefined,
  putOpts: { retainUntil?: Date },
): Promise<{ ref: { sha256: string; size: number }; sent: number }> {
  const hash = createHash('sha256');
  let size = 0;
  async function* plain(): AsyncGenerator<Uint8Array> {
    // 64 KiB pieces (age's chunk size): larger ones are short-lived external buffers that pile up
    // between two full GCs (tens of MiB of RSS for a 150 MB manifest)
    for await (const piece of createReadStream(path, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
      hash.update(piece);
      size += piece.length;
      yield piece;
    }
  }
  let upload = path;
  let uploadSize: number;
  if (sealer) {
    upload = join(g.tmp, `${name}.age`);
    const sink = await FileSink.create(upload);
    try {
      for await (const piece of sealer.sealStream(plain())) await sink.write(piece);
      await sink.close();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    uploadSize = sink.size;
  } else {
    const it = plain();
    while ((await it.next()).done !== true);
    uploadSize = size;
  }
  await g.limiter.take(uploadSize);
  await g.store.putFile(genKey(g.source, g.stream, g.id, name), upload, uploadSize, putOpts);
  if (upload !== path) await rm(upload, { force: true });
  return { ref: { sha256: hash.digest('hex'), size }, sent: uploadSize };
}

/** Files at most this large are read whole, ahead of the packer (prepareSmallFile). */
export const AHEAD_FILE_MAX = 4 * 1024 * 1024;
/** At most this many files, and this many of their bytes, are read ahead of the packer. */
const AHEAD_FILES = 32;
const AHEAD_BYTES = 16 * 1024 * 1024;

interface PreparedChunk {
  id: string;
  plainLength: number;
  /** a view into the file's bytes */
  plain: Uint8Array;
  /** compressed, unless the blob was already stored when the file was read */
  enc: Encoded | undefined;
}

interface Ahead {
  e: ManifestEntry;
  path: Buffer;
  /** a small file read ahead; none: a large file, streamed when its turn comes */
  task?: Promise<{ sha256: string; chunks: PreparedChunk[] }>;
}

/**
 * Reads a small file whole, chunks it, names and compresses its chunks. The file's sha256 is
 * returned, not checked (the caller compares it with the manifest); a file of one chunk is hashed
 * once (its chunk's sha256 is the file's).
 */
async function prepareSmallFile(
  path: Buffer,
  size: number,
  repo: Repo,
  have: (id: string) => boolean,
): Promise<{ sha256: string; chunks: PreparedChunk[] }> {
  const data = await readTreeFile(path, size);
  const lens = chunkLengths(data, repo.chunker);
  let whole = lens.length === 1 ? undefined : sha256Hex(data);
  const chunks: PreparedChunk[] = [];
  let off = 0;
  for (const len of lens) {
    const plain = data.subarray(off, off + len);
    off += len;
    const sha = sha256Hex(plain);
    whole ??= sha;
    const id = repo.blobId(sha);
    chunks.push({ id, plainLength: len, plain, enc: have(id) ? undefined : await compress(plain) });
  }
  return { sha256: whole ?? sha256Hex(data), chunks };
}

async function pushGeneration(g: GenPush): Promise<PushedGeneration> {
  const started = g.now();
  const retainUntil = g.cfg.objectLock ? new Date(started.getTime() + g.cfg.objectLock.retain) : undefined;
  const summary: PushedGeneration = {
    source: g.source,
    stream: g.stream,
    id: g.id,
    files: 0,
    filesReused: 0,
    blobsNew: 0,
    bytesNew: 0,
    bytesUploaded: 0,
    committed: true,
  };
  g.log.info(
    { step: STEP, source: g.source, stream: g.stream, id: g.id },
    `pushing ${g.source}/${g.stream}/${g.id}`,
  );
  // The files map is not held: each file's line goes to an external sort (by sha256, duplicates once).
  const sorter = new LineSorter({ tmpDir: g.tmp, unique: true });
  const recent = new Set<string>();
  const packer = new Packer(g, retainUntil);
  const tree = Buffer.from(`${g.dir}/tree/`);
  const have = (id: string) => packer.pending.has(id) || g.index.has(id);
  const mismatch = (e: ManifestEntry, got: string) =>
    new JobError(
      `${g.source}/${g.stream}/${g.id}: ${show(e.path)} in the sink store has sha256 ${got}, its manifest says ${e.sha256}: run \`baton verify --deep\` on it; nothing was committed`,
      { step: STEP },
    );
  // Files are read ahead of the packer (bounded: AHEAD_FILES files, AHEAD_BYTES bytes): a small file
  // is read, chunked, hashed and compressed whole by its own task while earlier ones are packed, so
  // file opens, reads and gzip (libuv's pool) overlap. Blobs still enter the packs in manifest order
  // (a restore reads each pack front to back). A large file is chunked as a stream when its turn comes.
  const queue: Ahead[] = [];
  let aheadBytes = 0;
  let manifestDone = false;
  const entries = readManifest(join(g.dir, 'manifest'))[Symbol.asyncIterator]();
  const fill = async () => {
    while (!manifestDone && queue.length < AHEAD_FILES && aheadBytes < AHEAD_BYTES) {
      const r = await entries.next();
      if (r.done === true) {
        manifestDone = true;
        break;
      }
      const e = r.value;
      if (e.type !== 'f' || e.sha256 === undefined) continue;
      summary.files++;
      if (recent.has(e.sha256)) continue;
      if (recent.size >= RECENT) recent.clear();
      recent.add(e.sha256);
      // Content already offsite (the previous push held it: unchanged and hard-linked files): not read again.
      const known = g.prevFiles?.get(e.sha256);
      if (known && known.every(have)) {
        summary.filesReused++;
        await sorter.add(known.length === 0 ? e.sha256 : `${e.sha256} ${known.join(' ')}`);
        continue;
      }
      const path = Buffer.concat([tree, e.path]);
      if (e.size > AHEAD_FILE_MAX) {
        queue.push({ e, path });
        continue;
      }
      const task = prepareSmallFile(path, e.size, g.repo, have);
      task.catch(() => undefined); // awaited in order below; a failure before it must not go unhandled
      aheadBytes += e.size;
      queue.push({ e, path, task });
    }
  };
  try {
    for (;;) {
      await fill();
      const item = queue.shift();
      if (item === undefined) break;
      const { e } = item;
      const ids: string[] = [];
      if (item.task) {
        const f = await item.task;
        aheadBytes -= e.size;
        if (f.sha256 !== e.sha256) throw mismatch(e, f.sha256);
        for (const c of f.chunks) {
          ids.push(c.id);
          if (have(c.id)) continue;
          summary.blobsNew++;
          summary.bytesNew += c.plainLength;
          await packer.add(c.id, c.plainLength, c.enc ?? (await compress(c.plain)));
        }
      } else {
        const whole = createHash('sha256');
        for await (const chunk of chunkTreeFile(item.path, g.repo.chunker, whole)) {
          const id = g.repo.blobId(sha256Hex(chunk));
          ids.push(id);
          if (have(id)) continue;
          summary.blobsNew++;
          summary.bytesNew += chunk.length;
          await packer.add(id, chunk.length, await compress(chunk));
        }
        const got = whole.digest('hex');
        if (got !== e.sha256) throw mismatch(e, got);
      }
      await sorter.add(ids.length === 0 ? e.sha256 : `${e.sha256} ${ids.join(' ')}`);
    }
    await packer.drain();
  } catch (e) {
    await Promise.allSettled(queue.flatMap((q) => (q.task ? [q.task] : [])));
    await entries.return?.(undefined);
    await packer.abandon();
    await sorter.dispose();
    throw e;
  }
  summary.bytesUploaded += packer.bytesUploaded;
  await crashPoint('offsite-packs-stored');

  // The files map, sorted, to a file (this stream's next cache), and every pack the generation needs.
  const packs = new Set<string>();
  const writer = await FilesMapWriter.create(g.cache);
  let files: { sha256: string; size: number; path: string };
  try {
    for await (const line of sorter.sorted()) {
      const [sha, ...ids] = line.split(' ') as [string, ...string[]];
      for (const id of ids) {
        const p = g.index.packOf(id);
        if (p === undefined)
          throw new JobError(
            `blob ${id} of ${g.id} is in no stored pack (internal error); nothing was committed`,
            {
              step: STEP,
            },
          );
        packs.add(p);
      }
      await writer.add(sha, ids);
    }
    files = await writer.close();
  } catch (e) {
    await writer.abort();
    throw e;
  }

  // The generation's own objects, sealed like blobs (one sealer for the four). Small ones are
  // compressed or stored as deltas in memory (gen-objects.ts); larger ones (a manifest of many files)
  // stream from their file, whole and plain, so memory does not grow with the number of files.
  const sealer = await g.repo.newSealer();
  const putOpts = retainUntil ? { retainUntil } : {};
  const paths: Record<GenObject, string> = {
    manifest: join(g.dir, 'manifest'),
    SHA256SUMS: join(g.dir, 'SHA256SUMS'),
    'meta.json': join(g.dir, 'meta.json'),
    files: files.path,
  };
  const refs = {} as Record<GenObject, ObjectRef>;
  const small: Partial<Record<GenObject, Uint8Array>> = {};
  for (const name of GEN_OBJECTS) {
    if ((await stat(paths[name])).size <= IN_MEMORY_GEN_OBJECT) {
      small[name] = await readFile(paths[name]);
      continue;
    }
    const put = await putGenObject(g, name, paths[name], sealer, putOpts);
    refs[name] = put.ref;
    summary.bytesUploaded += put.sent;
  }
  const encoded = await encodeGenObjects({
    state: g.state,
    source: g.source,
    stream: g.stream,
    id: g.id,
    plain: small,
    isCommitted: g.isCommitted,
  });
  for (const name of GEN_OBJECTS) {
    const body = encoded.bodies[name];
    const ref = encoded.refs[name];
    if (body === undefined || ref === undefined) continue;
    const sealed = sealer ? sealer.seal(body) : body;
    await g.limiter.take(sealed.length);
    await g.store.put(genKey(g.source, g.stream, g.id, name), sealed, putOpts);
    refs[name] = ref;
    summary.bytesUploaded += sealed.length;
  }
  if (refs.files.sha256 !== files.sha256 || refs.files.size !== files.size)
    throw new JobError(`${files.path} changed while it was uploaded; nothing was committed`, { step: STEP });

  // Every pack the generation needs, with its retention extended to the commit's.
  if (retainUntil) {
    for (const p of packs) {
      const known = g.index.packs.get(p)?.retainUntil ?? 0;
      if (known >= retainUntil.getTime()) continue;
      await g.store.extendRetention(packKey(p), retainUntil);
      await g.store.extendRetention(indexKey(p), retainUntil);
      await g.index.noteRetention(p, retainUntil.getTime());
    }
  }
  await crashPoint('offsite-before-commit');
  const commit: Commit = {
    version: 2,
    source: g.source,
    stream: g.stream,
    id: g.id,
    created: g.now().toISOString(),
    objects: refs,
    packs: [...packs].sort(),
  };
  const commitPlain = Buffer.from(formatCommit(commit));
  // sealed like an index: the sink reads commits (prune, verify) without an identity; they hold no content
  const commitBody = await g.repo.sealIndex(commitPlain);
  try {
    await g.store.put(commitKey(g.source, g.stream, g.id), commitBody, { ...putOpts, ifNoneMatch: true });
    summary.bytesUploaded += commitBody.length;
    await encoded.committed();
  } catch (e) {
    if (!(e instanceof ObjectExistsError)) throw e;
    summary.committed = false;
    g.log.warn(
      { step: STEP, id: g.id },
      `${g.source}/${g.stream}/${g.id} was committed by another push meanwhile`,
    );
  }
  // this generation's map becomes the stream's cache: the next push reuses what it names
  g.prevFiles?.close();
  g.prevFiles = undefined;
  await FilesMapWriter.commit(g.cache);
  g.log.info(
    { step: STEP, ...summary, packs: packer.packs },
    `committed ${g.source}/${g.stream}/${g.id}: ${summary.files} files (${summary.filesReused} already offsite), ${summary.blobsNew} new blobs, ${summary.bytesUploaded} bytes sent`,
  );
  return summary;
}

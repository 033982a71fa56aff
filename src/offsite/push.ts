import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OffsiteConfig, SinkConfig, StreamName } from '../config/schema.js';
import { STREAMS } from '../config/schema.js';
import { ConfigError, JobError } from '../errors.js';
import { acquireLock } from '../adapters/lock.js';
import { listGenerations } from '../generation/list.js';
import { readManifest } from '../generation/manifest-file.js';
import { crashPoint } from '../adapters/crash-point.js';
import { mkdirp, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { listBadMarks } from '../sink/bad-marks.js';
import { sinkPaths } from '../sink/state.js';
import { findChunkEnd, type ChunkerParams } from './chunker.js';
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
  formatFilesMap,
  formatPackIndex,
  MAX_PACK_BLOBS,
  parseFilesMap,
  type Codec,
  type Commit,
  type PackIndex,
} from '../core/offsite-records.js';
import { openRepoForPush, type Repo } from './repo.js';
import { compress } from './codec.js';
import { configuredRecipients } from './recipients.js';
import { openOffsiteStore } from './open-store.js';
import { recordPushState } from './push-state.js';
import { encodeGenObjects } from './gen-objects.js';

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
      let prevFiles = await loadFilesCache(state, source, stream);
      for (const g of gens) {
        if (committed.has(g.id)) {
          result.alreadyOffsite++;
          continue;
        }
        const pushed = await pushGeneration({
          store,
          repo,
          index,
          cfg,
          source,
          stream,
          id: g.id,
          dir: g.dir,
          prevFiles,
          now: opts.now,
          log: opts.log,
          limiter,
          state,
          isCommitted: (id) => committed.has(id),
        });
        if (pushed.summary.committed) committed.add(g.id);
        result.pushed.push(pushed.summary);
        result.bytesUploaded += pushed.summary.bytesUploaded;
        prevFiles = pushed.files;
        await saveFilesCache(state, source, stream, pushed.files);
      }
      await recordPushState(config, source, stream, {
        newest: newestOf(committed, result.pushed, source, stream),
        at: opts.now(),
      });
    }
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
 * bucket's files-object format. Only a hint (a blob it names is reused only when the local index
 * has it): an unreadable cache is an empty one.
 */
async function loadFilesCache(
  state: string,
  source: string,
  stream: StreamName,
): Promise<Map<string, string[]>> {
  const text = await readFile(filesCache(state, source, stream), 'utf8').catch(() => undefined);
  if (text === undefined) return new Map();
  try {
    return parseFilesMap(text);
  } catch {
    return new Map();
  }
}

async function saveFilesCache(
  state: string,
  source: string,
  stream: StreamName,
  files: Map<string, string[]>,
) {
  await mkdirp(join(state, 'files'), 0o700);
  await writeFileAtomic(filesCache(state, source, stream), formatFilesMap(files), 0o600);
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
  prevFiles: Map<string, string[]>;
  now: () => Date;
  log: Logger;
  limiter: Bandwidth;
  /** the sink state dir of the repository */
  state: string;
  /** whether a generation of this stream is committed in the bucket (a delta base must be) */
  isCommitted: (id: string) => boolean;
}

/**
 * Packs new blobs into packs of about `packSize` and uploads each pack, then its index, with at most
 * `parallel` uploads in flight. A pack is recorded in the local index only once both are stored.
 */
interface PackedBlob {
  id: string;
  sealed: Uint8Array;
  plainLength: number;
  codec: Codec | undefined;
}

class Packer {
  private blobs: PackedBlob[] = [];
  private size = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | undefined;
  bytesUploaded = 0;
  packs = 0;

  constructor(
    private readonly g: GenPush,
    private readonly retainUntil: Date | undefined,
  ) {}

  private sealer: BlobSealer | undefined;
  private sealerReady = false;

  async add(id: string, plain: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (!this.sealerReady) {
      this.sealer = await this.g.repo.newSealer();
      this.sealerReady = true;
    }
    const enc = await compress(plain);
    const sealed = this.sealer ? this.sealer.seal(enc.bytes) : enc.bytes;
    this.blobs.push({ id, sealed, plainLength: plain.length, codec: enc.codec });
    this.size += sealed.length;
    // the blob count too: an index the readers refuse (MAX_PACK_BLOBS) would make its pack unreadable
    if (this.size >= this.g.cfg.packSize || this.blobs.length >= MAX_PACK_BLOBS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.blobs.length === 0) return;
    const blobs = this.blobs;
    this.blobs = [];
    this.size = 0;
    this.sealerReady = false;
    const upload = this.upload(blobs).catch((e: unknown) => {
      this.failure ??= e instanceof Error ? e : new Error(String(e));
    });
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

  private async upload(blobs: PackedBlob[]): Promise<void> {
    const pack = Buffer.concat(blobs.map((b) => b.sealed));
    const packId = sha256Hex(pack);
    let offset = 0;
    const entries = blobs.map((b) => {
      const e = { id: b.id, offset, length: b.sealed.length, plainLength: b.plainLength };
      offset += b.sealed.length;
      return b.codec === undefined ? e : { ...e, codec: b.codec };
    });
    const opts = this.retainUntil ? { retainUntil: this.retainUntil } : {};
    await this.g.limiter.take(pack.length);
    await this.g.store.put(packKey(packId), pack, opts);
    this.bytesUploaded += pack.length;
    await crashPoint('offsite-pack-stored');
    const index: PackIndex = {
      version: entries.some((e) => 'codec' in e) ? 2 : 1,
      pack: packId,
      size: pack.length,
      encrypted: this.g.repo.encrypted,
      blobs: entries,
    };
    const idx = await this.g.repo.sealIndex(Buffer.from(formatPackIndex(index)));
    await this.g.limiter.take(idx.length);
    await this.g.store.put(indexKey(packId), idx, opts);
    this.bytesUploaded += idx.length;
    await this.g.index.record(
      packId,
      this.retainUntil?.getTime() ?? 0,
      entries.map((e) => e.id),
    );
    this.packs++;
    await crashPoint('offsite-pack-indexed');
  }
}

/** Reads a file of the tree (never following a symlink), chunking it and hashing it whole. */
async function* chunkTreeFile(
  path: Buffer,
  p: ChunkerParams,
  whole: ReturnType<typeof createHash>,
): AsyncGenerator<Uint8Array> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw new JobError(`${path.toString()}: not a regular file in the sink store`, { step: STEP });
    // A buffer of the file's size (+1 to see EOF), at most maxSize: the chunker sees the same bytes
    // (all that is left, or maxSize), and a small file does not cost a maxSize allocation (GC).
    const cap = Math.min(p.maxSize, st.size + 1);
    const buf = Buffer.allocUnsafe(cap);
    let filled = 0;
    let eof = false;
    for (;;) {
      while (!eof && filled < cap) {
        const { bytesRead } = await fh.read(buf, filled, cap - filled, null);
        if (bytesRead === 0) eof = true;
        else {
          whole.update(buf.subarray(filled, filled + bytesRead));
          filled += bytesRead;
        }
      }
      if (filled === 0) return;
      const len = findChunkEnd(buf, 0, filled, p);
      const chunk = new Uint8Array(len);
      chunk.set(buf.subarray(0, len));
      buf.copyWithin(0, len, filled);
      filled -= len;
      yield chunk;
    }
  } finally {
    await fh.close();
  }
}

const show = (p: Buffer) => JSON.stringify(p.toString('utf8'));

async function pushGeneration(
  g: GenPush,
): Promise<{ summary: PushedGeneration; files: Map<string, string[]> }> {
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
  const files = new Map<string, string[]>();
  const pending = new Set<string>();
  const packer = new Packer(g, retainUntil);
  const tree = Buffer.from(`${g.dir}/tree/`);
  const have = (id: string) => g.index.blobs.has(id) || pending.has(id);
  try {
    for await (const e of readManifest(join(g.dir, 'manifest'))) {
      if (e.type !== 'f' || e.sha256 === undefined) continue;
      summary.files++;
      if (files.has(e.sha256)) continue;
      // Content already offsite (the previous push held it: unchanged and hard-linked files): not read again.
      const known = g.prevFiles.get(e.sha256);
      if (known && known.every(have)) {
        files.set(e.sha256, known);
        summary.filesReused++;
        continue;
      }
      const ids: string[] = [];
      const whole = createHash('sha256');
      for await (const chunk of chunkTreeFile(Buffer.concat([tree, e.path]), g.repo.chunker, whole)) {
        const id = g.repo.blobId(sha256Hex(chunk));
        ids.push(id);
        if (have(id)) continue;
        pending.add(id);
        summary.blobsNew++;
        summary.bytesNew += chunk.length;
        await packer.add(id, chunk);
      }
      const got = whole.digest('hex');
      if (got !== e.sha256)
        throw new JobError(
          `${g.source}/${g.stream}/${g.id}: ${show(e.path)} in the sink store has sha256 ${got}, its manifest says ${e.sha256}: run \`baton verify --deep\` on it; nothing was committed`,
          { step: STEP },
        );
      files.set(e.sha256, ids);
    }
    await packer.drain();
  } catch (e) {
    await packer.drain().catch(() => undefined);
    throw e;
  }
  summary.bytesUploaded += packer.bytesUploaded;
  await crashPoint('offsite-packs-stored');

  // The generation's own objects, compressed or as deltas (gen-objects.ts), sealed like blobs (one sealer for the four).
  const plain: Record<GenObject, Uint8Array> = {
    manifest: await readFile(join(g.dir, 'manifest')),
    SHA256SUMS: await readFile(join(g.dir, 'SHA256SUMS')),
    'meta.json': await readFile(join(g.dir, 'meta.json')),
    files: Buffer.from(formatFilesMap(files)),
  };
  const encoded = await encodeGenObjects({
    state: g.state,
    source: g.source,
    stream: g.stream,
    id: g.id,
    plain,
    isCommitted: g.isCommitted,
  });
  const sealer = await g.repo.newSealer();
  const putOpts = retainUntil ? { retainUntil } : {};
  for (const name of GEN_OBJECTS) {
    const body = sealer ? sealer.seal(encoded.bodies[name]) : encoded.bodies[name];
    await g.limiter.take(body.length);
    await g.store.put(genKey(g.source, g.stream, g.id, name), body, putOpts);
    summary.bytesUploaded += body.length;
  }

  // Every pack the generation needs, with its retention extended to the commit's.
  const packs = new Set<string>();
  for (const ids of files.values())
    for (const id of ids) {
      const p = g.index.blobs.get(id);
      if (p === undefined)
        throw new JobError(
          `blob ${id} of ${g.id} is in no stored pack (internal error); nothing was committed`,
          {
            step: STEP,
          },
        );
      packs.add(p);
    }
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
    objects: encoded.refs,
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
  g.log.info(
    { step: STEP, ...summary, packs: packer.packs },
    `committed ${g.source}/${g.stream}/${g.id}: ${summary.files} files (${summary.filesReused} already offsite), ${summary.blobsNew} new blobs, ${summary.bytesUploaded} bytes sent`,
  );
  return { summary, files };
}

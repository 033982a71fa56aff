import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StreamName } from '../config/schema.js';
import { DamagedObjectError, OffsiteError, ObjectMissingError, type ObjectStore } from './object-store.js';
import {
  commitKey,
  commitPrefix,
  genKey,
  GEN_OBJECTS,
  indexKey,
  parseCommitKey,
  type GenObject,
} from './layout.js';
import {
  agePayloadOverhead,
  COMMIT_MAX_BYTES,
  MAX_AGE_HEADER_BYTES,
  PACK_INDEX_MAX_BYTES,
  parseCommit,
  parsePackIndex,
  RecordError,
  CODECS,
  type Codec,
  type Commit,
} from '../core/offsite-records.js';
import { decompress } from './codec.js';
import { applyDelta } from '../core/offsite-delta.js';
import { sha256Hex } from './crypto.js';
import { FileSink, hexKey, LineSorter, SortedTable, TableWriter } from './sorted-table.js';
import type { Repo } from './repo.js';

/**
 * Bounds on what is read from the bucket (a hostile bucket must not make us allocate without limit):
 * a record's own plaintext bound plus what age adds when the repository is encrypted.
 */
export function sealedBound(repo: Repo, plainBytes: number): number {
  return repo.encrypted ? plainBytes + agePayloadOverhead(plainBytes) + MAX_AGE_HEADER_BYTES : plainBytes;
}
/** A generation object is read whole into one buffer: node's buffer ceiling bounds it too. */
const MAX_GEN_OBJECT_READ = 2 * 1024 * 1024 * 1024 - 1;

export { DamagedObjectError };

/** Parses a record, turning the parser's one-line refusal into a DamagedObjectError (exit 1). */
export function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof RecordError) throw new DamagedObjectError(e.message);
    throw e;
  }
}

export interface CommitRef {
  source: string;
  stream: StreamName;
  id: string;
  key: string;
  lastModified: Date;
}

/** Commit keys in the bucket (all, or of one source / stream), oldest id first. */
export async function listCommits(
  store: ObjectStore,
  source?: string,
  stream?: StreamName,
): Promise<CommitRef[]> {
  const out: CommitRef[] = [];
  for await (const o of store.list(commitPrefix(source, stream))) {
    const c = parseCommitKey(o.key);
    if (c) out.push({ ...c, key: o.key, lastModified: o.lastModified });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Reads an object, naming it when it is missing. */
export async function getObject(store: ObjectStore, key: string, maxBytes: number): Promise<Uint8Array> {
  try {
    return await store.get(key, { maxBytes });
  } catch (e) {
    if (e instanceof ObjectMissingError) throw new OffsiteError(`${key}: missing from the bucket`);
    throw e;
  }
}

/** A commit, opened and checked against its key. */
export async function readCommit(
  store: ObjectStore,
  repo: Repo,
  ref: { source: string; stream: StreamName; id: string },
): Promise<Commit> {
  const key = commitKey(ref.source, ref.stream, ref.id);
  const sealed = await getObject(store, key, sealedBound(repo, COMMIT_MAX_BYTES));
  const plain = await repo.openIndex(sealed, key);
  return parsed(() => parseCommit(plain, ref));
}

/** One generation object, opened, its sha256 checked against the commit. */
export async function readGenObject(
  store: ObjectStore,
  repo: Repo,
  c: Commit,
  name: GenObject,
): Promise<Uint8Array> {
  const key = genKey(c.source, c.stream, c.id, name);
  const want = c.objects[name];
  let plain: Uint8Array;
  if (want.delta === undefined) plain = await readStored(store, repo, key, want.size, want.codec);
  else {
    const baseKey = genKey(c.source, c.stream, want.delta.base, name);
    const base = await readStored(store, repo, baseKey, want.delta.size, want.delta.codec);
    const baseSha = sha256Hex(base);
    if (baseSha !== want.delta.sha256)
      throw new OffsiteError(
        `${baseKey}: changed since ${key} was stored against it (sha256 ${baseSha}; expected ${want.delta.sha256})`,
      );
    const delta = await readStored(store, repo, key, deltaBound(want.size), want.codec);
    const text = parsed(() =>
      applyDelta(Buffer.from(base).toString('latin1'), Buffer.from(delta).toString('latin1'), want.size, key),
    );
    plain = Buffer.from(text, 'latin1');
  }
  const got = sha256Hex(plain);
  if (got !== want.sha256 || plain.length !== want.size)
    throw new OffsiteError(
      `${key}: changed since its commit (sha256 ${got}, ${plain.length} bytes; the commit says ${want.sha256}, ${want.size} bytes)`,
    );
  return plain;
}

/** A delta of a `size`-byte object is at most this long (push stores a smaller one, else the whole object). */
const deltaBound = (size: number) => Math.min(2 * size + 64 * 1024, MAX_GEN_OBJECT_READ);

/** The plaintext of a stored object: opened, then inflated to at most `size` bytes. */
async function readStored(
  store: ObjectStore,
  repo: Repo,
  key: string,
  size: number,
  codec: Codec | undefined,
): Promise<Uint8Array> {
  const max = Math.min(sealedBound(repo, size), MAX_GEN_OBJECT_READ);
  return decompress(await repo.open(await getObject(store, key, max), key), codec, size, key);
}

export interface BlobLocation {
  pack: string;
  offset: number;
  length: number;
  plainLength: number;
  codec?: Codec | undefined;
}

/** The index object of a pack, opened and checked against its pack id and the repository. */
export async function readPackIndexObject(store: ObjectStore, repo: Repo, packId: string) {
  const key = indexKey(packId);
  const sealed = await getObject(store, key, sealedBound(repo, PACK_INDEX_MAX_BYTES));
  const plain = await repo.openIndex(sealed, key).catch((e: unknown) => {
    throw e instanceof OffsiteError ? new DamagedObjectError(e.message) : e;
  });
  return parsed(() => parsePackIndex(plain, { packId, encrypted: repo.encrypted }));
}

export { GEN_OBJECTS };

/** Bytes of an object fetched by one ranged GET when a generation object is downloaded to a file. */
const DOWNLOAD_WINDOW = 2 * 1024 * 1024;

/**
 * Downloads one generation object to the file `dest` in ranged windows, opened as a stream (bounded
 * memory whatever its size), and checks its sha256 and size against the commit; a mismatch throws
 * (the caller must not use `dest` then).
 */
export async function downloadGenObject(
  store: ObjectStore,
  repo: Repo,
  c: Commit,
  name: GenObject,
  dest: string,
): Promise<void> {
  const key = genKey(c.source, c.stream, c.id, name);
  const want = c.objects[name];
  if (want.codec !== undefined || want.delta !== undefined) {
    // compressed or a delta: a push stores only small objects so (gen-objects.ts), read in memory
    await writeFile(dest, await readGenObject(store, repo, c, name), { mode: 0o600 });
    return;
  }
  const info = await store.head(key);
  if (!info) throw new OffsiteError(`${key}: missing from the bucket`);
  const max = sealedBound(repo, want.size);
  if (info.size > max)
    throw new DamagedObjectError(`${key}: ${info.size} bytes, more than its commit allows (${max})`);
  const total = info.size;
  async function* sealed(): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < total; at += DOWNLOAD_WINDOW) {
      const end = Math.min(total, at + DOWNLOAD_WINDOW) - 1;
      const got = await store.get(key, { range: { start: at, end }, maxBytes: end - at + 1 });
      if (got.length !== end - at + 1) throw new OffsiteError(`${key}: short read at ${at}`);
      yield got;
    }
  }
  const hash = createHash('sha256');
  let size = 0;
  const sink = await FileSink.create(dest, 0o600);
  try {
    for await (const piece of repo.openStream(sealed(), key)) {
      size += piece.length;
      if (size > want.size)
        throw new OffsiteError(`${key}: longer than its commit says (${want.size} bytes)`);
      hash.update(piece);
      await sink.write(piece);
    }
    await sink.close();
  } catch (e) {
    await sink.abort();
    await rm(dest, { force: true });
    throw e;
  }
  const got = hash.digest('hex');
  if (got !== want.sha256 || size !== want.size) {
    await rm(dest, { force: true });
    throw new OffsiteError(
      `${key}: changed since its commit (sha256 ${got}, ${size} bytes; the commit says ${want.sha256}, ${want.size} bytes)`,
    );
  }
}

/** blob location record: id (32), pack ordinal (4), offset (8), length (4), plainLength (4), codec (1) */
const LOC_RECORD = 53;

/**
 * Where every blob of a commit's packs lies, as a sorted table on disk (built from their index objects
 * through an external sort), not a Map: a restore of a million files looks each blob up with one pread.
 * The first pack listing an id wins. Also knows where each pack's last blob ends.
 */
export class BlobLocations {
  /** each pack's blob ends, sorted (FileFetcher ends its windows there) */
  readonly packEnds: Map<string, number[]>;
  private constructor(
    private readonly table: SortedTable,
    private readonly packs: readonly string[],
    packEnds: Map<string, number[]>,
  ) {
    this.packEnds = packEnds;
  }

  static async build(
    store: ObjectStore,
    repo: Repo,
    packs: readonly string[],
    tmpDir: string,
  ): Promise<BlobLocations> {
    const sorter = new LineSorter({ tmpDir });
    const ends = new Map<string, number[]>();
    const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
    try {
      for (const [i, pack] of packs.entries()) {
        const idx = await readPackIndexObject(store, repo, pack);
        for (const b of idx.blobs) {
          const codec = b.codec === undefined ? 0 : CODECS.indexOf(b.codec) + 1;
          await sorter.add(
            `${b.id} ${hex(i, 8)} ${hex(b.offset, 12)} ${hex(b.length, 8)} ${hex(b.plainLength, 8)} ${hex(codec, 2)}`,
          );
          const e = ends.get(pack) ?? [];
          if (e.length === 0) ends.set(pack, e);
          e.push(b.offset + b.length);
        }
      }
    } catch (e) {
      await sorter.dispose();
      throw e;
    }
    for (const e of ends.values()) e.sort((a, b) => a - b);
    const path = join(tmpDir, 'blobs.tbl');
    const w = await TableWriter.create(path, LOC_RECORD, 32, 0n);
    try {
      const rec = Buffer.alloc(LOC_RECORD);
      let last = '';
      for await (const l of sorter.sorted()) {
        const id = l.slice(0, 64);
        if (id === last) continue;
        last = id;
        const [, ord, off, len, plain, codec] = l.split(' ') as [
          string,
          string,
          string,
          string,
          string,
          string,
        ];
        rec.write(id, 0, 32, 'hex');
        rec.writeUInt32BE(parseInt(ord, 16), 32);
        rec.writeBigUInt64BE(BigInt(parseInt(off, 16)), 36);
        rec.writeUInt32BE(parseInt(len, 16), 44);
        rec.writeUInt32BE(parseInt(plain, 16), 48);
        rec.writeUInt8(parseInt(codec, 16), 52);
        await w.add(rec);
      }
      await w.close();
    } catch (e) {
      await w.abort();
      throw e;
    }
    const table = SortedTable.open(path, LOC_RECORD, 32);
    if (!table) throw new Error(`${path}: unreadable right after it was written`);
    return new BlobLocations(table, packs, ends);
  }

  get(id: string): BlobLocation | undefined {
    const v = this.table.get(hexKey(id));
    if (v === undefined) return undefined;
    const pack = this.packs[v.readUInt32BE(0)];
    if (pack === undefined) return undefined;
    return {
      pack,
      offset: Number(v.readBigUInt64BE(4)),
      length: v.readUInt32BE(12),
      plainLength: v.readUInt32BE(16),
      codec: CODECS[v.readUInt8(20) - 1],
    };
  }

  close(): void {
    this.table.close();
  }
}

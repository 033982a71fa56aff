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
  parseFilesMap,
  parsePackIndex,
  RecordError,
  type Codec,
  type Commit,
} from '../core/offsite-records.js';
import { sha256Hex } from './crypto.js';
import { decompress } from './codec.js';
import { applyDelta } from '../core/offsite-delta.js';
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

/** A regular file's manifest sha256 → its blob ids in order (none for the empty file). */
export type FilesMap = Map<string, string[]>;

export async function readFilesMap(store: ObjectStore, repo: Repo, c: Commit): Promise<FilesMap> {
  const what = genKey(c.source, c.stream, c.id, 'files');
  const bytes = await readGenObject(store, repo, c, 'files');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new OffsiteError(`${what}: not UTF-8 text`);
  }
  return parsed(() => parseFilesMap(text, { what, maxBytes: MAX_GEN_OBJECT_READ }));
}

export interface BlobLocation {
  pack: string;
  offset: number;
  length: number;
  plainLength: number;
  codec?: Codec | undefined;
}

/** Where every blob of the commit's packs lies (from their index objects). */
export async function readBlobLocations(
  store: ObjectStore,
  repo: Repo,
  packs: readonly string[],
): Promise<Map<string, BlobLocation>> {
  const out = new Map<string, BlobLocation>();
  for (const pack of packs) {
    const idx = await readPackIndexObject(store, repo, pack);
    for (const b of idx.blobs)
      out.set(b.id, { pack, offset: b.offset, length: b.length, plainLength: b.plainLength, codec: b.codec });
  }
  return out;
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

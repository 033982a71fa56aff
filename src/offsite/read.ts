import type { StreamName } from '../config/schema.js';
import { OffsiteError, ObjectMissingError, type ObjectStore } from './object-store.js';
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
  commitSchema,
  filesMapSchema,
  packIndexSchema,
  parseRecord,
  type Commit,
  type FilesMap,
} from './records.js';
import { sha256Hex } from './crypto.js';
import type { Repo } from './repo.js';

/** Bounds on what is read from the bucket (a hostile bucket must not make us allocate without limit). */
export const MAX_COMMIT_BYTES = 64 * 1024 * 1024;
export const MAX_GEN_OBJECT_BYTES = 2 * 1024 * 1024 * 1024 - 1;
export const MAX_INDEX_OBJECT_BYTES = 64 * 1024 * 1024;

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
  const c = parseRecord(
    commitSchema,
    await repo.openIndex(await getObject(store, key, MAX_COMMIT_BYTES), key),
  );
  if (typeof c === 'string') throw new OffsiteError(`${key}: ${c}`);
  if (c.source !== ref.source || c.stream !== ref.stream || c.id !== ref.id)
    throw new OffsiteError(`${key}: claims ${c.source}/${c.stream}/${c.id}`);
  return c;
}

/** One generation object, opened, its sha256 checked against the commit. */
export async function readGenObject(
  store: ObjectStore,
  repo: Repo,
  c: Commit,
  name: GenObject,
): Promise<Uint8Array> {
  const key = genKey(c.source, c.stream, c.id, name);
  const plain = await repo.open(await getObject(store, key, MAX_GEN_OBJECT_BYTES), key);
  const got = sha256Hex(plain);
  if (got !== c.objects[name])
    throw new OffsiteError(
      `${key}: changed since its commit (sha256 ${got}, the commit says ${c.objects[name]})`,
    );
  return plain;
}

export async function readFilesMap(store: ObjectStore, repo: Repo, c: Commit): Promise<FilesMap> {
  const key = genKey(c.source, c.stream, c.id, 'files');
  const f = parseRecord(filesMapSchema, await readGenObject(store, repo, c, 'files'));
  if (typeof f === 'string') throw new OffsiteError(`${key}: ${f}`);
  return f;
}

export interface BlobLocation {
  pack: string;
  offset: number;
  length: number;
  plainLength: number;
}

/** Where every blob of the commit's packs lies (from their index objects). */
export async function readBlobLocations(
  store: ObjectStore,
  repo: Repo,
  packs: readonly string[],
): Promise<Map<string, BlobLocation>> {
  const out = new Map<string, BlobLocation>();
  for (const pack of packs) {
    const key = indexKey(pack);
    const idx = parseRecord(
      packIndexSchema,
      await repo.openIndex(await getObject(store, key, MAX_INDEX_OBJECT_BYTES), key),
    );
    if (typeof idx === 'string') throw new OffsiteError(`${key}: ${idx}`);
    for (const b of idx.blobs)
      out.set(b.id, { pack, offset: b.offset, length: b.length, plainLength: b.plainLength });
  }
  return out;
}

export { GEN_OBJECTS };

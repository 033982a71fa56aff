import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StreamName } from '../config/schema.js';
import { oneLine } from '../errors.js';
import { readManifest } from '../generation/manifest-file.js';
import { showPath } from '../core/restore-plan.js';
import { FilesMapReader } from '../core/offsite-records.js';
import { genKey, GEN_OBJECTS, INDEX_PREFIX, indexKey, PACK_PREFIX, packIdOfKey, packKey } from './layout.js';
import type { ObjectStore } from './object-store.js';
import { listCommits, readCommit, type CommitRef } from './read.js';
import { loadOffsiteGeneration, type OffsiteGeneration } from './restore.js';
import { readLines } from './sorted-table.js';
import { baseKeys } from './prune.js';
import type { Repo } from './repo.js';

export interface OffsiteCheck {
  source: string;
  stream: StreamName;
  id: string;
  ok: boolean;
  /** one line each, naming the object or file */
  problems: string[];
  files?: number;
  bytes?: number;
}

/**
 * `baton offsite verify`: for every commit, its generation objects and every pack and index it
 * references are present (and each index readable). With the identity (or a plain repository) the
 * files object is checked too: every blob of every file lies in one of the commit's packs. `deep`
 * downloads, decrypts and re-hashes every file against the manifest, and checks the generation
 * objects against the commit's sha256s.
 */
export async function verifyOffsite(opts: {
  store: ObjectStore;
  repo: Repo;
  source?: string | undefined;
  stream?: StreamName | undefined;
  deep: boolean;
  onResult?: (c: OffsiteCheck) => void;
}): Promise<OffsiteCheck[]> {
  const { store, repo } = opts;
  const present = new Set<string>();
  for await (const o of store.list(PACK_PREFIX)) present.add(o.key);
  for await (const o of store.list(INDEX_PREFIX)) present.add(o.key);
  const commits = await listCommits(store, opts.source, opts.stream);
  const out: OffsiteCheck[] = [];
  for (const ref of commits) {
    const check = await verifyOne(store, repo, ref, present, opts.deep);
    opts.onResult?.(check);
    out.push(check);
  }
  return out;
}

async function verifyOne(
  store: ObjectStore,
  repo: Repo,
  ref: CommitRef,
  present: Set<string>,
  deep: boolean,
): Promise<OffsiteCheck> {
  const check: OffsiteCheck = { source: ref.source, stream: ref.stream, id: ref.id, ok: false, problems: [] };
  const add = (p: string) => {
    if (check.problems.length < 50) check.problems.push(p);
  };
  try {
    const commit = await readCommit(store, repo, ref);
    for (const key of [
      ...GEN_OBJECTS.map((n) => genKey(ref.source, ref.stream, ref.id, n)),
      ...baseKeys(commit),
    ])
      if (!(await store.head(key))) add(`${key}: missing from the bucket`);
    for (const p of commit.packs) {
      if (!present.has(packKey(p))) add(`${packKey(p)}: missing from the bucket`);
      if (!present.has(indexKey(p))) add(`${indexKey(p)}: missing from the bucket`);
    }
    if (check.problems.length === 0 && repo.canOpen) {
      // the generation objects (each checked against the commit) and lookups, on disk
      const tmp = await mkdtemp(join(tmpdir(), 'baton-offsite-verify-'));
      try {
        const gen = await loadOffsiteGeneration(store, repo, commit, tmp);
        try {
          // parsed, not split: the header line, the order and every id checked as the restore reads them
          const reader = new FilesMapReader('files object');
          for await (const line of readLines(gen.paths.files, { encoding: 'latin1' })) {
            const e = reader.push(line);
            if (e === undefined) continue;
            for (const id of e.blobIds)
              if (gen.blobs.get(id) === undefined)
                add(`files object: blob ${id} of content ${e.sha256} is in none of the commit's packs`);
          }
          reader.end();
          if (deep && check.problems.length === 0) await deepCheck(gen, check, add);
        } finally {
          gen.close();
        }
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
  } catch (e) {
    add(oneLine(e).replace(/^offsite: /, ''));
  }
  check.ok = check.problems.length === 0;
  return check;
}

/** Downloads, opens and re-hashes every file of the manifest (a content once per nearby repeat). */
async function deepCheck(
  gen: OffsiteGeneration,
  check: OffsiteCheck,
  add: (p: string) => void,
): Promise<void> {
  {
    let files = 0;
    let bytes = 0;
    const seen = new Set<string>();
    for await (const e of readManifest(gen.paths.manifest)) {
      if (e.type !== 'f' || e.sha256 === undefined) continue;
      files++;
      bytes += e.size;
      if (seen.has(e.sha256)) continue;
      if (seen.size >= 4096) seen.clear();
      seen.add(e.sha256);
      try {
        const h = createHash('sha256');
        await gen.fetcher.fetch(e, (c) => {
          h.update(c);
          return Promise.resolve();
        });
      } catch (err) {
        add(`${showPath(e.path)}: ${oneLine(err).replace(/^offsite: /, '')}`);
      }
    }
    check.files = files;
    check.bytes = bytes;
  }
}

/** Orphans: packs or indexes without their partner (a killed push), for `verify` to mention. */
export function orphanKeys(keys: Iterable<string>): string[] {
  const packs = new Set<string>();
  const indexes = new Set<string>();
  for (const k of keys) {
    const p = packIdOfKey(k);
    if (p?.kind === 'pack') packs.add(p.id);
    if (p?.kind === 'index') indexes.add(p.id);
  }
  return [...packs].filter((p) => !indexes.has(p)).map(packKey);
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ManifestEntry } from '../../src/core/manifest.js';
import { sha256Hex } from '../../src/offsite/crypto.js';
import { packKey } from '../../src/offsite/layout.js';
import { MemoryStore } from '../../src/offsite/memory-store.js';
import type { GetOptions } from '../../src/offsite/object-store.js';
import type { BlobLocation } from '../../src/offsite/read.js';
import { openRepoForPush } from '../../src/offsite/repo.js';
import { FileFetcher, READ_WINDOW } from '../../src/offsite/restore.js';

/** A memory store that counts its GETs and the bytes they returned. */
class CountingStore extends MemoryStore {
  gets = 0;
  bytes = 0;
  override async get(key: string, opts?: GetOptions): Promise<Uint8Array> {
    const b = await super.get(key, opts);
    this.gets++;
    this.bytes += b.length;
    return b;
  }
}

/** A plain repository with packs of `sizes.length` one-blob files each, laid out as a push writes them. */
async function packedFiles(packs: number[][]) {
  const state = await mkdtemp(join(tmpdir(), 'baton-window-'));
  const store = new CountingStore();
  const repo = await openRepoForPush(store, { recipients: undefined, stateDir: state });
  const files = new Map<string, string[]>();
  const blobs = new Map<string, BlobLocation>();
  const entries: ManifestEntry[] = [];
  const packKeys: string[] = [];
  for (const sizes of packs) {
    const parts: Buffer[] = [];
    const locs: Array<[string, Omit<BlobLocation, 'pack'>]> = [];
    let offset = 0;
    for (const size of sizes) {
      const plain = randomBytes(size);
      const sha = sha256Hex(plain);
      const id = repo.blobId(sha);
      files.set(sha, [id]);
      locs.push([id, { offset, length: size, plainLength: size }]);
      parts.push(plain);
      offset += size;
      entries.push({
        type: 'f',
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: 'root',
        group: 'root',
        mtimeNs: 0n,
        size,
        sha256: sha,
        path: Buffer.from(`f${entries.length}`),
        target: undefined,
      });
    }
    const body = Buffer.concat(parts);
    const pack = sha256Hex(body);
    await store.put(packKey(pack), body);
    packKeys.push(packKey(pack));
    for (const [id, loc] of locs) blobs.set(id, { pack, ...loc });
  }
  store.gets = 0;
  store.bytes = 0;
  /** a new fetcher (windows are per fetcher, as per restore) and a reader of whole files through it */
  const reader = () => {
    const fetcher = new FileFetcher(store, repo, files, blobs);
    return async (e: ManifestEntry) => {
      const out: Uint8Array[] = [];
      await fetcher.fetch(e, (c) => {
        out.push(c);
        return Promise.resolve();
      });
      return Buffer.concat(out);
    };
  };
  return {
    store,
    entries,
    read: reader(),
    reader,
    packKeys,
    done: () => rm(state, { recursive: true, force: true }),
  };
}

test('offsite restore reads small files of a pack by windows, not one GET per file', async () => {
  // 300 files of 1–4 KiB in one pack, 200 in a second: one window each
  const sizes = (n: number) => Array.from({ length: n }, (_, i) => 1024 + ((i * 37) % 3072));
  const w = await packedFiles([sizes(300), sizes(200)]);
  try {
    // in manifest order, four at a time as the restore writes them
    for (let i = 0; i < w.entries.length; i += 4) {
      const batch = w.entries.slice(i, i + 4);
      const got = await Promise.all(batch.map(w.read));
      got.forEach((b, j) => assert.equal(sha256Hex(b), batch[j]?.sha256));
    }
    assert.equal(w.store.gets, 2, 'one ranged GET per pack');
  } finally {
    await w.done();
  }
});

test('offsite restore windows: never more than READ_WINDOW bytes a GET for small blobs; a tampered byte is named', async () => {
  // 3 × READ_WINDOW of 64 KiB blobs in one pack: the windows cover it with about 3 GETs
  const n = Math.ceil((3 * READ_WINDOW) / (64 * 1024));
  const w = await packedFiles([Array.from({ length: n }, () => 64 * 1024)]);
  try {
    for (const e of w.entries) assert.equal(sha256Hex(await w.read(e)), e.sha256);
    assert.ok(w.store.gets >= 3 && w.store.gets <= 4, `GETs: ${w.store.gets}`);
    assert.ok(w.store.bytes <= 3 * READ_WINDOW + 64 * 1024, `bytes read: ${w.store.bytes}`);
    // flip a byte of the last blob in the stored pack: a fresh fetcher reads it and names the pack
    const key = w.packKeys[0] ?? '';
    const body = Buffer.from(await w.store.get(key, { maxBytes: 64 * READ_WINDOW }));
    body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 1;
    await w.store.delete(key);
    await w.store.put(key, body);
    const last = w.entries.at(-1);
    assert.ok(last);
    await assert.rejects(
      w.reader()(last),
      (e: Error) => e.message.includes(key) && /tampered/.test(e.message),
    );
  } finally {
    await w.done();
  }
});

test('offsite restore: the chunks of a large file come by their own GETs and never evict or bloat the small files’ windows', async () => {
  // one pack laid out as a push writes it: 200 small files, a large file of 12 × 1 MiB chunks, 200 small files
  const state = await mkdtemp(join(tmpdir(), 'baton-window-'));
  const store = new CountingStore();
  try {
    const repo = await openRepoForPush(store, { recipients: undefined, stateDir: state });
    const files = new Map<string, string[]>();
    const blobs = new Map<string, BlobLocation>();
    const parts: Buffer[] = [];
    const locs: Array<[string, number, number]> = [];
    let offset = 0;
    const blob = (size: number) => {
      const plain = randomBytes(size);
      const id = repo.blobId(sha256Hex(plain));
      locs.push([id, offset, size]);
      parts.push(plain);
      offset += size;
      return { plain, id };
    };
    const entries: ManifestEntry[] = [];
    const file = (chunks: Array<{ plain: Buffer; id: string }>) => {
      const whole = Buffer.concat(chunks.map((c) => c.plain));
      const sha = sha256Hex(whole);
      files.set(
        sha,
        chunks.map((c) => c.id),
      );
      entries.push({
        type: 'f',
        mode: 0o644,
        uid: 0,
        gid: 0,
        user: 'root',
        group: 'root',
        mtimeNs: 0n,
        size: whole.length,
        sha256: sha,
        path: Buffer.from(`f${entries.length}`),
        target: undefined,
      });
    };
    for (let i = 0; i < 200; i++) file([blob(4096 + i)]);
    file(Array.from({ length: 12 }, () => blob(1024 * 1024)));
    for (let i = 0; i < 200; i++) file([blob(4096 + i)]);
    const body = Buffer.concat(parts);
    const pack = sha256Hex(body);
    await store.put(packKey(pack), body);
    for (const [id, off, length] of locs) blobs.set(id, { pack, offset: off, length, plainLength: length });
    store.gets = 0;
    store.bytes = 0;
    const fetcher = new FileFetcher(store, repo, files, blobs);
    // in manifest order, eight in flight as a restore writes them (the next starts when one is done)
    const inflight = new Set<Promise<void>>();
    for (const e of entries) {
      const t: Promise<void> = (async () => {
        const out: Uint8Array[] = [];
        await fetcher.fetch(e, (c) => {
          out.push(c);
          return new Promise((r) => setImmediate(r));
        });
        assert.equal(sha256Hex(Buffer.concat(out)), e.sha256);
      })().finally(() => inflight.delete(t));
      inflight.add(t);
      if (inflight.size >= 8) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    assert.ok(store.bytes <= body.length, `bytes read ${store.bytes} > pack ${body.length}`);
    assert.ok(store.gets <= 12, `GETs: ${store.gets}`);
  } finally {
    await rm(state, { recursive: true, force: true });
  }
});

/**
 * Pack writer and reader: blobs go into packs of about the target size, each once; every blob can be cut
 * out of its pack by its index entry alone (a ranged read) and is verified against its id; a hostile index
 * or a damaged slice is refused with one line.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { formatPackIndex, type PackIndex } from '../../src/core/offsite-records.js';
import { JobError } from '../../src/errors.js';
import { BlobOpener, BlobSealer, blobId, createMasterKey, deriveIdKey } from '../../src/offsite/crypto.js';
import { openPackedBlob, PackWriter, readPackIndex, slicePack } from '../../src/offsite/pack.js';

let dir = '';
let identity = '';
let recipient = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-pack-'));
  identity = await generateX25519Identity();
  recipient = await identityToRecipient(identity);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Flushed {
  packId: string;
  pack: Uint8Array;
  indexBytes: Uint8Array;
}

function setup(encrypted: boolean, targetSize: number, maxBlobs?: number) {
  const idKey = encrypted ? deriveIdKey(createMasterKey()) : undefined;
  const packs: Flushed[] = [];
  const writer = new PackWriter({
    targetSize,
    recipients: encrypted ? [recipient] : undefined,
    maxBlobs,
    onFlush: async (packId, pack, indexBytes) => {
      await Promise.resolve();
      packs.push({ packId, pack, indexBytes });
    },
  });
  const opener = encrypted ? new BlobOpener([identity]) : undefined;
  return { idKey, packs, writer, opener };
}

/** `n` pseudo-random bytes from `seed` (sha256 counter mode): cheap to generate at any size. */
function bytesOf(seed: number, n: number): Uint8Array {
  const out = Buffer.alloc(n);
  for (let off = 0, i = 0; off < n; off += 32, i++)
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

const blobs = fc.array(
  fc
    .oneof(
      fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 3000 })),
      fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 60_000, max: 140_000 })),
      fc.constant([0, 0] as [number, number]),
    )
    .map(([seed, n]) => bytesOf(seed, n)),
  { maxLength: 25 },
);

for (const encrypted of [false, true]) {
  test(`${encrypted ? 'encrypted' : 'plain'}: every distinct blob lands once, in packs near the target, and reads back verified`, async () => {
    await fc.assert(
      fc.asyncProperty(
        blobs,
        fc.integer({ min: 1000, max: 100_000 }),
        fc.integer({ min: 1, max: 6 }),
        async (list, target, maxBlobs) => {
          const { idKey, packs, writer, opener } = setup(encrypted, target, maxBlobs);
          const want = new Map<string, Uint8Array>();
          for (const plain of [...list, ...list.slice(0, 3)]) {
            const id = blobId(idKey, plain);
            const added = await writer.add(id, plain);
            assert.equal(added, !want.has(id));
            want.set(id, plain);
            assert.ok(writer.has(id));
          }
          await writer.flush();
          assert.equal(writer.pendingBytes, 0);
          const seen = new Map<string, Uint8Array>();
          for (const p of packs) {
            assert.equal(p.packId, createHash('sha256').update(p.pack).digest('hex'));
            const ix = await readPackIndex(
              p.indexBytes,
              { packId: p.packId, packSize: p.pack.length },
              opener,
            );
            assert.ok(ix.blobs.length >= 1 && ix.blobs.length <= maxBlobs);
            // over the target only when a single blob is larger than it
            assert.ok(
              p.pack.length <= target || ix.blobs.length === 1,
              `pack of ${p.pack.length} > ${target}`,
            );
            for (const e of ix.blobs) {
              assert.ok(!seen.has(e.id), 'a blob in two packs');
              const got = await openPackedBlob(slicePack(p.pack, e, 'b'), e, { opener, idKey }, 'b');
              seen.set(e.id, got.plain);
            }
          }
          assert.deepEqual([...seen.keys()].sort(), [...want.keys()].sort());
          for (const [id, plain] of want) assert.deepEqual(Buffer.from(seen.get(id)!), Buffer.from(plain));
          assert.equal(writer.stats.blobs, want.size);
          assert.equal(writer.stats.duplicates, list.length + Math.min(3, list.length) - want.size);
        },
      ),
      { numRuns: encrypted ? 8 : 40 },
    );
  });
}

test('a blob cut from an encrypted pack by a ranged read decrypts with Debian age alone', async () => {
  const { idKey, packs, writer } = setup(true, 1 << 20);
  const plains = [randomBytes(10), randomBytes(70_000), Buffer.from('marker-in-the-middle')];
  for (const p of plains) await writer.add(blobId(idKey, p), p);
  await writer.flush();
  assert.equal(packs.length, 1);
  const { pack, packId, indexBytes } = packs[0]!;
  assert.ok(!Buffer.from(pack).includes('marker-in-the-middle'));
  assert.ok(!Buffer.from(indexBytes).includes(blobId(idKey, plains[2]!)), 'the index is encrypted too');
  const ix = await readPackIndex(indexBytes, { packId, packSize: pack.length }, new BlobOpener([identity]));
  const idPath = join(dir, 'id');
  await writeFile(idPath, identity, { mode: 0o600 });
  const e = ix.blobs[2]!;
  const slicePath = join(dir, 'slice');
  await writeFile(slicePath, pack.subarray(e.offset, e.offset + e.length));
  assert.equal(execFileSync('age', ['-d', '-i', idPath, slicePath]).toString(), 'marker-in-the-middle');
});

test('a damaged slice, a swapped id or a wrong length is refused with one line naming the blob', async () => {
  for (const encrypted of [false, true]) {
    const { idKey, packs, writer, opener } = setup(encrypted, 1 << 20);
    const a = randomBytes(500);
    const b = randomBytes(700);
    await writer.add(blobId(idKey, a), a);
    await writer.add(blobId(idKey, b), b);
    await writer.flush();
    const { pack, packId, indexBytes } = packs[0]!;
    const ix = await readPackIndex(indexBytes, { packId, packSize: pack.length }, opener);
    const [ea, eb] = ix.blobs as [PackIndex['blobs'][0], PackIndex['blobs'][0]];
    const ctx = { opener, idKey };
    const damaged = Buffer.from(slicePack(pack, ea, 'x'));
    damaged[damaged.length - 20]! ^= 1;
    const oneLine = (re: RegExp) => (err: unknown) => {
      assert.ok(err instanceof JobError, String(err));
      assert.match(err.message, re);
      assert.ok(!err.message.includes('\n'));
      return true;
    };
    await assert.rejects(openPackedBlob(damaged, ea, ctx, 'blob A'), oneLine(/^blob A: /));
    // a hostile index that swaps ids between two blobs of the same size class
    await assert.rejects(
      openPackedBlob(slicePack(pack, ea, 'x'), { ...ea, id: eb.id }, ctx, 'blob A'),
      oneLine(/blob A: content does not match its id/),
    );
    await assert.rejects(
      openPackedBlob(slicePack(pack, ea, 'x').subarray(1), ea, ctx, 'blob A'),
      oneLine(/got \d+ bytes/),
    );
    await assert.rejects(
      openPackedBlob(slicePack(pack, ea, 'x'), { ...ea, plainLength: ea.plainLength + 1 }, ctx, 'blob A'),
      oneLine(/plaintext bytes, the index says/),
    );
    assert.throws(() => slicePack(pack.subarray(0, 10), eb, 'blob B'), oneLine(/outside the 10-byte pack/));
    await assert.rejects(
      readPackIndex(indexBytes, { packId, packSize: pack.length + 1 }, opener),
      oneLine(/the pack has/),
    );
  }
});

test('an encrypted hostile index is refused after decryption, before any blob is read', async () => {
  const sealer = await BlobSealer.create([recipient]);
  const bad: PackIndex = {
    version: 1,
    pack: 'a'.repeat(64),
    size: 1000,
    encrypted: true,
    blobs: [{ id: 'b'.repeat(64), offset: 900, length: 300, plainLength: 50 }],
  };
  const text = JSON.stringify(bad); // formatPackIndex itself refuses to write it
  assert.throws(() => formatPackIndex(bad), /outside/);
  await assert.rejects(
    readPackIndex(sealer.seal(Buffer.from(text)), { packId: bad.pack }, new BlobOpener([identity])),
    (err: unknown) => err instanceof JobError && /outside the 1000-byte pack/.test(err.message),
  );
});

test('a failed flush stops the writer: nothing is taken as stored that was not', async () => {
  let calls = 0;
  const writer = new PackWriter({
    targetSize: 100,
    recipients: undefined,
    onFlush: () => {
      calls++;
      return Promise.reject(new Error('upload failed'));
    },
  });
  const x = randomBytes(60);
  const y = randomBytes(60);
  await writer.add(blobId(undefined, x), x);
  await assert.rejects(writer.add(blobId(undefined, y), y), /upload failed/);
  await assert.rejects(writer.add(blobId(undefined, x), x), /an earlier pack failed/);
  await assert.rejects(writer.flush(), /an earlier pack failed/);
  assert.equal(calls, 1);
});

test('the writer holds one pack buffer: a 64 MiB stream through 4 MiB packs stays near one pack', async () => {
  const target = 4 << 20;
  let maxPending = 0;
  const { writer, idKey } = setup(false, target);
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < 64; i++) {
    chunk.writeUInt32LE(i, 0);
    await writer.add(blobId(idKey, chunk), chunk);
    maxPending = Math.max(maxPending, writer.pendingBytes);
  }
  await writer.flush();
  assert.ok(maxPending < target, `pending ${maxPending}`);
  assert.equal(writer.stats.packs, 16);
});

test('plain: an empty blob then one larger than the target go into two packs (an empty pack buffer is not "no pack")', async () => {
  const { writer, packs, idKey } = setup(false, 1000);
  const empty = new Uint8Array(0);
  const big = randomBytes(1020);
  await writer.add(blobId(idKey, empty), empty);
  await writer.add(blobId(idKey, big), big);
  await writer.flush();
  assert.deepEqual(
    packs.map((p) => p.pack.length),
    [0, 1020],
  );
});

test('indexRecipients: the index opens with the index identity, the blobs do not', async () => {
  const ixIdentity = await generateX25519Identity();
  const packs: Flushed[] = [];
  const writer = new PackWriter({
    targetSize: 1 << 20,
    recipients: [recipient],
    indexRecipients: [recipient, await identityToRecipient(ixIdentity)],
    onFlush: (packId, pack, indexBytes) => {
      packs.push({ packId, pack, indexBytes });
      return Promise.resolve();
    },
  });
  const idKey = deriveIdKey(createMasterKey());
  const plain = randomBytes(300);
  await writer.add(blobId(idKey, plain), plain);
  await writer.flush();
  const { packId, pack, indexBytes } = packs[0]!;
  const ixOpener = new BlobOpener([ixIdentity]);
  const ix = await readPackIndex(indexBytes, { packId, packSize: pack.length }, ixOpener);
  await readPackIndex(indexBytes, { packId, packSize: pack.length }, new BlobOpener([identity]));
  await assert.rejects(
    openPackedBlob(slicePack(pack, ix.blobs[0]!, 'b'), ix.blobs[0]!, { opener: ixOpener, idKey }, 'b'),
    /b: the identity is not one of the recipients/,
  );
});

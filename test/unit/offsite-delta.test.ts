/**
 * Compression and line deltas of the offsite format: a delta always rebuilds its target exactly;
 * hostile deltas, gzip bombs and records that mix version 1 with codecs or deltas are refused with
 * one line.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { applyDelta, DELTA_HEADER, makeDelta } from '../../src/core/offsite-delta.js';
import {
  formatCommit,
  MAX_ENCODED_GENERATION_OBJECT_BYTES,
  parseCommit,
  parsePackIndex,
  RecordError,
  type Commit,
} from '../../src/core/offsite-records.js';
import { compress, decompress } from '../../src/offsite/codec.js';
import { DamagedObjectError } from '../../src/offsite/object-store.js';

const line = fc.string({ maxLength: 12 }).map((s) => s.replaceAll('\n', ' '));

test('property: applyDelta(base, makeDelta(base, target)) is target, for any two texts', () => {
  fc.assert(
    fc.property(fc.array(line, { maxLength: 60 }), fc.array(line, { maxLength: 60 }), (b, t) => {
      const base = b.join('\n');
      const target = t.join('\n');
      const d = makeDelta(base, target, Infinity);
      assert.ok(d !== undefined);
      assert.equal(applyDelta(base, d, target.length, 'x'), target);
    }),
  );
});

test('property: a few edits of a sorted text give a delta of about their size', () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat({ max: 1999 }), { maxLength: 10 }),
      fc.array(fc.nat({ max: 1999 }), { maxLength: 10 }),
      (changed, dropped) => {
        const lines = Array.from(
          { length: 2000 },
          (_, i) => `${String(i).padStart(5, '0')} ${'x'.repeat(60)}`,
        );
        const base = `${lines.join('\n')}\n`;
        const next = lines
          .map((l, i) => (changed.includes(i) ? `${l.slice(0, 5)} changed` : l))
          .filter((_, i) => !dropped.includes(i));
        const target = `${next.join('\n')}\n`;
        const d = makeDelta(base, target);
        assert.ok(d !== undefined);
        assert.equal(applyDelta(base, d, target.length, 'x'), target);
        assert.ok(d.length <= 64 + 40 * (changed.length + dropped.length), `${d.length} bytes`);
      },
    ),
  );
});

test('makeDelta gives up when the texts share too little', () => {
  assert.equal(makeDelta('a\nb\nc', 'x\ny\nz'), undefined);
});

test('hostile deltas are refused with one RecordError line', () => {
  const refused = (delta: string, re: RegExp, max = 100) =>
    assert.throws(
      () => applyDelta('a\nb\nc', delta, max, 'gens/x/data/id/manifest'),
      (e: unknown) => e instanceof RecordError && re.test(e.message) && !e.message.includes('\n'),
    );
  refused('nope', /not a delta/);
  refused(`${DELTA_HEADER}\nc 4`, /past the base/);
  refused(`${DELTA_HEADER}\nc 2`, /leaves 1 base lines unused/);
  refused(`${DELTA_HEADER}\na 5\nx`, /fewer follow/);
  refused(`${DELTA_HEADER}\nc 0`, /expected/);
  refused(`${DELTA_HEADER}\nc 99999999999`, /expected/);
  refused(`${DELTA_HEADER}\nc 3`, /longer than 3/, 3);
  refused(`${DELTA_HEADER}\na 1\n${'y'.repeat(200)}\ns 3`, /longer than 100/);
});

test('compress: text is gzipped, random bytes and tiny blobs are kept as they are', async () => {
  const text = Buffer.from('abcdefgh 0123 the same line again\n'.repeat(500));
  const t = await compress(text);
  assert.equal(t.codec, 'gzip');
  assert.ok(t.bytes.length < text.length / 4);
  assert.deepEqual(await decompress(t.bytes, t.codec, text.length, 'x'), text);
  const rnd = randomBytes(64 * 1024);
  assert.equal((await compress(rnd)).codec, undefined);
  assert.equal((await compress(Buffer.from('tiny'))).codec, undefined);
});

test('decompress: a gzip bomb or garbage is one DamagedObjectError, never inflated past the bound', async () => {
  const bomb = gzipSync(Buffer.alloc(4 * 1024 * 1024));
  for (const [bytes, re] of [
    [bomb, /inflates to more than 1000 bytes/],
    [Buffer.from('not gzip at all'), /not valid gzip/],
  ] as const)
    await assert.rejects(
      decompress(bytes, 'gzip', 1000, 'packs/ab/abcd'),
      (e: unknown) => e instanceof DamagedObjectError && re.test(e.message),
    );
});

const hex = (c: string) => c.repeat(64);
const commit: Commit = {
  version: 2,
  source: 'app1',
  stream: 'data',
  id: '2026-12-07T150000Z',
  created: '2026-12-07T15:00:00.000Z',
  objects: {
    manifest: {
      sha256: hex('a'),
      size: 10,
      codec: 'gzip',
      delta: { base: '2026-12-06T150000Z', sha256: hex('b'), size: 9, codec: 'gzip' },
    },
    SHA256SUMS: { sha256: hex('c'), size: 1 },
    'meta.json': { sha256: hex('d'), size: 1 },
    files: { sha256: hex('e'), size: 1 },
  },
  packs: [],
};
const who = { source: 'app1', stream: 'data', id: commit.id } as const;

test('records: a version 2 commit with a delta parses back; version 1 with a codec or a delta, or a newer base, is refused', () => {
  assert.deepEqual(parseCommit(formatCommit(commit), who), commit);
  const bad = (c: unknown, re: RegExp) =>
    assert.throws(
      () => parseCommit(JSON.stringify(c), who),
      (e: unknown) => e instanceof RecordError && re.test(e.message),
    );
  bad({ ...commit, version: 1 }, /version 1 commit/);
  bad({ ...commit, version: 3 }, /version/);
  const m = commit.objects.manifest;
  bad(
    { ...commit, objects: { ...commit.objects, manifest: { ...m, delta: { ...m.delta, base: commit.id } } } },
    /older generation/,
  );
  bad({ ...commit, objects: { ...commit.objects, manifest: { ...m, codec: 'zstd' } } }, /codec/);
  // readers inflate these in memory: a hostile commit cannot ask for a 4 GiB gzip bomb or delta base
  const over = MAX_ENCODED_GENERATION_OBJECT_BYTES + 1;
  bad({ ...commit, objects: { ...commit.objects, manifest: { ...m, size: over } } }, /over \d+ bytes/);
  bad(
    { ...commit, objects: { ...commit.objects, manifest: { ...m, delta: { ...m.delta, size: over } } } },
    /over \d+ bytes/,
  );
  const plainBig = { sha256: hex('f'), size: over };
  assert.equal(
    parseCommit(formatCommit({ ...commit, objects: { ...commit.objects, files: plainBig } }), who).objects
      .files.size,
    over,
  );
});

test('records: a pack index entry with a codec needs version 2 and a length a gzip blob can have', () => {
  const ix = (version: number, length: number) =>
    JSON.stringify({
      version,
      pack: hex('f'),
      size: 1000,
      encrypted: false,
      blobs: [{ id: hex('1'), offset: 0, length, plainLength: 500, codec: 'gzip' }],
    });
  const expect = { packId: hex('f'), encrypted: false };
  assert.equal(parsePackIndex(ix(2, 100), expect).blobs[0]?.codec, 'gzip');
  assert.throws(() => parsePackIndex(ix(1, 100), expect), /codec in a version 1 index/);
  assert.throws(() => parsePackIndex(ix(2, 600), expect), /does not fit a gzip blob/);
  assert.throws(() => parsePackIndex(ix(2, 5), expect), /does not fit a gzip blob/);
});

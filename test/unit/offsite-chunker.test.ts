/**
 * FastCDC chunker: boundaries depend on content only (property tests over random data, edits and read
 * sizes), the size distribution stays inside the parameters, and a few rewritten bytes in the middle of a
 * 200 MiB file change only the chunks around them (measured on a real file).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkChunkerParams,
  chunkerParamsProblem,
  chunkFile,
  chunkLengths,
  DEFAULT_CHUNKER_PARAMS,
  MiB,
  type ChunkerParams,
} from '../../src/offsite/chunker.js';

/** Small parameters so that property runs see many chunks in a few KiB. */
const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

/** Deterministic pseudo-random bytes (sha256 in counter mode): the same on every host and run. */
function streamBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 32, i++) {
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  }
  return out;
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function offsets(lengths: number[]): number[] {
  const out: number[] = [];
  let o = 0;
  for (const l of lengths) {
    o += l;
    out.push(o);
  }
  return out;
}

/** Random data with repeats and runs mixed in (zero pages, repeated blocks), as real files have. */
const data = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.integer({ min: 1, max: 3000 }).map((n) => new Uint8Array(n)),
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.integer({ min: 2, max: 20 }))
        .map(([b, k]) => Buffer.concat(Array.from({ length: k }, () => b))),
    ),
    { maxLength: 12 },
  )
  .map((parts) => new Uint8Array(Buffer.concat(parts)));

test('chunks cover the input exactly, each within min..max (only the last may be shorter than min)', () => {
  fc.assert(
    fc.property(data, (d) => {
      const lens = chunkLengths(d, SMALL);
      assert.equal(
        lens.reduce((a, b) => a + b, 0),
        d.length,
      );
      lens.forEach((l, i) => {
        assert.ok(l <= SMALL.maxSize, `chunk ${i} of ${l} bytes > max`);
        assert.ok(l > 0);
        if (i < lens.length - 1) assert.ok(l > SMALL.minSize, `chunk ${i} of ${l} bytes <= min`);
      });
      if (d.length > 0 && d.length <= SMALL.minSize) assert.deepEqual(lens, [d.length]);
      if (d.length === 0) assert.deepEqual(lens, []);
    }),
    { numRuns: 300 },
  );
});

test('same bytes give the same chunks; a prefix of chunks is unaffected by what follows it', () => {
  fc.assert(
    fc.property(data, data, (a, b) => {
      assert.deepEqual(chunkLengths(a, SMALL), chunkLengths(new Uint8Array(a), SMALL));
      // Every chunk of `a` that ends at least maxSize before its end is a chunk of a+b too: a cut depends on
      // the bytes since the previous cut only, never on what comes later.
      const la = chunkLengths(a, SMALL);
      const lab = chunkLengths(Buffer.concat([a, b]), SMALL);
      const safe = offsets(la).filter((o) => o <= a.length - SMALL.maxSize);
      const ab = new Set(offsets(lab));
      for (const o of safe) assert.ok(ab.has(o), `cut at ${o} moved after appending`);
    }),
    { numRuns: 300 },
  );
});

test('an edit changes no chunk before it, and once a cut point is shared again all later chunks are equal', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 4000, max: 40000 }),
      fc.string({ minLength: 1, maxLength: 8 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.boolean(),
      (size, seed, where, patch, insert) => {
        const orig = streamBytes(seed, size);
        const at = Math.floor(where * (size - patch.length));
        const edited = insert
          ? Buffer.concat([orig.subarray(0, at), patch, orig.subarray(at)])
          : Buffer.concat([orig.subarray(0, at), patch, orig.subarray(at + patch.length)]);
        const shift = insert ? patch.length : 0;
        const lo = chunkLengths(orig, SMALL);
        const le = chunkLengths(edited, SMALL);
        const oo = offsets(lo);
        const oe = offsets(le);
        // chunks ending at or before the edit are identical
        const before = oo.filter((o) => o <= at);
        assert.deepEqual(oe.slice(0, before.length), before);
        // after the first shared cut behind the edit, the cut points are the old ones (shifted by the insert)
        const shiftedOld = oo.map((o) => (o > at ? o + shift : o));
        const editEnd = at + patch.length;
        const firstShared = oe.find((o) => o >= editEnd && shiftedOld.includes(o));
        if (firstShared !== undefined) {
          assert.deepEqual(
            oe.filter((o) => o >= firstShared),
            shiftedOld.filter((o) => o >= firstShared),
          );
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('streaming over a file gives the in-memory chunks whatever the read size', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-cdc-'));
  try {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(data, fc.integer({ min: 1, max: 5000 }), async (d, readSize) => {
        const path = join(dir, `f${n++}`);
        await writeFile(path, d);
        const got: { offset: number; len: number; sha: string }[] = [];
        const whole = createHash('sha256');
        for await (const c of chunkFile(path, SMALL, { readSize, onRead: (b) => whole.update(b) })) {
          got.push({ offset: c.offset, len: c.bytes.length, sha: sha(c.bytes) });
        }
        const want = chunkLengths(d, SMALL);
        assert.deepEqual(
          got.map((g) => g.len),
          want,
        );
        let o = 0;
        for (const [i, g] of got.entries()) {
          assert.equal(g.offset, o);
          assert.equal(g.sha, sha(d.subarray(o, o + want[i]!)));
          o += want[i]!;
        }
        assert.equal(whole.digest('hex'), sha(d));
      }),
      { numRuns: 100 },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the gear table and masks are part of the format: a fixed input gives fixed cut points', () => {
  const lens = chunkLengths(streamBytes('baton golden', 64 * 1024), SMALL);
  assert.equal(sha(Buffer.from(lens.join(','))), GOLDEN);
});
const GOLDEN = '9892a2713c710bceab3fdf68a648889e799fc69d9625715383e4c6c6a44b8b22';

test('default parameters: sizes spread around 1 MiB, none above 4 MiB, none below 256 KiB but the last', () => {
  const d = randomBytes(64 * MiB);
  const lens = chunkLengths(d, DEFAULT_CHUNKER_PARAMS);
  const mean = d.length / lens.length;
  assert.ok(mean > 0.75 * MiB && mean < 1.5 * MiB, `mean chunk ${mean}`);
  assert.ok(lens.every((l) => l <= DEFAULT_CHUNKER_PARAMS.maxSize));
  assert.ok(lens.slice(0, -1).every((l) => l > DEFAULT_CHUNKER_PARAMS.minSize));
});

test('bad parameters are refused with one line', () => {
  assert.equal(chunkerParamsProblem(DEFAULT_CHUNKER_PARAMS), undefined);
  assert.match(chunkerParamsProblem({ minSize: 64, avgSize: 300, maxSize: 1024 })!, /power of two/);
  assert.match(chunkerParamsProblem({ minSize: 512, avgSize: 256, maxSize: 1024 })!, /minSize < avgSize/);
  assert.match(chunkerParamsProblem({ minSize: 8, avgSize: 256, maxSize: 1024 })!, /below/);
  assert.match(chunkerParamsProblem({ minSize: 64, avgSize: 256, maxSize: 2 ** 40 })!, /above/);
  assert.match(chunkerParamsProblem({ minSize: 64.5, avgSize: 256, maxSize: 1024 })!, /integer/);
  assert.throws(() => checkChunkerParams({ minSize: 64, avgSize: 256, maxSize: 256 }), /minSize < avgSize/);
});

test('200 MiB file with three rewritten 4 KiB pages in the middle: only the chunks around them change', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-cdc-'));
  try {
    const size = 200 * MiB;
    const orig = randomBytes(size);
    const edited = Buffer.from(orig);
    const pages = [90 * MiB + 4096 * 3, 100 * MiB + 4096 * 7, 130 * MiB];
    for (const p of pages) randomBytes(4096).copy(edited, p);
    await writeFile(join(dir, 'a'), orig);
    await writeFile(join(dir, 'b'), edited);
    const collect = async (path: string) => {
      const out: { offset: number; len: number; sha: string }[] = [];
      for await (const c of chunkFile(path, DEFAULT_CHUNKER_PARAMS)) {
        out.push({ offset: c.offset, len: c.bytes.length, sha: sha(c.bytes) });
      }
      return out;
    };
    const t0 = performance.now();
    const a = await collect(join(dir, 'a'));
    const secs = (performance.now() - t0) / 1000;
    const b = await collect(join(dir, 'b'));
    const old = new Set(a.map((c) => c.sha));
    const fresh = b.filter((c) => !old.has(c.sha));
    const freshBytes = fresh.reduce((s, c) => s + c.len, 0);
    // each page touches its own chunk, and at most the next one when it straddles a cut's hash window
    assert.ok(fresh.length >= 1 && fresh.length <= 2 * pages.length, `${fresh.length} new chunks`);
    assert.ok(freshBytes <= 2 * pages.length * DEFAULT_CHUNKER_PARAMS.maxSize, `${freshBytes} new bytes`);
    for (const c of fresh) {
      assert.ok(
        pages.some((p) => c.offset < p + 4096 + DEFAULT_CHUNKER_PARAMS.maxSize && p < c.offset + c.len),
        `changed chunk at ${c.offset} is not near an edit`,
      );
    }
    console.log(
      `# 200 MiB: ${a.length} chunks, ${fresh.length} new after 3 page edits (${(freshBytes / MiB).toFixed(2)} MiB, ` +
        `${((100 * freshBytes) / size).toFixed(2)} %), chunkFile ${(size / MiB / secs).toFixed(0)} MiB/s incl. sha256`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

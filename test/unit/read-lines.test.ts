import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { readLines } from '../../src/adapters/fsx.js';

// readLines refills one buffer in place (issue 14: constant memory on a million-line manifest); lines
// that straddle its refills must come out whole, and its bounds must hold wherever they fall.

async function withFile<T>(content: Buffer, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-read-lines-'));
  try {
    const file = join(dir, 'f');
    await writeFile(file, content);
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function collect(file: string, max: number): Promise<string[]> {
  const out: string[] = [];
  for await (const l of readLines(file, max)) out.push(l);
  return out;
}

test('property: lines of any length up to the bound come back whole, across refills of the buffer', async () => {
  const max = 40_000;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 0, max: 255 }),
      async (lengths, fill) => {
        const byte = fill === 0x0a ? 0x41 : fill;
        const lines = lengths.map((n, i) =>
          Buffer.alloc(n, (byte + i) % 256 === 0x0a ? 0x42 : (byte + i) % 256),
        );
        const content = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));
        const got = await withFile(content, (f) => collect(f, max));
        assert.deepEqual(
          got,
          lines.map((l) => l.toString('latin1')),
        );
      },
    ),
    { numRuns: 40 },
  );
});

/** `n` bytes of short lines (each at most 100 bytes with its newline). */
function shortLines(n: number): Buffer {
  const b = Buffer.alloc(n, 0x61);
  for (let i = 99; i < n; i += 100) b[i] = 0x0a;
  if (n > 0) b[n - 1] = 0x0a;
  return b;
}

test('a line one byte over the bound is refused, wherever it starts', async () => {
  const max = 30_000;
  for (const before of [0, 1, 200_000, 262_143, 262_144, 300_000]) {
    const long = (n: number) => Buffer.concat([shortLines(before), Buffer.alloc(n, 0x62), Buffer.from('\n')]);
    await assert.rejects(
      withFile(long(max + 1), (f) => collect(f, max)),
      /line longer than 30000 bytes/,
      `line after ${before} bytes`,
    );
    const lines = await withFile(long(max), (f) => collect(f, max));
    assert.equal(lines.at(-1)?.length, max, `line after ${before} bytes`);
  }
});

test('a file that does not end with a newline is refused; an empty file has no lines', async () => {
  await assert.rejects(
    withFile(Buffer.from('a\nb'), (f) => collect(f, 100)),
    /does not end with a newline/,
  );
  assert.deepEqual(await withFile(Buffer.alloc(0), (f) => collect(f, 100)), []);
});

test('bytes above 0x7e come back one character each (latin1), never merged or replaced', async () => {
  const raw = Buffer.from([0xc3, 0xa9, 0xff, 0x80, 0x20, 0x25]);
  const [line] = await withFile(Buffer.concat([raw, Buffer.from('\n')]), (f) => collect(f, 100));
  assert.deepEqual(Buffer.from(line ?? '', 'latin1'), raw);
});

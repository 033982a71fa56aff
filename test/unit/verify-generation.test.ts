import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  formatManifestLine,
  formatSha256SumsLine,
  MANIFEST_HEADER,
  type ManifestEntry,
} from '../../src/core/manifest.js';
import { readGenerationMeta, verifyGeneration } from '../../src/generation/verify.js';
import { runProcess } from '../../src/adapters/run.js';

// Issue 10, hole 3: a generation is exactly tree/, manifest, meta.json and a SHA256SUMS that matches
// the manifest line by line; a symlink or FIFO from the source is never opened. Hole 8: no setuid,
// setgid or group/other-writable entry in a store's tree.

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

const CONTENTS: Record<string, string> = { 'd/a': 'alpha\n', 'd/b b': 'beta\n', e: 'eps\n', 'x\\y': 'bs\n' };

function entries(): ManifestEntry[] {
  const base = {
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtimeNs: 1_700_000_000_000_000_000n,
    target: undefined,
  };
  const file = (p: string): ManifestEntry => ({
    ...base,
    type: 'f',
    mode: 0o4755,
    size: Buffer.byteLength(CONTENTS[p] ?? ''),
    sha256: sha(CONTENTS[p] ?? ''),
    path: Buffer.from(p),
  });
  return [
    { ...base, type: 'd', mode: 0o2775, size: 4096, sha256: undefined, path: Buffer.from('d') },
    file('d/a'),
    file('d/b b'),
    file('e'),
    file('x\\y'),
  ];
}

/** A good generation as the sink keeps it: tree modes without setuid/setgid or write bits. */
async function makeGeneration(dir: string): Promise<ManifestEntry[]> {
  const es = entries();
  await mkdir(join(dir, 'tree', 'd'), { recursive: true });
  for (const [p, c] of Object.entries(CONTENTS)) {
    await writeFile(join(dir, 'tree', p), c);
    await chmod(join(dir, 'tree', p), 0o555);
  }
  await chmod(join(dir, 'tree', 'd'), 0o755);
  await writeFile(
    join(dir, 'meta.json'),
    JSON.stringify({
      id: '2026-01-01T000000Z',
      source: 's',
      stream: 'data',
      created: '2026-01-01T00:00:00.000Z',
      files: 4,
      entries: es.length,
      bytes: 0,
      bytesCopied: 0,
      batonVersion: 'test',
    }),
  );
  await writeFile(join(dir, 'manifest'), `${[MANIFEST_HEADER, ...es.map(formatManifestLine)].join('\n')}\n`);
  await writeFile(join(dir, 'SHA256SUMS'), sumsOf(es));
  return es;
}

const sumsOf = (es: readonly ManifestEntry[]) =>
  Buffer.concat(es.flatMap((e) => (e.sha256 ? [formatSha256SumsLine(e.sha256, e.path)] : [])));

async function withGeneration(fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-gen-'));
  try {
    const dir = join(root, 'gen');
    await mkdir(dir);
    await makeGeneration(dir);
    await fn(dir);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const kinds = async (dir: string, hashes = true) =>
  (await verifyGeneration({ dir, hashes })).problems.map((p) => `${p.kind} ${p.path}`);

test('a well-formed generation passes, shallow and deep', async () => {
  await withGeneration(async (dir) => {
    assert.deepEqual(await kinds(dir, false), []);
    assert.deepEqual(await kinds(dir, true), []);
  });
});

test('SHA256SUMS with a wrong hash is refused', async () => {
  await withGeneration(async (dir) => {
    const es = entries();
    const bad = es.map((e) => (e.path.toString() === 'e' ? { ...e, sha256: 'f'.repeat(64) } : e));
    await writeFile(join(dir, 'SHA256SUMS'), sumsOf(bad));
    const r = await verifyGeneration({ dir, hashes: false });
    assert.deepEqual(
      r.problems.map((p) => `${p.kind}: ${p.detail}`),
      ["sums: line 3 differs from the manifest's line for e"],
    );
  });
});

test('SHA256SUMS with a ../../etc/passwd line is refused (extra line, and in place of a line)', async () => {
  await withGeneration(async (dir) => {
    const passwd = `${sha('x')}  ../../etc/passwd\n`;
    await appendFile(join(dir, 'SHA256SUMS'), passwd);
    assert.deepEqual(await kinds(dir), ['sums SHA256SUMS']);
    await writeFile(join(dir, 'SHA256SUMS'), passwd);
    assert.deepEqual(await kinds(dir), ['sums SHA256SUMS']);
  });
});

test('SHA256SUMS missing, truncated, a symlink to /dev/zero or a FIFO: refused, never read through', async () => {
  await withGeneration(async (dir) => {
    const sums = join(dir, 'SHA256SUMS');
    await rm(sums);
    assert.deepEqual(await kinds(dir), ['sums SHA256SUMS']);
    await writeFile(sums, sumsOf(entries().slice(0, 3)));
    const r = await verifyGeneration({ dir, hashes: false });
    assert.match(r.problems[0]?.detail ?? '', /ends at line 3, the manifest has more files/);
    await rm(sums);
    await symlink('/dev/zero', sums);
    const z = await verifyGeneration({ dir, hashes: true });
    assert.deepEqual(
      z.problems.map((p) => `${p.kind}: ${p.detail}`),
      ['sums: not a regular file: a symlink (a symlink from a source is never followed)'],
    );
    await rm(sums);
    const mk = await runProcess(['mkfifo', sums]);
    assert.equal(mk.code, 0);
    assert.deepEqual(await kinds(dir), ['sums SHA256SUMS']);
  });
});

test('anything else at the top of a generation is refused: a file, a directory, a symlink', async () => {
  await withGeneration(async (dir) => {
    await writeFile(join(dir, 'extra.bin'), 'x');
    await mkdir(join(dir, 'more'));
    await symlink('/etc', join(dir, 'etc'));
    assert.deepEqual((await kinds(dir)).sort(), ['extra etc', 'extra extra.bin', 'extra more']);
  });
});

test('meta.json as a symlink to /dev/zero or larger than 1 MiB is refused without reading it', async () => {
  await withGeneration(async (dir) => {
    const meta = join(dir, 'meta.json');
    const good = await readGenerationMeta(dir);
    assert.equal(typeof good, 'object');
    await rm(meta);
    await symlink('/dev/zero', meta);
    assert.match(JSON.stringify(await readGenerationMeta(dir)), /symlink/);
    assert.deepEqual(await kinds(dir), ['meta meta.json']);
    await rm(meta);
    await writeFile(meta, `{"pad":"${'x'.repeat(1024 * 1024)}"}`);
    assert.match(JSON.stringify(await readGenerationMeta(dir)), /larger than/);
    await writeFile(meta, '{"id": 1}');
    assert.equal(await readGenerationMeta(dir), 'not a valid meta.json');
  });
});

test('a setuid, setgid or group/other-writable entry in tree/ is refused', async () => {
  await withGeneration(async (dir) => {
    await chmod(join(dir, 'tree', 'e'), 0o4555);
    await chmod(join(dir, 'tree', 'd'), 0o2755);
    await chmod(join(dir, 'tree', 'd/a'), 0o575);
    assert.deepEqual(await kinds(dir, false), ['mode d', 'mode d/a', 'mode e']);
  });
});

test('property: any change to SHA256SUMS (a byte flipped, a line dropped, added or moved) is refused', async () => {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-sums-'));
  try {
    const dir = join(root, 'gen');
    await mkdir(dir);
    const es = await makeGeneration(dir);
    const good = sumsOf(es);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
            const b = Buffer.from(good);
            b[i] = (b[i] ?? 0) ^ x;
            return b;
          }),
          fc.nat(good.length - 1).map((i) => Buffer.concat([good.subarray(0, i), good.subarray(i + 1)])),
          fc
            .tuple(fc.nat(good.length), fc.uint8Array({ minLength: 1, maxLength: 80 }))
            .map(([i, extra]) => Buffer.concat([good.subarray(0, i), Buffer.from(extra), good.subarray(i)])),
        ),
        async (sums) => {
          await writeFile(join(dir, 'SHA256SUMS'), sums);
          const r = await verifyGeneration({ dir, hashes: false });
          assert.deepEqual(
            r.problems.map((p) => p.kind),
            ['sums'],
          );
        },
      ),
      { numRuns: 200 },
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

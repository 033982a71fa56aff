import { test } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry } from '../../src/core/manifest.js';
import { verifyGeneration } from '../../src/generation/verify.js';
import { precheckManifest } from '../../src/sink/precheck.js';
import { dirEntry, fileEntry, sha, writeGenerationDir } from '../helpers/generation-builder.js';

// Two real generations on disk: `new` hard-links its unchanged files to `base`. Verification with
// the link base given as a map or as a manifest read alongside the walk must agree: linked files
// with the same hash are not re-read, everything else is hashed, a bad file is still caught.

const writeGeneration = (dir: string, id: string, entries: ManifestEntry[]) =>
  writeGenerationDir(dir, { id, entries });

/** `base` and `next` under a new temp dir: next links d/a, d/c and e to base, rewrites d/b, lists d/c with another hash. */
async function twoGenerations(): Promise<{ root: string; base: string; next: string }> {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-base-'));
  const base = join(root, 'base');
  const next = join(root, 'next');
  const contents: Record<string, string> = {
    'd/a': 'alpha\n',
    'd/b': 'beta\n',
    'd/c': 'gamma\n',
    e: 'eps\n',
  };
  const baseEntries = [
    dirEntry('d'),
    ...['d/a', 'd/b', 'd/c'].map((p) => fileEntry(p, contents[p]!)),
    fileEntry('e', 'eps\n'),
  ];
  await writeGeneration(base, '2026-01-01T000000Z', baseEntries);
  await mkdir(join(base, 'tree', 'd'));
  for (const [p, c] of Object.entries(contents)) await writeFile(join(base, 'tree', p), c);
  const nextEntries = [
    dirEntry('d'),
    fileEntry('d/a', 'alpha\n'),
    fileEntry('d/b', 'BETA!\n'),
    { ...fileEntry('d/c', 'gamma\n'), sha256: sha('something else') },
    fileEntry('e', 'eps\n'),
  ];
  await writeGeneration(next, '2026-01-02T000000Z', nextEntries);
  await mkdir(join(next, 'tree', 'd'));
  await link(join(base, 'tree', 'd/a'), join(next, 'tree', 'd/a'));
  await writeFile(join(next, 'tree', 'd/b'), 'BETA!\n');
  await link(join(base, 'tree', 'd/c'), join(next, 'tree', 'd/c'));
  await link(join(base, 'tree', 'e'), join(next, 'tree', 'e'));
  return { root, base, next };
}

test('a link base given as a manifest file is streamed and gives the same result as the map', async () => {
  const { root, base, next } = await twoGenerations();
  try {
    const tree = join(base, 'tree');
    const r = await verifyGeneration({
      dir: next,
      hashes: true,
      linkBase: { tree, manifest: join(base, 'manifest') },
    });
    assert.equal(r.ok, false, 'd/c does not match its listed hash');
    assert.deepEqual(
      r.problems.map((p) => `${p.kind} ${p.path}`),
      ['hash d/c'],
    );
    assert.equal(r.files, 4);
    assert.equal(r.reused, 2, 'd/a and e: same inode, same hash as the base');
    assert.equal(r.hashed, 2, 'd/b (new) and d/c (hash differs from the base) are read');

    const noBase = await verifyGeneration({ dir: next, hashes: true });
    assert.equal(noBase.reused, 0);
    assert.equal(noBase.hashed, 4);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("the precheck's pairing with the link base -> verify reuses the same files without reading the base's manifest again", async () => {
  const { root, base, next } = await twoGenerations();
  try {
    const pre = await precheckManifest(next, 100, join(base, 'manifest'));
    // ordinals count every entry: d (0), d/a (1), d/b (2), d/c (3), e (4)
    assert.deepEqual(
      [0, 1, 2, 3, 4].filter((i) => pre.sameAsBase.has(i)),
      [1, 4],
    );
    // the base's manifest is gone: a second read of it would find nothing to reuse
    await rm(join(base, 'manifest'));
    const r = await verifyGeneration({
      dir: next,
      hashes: true,
      linkBase: {
        tree: join(base, 'tree'),
        manifest: join(base, 'manifest'),
        sameHash: (i) => pre.sameAsBase.has(i),
      },
    });
    assert.deepEqual(
      r.problems.map((p) => `${p.kind} ${p.path}`),
      ['hash d/c'],
    );
    assert.equal(r.reused, 2, 'd/a and e: same inode, same hash as the base');
    assert.equal(r.hashed, 2);
    // a flag alone is never enough: a flagged file that is not the base's inode is read (and caught)
    await writeFile(join(next, 'tree', 'd/b'), 'WRONG!');
    const all = await verifyGeneration({
      dir: next,
      hashes: true,
      linkBase: { tree: join(base, 'tree'), manifest: join(base, 'manifest'), sameHash: () => true },
    });
    assert.ok(
      all.problems.some((p) => p.kind === 'hash' && p.path === 'd/b'),
      JSON.stringify(all.problems),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatManifestLine, MANIFEST_HEADER, type ManifestEntry } from '../../src/core/manifest.js';
import { ManifestCursor } from '../../src/generation/manifest-file.js';

const SHA = 'a'.repeat(64);

function entry(path: string, type: 'f' | 'd'): ManifestEntry {
  return {
    type,
    mode: type === 'd' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtimeNs: 1_700_000_000_000_000_000n,
    size: type === 'f' ? 3 : 4096,
    sha256: type === 'f' ? SHA : undefined,
    path: Buffer.from(path),
    target: undefined,
  };
}

async function withManifest(lines: string[], fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-cursor-'));
  try {
    const file = join(dir, 'manifest');
    await writeFile(file, `${[MANIFEST_HEADER, ...lines].join('\n')}\n`);
    await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// tree order: a directory's children come before its siblings with larger names ('a/x' < 'a-b')
const TREE = [entry('a', 'd'), entry('a/x', 'f'), entry('a/y', 'f'), entry('a-b', 'f'), entry('c', 'f')];

test('seeks in tree order find listed paths and skip unlisted ones without losing later entries', async () => {
  await withManifest(TREE.map(formatManifestLine), async (file) => {
    const cursor = ManifestCursor.open(file);
    assert.equal((await cursor.seek(Buffer.from('a')))?.type, 'd');
    assert.equal(
      await cursor.seek(Buffer.from('a/w')),
      undefined,
      'not listed: nothing, and a/x stays ahead',
    );
    assert.equal((await cursor.seek(Buffer.from('a/x')))?.sha256, SHA);
    // a/y skipped over by the walk (deleted since): the next seek moves past it
    assert.equal((await cursor.seek(Buffer.from('a-b')))?.path.toString(), 'a-b');
    assert.equal(await cursor.seek(Buffer.from('b')), undefined);
    assert.equal((await cursor.seek(Buffer.from('c')))?.path.toString(), 'c');
    assert.equal(await cursor.seek(Buffer.from('d')), undefined, 'past the end');
    assert.equal(cursor.failure, undefined);
    await cursor.close();
  });
});

test('a manifest bad part-way ends the lookups with the reason; entries before it were returned', async () => {
  const lines = TREE.map(formatManifestLine);
  lines.splice(3, 0, 'f 0644 0 0 root root 1.000000000 3 nothex a/z');
  await withManifest(lines, async (file) => {
    const cursor = ManifestCursor.open(file);
    assert.equal((await cursor.seek(Buffer.from('a/x')))?.path.toString(), 'a/x');
    assert.equal(await cursor.seek(Buffer.from('c')), undefined);
    assert.match(cursor.failure?.message ?? '', /manifest:5: bad sha256/);
    assert.equal(await cursor.seek(Buffer.from('d')), undefined, 'stays ended');
    await cursor.close();
  });
});

test('a missing manifest is a failure, not an exception: every seek finds nothing', async () => {
  const cursor = ManifestCursor.open(join(tmpdir(), 'baton-no-such-dir', 'manifest'));
  assert.equal(await cursor.seek(Buffer.from('a')), undefined);
  assert.match(cursor.failure?.message ?? '', /ENOENT/);
  await cursor.close();
});

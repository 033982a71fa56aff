import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeInlineHead } from '../../src/sink/pull.js';

/*
 * The manifest the gate sends with `list-head` is written into `.incoming/<id>/`, where an interrupted
 * rsync of the same generation may have left names the source chose: nothing there is followed.
 */

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'baton-inline-head-'));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const BYTES = Buffer.from('f 0644 0 0 1 3 ' + 'c'.repeat(64) + ' tree/\xff name\n', 'latin1');

test('inline head into a new dir -> a read-only regular file with exactly the bytes', async () => {
  await withDir(async (root) => {
    const dir = join(root, '.incoming', '2026-12-07T154532Z');
    await writeInlineHead(dir, BYTES);
    const st = await lstat(join(dir, 'manifest'));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o777, 0o444);
    assert.deepEqual(await readFile(join(dir, 'manifest')), BYTES);
  });
});

test('inline head over a symlink an earlier pull left at manifest -> replaced, its target untouched', async () => {
  await withDir(async (root) => {
    const dir = join(root, 'gen');
    await mkdir(dir);
    const victim = join(root, 'victim');
    await writeFile(victim, 'do not touch\n');
    await symlink(victim, join(dir, 'manifest'));
    await writeInlineHead(dir, BYTES);
    assert.equal(await readFile(victim, 'utf8'), 'do not touch\n');
    assert.ok((await lstat(join(dir, 'manifest'))).isFile());
    assert.deepEqual(await readFile(join(dir, 'manifest')), BYTES);
  });
});

test('inline head over a directory named manifest -> replaced by the file', async () => {
  await withDir(async (root) => {
    const dir = join(root, 'gen');
    await mkdir(join(dir, 'manifest', 'deep'), { recursive: true });
    await writeInlineHead(dir, BYTES);
    assert.deepEqual(await readFile(join(dir, 'manifest')), BYTES);
  });
});

test('inline head over an older manifest -> the new bytes, nothing else in the dir', async () => {
  await withDir(async (root) => {
    const dir = join(root, 'gen');
    await mkdir(dir);
    await writeFile(join(dir, 'manifest'), 'old and longer than the new one '.repeat(10));
    await writeInlineHead(dir, BYTES);
    assert.deepEqual(await readFile(join(dir, 'manifest')), BYTES);
  });
});

/**
 * The gate's prune after an ack lists the source store's complete generations without hashing their
 * manifests (`listCompleteIds`); it must count exactly what the listing counts as complete.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { listCompleteGenerations, listCompleteIds } from '../../src/gate/gate.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baton-gate-ids-'));
  const gen = async (id: string, manifest?: (path: string) => Promise<void>) => {
    await mkdir(join(dir, id));
    await manifest?.(join(dir, id, 'manifest'));
  };
  await gen('2026-01-01T000000Z', (p) => writeFile(p, 'm1\n'));
  await gen('2026-01-02T000000Z', (p) => writeFile(p, ''));
  await gen('2026-01-03T000000Z'); // no manifest: partial
  await gen('2026-01-04T000000Z', (p) => symlink('/etc/passwd', p));
  await gen('2026-01-05T000000Z', (p) => mkdir(p));
  await gen('2026-01-06T000000Z', (p) => Promise.resolve(execFileSync('mkfifo', [p])).then(() => undefined));
  await gen('not-an-id', (p) => writeFile(p, 'x\n'));
  await gen('.2026-01-07T000000Z.deleting', (p) => writeFile(p, 'x\n'));
  await mkdir(join(dir, 'elsewhere'));
  await writeFile(join(dir, 'elsewhere', 'manifest'), 'x\n');
  await symlink(join(dir, 'elsewhere'), join(dir, '2026-01-08T000000Z'));
  await writeFile(join(dir, '2026-01-09T000000Z'), 'a file, not a generation\n');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('listCompleteIds -> the ids listCompleteGenerations lists, oldest first, nothing followed or hashed', async () => {
  const ids = await listCompleteIds(dir);
  assert.deepEqual(ids, ['2026-01-01T000000Z', '2026-01-02T000000Z']);
  assert.deepEqual(
    (await listCompleteGenerations(dir)).map((g) => g.id),
    ids,
  );
});

test('listCompleteIds of a missing dir -> a one-line error', async () => {
  await assert.rejects(listCompleteIds(join(dir, 'missing')), /cannot read .*missing: ENOENT/);
});

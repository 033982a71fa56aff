/**
 * writeFileAtomic (src/adapters/fsx.ts) in a directory someone else may write (issue 10, hole 10): a
 * planted symlink, at the target or at a temp name that once was predictable, is never followed.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeFileAtomic, writeFileAtomicSync } from '../../src/adapters/fsx.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'baton-atomic-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
async function fresh(): Promise<{ dir: string; victim: string }> {
  const base = join(root, `c${++n}`);
  const dir = join(base, 'web');
  await mkdir(dir, { recursive: true });
  const victim = join(base, 'root-only');
  await writeFile(victim, 'ROOT ONLY\n', { mode: 0o600 });
  return { dir, victim };
}

test('a symlink planted at the target -> replaced by a regular file, its target untouched', async () => {
  const { dir, victim } = await fresh();
  const file = join(dir, 'status.html');
  await symlink(victim, file);
  await writeFileAtomic(file, '<html>ok</html>\n', 0o644);
  assert.ok((await lstat(file)).isFile());
  assert.equal(await readFile(file, 'utf8'), '<html>ok</html>\n');
  assert.equal(await readFile(victim, 'utf8'), 'ROOT ONLY\n');
  assert.deepEqual(await readdir(dir), ['status.html'], 'no temp file left');
});

test('symlinks planted at the predictable temp names of old (<file>.tmp-<pid>, .<name>.tmp) -> not followed', async () => {
  const { dir, victim } = await fresh();
  const file = join(dir, 'baton_sink_pull.prom');
  const planted = [`${file}.tmp-${process.pid}`, join(dir, '.baton_sink_pull.prom.tmp')];
  for (const p of planted) await symlink(victim, p);
  await writeFileAtomic(file, 'baton_up 1\n', 0o644);
  assert.equal(await readFile(victim, 'utf8'), 'ROOT ONLY\n');
  assert.equal(await readFile(file, 'utf8'), 'baton_up 1\n');
  assert.deepEqual((await readdir(dir)).sort(), [
    '.baton_sink_pull.prom.tmp',
    'baton_sink_pull.prom',
    `baton_sink_pull.prom.tmp-${process.pid}`,
  ]);
});

test('temp names are random: two writes use different names, none is left behind', async () => {
  const { dir } = await fresh();
  const file = join(dir, 'a.txt');
  await writeFileAtomic(file, 'one\n');
  await writeFileAtomic(file, 'two\n');
  assert.equal(await readFile(file, 'utf8'), 'two\n');
  assert.deepEqual(await readdir(dir), ['a.txt']);
});

test('exactMode and owner -> the mode is set exactly (not filtered by the umask)', async () => {
  const { dir } = await fresh();
  const file = join(dir, 'authorized_keys');
  const old = process.umask(0o077);
  try {
    await writeFileAtomic(file, 'key\n', 0o640, {
      exactMode: true,
      owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    });
  } finally {
    process.umask(old);
  }
  assert.equal((await lstat(file)).mode & 0o777, 0o640);
});

test('a directory at the target -> fails, the temp file is removed, the directory stays', async () => {
  const { dir } = await fresh();
  const file = join(dir, 'status.html');
  await mkdir(file);
  await assert.rejects(writeFileAtomic(file, 'x'));
  assert.deepEqual(await readdir(dir), ['status.html']);
  assert.ok((await lstat(file)).isDirectory());
});

test('writeFileAtomicSync: a symlink planted at the target or an old temp name -> not followed', async () => {
  const { dir, victim } = await fresh();
  const file = join(dir, 'children.json');
  await symlink(victim, file);
  await symlink(victim, `${file}.tmp-${process.pid}`);
  writeFileAtomicSync(file, '{"children":[]}\n', 0o600, { durable: false });
  assert.ok((await lstat(file)).isFile());
  assert.equal(await readFile(file, 'utf8'), '{"children":[]}\n');
  assert.equal(await readFile(victim, 'utf8'), 'ROOT ONLY\n');
  assert.deepEqual((await readdir(dir)).sort(), ['children.json', `children.json.tmp-${process.pid}`]);
});

test('writeFileAtomicSync: a directory at the target -> throws, the temp file is removed', async () => {
  const { dir } = await fresh();
  const file = join(dir, 'children.json');
  await mkdir(file);
  assert.throws(() => writeFileAtomicSync(file, 'x'));
  assert.deepEqual(await readdir(dir), ['children.json']);
  assert.ok((await lstat(file)).isDirectory());
});

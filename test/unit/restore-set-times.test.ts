import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lstat, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTimeSetter } from '../../src/adapters/set-times.js';

test('the time setter gives files, directories and symlinks their mtime to the nanosecond (python3) or microsecond', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-rst-times-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'f');
  const link = join(dir, 'l');
  await writeFile(file, 'x');
  await symlink('does-not-exist', link);
  const odd = Buffer.from(`${dir}/caf\xe9\n`, 'latin1');
  await writeFile(odd, 'y');
  const setter = await createTimeSetter();
  const when = 1_000_000_000_123_456_789n;
  const old = -86_400_000_000_001n; // before 1970
  setter.add(Buffer.from(file), when);
  setter.add(Buffer.from(link), when + 1n);
  setter.add(odd, old);
  setter.add(Buffer.from(dir), when + 2n);
  assert.equal(setter.due, false);
  await setter.flush();
  const round = (ns: bigint) => (setter.precision === 'ns' ? ns : ns - (((ns % 1000n) + 1000n) % 1000n));
  assert.equal((await lstat(file, { bigint: true })).mtimeNs, round(when));
  assert.equal(
    (await lstat(link, { bigint: true })).mtimeNs,
    round(when + 1n),
    'the symlink itself, not followed',
  );
  assert.equal((await lstat(odd, { bigint: true })).mtimeNs, round(old));
  assert.equal((await lstat(dir, { bigint: true })).mtimeNs, round(when + 2n));
  if (setter.precision === 'us')
    process.stderr.write('note: python3 not found: microsecond precision checked\n');
});

test('the time setter names the path it could not touch', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-rst-times-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const setter = await createTimeSetter();
  setter.add(Buffer.from(join(dir, 'missing')), 1n);
  await assert.rejects(setter.flush(), (e: Error) => e.message.includes('missing'));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, appendFile } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EarlyHashes, unescapeRsync } from '../../src/sink/early-hash.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'baton-early-'));
  await mkdir(join(dir, 'tree', 'srv', 'a b'), { recursive: true });
  return dir;
}

test('unescapeRsync turns \\#ooo back into the byte', () => {
  assert.equal(unescapeRsync('a\\#012b'), 'a\nb');
  assert.equal(unescapeRsync('caf\\#303\\#251'), 'caf\u00c3\u00a9');
  assert.equal(unescapeRsync('plain\\name'), 'plain\\name');
});

test('files named by rsync are hashed during the transfer; lookups need the very same file', async () => {
  const dir = await fixture();
  try {
    const odd = Buffer.from('srv/a b/new\nline-\u00e9.txt');
    await writeFile(join(dir, 'tree', 'srv', 'a b', 'x.txt'), 'hello');
    await writeFile(Buffer.concat([Buffer.from(`${dir}/tree/`), odd]), 'odd');
    await writeFile(join(dir, 'manifest'), 'not in tree');
    const early = new EarlyHashes(dir);
    // split anywhere, mixed with progress records and rsync's other lines
    const out =
      '      1,234  10%  1.00MB/s 0:00:01\r' +
      'baton-received 5 tree/srv/a b/x.txt\n' +
      'deleting tree/old\n' +
      'baton-received 11 manifest\n' +
      'baton-received 0 tree/srv/\n' +
      'baton-received 3 tree/srv/a b/new\\#012line-\\#303\\#251.txt\n';
    early.onStdout(Buffer.from(out.slice(0, 40), 'latin1'));
    early.onStdout(Buffer.from(out.slice(40), 'latin1'));
    await early.finish();
    assert.equal(early.hashed, 2);
    const st = lstatSync(join(dir, 'tree', 'srv', 'a b', 'x.txt'), { bigint: true });
    assert.equal(early.lookup(Buffer.from('srv/a b/x.txt'), st), sha('hello'));
    const oddSt = lstatSync(Buffer.concat([Buffer.from(`${dir}/tree/`), odd]), { bigint: true });
    assert.equal(early.lookup(odd, oddSt), sha('odd'));
    // not a tree file, never named, or a different file since: nothing to hand out
    assert.equal(early.lookup(Buffer.from('manifest'), st), undefined);
    assert.equal(early.lookup(Buffer.from('srv/other'), st), undefined);
    await appendFile(join(dir, 'tree', 'srv', 'a b', 'x.txt'), '!');
    const changed = lstatSync(join(dir, 'tree', 'srv', 'a b', 'x.txt'), { bigint: true });
    assert.equal(early.lookup(Buffer.from('srv/a b/x.txt'), changed), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a name that does not exist (misread or gone) is skipped, and lines after finish() are ignored', async () => {
  const dir = await fixture();
  try {
    await writeFile(join(dir, 'tree', 'late.txt'), 'late');
    const early = new EarlyHashes(dir);
    early.onStdout(Buffer.from('baton-received 4 tree/missing.txt\n'));
    await early.finish();
    early.onStdout(Buffer.from('baton-received 4 tree/late.txt\n'));
    await early.finish();
    assert.equal(early.hashed, 0);
    const st = lstatSync(join(dir, 'tree', 'late.txt'), { bigint: true });
    assert.equal(early.lookup(Buffer.from('late.txt'), st), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

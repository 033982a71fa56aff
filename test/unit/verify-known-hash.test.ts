import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyGeneration, type KnownHash, type VerifyResult } from '../../src/generation/verify.js';
import { fileEntry, sha, writeGenerationDir } from '../helpers/generation-builder.js';

// Issue 14 (verify --deep, the pull's early hashes): a hash taken earlier (while rsync transferred the
// file) stands in for a read only when the file the check opens is that very file: same device,
// inode, size, mtime and ctime, compared on the open descriptor by the hash worker.

/** A one-file generation; `known(abs)` gives the hash handed in for tree/a, then it is verified. */
async function verifyWithKnown(
  known: (abs: string) => KnownHash | Promise<KnownHash>,
): Promise<{ r: VerifyResult; asked: number }> {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-known-'));
  try {
    const dir = join(root, 'gen');
    await mkdir(dir);
    await writeGenerationDir(dir, { entries: [fileEntry('a', 'alpha\n')], tree: { a: 'alpha\n' } });
    const k = await known(join(dir, 'tree', 'a'));
    let asked = 0;
    const r = await verifyGeneration({
      dir,
      hashes: true,
      knownHash: (rel) => {
        asked++;
        return rel.toString() === 'a' ? k : undefined;
      },
    });
    return { r, asked };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const identity = (abs: string) => {
  const { dev, ino, size, mtimeNs, ctimeNs } = lstatSync(abs, { bigint: true });
  return { dev, ino, size, mtimeNs, ctimeNs };
};

test('a known hash of the very file is taken instead of a read (a wrong one is then a named mismatch)', async () => {
  const { r, asked } = await verifyWithKnown((abs) => ({ ...identity(abs), sha256: sha('other\n') }));
  assert.equal(asked, 1);
  assert.equal(r.ok, false);
  assert.equal(r.hashed, 1);
  assert.deepEqual(
    r.problems.map((p) => [p.kind, p.path]),
    [['hash', 'a']],
  );
});

test('a known hash of a file changed since (ctime or inode differ) is not taken: the file is read', async () => {
  for (const change of ['ctime', 'ino'] as const) {
    const { r } = await verifyWithKnown((abs) => {
      const id = identity(abs);
      const wrong = sha('other\n');
      return change === 'ino'
        ? { ...id, ino: id.ino + 1n, sha256: wrong }
        : { ...id, ctimeNs: id.ctimeNs - 1n, sha256: wrong };
    });
    assert.equal(r.ok, true, `${change}: ${JSON.stringify(r.problems)}`);
    assert.equal(r.hashed, 1);
  }
});

test('a file whose size differs from the manifest is a size problem, whatever hash is known', async () => {
  const { r } = await verifyWithKnown(async (abs) => {
    const k = { ...identity(abs), sha256: sha('alpha\n') };
    await appendFile(abs, 'more');
    return k;
  });
  assert.equal(r.ok, false);
  assert.deepEqual(
    r.problems.map((p) => [p.kind, p.path, p.detail]),
    [['size', 'a', 'size 10 != manifest 6']],
  );
});

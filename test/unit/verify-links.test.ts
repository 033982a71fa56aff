import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MANIFEST_HEADER_2 } from '../../src/core/manifest.js';
import { verifyGeneration } from '../../src/generation/verify.js';
import { dirEntry, fileEntry, writeGenerationDir } from '../helpers/generation-builder.js';

// The data's hard-link groups in a generation on disk: every later name of a group must be the
// first name's inode. A tree where a group arrived as separate files (a pull without -H, a hostile
// source) fails verification, even with the right content.

const CONTENT = 'linked content\n';

async function generation(root: string, linked: boolean): Promise<string> {
  const dir = join(root, linked ? 'linked' : 'separate');
  const a = join(dir, 'tree', 'd', 'a');
  // every name of a group keeps its own SHA256SUMS line (`sha256sum -c` works on the tree)
  return writeGenerationDir(dir, {
    header: MANIFEST_HEADER_2,
    entries: [
      dirEntry('d', { mode: 0o644 }),
      fileEntry('d/a', CONTENT, { links: 2 }),
      fileEntry('d/b', CONTENT, { linkTo: Buffer.from('d/a') }),
    ],
    tree: { 'd/a': CONTENT, 'd/b': linked ? { linkTo: a } : CONTENT },
  });
}

test('verify: a hard-link group of the data must be one inode in tree/', async () => {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-links-'));
  try {
    const good = await verifyGeneration({ dir: await generation(root, true), hashes: true });
    assert.deepEqual(good.problems, []);
    assert.equal(good.ok, true);
    assert.equal(good.reused, 1, 'the later name is not read again');
    for (const hashes of [true, false]) {
      const bad = await verifyGeneration({ dir: await generation(root, false), hashes });
      assert.equal(bad.ok, false);
      assert.deepEqual(
        bad.problems.map((p) => [p.kind, p.path]),
        [['link', 'd/b']],
      );
      assert.match(bad.problems[0]?.detail ?? '', /not the same inode as d\/a/);
      await rm(join(root, 'separate'), { recursive: true, force: true });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

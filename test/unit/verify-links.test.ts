import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatManifestLine,
  formatSha256SumsLine,
  MANIFEST_HEADER_2,
  type ManifestEntry,
} from '../../src/core/manifest.js';
import { verifyGeneration } from '../../src/generation/verify.js';

// The data's hard-link groups in a generation on disk: every later name of a group must be the
// first name's inode. A tree where a group arrived as separate files (a pull without -H, a hostile
// source) fails verification, even with the right content.

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const CONTENT = 'linked content\n';

function fileEntry(path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry {
  return {
    type: 'f',
    mode: 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtimeNs: 1_700_000_000_000_000_000n,
    size: Buffer.byteLength(CONTENT),
    sha256: sha(CONTENT),
    path: Buffer.from(path),
    target: undefined,
    ...extra,
  };
}

async function generation(root: string, linked: boolean): Promise<string> {
  const dir = join(root, linked ? 'linked' : 'separate');
  const entries = [
    { ...fileEntry('d'), type: 'd' as const, size: 4096, sha256: undefined },
    fileEntry('d/a', { links: 2 }),
    fileEntry('d/b', { linkTo: Buffer.from('d/a') }),
  ];
  await mkdir(join(dir, 'tree', 'd'), { recursive: true });
  await writeFile(join(dir, 'tree', 'd', 'a'), CONTENT);
  if (linked) await link(join(dir, 'tree', 'd', 'a'), join(dir, 'tree', 'd', 'b'));
  else await writeFile(join(dir, 'tree', 'd', 'b'), CONTENT);
  await writeFile(
    join(dir, 'meta.json'),
    JSON.stringify({
      id: '2026-01-01T000000Z',
      source: 's',
      stream: 'data',
      created: '2026-01-01T00:00:00.000Z',
      files: 2,
      entries: 3,
      bytes: 0,
      bytesCopied: 0,
      batonVersion: 'test',
    }),
  );
  await writeFile(
    join(dir, 'manifest'),
    `${[MANIFEST_HEADER_2, ...entries.map(formatManifestLine)].join('\n')}\n`,
  );
  // every name of a group keeps its own SHA256SUMS line (`sha256sum -c` works on the tree)
  await writeFile(
    join(dir, 'SHA256SUMS'),
    Buffer.concat(
      entries.flatMap((e) => (e.sha256 === undefined ? [] : [formatSha256SumsLine(e.sha256, e.path)])),
    ),
  );
  return dir;
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

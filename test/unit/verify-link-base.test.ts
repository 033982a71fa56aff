import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatManifestLine,
  formatSha256SumsLine,
  MANIFEST_HEADER,
  type ManifestEntry,
} from '../../src/core/manifest.js';
import { verifyGeneration } from '../../src/generation/verify.js';

// Two real generations on disk: `new` hard-links its unchanged files to `base`. Verification with
// the link base given as a map or as a manifest read alongside the walk must agree: linked files
// with the same hash are not re-read, everything else is hashed, a bad file is still caught.

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function fileEntry(path: string, content: string): ManifestEntry {
  return {
    type: 'f',
    mode: 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtimeNs: 1_700_000_000_000_000_000n,
    size: Buffer.byteLength(content),
    sha256: sha(content),
    path: Buffer.from(path),
    target: undefined,
  };
}

const dirEntry = (path: string): ManifestEntry => ({
  ...fileEntry(path, ''),
  type: 'd',
  mode: 0o755,
  size: 4096,
  sha256: undefined,
});

async function writeGeneration(dir: string, id: string, entries: ManifestEntry[]): Promise<void> {
  await mkdir(join(dir, 'tree'), { recursive: true });
  const files = entries.filter((e) => e.type === 'f').length;
  await writeFile(
    join(dir, 'meta.json'),
    JSON.stringify({
      id,
      source: 's',
      stream: 'data',
      created: '2026-01-01T00:00:00.000Z',
      files,
      entries: entries.length,
      bytes: 0,
      bytesCopied: 0,
      batonVersion: 'test',
    }),
  );
  await writeFile(
    join(dir, 'manifest'),
    `${[MANIFEST_HEADER, ...entries.map(formatManifestLine)].join('\n')}\n`,
  );
  await writeFile(
    join(dir, 'SHA256SUMS'),
    Buffer.concat(entries.flatMap((e) => (e.sha256 ? [formatSha256SumsLine(e.sha256, e.path)] : []))),
  );
}

test('a link base given as a manifest file is streamed and gives the same result as the map', async () => {
  const root = await mkdtemp(join(tmpdir(), 'baton-verify-base-'));
  try {
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

    // next: d/a and e linked, d/b rewritten (new content), d/c linked but listed with another hash
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

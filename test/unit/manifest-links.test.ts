/**
 * Hard-link groups in the manifest (format 2): written and read back, and refused when a hostile
 * manifest claims links across streams, to directories, outside tree/, to nothing, or with another
 * hash, size or metadata than its group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  formatManifestLine,
  LinkGroupCheck,
  MANIFEST_HEADER,
  MANIFEST_HEADER_2,
  parseManifestLine,
  type ManifestEntry,
} from '../../src/core/manifest.js';
import { readManifest, ManifestError } from '../../src/generation/manifest-file.js';

const SHA = 'a'.repeat(64);
const OTHER_SHA = 'b'.repeat(64);

function entry(path: string, type: 'f' | 'd', extra: Partial<ManifestEntry> = {}): ManifestEntry {
  return {
    type,
    mode: type === 'd' ? 0o755 : 0o644,
    uid: 1000,
    gid: 1000,
    user: 'app',
    group: 'app',
    mtimeNs: 1_700_000_000_123_456_789n,
    size: type === 'f' ? 3 : 4096,
    sha256: type === 'f' ? SHA : undefined,
    path: Buffer.from(path),
    target: undefined,
    ...extra,
  };
}

async function read(header: string, lines: string[]): Promise<ManifestEntry[]> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-links-'));
  try {
    const file = join(dir, 'manifest');
    await writeFile(file, `${[header, ...lines].join('\n')}\n`);
    const out: ManifestEntry[] = [];
    for await (const e of readManifest(file)) out.push(e);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const GOOD: ManifestEntry[] = [
  entry('a', 'd'),
  entry('a/one', 'f', { links: 3 }),
  entry('a/two', 'f', { linkTo: Buffer.from('a/one') }),
  entry('b', 'd'),
  entry('b/plain', 'f', { sha256: OTHER_SHA }),
  entry('b/three', 'f', { linkTo: Buffer.from('a/one') }),
];

test('link groups: format 2 lines round-trip; `+n` on the first name, `=path` on later ones', async () => {
  const lines = GOOD.map(formatManifestLine);
  assert.match(lines[1] ?? '', / a\/one \+3$/);
  assert.match(lines[2] ?? '', / a\/two =a\/one$/);
  const back = await read(MANIFEST_HEADER_2, lines);
  assert.equal(back.length, GOOD.length);
  assert.equal(back[1]?.links, 3);
  assert.equal(back[2]?.linkTo?.toString(), 'a/one');
  assert.equal(back[5]?.linkTo?.toString(), 'a/one');
  assert.equal(back[4]?.links, undefined);
  assert.equal(back[4]?.linkTo, undefined);
});

test('link groups: a format-1 manifest with a link field is refused (format 1 has none)', async () => {
  await assert.rejects(read(MANIFEST_HEADER, GOOD.map(formatManifestLine)), /unexpected target field/);
});

test('link groups: a manifest format newer than this version is refused with one clear line', async () => {
  await assert.rejects(read('# baton-manifest 3', []), /manifest format 3 is newer than this baton reads/);
});

test('link groups: a symlink or device line keeps its target field in format 2', () => {
  const l = entry('s', 'f', { type: 'l', sha256: undefined, target: Buffer.from('=x') });
  const r = parseManifestLine(formatManifestLine(l), undefined, 2);
  assert.ok(r.ok);
  assert.equal(r.entry.target?.toString(), '=x');
  assert.equal(r.entry.linkTo, undefined);
});

const hostile: Array<[string, ManifestEntry[], RegExp]> = [
  [
    'a link to a directory',
    [entry('a', 'd'), entry('a/x', 'f', { linkTo: Buffer.from('a') })],
    /no open group's first name/,
  ],
  [
    'a link to a path outside tree/',
    [entry('a', 'd'), entry('a/x', 'f', { linkTo: Buffer.from('../../etc/passwd') })],
    /hard link to a bad path/,
  ],
  [
    'a link to an absolute path',
    [entry('a', 'd'), entry('a/x', 'f', { linkTo: Buffer.from('/etc/shadow') })],
    /hard link to a bad path: absolute/,
  ],
  [
    'a link into the other stream',
    [
      entry('a', 'd'),
      entry('a/x', 'f', { linkTo: Buffer.from('../../logs/2026-11-28T061922Z/tree/app.log') }),
    ],
    /hard link to a bad path/,
  ],
  [
    'a link to a name not in the manifest',
    [entry('a', 'd'), entry('a/x', 'f', { linkTo: Buffer.from('a/nothing') })],
    /hard link to a path not before it|no open group's first name/,
  ],
  [
    'a link to an earlier file that opened no group',
    [entry('a', 'd'), entry('a/p', 'f'), entry('a/x', 'f', { linkTo: Buffer.from('a/p') })],
    /no open group's first name/,
  ],
  [
    'a link to a later path',
    [entry('a', 'd'), entry('a/p', 'f', { linkTo: Buffer.from('a/q') }), entry('a/q', 'f', { links: 2 })],
    /not before it/,
  ],
  [
    'a link with another hash',
    [
      entry('a', 'd'),
      entry('a/p', 'f', { links: 2 }),
      entry('a/q', 'f', { linkTo: Buffer.from('a/p'), sha256: OTHER_SHA }),
    ],
    /hash or size differs/,
  ],
  [
    'a link with another size',
    [
      entry('a', 'd'),
      entry('a/p', 'f', { links: 2 }),
      entry('a/q', 'f', { linkTo: Buffer.from('a/p'), size: 999 }),
    ],
    /hash or size differs/,
  ],
  [
    'a link with another mode',
    [
      entry('a', 'd'),
      entry('a/p', 'f', { links: 2 }),
      entry('a/q', 'f', { linkTo: Buffer.from('a/p'), mode: 0o4755 }),
    ],
    /mode, owner or mtime differs/,
  ],
  [
    'more names than the group declared',
    [
      entry('a', 'd'),
      entry('a/p', 'f', { links: 2 }),
      entry('a/q', 'f', { linkTo: Buffer.from('a/p') }),
      entry('a/r', 'f', { linkTo: Buffer.from('a/p') }),
    ],
    /group is full/,
  ],
  [
    'fewer names than the group declared',
    [entry('a', 'd'), entry('a/p', 'f', { links: 3 }), entry('a/q', 'f', { linkTo: Buffer.from('a/p') })],
    /missing 1 of its names/,
  ],
  [
    'a link to itself',
    [entry('a', 'd'), entry('a/p', 'f', { linkTo: Buffer.from('a/p') })],
    /hard link to itself/,
  ],
];

for (const [name, entries, why] of hostile) {
  test(`link groups: hostile manifest refused: ${name}`, async () => {
    await assert.rejects(read(MANIFEST_HEADER_2, entries.map(formatManifestLine)), (e: unknown) => {
      assert.ok(e instanceof ManifestError);
      assert.match(e.message, why);
      return true;
    });
  });
}

test('link groups: a link field on a directory line or a bad count is refused by the line parser', () => {
  const d = formatManifestLine(entry('a', 'd'));
  assert.equal(parseManifestLine(`${d} +2`, undefined, 2).ok, false);
  const f = formatManifestLine(entry('a', 'f'));
  for (const bad of ['+1', '+0', '+', '+x', '+99999999999', '=', '=%zz', '=a/../b', 'x'])
    assert.equal(parseManifestLine(`${f} ${bad}`, undefined, 2).ok, false, bad);
});

test('link groups: open groups are bounded', () => {
  const c = new LinkGroupCheck(2);
  assert.equal(c.check(entry('a', 'f', { links: 2 })), undefined);
  assert.equal(c.check(entry('b', 'f', { links: 2 })), undefined);
  assert.match(c.check(entry('c', 'f', { links: 2 })) ?? '', /more than 2 hard-link groups open/);
});

// -- property: whatever link fields a hostile manifest carries, what is accepted is consistent --------

const names = ['a', 'b', 'c', 'd', 'e', 'f'];
const hostileEntry = fc.record({
  name: fc.constantFrom(...names),
  kind: fc.constantFrom('plain', 'lead', 'member', 'dir'),
  count: fc.integer({ min: 0, max: 4 }),
  to: fc.constantFrom(...names, '../x', '/etc/passwd', 'zz'),
  sha: fc.constantFrom(SHA, OTHER_SHA),
  size: fc.constantFrom(3, 4),
});

test('property: an accepted manifest has only complete groups of same-content files, each linked to an earlier first name', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(hostileEntry, { selector: (e) => e.name, maxLength: 6 }), async (raw) => {
      const sorted = [...raw].sort((x, y) => (x.name < y.name ? -1 : 1));
      const lines = sorted.map((r) => {
        if (r.kind === 'dir') return formatManifestLine(entry(r.name, 'd'));
        const base = formatManifestLine(entry(r.name, 'f', { sha256: r.sha, size: r.size }));
        if (r.kind === 'lead') return `${base} +${r.count}`;
        if (r.kind === 'member') return `${base} =${r.to}`;
        return base;
      });
      let got: ManifestEntry[];
      try {
        got = await read(MANIFEST_HEADER_2, lines);
      } catch (e) {
        assert.ok(e instanceof ManifestError, String(e));
        return;
      }
      const byPath = new Map(got.map((e) => [e.path.toString(), e]));
      const members = new Map<string, number>();
      for (const e of got) {
        if (e.linkTo === undefined) continue;
        const lead = byPath.get(e.linkTo.toString());
        assert.ok(lead, 'a link points at a listed path');
        assert.equal(lead.type, 'f');
        assert.ok(lead.links !== undefined, 'a link points at a group first name');
        assert.ok(e.linkTo.toString() < e.path.toString());
        assert.equal(lead.sha256, e.sha256);
        assert.equal(lead.size, e.size);
        members.set(e.linkTo.toString(), (members.get(e.linkTo.toString()) ?? 0) + 1);
      }
      for (const e of got)
        if (e.links !== undefined)
          assert.equal(members.get(e.path.toString()) ?? 0, e.links - 1, 'group complete');
    }),
    { numRuns: 500 },
  );
});

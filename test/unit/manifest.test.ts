import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkEntrySequence,
  DirChain,
  checkRelativePath,
  compareTreeOrder,
  escapeField,
  formatManifestLine,
  formatSha256SumsLine,
  parseManifestLine,
  unescapeField,
  type ManifestEntry,
} from '../../src/core/manifest.js';

const file = (path: Buffer | string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  type: 'f',
  mode: 0o644,
  uid: 1000,
  gid: 1000,
  user: 'app',
  group: 'app',
  mtimeNs: 1764310762123456789n,
  size: 5,
  sha256: 'a'.repeat(64),
  path: typeof path === 'string' ? Buffer.from(path) : path,
  target: undefined,
  ...extra,
});

test('escaping: every byte value round-trips and the field has no spaces', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const text = escapeField(all);
  assert.equal(/[\s]/.test(text), false);
  assert.deepEqual(unescapeField(text), all);
});

test('escaping: a leading "-" is escaped, an inner one is not', () => {
  assert.equal(escapeField(Buffer.from('-rf')), '%2Drf');
  assert.equal(escapeField(Buffer.from('a-b')), 'a-b');
});

test('unescape rejects raw spaces, bad percent codes and a raw leading "-"', () => {
  assert.equal(unescapeField('a b'), undefined);
  assert.equal(unescapeField('%zz'), undefined);
  assert.equal(unescapeField('%4'), undefined);
  assert.equal(unescapeField('-x'), undefined);
});

test('a file line with newline, invalid UTF-8 and spaces in its name round-trips', () => {
  const name = Buffer.concat([
    Buffer.from('dir/new\nline \u00e9 '),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('%.txt'),
  ]);
  const e = file(name);
  const line = formatManifestLine(e);
  assert.equal(line.includes('\n'), false);
  const r = parseManifestLine(line);
  assert.ok(r.ok, r.ok ? '' : r.error);
  assert.deepEqual(r.entry, e);
});

test('symlink, device and directory lines round-trip', () => {
  const cases: ManifestEntry[] = [
    file('l', { type: 'l', sha256: undefined, target: Buffer.from('../../etc/passwd'), mode: 0o777 }),
    file('dev', { type: 'c', sha256: undefined, target: Buffer.from('1:3'), size: 0 }),
    file('d', { type: 'd', sha256: undefined, mode: 0o1777, user: undefined, group: undefined }),
    file('s', { mode: 0o4755 }),
  ];
  for (const e of cases) {
    const r = parseManifestLine(formatManifestLine(e));
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(r.entry, e);
  }
});

test('mtimes before 1970 round-trip', () => {
  const e = file('old', { mtimeNs: -1_500_000_000n });
  const r = parseManifestLine(formatManifestLine(e));
  assert.ok(r.ok);
  assert.equal(r.entry.mtimeNs, -1_500_000_000n);
});

const HOSTILE: Array<[string, string, RegExp]> = [
  [
    'absolute path -> rejected',
    'f 0644 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' %2Fetc%2Fpasswd',
    /absolute/,
  ],
  [
    'dot-dot component -> rejected',
    'f 0644 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' a/../../x',
    /"\.\."/,
  ],
  ['leading dot-dot -> rejected', 'f 0644 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' ../x', /"\.\."/],
  [
    'empty component -> rejected',
    'f 0644 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' a//b',
    /empty path component/,
  ],
  ['escaped NUL -> rejected', 'f 0644 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' a%00b', /NUL/],
  ['uppercase hash -> rejected', 'f 0644 0 0 root root 1.000000000 1 ' + 'A'.repeat(64) + ' x', /sha256/],
  ['hash on a dir -> rejected', 'd 0755 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' x', /non-file/],
  ['symlink without target -> rejected', 'l 0777 0 0 root root 1.000000000 1 - x', /target/],
  ['unknown type -> rejected', 'z 0644 0 0 root root 1.000000000 1 - x', /unknown type/],
  ['too few fields -> rejected', 'f 0644 0 0', /fields/],
  [
    'huge size -> rejected',
    'f 0644 0 0 root root 1.000000000 99999999999999999 ' + 'a'.repeat(64) + ' x',
    /size/,
  ],
  ['bad mode -> rejected', 'f 9999 0 0 root root 1.000000000 1 ' + 'a'.repeat(64) + ' x', /mode/],
  ['bad device numbers -> rejected', 'c 0644 0 0 root root 1.000000000 0 - x $(reboot)', /escaping|device/],
];
for (const [name, line, why] of HOSTILE) {
  test(`hostile manifest line: ${name}`, () => {
    const r = parseManifestLine(line);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.error, why);
  });
}

test('checkRelativePath accepts names that only look dangerous', () => {
  assert.equal(checkRelativePath(Buffer.from('...')), undefined);
  assert.equal(checkRelativePath(Buffer.from('a/..b/.c')), undefined);
  assert.equal(checkRelativePath(Buffer.from('-rf')), undefined);
  assert.match(checkRelativePath(Buffer.from('a/')) ?? '', /empty/);
  assert.match(checkRelativePath(Buffer.from('x'.repeat(256))) ?? '', /component/);
});

test("tree order puts a directory's children before its siblings with larger names", () => {
  const paths = ['a.b', 'a/b', 'a', 'a/b/c', 'b'].map((p) => Buffer.from(p));
  const sorted = [...paths].sort(compareTreeOrder).map((b) => b.toString());
  assert.deepEqual(sorted, ['a', 'a/b', 'a/b/c', 'a.b', 'b']);
});

test('sequence check: duplicates, wrong order and orphans are found', () => {
  const dirs = new DirChain();
  const d = file('a', { type: 'd', sha256: undefined });
  assert.equal(checkEntrySequence(undefined, d, dirs), undefined);
  const f1 = file('a/x');
  assert.equal(checkEntrySequence(d, f1, dirs), undefined);
  assert.equal(checkEntrySequence(f1, file('a/x'), dirs), 'duplicate path');
  assert.equal(checkEntrySequence(f1, file('a/w'), dirs), 'paths not in tree order');
  assert.equal(checkEntrySequence(f1, file('b/y'), dirs), 'parent directory not listed before it');
});

test('sequence check: a parent listed as a file, or only a grandparent listed, is an orphan', () => {
  const seq = (paths: Array<[string, 'd' | 'f']>) => {
    const dirs = new DirChain();
    let prev: ReturnType<typeof file> | undefined;
    for (const [p, type] of paths) {
      const e = file(p, type === 'd' ? { type: 'd', sha256: undefined } : {});
      const r = checkEntrySequence(prev, e, dirs);
      if (r) return `${p}: ${r}`;
      prev = e;
    }
    return undefined;
  };
  assert.equal(
    seq([
      ['a', 'f'],
      ['a/x', 'f'],
    ]),
    'a/x: parent directory not listed before it',
  );
  assert.equal(
    seq([
      ['a', 'd'],
      ['a/b/c', 'f'],
    ]),
    'a/b/c: parent directory not listed before it',
  );
  // a sibling with the parent's name as a prefix is not the parent
  assert.equal(
    seq([
      ['a', 'd'],
      ['a.b', 'd'],
      ['a/x', 'f'],
    ]),
    'a/x: paths not in tree order',
  );
  assert.equal(
    seq([
      ['ab', 'd'],
      ['abc/x', 'f'],
    ]),
    'abc/x: parent directory not listed before it',
  );
  // back up several levels, then down again
  assert.equal(
    seq([
      ['a', 'd'],
      ['a/b', 'd'],
      ['a/b/c', 'd'],
      ['a/b/c/f', 'f'],
      ['a/d', 'f'],
      ['b', 'd'],
      ['b/e', 'f'],
    ]),
    undefined,
  );
  assert.equal(
    seq([
      ['a', 'd'],
      ['a/b', 'd'],
      ['a/b/c', 'f'],
      ['a/c', 'f'],
      ['a/c/x', 'f'],
    ]),
    'a/c/x: parent directory not listed before it',
  );
});

test('SHA256SUMS lines use GNU escaping for backslash, newline and CR', () => {
  const h = 'b'.repeat(64);
  assert.equal(formatSha256SumsLine(h, Buffer.from('plain name')).toString(), `${h}  plain name\n`);
  assert.equal(formatSha256SumsLine(h, Buffer.from('a\nb\\c\rd')).toString(), `\\${h}  a\\nb\\\\c\\rd\n`);
});

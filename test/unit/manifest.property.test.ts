/**
 * Property-based tests of the manifest format: what the source writes parses back equal, whatever a
 * hostile source writes never crashes the parser nor yields a path that leaves tree/, and tree order is
 * the order of a depth-first walk.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkEntrySequence,
  DirChain,
  checkRelativePath,
  compareTreeOrder,
  formatManifestLine,
  formatSha256SumsLine,
  parseManifestLine,
  type EntryType,
  type ManifestEntry,
} from '../../src/core/manifest.js';

const RUNS = { numRuns: 500 };

// ---------------------------------------------------------------------------------------------------------
// arbitraries

/** A byte that may appear in a path component: anything but NUL and `/`. */
const componentByte = fc.integer({ min: 1, max: 255 }).filter((b) => b !== 0x2f);

/** Bytes that make escaping interesting, weighted up: newline, CR, space, `%`, `-`, `.`, invalid UTF-8. */
const trickyByte = fc.constantFrom(0x0a, 0x0d, 0x20, 0x25, 0x2d, 0x2e, 0x5c, 0x7f, 0x80, 0xc3, 0xff);

const component = fc
  .array(fc.oneof(componentByte, trickyByte), { minLength: 1, maxLength: 40 })
  .map((bytes) => Buffer.from(bytes))
  .filter((b) => !b.equals(Buffer.from('.')) && !b.equals(Buffer.from('..')));

const relPath = fc
  .array(component, { minLength: 1, maxLength: 6 })
  .map((parts) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p]))));

/** A symlink target: any bytes but NUL, `/` allowed (absolute, `..`: a link is stored, never followed). */
const linkTarget = fc
  .array(fc.oneof(fc.integer({ min: 1, max: 255 }), trickyByte, fc.constant(0x2f)), {
    minLength: 1,
    maxLength: 60,
  })
  .map((bytes) => Buffer.from(bytes));

/** User and group names: undefined or a non-empty string of any code points (no lone surrogates). */
const accountName = fc.option(fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), {
  nil: undefined,
});

/** mtimes the format holds: up to 12 digits of seconds, either side of the epoch. */
const MAX_NS = 999_999_999_999n * 1_000_000_000n + 999_999_999n;
const mtimeNs = fc.oneof(
  fc.bigInt({ min: -MAX_NS, max: MAX_NS }),
  fc.constantFrom(0n, -1n, 1n, -1_000_000_000n, -999_999_999n, MAX_NS, -MAX_NS),
);

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);

const entry: fc.Arbitrary<ManifestEntry> = fc
  .record({
    type: fc.constantFrom<EntryType>('f', 'd', 'l', 'p', 's', 'c', 'b'),
    mode: fc.integer({ min: 0, max: 0o7777 }),
    uid: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    gid: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    user: accountName,
    group: accountName,
    mtimeNs,
    size: fc.oneof(fc.integer({ min: 0, max: 1 << 20 }), fc.maxSafeNat()),
    sha256: hex64,
    path: relPath,
    target: linkTarget,
    device: fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 2 ** 20 })),
  })
  .map(({ device, sha256, target, ...e }): ManifestEntry => ({
    ...e,
    sha256: e.type === 'f' ? sha256 : undefined,
    target:
      e.type === 'l'
        ? target
        : e.type === 'c' || e.type === 'b'
          ? Buffer.from(`${device[0]}:${device[1]}`)
          : undefined,
  }));

/** Fragments a hostile manifest line is likely built from. */
const fragment = fc.oneof(
  fc.constantFrom(
    'f',
    'd',
    'l',
    'c',
    'b',
    'x',
    '0644',
    '7777',
    '0',
    '1000',
    '-',
    '%2D',
    '1764310762.123456789',
    '-1.000000000',
    '5',
    'a'.repeat(64),
    '..',
    '.',
    '/',
    '%2F',
    '%2f',
    '%00',
    '%2E%2E',
    '%',
    '%G0',
    'a',
    'etc',
    '8:1',
    '\n',
    '\r',
    '\t',
    '\u0000',
    '\ufffd',
    '$(reboot)',
  ),
  fc.string({ maxLength: 8 }),
);
const hostileLine = fc
  .array(fc.tuple(fragment, fc.constantFrom(' ', '', '', '/')), { maxLength: 14 })
  .map((parts) => parts.map(([f, sep]) => f + sep).join(''));

/** A valid-looking line with one field swapped for a hostile fragment: exercises every check in turn. */
const mutatedLine = fc.tuple(entry, fc.nat({ max: 10 }), fragment).map(([e, i, frag]) => {
  const fields = formatManifestLine(e).split(' ');
  fields[Math.min(i, fields.length - 1)] = frag;
  return fields.join(' ');
});

const anyLine = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'binary-ascii' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  hostileLine,
  mutatedLine,
);

// ---------------------------------------------------------------------------------------------------------
// round trip

test('property: any entry formats to one line of printable ASCII fields and parses back equal', () => {
  fc.assert(
    fc.property(entry, (e) => {
      const line = formatManifestLine(e);
      assert.match(line, /^[\x21-\x7e]+( [\x21-\x7e]+)*$/, 'fields of printable ASCII, single spaces');
      const r = parseManifestLine(line);
      assert.ok(r.ok, `rejected its own line ${JSON.stringify(line)}: ${r.ok ? '' : r.error}`);
      assert.deepEqual(r.entry, e);
    }),
    RUNS,
  );
});

// ---------------------------------------------------------------------------------------------------------
// hostile lines

test('property: parseManifestLine never throws, and what it accepts stays inside tree/', () => {
  fc.assert(
    fc.property(anyLine, (line) => {
      const r = parseManifestLine(line);
      if (!r.ok) {
        assert.equal(typeof r.error, 'string');
        return;
      }
      const p = r.entry.path;
      assert.equal(checkRelativePath(p), undefined, `accepted unsafe path ${JSON.stringify(p.toString())}`);
      assert.notEqual(p[0], 0x2f, 'relative');
      assert.equal(p.includes(0), false, 'no NUL');
      const parts = p.toString('latin1').split('/');
      assert.ok(!parts.includes('.') && !parts.includes('..') && !parts.includes(''));
      if (r.entry.target !== undefined) assert.equal(r.entry.target.includes(0), false);
    }),
    { numRuns: 3000 },
  );
});

test('property: an accepted line is canonical in effect: format(parse(line)) parses to the same entry', () => {
  fc.assert(
    fc.property(anyLine, (line) => {
      const r = parseManifestLine(line);
      if (!r.ok) return;
      const again = parseManifestLine(formatManifestLine(r.entry));
      assert.ok(again.ok, `re-formatted line rejected: ${again.ok ? '' : again.error}`);
      assert.deepEqual(again.entry, r.entry);
    }),
    { numRuns: 3000 },
  );
});

test('regression: an empty or badly escaped user/group field is rejected, not read as "no name"', () => {
  const base = formatManifestLine({
    type: 'd',
    mode: 0o755,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtimeNs: 0n,
    size: 0,
    sha256: undefined,
    path: Buffer.from('a'),
    target: undefined,
  }).split(' ');
  for (const [index, bad] of [
    [4, ''],
    [5, ''],
    [4, '%ZZ'],
    [5, '%4'],
    [4, '-x'],
  ] as const) {
    const fields = [...base];
    fields[index] = bad;
    const r = parseManifestLine(fields.join(' '));
    assert.equal(r.ok, false, `field ${index} = ${JSON.stringify(bad)} accepted`);
  }
  assert.equal(parseManifestLine(base.join(' ')).ok, true);
});

test('property: escaped traversal is rejected: ../x, /etc/x, a/../../x in any escaping', () => {
  const escapings = (s: string): fc.Arbitrary<string> =>
    fc
      .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
      .map((esc) =>
        Array.from(Buffer.from(s, 'latin1'), (b, i) =>
          esc[i] || b <= 0x20 ? `%${b.toString(16).padStart(2, '0')}` : String.fromCharCode(b),
        ).join(''),
      );
  const bad = fc.constantFrom('../x', '/etc/x', 'a/../../x', 'a/./b', 'a//b', 'a/', '..', '.', 'a\u0000b');
  fc.assert(
    fc.property(bad.chain(escapings), (path) => {
      const line = `f 0644 0 0 root root 0.000000000 0 ${'0'.repeat(64)} ${path}`;
      assert.equal(parseManifestLine(line).ok, false, `accepted ${path}`);
    }),
    RUNS,
  );
});

// ---------------------------------------------------------------------------------------------------------
// tree order

/** Paths without NUL (what checkRelativePath lets through), short components so prefixes collide. */
const smallComponent = fc
  .array(fc.constantFrom(0x2d, 0x2e, 0x30, 0x41, 0x61, 0x62, 0x7e, 0x80, 0xff, 0x01, 0x20), {
    minLength: 1,
    maxLength: 3,
  })
  .map((b) => Buffer.from(b))
  .filter((b) => checkRelativePath(b) === undefined);
const smallPath = fc
  .array(smallComponent, { minLength: 1, maxLength: 4 })
  .map((parts) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p]))));

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

test('property: compareTreeOrder is a total order on paths', () => {
  fc.assert(
    fc.property(smallPath, smallPath, smallPath, (a, b, c) => {
      assert.equal(sign(compareTreeOrder(a, a)), 0);
      assert.equal(compareTreeOrder(a, b) === 0, a.equals(b), 'equal only for equal bytes');
      assert.equal(sign(compareTreeOrder(a, b)) + sign(compareTreeOrder(b, a)), 0, 'antisymmetric');
      if (compareTreeOrder(a, b) <= 0 && compareTreeOrder(b, c) <= 0) {
        assert.ok(compareTreeOrder(a, c) <= 0, 'transitive');
      }
    }),
    { numRuns: 2000 },
  );
});

interface Node {
  children: Map<string, Node>;
}

/** The order a depth-first walk with children sorted bytewise (walkTree) visits the paths in. */
function depthFirstOrder(paths: readonly Buffer[]): Buffer[] {
  const root: Node = { children: new Map() };
  for (const p of paths) {
    let node = root;
    for (const part of p.toString('latin1').split('/')) {
      let next = node.children.get(part);
      if (!next) {
        next = { children: new Map() };
        node.children.set(part, next);
      }
      node = next;
    }
  }
  const out: Buffer[] = [];
  const visit = (node: Node, prefix: string | undefined) => {
    const names = [...node.children.keys()].sort((x, y) =>
      Buffer.compare(Buffer.from(x, 'latin1'), Buffer.from(y, 'latin1')),
    );
    for (const name of names) {
      const rel = prefix === undefined ? name : `${prefix}/${name}`;
      out.push(Buffer.from(rel, 'latin1'));
      visit(node.children.get(name) as Node, rel);
    }
  };
  visit(root, undefined);
  return out;
}

test('property: sorting by compareTreeOrder gives the depth-first walk order, which passes the sequence check', () => {
  fc.assert(
    fc.property(fc.array(smallPath, { minLength: 1, maxLength: 25 }), (paths) => {
      const walk = depthFirstOrder(paths);
      const sorted = [...walk].sort(compareTreeOrder);
      assert.deepEqual(
        sorted.map((p) => p.toString('latin1')),
        walk.map((p) => p.toString('latin1')),
      );
      // Every inner node of the walk is a directory; a manifest in this order passes checkEntrySequence.
      const dirs = new DirChain();
      const isParent = new Set(
        walk.flatMap((p) => {
          const i = p.lastIndexOf(0x2f);
          return i < 0 ? [] : [p.subarray(0, i).toString('latin1')];
        }),
      );
      let prev: ManifestEntry | undefined;
      for (const p of walk) {
        const e: ManifestEntry = {
          type: isParent.has(p.toString('latin1')) ? 'd' : 'f',
          mode: 0o644,
          uid: 0,
          gid: 0,
          user: undefined,
          group: undefined,
          mtimeNs: 0n,
          size: 0,
          sha256: undefined,
          path: p,
          target: undefined,
        };
        assert.equal(checkEntrySequence(prev, e, dirs), undefined, p.toString('latin1'));
        prev = e;
      }
      // and a duplicate anywhere is caught
      const dup = walk.at(-1) as Buffer;
      const last: ManifestEntry = { ...(prev as ManifestEntry), path: dup };
      assert.equal(checkEntrySequence(prev, last, dirs), 'duplicate path');
    }),
    { numRuns: 1000 },
  );
});

/**
 * The sequence check as it was before issue 10 (hole 6): every directory kept in a Set, memory
 * growing with the manifest. The reference the constant-memory check must agree with.
 */
function setSequenceCheck(
  prev: ManifestEntry | undefined,
  e: ManifestEntry,
  dirs: Set<string>,
): string | undefined {
  if (prev && compareTreeOrder(prev.path, e.path) >= 0) {
    return compareTreeOrder(prev.path, e.path) === 0 ? 'duplicate path' : 'paths not in tree order';
  }
  const i = e.path.lastIndexOf(0x2f);
  if (i >= 0 && !dirs.has(e.path.subarray(0, i).toString('latin1')))
    return 'parent directory not listed before it';
  if (e.type === 'd') dirs.add(e.path.toString('latin1'));
  return undefined;
}

const seqEntry = (path: Buffer, type: 'd' | 'f'): ManifestEntry => ({
  type,
  mode: 0o755,
  uid: 0,
  gid: 0,
  user: undefined,
  group: undefined,
  mtimeNs: 0n,
  size: 0,
  sha256: type === 'f' ? 'a'.repeat(64) : undefined,
  path,
  target: undefined,
});

/** Both checks over one manifest: the first problem (line and message) or undefined, each. */
function bothChecks(entries: readonly ManifestEntry[]): {
  set: string | undefined;
  chain: string | undefined;
} {
  const run = (check: (prev: ManifestEntry | undefined, e: ManifestEntry) => string | undefined) => {
    let prev: ManifestEntry | undefined;
    for (const [i, e] of entries.entries()) {
      const r = check(prev, e);
      if (r) return `${i}: ${r}`;
      prev = e;
    }
    return undefined;
  };
  const set = new Set<string>();
  const chain = new DirChain();
  return {
    set: run((p, e) => setSequenceCheck(p, e, set)),
    chain: run((p, e) => checkEntrySequence(p, e, chain)),
  };
}

/** Paths over a tiny alphabet (`a`, `b`, `a.`-style siblings), so parents, prefixes and siblings collide often. */
const tinyPath = fc
  .array(fc.constantFrom('a', 'b', 'a.', 'ab', '-', 'a b'), { minLength: 1, maxLength: 5 })
  .map((parts) => Buffer.from(parts.join('/'), 'latin1'));

test('property: the constant-memory sequence check accepts and rejects exactly what the Set-based one did', () => {
  // manifests in walk order with random types (so parents are sometimes files or missing) ...
  const walked = fc
    .tuple(fc.array(tinyPath, { minLength: 1, maxLength: 30 }), fc.array(fc.boolean(), { maxLength: 60 }))
    .map(([paths, dirFlags]) =>
      depthFirstOrder(paths).map((p, i) => seqEntry(p, (dirFlags[i] ?? true) ? 'd' : 'f')),
    );
  // ... some with entries dropped (orphans), swapped or repeated (order), or in random order
  const mangled = fc
    .tuple(
      walked,
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('drop', 'swap', 'dup')), { maxLength: 3 }),
    )
    .map(([entries, edits]) => {
      const out = [...entries];
      for (const [a, b, op] of edits) {
        if (out.length === 0) break;
        const i = a % out.length;
        const j = b % out.length;
        if (op === 'drop') out.splice(i, 1);
        else if (op === 'dup') out.splice(i, 0, out[i] as ManifestEntry);
        else [out[i], out[j]] = [out[j] as ManifestEntry, out[i] as ManifestEntry];
      }
      return out;
    });
  const random = fc.array(
    fc.tuple(tinyPath, fc.boolean()).map(([p, d]) => seqEntry(p, d ? 'd' : 'f')),
    { maxLength: 20 },
  );
  let accepted = 0;
  let rejected = 0;
  fc.assert(
    fc.property(fc.oneof(walked, mangled, random), (entries) => {
      const r = bothChecks(entries);
      assert.equal(r.chain, r.set);
      if (r.set === undefined) accepted++;
      else rejected++;
    }),
    { numRuns: 3000 },
  );
  // both outcomes were exercised, not only one
  assert.ok(accepted > 100 && rejected > 100, `accepted ${accepted}, rejected ${rejected}`);
});

// ---------------------------------------------------------------------------------------------------------
// SHA256SUMS

/** The file name GNU `sha256sum -c` reads from one line (its escaping rules), or undefined. */
function gnuCheckName(line: Buffer): Buffer | undefined {
  const text = line.subarray(0, line.length - 1); // the newline
  const escaped = text[0] === 0x5c;
  const body = escaped ? text.subarray(1) : text;
  if (body.subarray(64, 66).toString() !== '  ') return undefined;
  const name = body.subarray(66);
  if (!escaped) return name;
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const b = name[i] ?? 0;
    if (b !== 0x5c) {
      out.push(b);
      continue;
    }
    const n = name[++i];
    if (n === 0x5c) out.push(0x5c);
    else if (n === 0x6e) out.push(0x0a);
    else if (n === 0x72) out.push(0x0d);
    else return undefined;
  }
  return Buffer.from(out);
}

test('property: a SHA256SUMS line names the same file for sha256sum -c, never its stdin', () => {
  fc.assert(
    fc.property(fc.oneof(relPath, fc.constant(Buffer.from('-'))), hex64, (path, sha) => {
      const line = formatSha256SumsLine(sha, path);
      assert.equal(line.indexOf(0x0a), line.length - 1, 'one line');
      const name = gnuCheckName(line);
      assert.ok(name, `not a GNU checksum line: ${JSON.stringify(line.toString('latin1'))}`);
      assert.notEqual(name.toString('latin1'), '-', 'sha256sum -c would read stdin');
      const same = name.equals(path) || name.equals(Buffer.concat([Buffer.from('./'), path]));
      assert.ok(
        same,
        `${JSON.stringify(name.toString('latin1'))} vs ${JSON.stringify(path.toString('latin1'))}`,
      );
    }),
    RUNS,
  );
});

test('regression: a top-level file named "-" is listed as ./- in SHA256SUMS', () => {
  assert.equal(formatSha256SumsLine('a'.repeat(64), Buffer.from('-')).toString(), `${'a'.repeat(64)}  ./-\n`);
  assert.equal(
    formatSha256SumsLine('a'.repeat(64), Buffer.from('d/-')).toString(),
    `${'a'.repeat(64)}  d/-\n`,
  );
});

/**
 * Offsite record schemas: what we write parses back equal; whatever a hostile bucket holds (bad JSON, huge
 * sizes, offsets outside the pack, duplicate ids, unsorted maps) is refused with one RecordError line and
 * never crashes the parser.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  commitKey,
  EMPTY_SHA256,
  FILES_MAP_HEADER,
  FILES_MAP_IDS_PER_LINE,
  FilesMapReader,
  formatCommit,
  formatFilesMap,
  formatPackIndex,
  formatRepoConfig,
  indexKey,
  MAX_PACK_BLOBS,
  packKey,
  parseCommit,
  parseCommitKey,
  parseFilesMap,
  parseIndexKey,
  parsePackIndex,
  parsePackKey,
  parseRepoConfig,
  RecordError,
  type Commit,
  type PackIndex,
  type RepoConfig,
} from '../../src/core/offsite-records.js';

const hex = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

function refused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RecordError, `expected RecordError, got ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return true;
  });
}

/** Runs fn; passes when it returns or throws a one-line RecordError, fails on any other throw. */
function parsesOrRefuses(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RecordError, `unexpected ${String(err)}`);
    assert.ok(!err.message.includes('\n'));
  }
}

// ---------------------------------------------------------------------------------------------------------
// repository config

const config: RepoConfig = {
  version: 1,
  id: 'a'.repeat(32),
  created: '2026-12-07T15:00:00.000Z',
  chunker: { minSize: 256 * 1024, avgSize: 1024 * 1024, maxSize: 4 * 1024 * 1024 },
  encrypted: true,
  keys: Buffer.from('age-encryption.org/v1 …').toString('base64'),
};

test('repository config round-trips; keys iff encrypted; unknown fields and bad chunkers are refused', () => {
  assert.deepEqual(parseRepoConfig(formatRepoConfig(config)), config);
  const plain = { ...config, encrypted: false, keys: undefined };
  assert.deepEqual(parseRepoConfig(JSON.stringify(plain)), JSON.parse(JSON.stringify(plain)));
  refused(
    () => parseRepoConfig(JSON.stringify({ ...config, keys: undefined })),
    /keys: an encrypted repository needs/,
  );
  refused(
    () => parseRepoConfig(JSON.stringify({ ...plain, keys: 'AAAA' })),
    /a plain repository has no keys/,
  );
  refused(() => parseRepoConfig(JSON.stringify({ ...config, extra: 1 })), /repository config/);
  refused(() => parseRepoConfig(JSON.stringify({ ...config, version: 2 })), /at version/);
  refused(
    () =>
      parseRepoConfig(JSON.stringify({ ...config, chunker: { minSize: 64, avgSize: 1000, maxSize: 4096 } })),
    /power of two/,
  );
  refused(
    () =>
      parseRepoConfig(
        JSON.stringify({ ...config, chunker: { minSize: 64, avgSize: 2 ** 30, maxSize: 2 ** 31 } }),
      ),
    /above/,
  );
  refused(() => parseRepoConfig('{"version":1'), /not JSON/);
  refused(() => parseRepoConfig(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not UTF-8/);
  refused(() => parseRepoConfig(' '.repeat(70 * 1024)), /more than the 65536 allowed/);
  fc.assert(fc.property(fc.jsonValue(), (v) => parsesOrRefuses(() => parseRepoConfig(JSON.stringify(v)))));
});

// ---------------------------------------------------------------------------------------------------------
// pack index

/** A valid index: blobs laid end to end from random plain lengths. */
const validIndex = fc
  .tuple(
    fc.boolean(),
    fc.uniqueArray(hex, { maxLength: 20 }),
    fc.array(fc.integer({ min: 0, max: 200_000 }), { maxLength: 20 }),
    fc.integer({ min: 0, max: 50 }),
  )
  .map(([encrypted, ids, lens, tail]): PackIndex => {
    let off = 0;
    const blobs = ids.slice(0, lens.length).map((id, i) => {
      const plainLength = lens[i]!;
      const length = encrypted
        ? plainLength + 200 + 16 + 16 * Math.max(1, Math.ceil(plainLength / 65536))
        : plainLength;
      const e = { id, offset: off, length, plainLength };
      off += length;
      return e;
    });
    return { version: 1, pack: 'b'.repeat(64), size: off + tail, encrypted, blobs };
  });

test('a pack index round-trips and its blobs lie inside the pack, in order, once each', () => {
  fc.assert(
    fc.property(validIndex, (ix) => {
      const back = parsePackIndex(formatPackIndex(ix), {
        packId: ix.pack,
        packSize: ix.size,
        encrypted: ix.encrypted,
      });
      assert.deepEqual(back, ix);
    }),
  );
});

test('hostile indexes are refused with one line: outside the pack, overlaps, huge lengths, duplicates', () => {
  const id1 = 'c'.repeat(64);
  const id2 = 'd'.repeat(64);
  const base: PackIndex = {
    version: 1,
    pack: 'b'.repeat(64),
    size: 100,
    encrypted: false,
    blobs: [
      { id: id1, offset: 0, length: 40, plainLength: 40 },
      { id: id2, offset: 40, length: 60, plainLength: 60 },
    ],
  };
  const exp = { packId: base.pack, packSize: 100, encrypted: false };
  const with_ = (blobs: PackIndex['blobs'], extra: Partial<PackIndex> = {}) =>
    JSON.stringify({ ...base, ...extra, blobs });
  assert.deepEqual(parsePackIndex(JSON.stringify(base), exp), base);
  refused(
    () => parsePackIndex(with_([{ id: id1, offset: 90, length: 40, plainLength: 40 }]), exp),
    /outside the 100-byte pack/,
  );
  refused(
    () => parsePackIndex(with_([{ id: id1, offset: 2 ** 52, length: 1, plainLength: 1 }]), exp),
    /outside/,
  );
  refused(
    () =>
      parsePackIndex(
        with_([{ id: id1, offset: 0, length: 2 ** 40, plainLength: 2 ** 40 }], { size: 2 ** 40 }),
        { ...exp, packSize: undefined },
      ),
    /size|plainLength/,
  );
  refused(
    () =>
      parsePackIndex(
        with_([
          { id: id1, offset: 0, length: 40, plainLength: 40 },
          { id: id2, offset: 30, length: 10, plainLength: 10 },
        ]),
        exp,
      ),
    /overlaps/,
  );
  refused(
    () =>
      parsePackIndex(
        with_([
          { id: id1, offset: 0, length: 40, plainLength: 40 },
          { id: id1, offset: 40, length: 10, plainLength: 10 },
        ]),
        exp,
      ),
    /duplicate id/,
  );
  refused(
    () => parsePackIndex(with_([{ id: id1, offset: -1, length: 1, plainLength: 1 }]), exp),
    /blobs\.0\.offset/,
  );
  refused(
    () => parsePackIndex(with_([{ id: id1, offset: 0, length: 1.5, plainLength: 1 }]), exp),
    /blobs\.0\.length/,
  );
  refused(
    () => parsePackIndex(with_([{ id: 'X'.repeat(64), offset: 0, length: 1, plainLength: 1 }]), exp),
    /hex/,
  );
  refused(
    () => parsePackIndex(with_([{ id: id1, offset: 0, length: 5, plainLength: 4 }]), exp),
    /length 5 != plainLength 4/,
  );
  refused(
    () =>
      parsePackIndex(with_([{ id: id1, offset: 0, length: 50, plainLength: 40 }], { encrypted: true }), {
        ...exp,
        encrypted: true,
      }),
    /does not fit an age file/,
  );
  refused(() => parsePackIndex(JSON.stringify(base), { ...exp, packId: 'e'.repeat(64) }), /names pack bbbb/);
  refused(
    () => parsePackIndex(JSON.stringify(base), { ...exp, packSize: 99 }),
    /says 100 bytes, the pack has 99/,
  );
  refused(() => parsePackIndex(JSON.stringify(base), { ...exp, encrypted: true }), /says plain/);
  const many = Array.from({ length: MAX_PACK_BLOBS + 1 }, () => ({
    id: id1,
    offset: 0,
    length: 0,
    plainLength: 0,
  }));
  refused(() => parsePackIndex(with_(many), exp), /blobs/);
});

test('any mutation of a valid index parses to a sound index or is refused with one line', () => {
  const mutate = fc.tuple(
    validIndex,
    fc.nat(),
    fc.constantFrom('offset', 'length', 'plainLength', 'id', 'size', 'dup'),
    fc.oneof(fc.integer({ min: -5, max: 300_000 }), fc.constant(2 ** 53), fc.constant(1e300), fc.double()),
  );
  fc.assert(
    fc.property(mutate, ([ix, pick, field, value]) => {
      const j = JSON.parse(JSON.stringify(ix)) as { size: number; blobs: Record<string, unknown>[] };
      const b = j.blobs.length === 0 ? undefined : j.blobs[pick % j.blobs.length];
      if (field === 'size') j.size = value;
      else if (field === 'dup' && b !== undefined) j.blobs.push({ ...b });
      else if (b !== undefined) b[field] = field === 'id' ? String(value) : value;
      try {
        const got = parsePackIndex(JSON.stringify(j), { packId: ix.pack, encrypted: ix.encrypted });
        const ids = new Set<string>();
        let end = 0;
        for (const e of got.blobs) {
          assert.ok(e.offset >= end && e.offset + e.length <= got.size);
          assert.ok(!ids.has(e.id));
          ids.add(e.id);
          end = e.offset + e.length;
        }
      } catch (err) {
        assert.ok(err instanceof RecordError, String(err));
        assert.ok(!err.message.includes('\n'));
      }
    }),
    { numRuns: 500 },
  );
});

// ---------------------------------------------------------------------------------------------------------
// commit

const ref = (s: string) => ({ sha256: createHash('sha256').update(s).digest('hex'), size: s.length });
const commit: Commit = {
  version: 1,
  source: 'app1',
  stream: 'data',
  id: '2026-12-07T150000Z',
  created: '2026-12-07T15:01:02.000Z',
  objects: { manifest: ref('m'), SHA256SUMS: ref('s'), 'meta.json': ref('j'), files: ref('f') },
  packs: ['1'.repeat(64), '2'.repeat(64)],
};
const who = { source: 'app1', stream: 'data', id: '2026-12-07T150000Z' } as const;

test('a commit round-trips (packs sorted and unique) and must name the generation of its key', () => {
  assert.deepEqual(
    parseCommit(formatCommit({ ...commit, packs: [...commit.packs].reverse().concat(commit.packs) }), who),
    commit,
  );
  refused(() => parseCommit(formatCommit(commit), { ...who, stream: 'logs' }), /it names app1\/data/);
  refused(
    () => parseCommit(JSON.stringify({ ...commit, packs: [...commit.packs].reverse() }), who),
    /sorted and unique/,
  );
  refused(() => parseCommit(JSON.stringify({ ...commit, id: '2026-13-07T150000Z' }), who), /generation id/);
  refused(() => parseCommit(JSON.stringify({ ...commit, source: '../etc' }), who), /source name/);
  refused(
    () => parseCommit(JSON.stringify({ ...commit, objects: { ...commit.objects, files: undefined } }), who),
    /objects\.files/,
  );
  fc.assert(fc.property(fc.jsonValue(), (v) => parsesOrRefuses(() => parseCommit(JSON.stringify(v), who))));
});

test('object keys: packs fan out by two hex digits; listings parse only well-formed keys', () => {
  const id = 'ab'.repeat(32);
  assert.equal(packKey(id), `packs/ab/${id}`);
  assert.equal(parsePackKey(packKey(id)), id);
  assert.equal(parsePackKey(`packs/cd/${id}`), undefined);
  assert.equal(parseIndexKey(indexKey(id)), id);
  assert.equal(parseIndexKey(`index/${id}.tmp`), undefined);
  assert.deepEqual(parseCommitKey(commitKey('app1', 'logs', who.id)), {
    source: 'app1',
    stream: 'logs',
    id: who.id,
  });
  for (const bad of [
    'commits/../data/2026-12-07T150000Z',
    'commits/app1/other/2026-12-07T150000Z',
    'commits/app1/data/x',
    'commits/a/b/data/2026-12-07T150000Z',
  ]) {
    assert.equal(parseCommitKey(bad), undefined, bad);
  }
});

// ---------------------------------------------------------------------------------------------------------
// files map

const filesMap = fc
  .uniqueArray(
    fc.tuple(
      hex,
      fc.oneof(
        fc.array(hex, { minLength: 1, maxLength: 5 }),
        fc.array(hex, { minLength: 1020, maxLength: 2100 }),
      ),
    ),
    { selector: ([s]) => s, maxLength: 6 },
  )
  .chain((entries) =>
    fc
      .boolean()
      .map((withEmpty) => new Map<string, string[]>(withEmpty ? [...entries, [EMPTY_SHA256, []]] : entries)),
  );

test('a files map round-trips, long lists split into continuation lines of at most 1024 ids', () => {
  fc.assert(
    fc.property(filesMap, (m) => {
      const text = formatFilesMap(m);
      for (const line of text.split('\n')) assert.ok(line.split(' ').length <= FILES_MAP_IDS_PER_LINE + 1);
      assert.deepEqual(parseFilesMap(text), m);
    }),
    { numRuns: 15 },
  );
});

test('hostile files maps are refused with one line naming the line', () => {
  const a = '1'.repeat(64);
  const b = '2'.repeat(64);
  const id = 'f'.repeat(64);
  const good = `${FILES_MAP_HEADER}\n${a} ${id}\n${b} ${id} ${id}\n`;
  assert.equal(parseFilesMap(good).size, 2);
  refused(() => parseFilesMap(`${FILES_MAP_HEADER}\n${b} ${id}\n${a} ${id}\n`), /files map:3: not sorted/);
  refused(
    () => parseFilesMap(`${FILES_MAP_HEADER}\n${a} ${id}\n${a} ${id}\n`),
    /files map:3: file 111111111111 listed twice/,
  );
  refused(() => parseFilesMap(`${FILES_MAP_HEADER}\n${a}\n`), /:2: a non-empty file without blobs/);
  refused(() => parseFilesMap(`${FILES_MAP_HEADER}\n${a} xyz\n`), /:2: expected blob ids/);
  refused(() => parseFilesMap(`${a} ${id}\n`), /:1: expected "baton-offsite-files 1"/);
  refused(() => parseFilesMap(`${FILES_MAP_HEADER}\n${a} ${id}`), /last line is not complete/);
  refused(() => parseFilesMap(''), /empty/);
  refused(
    () => parseFilesMap(`${FILES_MAP_HEADER}\n${a}${` ${id}`.repeat(FILES_MAP_IDS_PER_LINE + 1)}\n`),
    /more than 1024 ids|line longer than/,
  );
  refused(() => parseFilesMap(`${FILES_MAP_HEADER}\n${a} ${id}\n`, { maxBytes: 10 }), /more than 10 bytes/);
  const r = new FilesMapReader('m', 1);
  r.push(FILES_MAP_HEADER);
  r.push(`${a} ${id}`);
  refused(() => r.push(`${b} ${id}`), /m:3: more than 1 files/);
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (s) =>
      parsesOrRefuses(() => parseFilesMap(`${FILES_MAP_HEADER}\n${s}\n`)),
    ),
  );
});

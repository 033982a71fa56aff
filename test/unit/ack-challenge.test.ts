/**
 * The ack challenge (src/core/ack-challenge.ts): sampling, proofs, and the line format both sides parse.
 * Table tests plus properties over random manifests and random hostile lines.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ACK_RANGES,
  ChallengeSampler,
  checkAnswer,
  formatAnswer,
  formatChallenge,
  MAX_ACK_LINE_BYTES,
  MAX_ACK_RANGES,
  MAX_RANGE_BYTES,
  parseAnswerHeader,
  parseAnswerLine,
  parseChallenge,
  parseChallengeHeader,
  parseRangeLine,
  type RandomInt,
} from '../../src/core/ack-challenge.js';
import { answerRange } from '../../src/generation/ack-proof.js';

const NONCE = 'ab'.repeat(32);

/** A seeded random source (mulberry32), so a property run is reproducible. */
function seeded(seed: number): RandomInt {
  let a = seed >>> 0;
  return (max) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(r * max);
  };
}

const entryArb = fc.record({
  type: fc.constantFrom('f', 'd', 'l', 'p'),
  size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300_000 })),
});

test('a manifest with files -> every range names a file of size > 0 and lies inside it', () => {
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 60 }), fc.integer(), (entries, seed) => {
      const s = new ChallengeSampler(seeded(seed));
      entries.forEach((e, i) => s.offer(i, e.type, e.size));
      const eligible = entries.some((e) => e.type === 'f' && e.size > 0);
      const ch = s.challenge(NONCE, 123);
      assert.equal(ch.ranges.length, ACK_RANGES);
      for (const r of ch.ranges) {
        assert.ok(r.length >= 1 && r.length <= MAX_RANGE_BYTES);
        if (r.target.kind === 'file') {
          assert.ok(eligible);
          const e = entries[r.target.entry];
          assert.ok(e && e.type === 'f' && e.size > 0, 'a regular file of size > 0');
          assert.ok(r.offset + r.length <= e.size, 'inside the file');
        } else {
          assert.equal(eligible, false, 'the manifest only when no file qualifies');
          assert.ok(r.offset + r.length <= 123);
        }
      }
    }),
  );
});

test('format then parse a challenge -> the same challenge', () => {
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 30 }), fc.integer(), (entries, seed) => {
      const s = new ChallengeSampler(seeded(seed));
      entries.forEach((e, i) => s.offer(i, e.type, e.size));
      const nonce = randomBytes(32).toString('hex');
      const ch = s.challenge(nonce, 1 + (Math.abs(seed) % 5000));
      const text = formatChallenge(ch);
      assert.ok(text.endsWith('\n'));
      const lines = text.slice(0, -1).split('\n');
      for (const l of lines) assert.ok(l.length <= MAX_ACK_LINE_BYTES);
      assert.deepEqual(parseChallenge(lines), { ok: true, value: ch });
    }),
  );
});

test('sampling -> every qualifying file can be picked (uniform reservoir), in one pass', () => {
  const seen = new Set<number>();
  const random = seeded(7);
  for (let run = 0; run < 200; run++) {
    const s = new ChallengeSampler(random, 2);
    for (let i = 0; i < 20; i++) s.offer(i, 'f', 10);
    for (const r of s.challenge(NONCE, 1).ranges) if (r.target.kind === 'file') seen.add(r.target.entry);
  }
  assert.equal(seen.size, 20);
});

test('no file and an empty manifest -> refuses to make a challenge', () => {
  const s = new ChallengeSampler(seeded(1));
  s.offer(0, 'd', 0);
  assert.throws(() => s.challenge(NONCE, 0), /nothing to challenge/);
  assert.throws(() => new ChallengeSampler(seeded(1), 0), /ranges per challenge/);
  assert.throws(() => new ChallengeSampler(seeded(1), MAX_ACK_RANGES + 1), /ranges per challenge/);
  assert.throws(() => s.challenge('AB'.repeat(32), 10), /nonce/);
});

test('answerRange -> sha256 of the nonce bytes then the range bytes', () => {
  const bytes = Buffer.from('hello');
  const want = createHash('sha256')
    .update(Buffer.concat([Buffer.from(NONCE, 'hex'), bytes]))
    .digest('hex');
  assert.equal(answerRange(NONCE, bytes), want);
  assert.notEqual(answerRange('cd'.repeat(32), bytes), want, 'another nonce, another proof');
});

test('checkAnswer: the right hashes -> ok; one wrong, too few, too many, malformed -> refused', () => {
  const expected = ['1'.repeat(64), '2'.repeat(64)];
  const lines = (hs: string[]) => formatAnswer(hs).slice(0, -1).split('\n');
  assert.deepEqual(checkAnswer(expected, lines(expected)), { ok: true, value: true });
  const cases: Array<[string, string[], RegExp]> = [
    ['one wrong', lines(['1'.repeat(64), '3'.repeat(64)]), /1 of 2 range hashes are wrong/],
    ['too few', lines(['1'.repeat(64)]), /asked for 2/],
    ['too many', lines([...expected, '1'.repeat(64)]), /asked for 2/],
    ['header lies', ['baton-ack-answer 1 2', '1'.repeat(64)], /asked for 2/],
    ['upper case', lines(['1'.repeat(64), 'A'.repeat(64)]), /64 lowercase hex/],
    ['not an answer', ['hello', ...expected], /not an ack answer/],
    ['nothing', [], /no answer/],
    ['zero count', ['baton-ack-answer 1 0'], /1\.\.64/],
  ];
  for (const [name, l, re] of cases) {
    const r = checkAnswer(expected, l);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.match(r.error, re, name);
  }
});

test('range lines: hostile numbers and shapes -> refused', () => {
  const bad = [
    'file -1 0 1',
    'file 01 0 1',
    'file 1 0 0',
    `file 1 0 ${MAX_RANGE_BYTES + 1}`,
    'file 1 99999999999999999 1',
    'file 1 0 1 x',
    'file 1e3 0 1',
    'manifest 0',
    'manifest 0 1 2',
    'file  1 0 1',
    'FILE 1 0 1',
    `file 1 0 1${' '.repeat(MAX_ACK_LINE_BYTES)}`,
    'file 1 0 1\r',
    'path ../../etc/shadow 0 1',
  ];
  for (const l of bad) assert.equal(parseRangeLine(l).ok, false, l);
  assert.deepEqual(parseRangeLine('file 3 10 5'), {
    ok: true,
    value: { target: { kind: 'file', entry: 3 }, offset: 10, length: 5 },
  });
  assert.deepEqual(parseRangeLine('manifest 0 1'), {
    ok: true,
    value: { target: { kind: 'manifest' }, offset: 0, length: 1 },
  });
});

test('challenge headers: a wrong version, nonce or count -> refused; a challenge short of lines -> refused', () => {
  for (const l of [
    `baton-ack-challenge 2 ${NONCE} 8`,
    `baton-ack-challenge 1 ${NONCE.toUpperCase()} 8`,
    `baton-ack-challenge 1 ${NONCE} 0`,
    `baton-ack-challenge 1 ${NONCE} ${MAX_ACK_RANGES + 1}`,
    `baton-ack-challenge 1 ${NONCE} 8 x`,
    `baton-ack-challenge 1 ${NONCE.slice(2)} 8`,
  ]) {
    assert.equal(parseChallengeHeader(l).ok, false, l);
  }
  assert.equal(parseChallenge([`baton-ack-challenge 1 ${NONCE} 2`, 'file 1 0 1']).ok, false);
  assert.equal(parseChallenge([]).ok, false);
});

test('any line at all -> the parsers answer (never throw) and accept only well-formed lines', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300, unit: 'binary' }), (line) => {
      const parsers = [parseChallengeHeader, parseRangeLine, parseAnswerHeader, parseAnswerLine];
      for (const p of parsers) {
        const r = p(line);
        if (r.ok) {
          assert.ok(line.length <= MAX_ACK_LINE_BYTES);
          assert.match(line, /^[\x20-\x7e]*$/);
        }
      }
    }),
  );
});

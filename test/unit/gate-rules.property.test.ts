/**
 * Property-based tests of the gate's allow-list: whatever a remote caller sends, parseGateRequest answers
 * (never throws) and lets through only `list`, a well-formed `ack`, or a read-only rsync pull of exactly one
 * generation with only the options baton's own pull sends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  MAX_GATE_REQUEST_BYTES,
  parseGateRequest,
  RSYNC_PULL_CAPABILITIES,
  RSYNC_PULL_SHORT_FLAGS,
  RSYNC_SENDER_PREFIX,
  rsyncServerArgv,
} from '../../src/core/gate-rules.js';
import { formatGenerationId, isGenerationId } from '../../src/generation/names.js';

// C0, DEL, C1: what a second command or a terminal escape would need.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const ACK = /^ack ([^ ]+) ([0-9a-f]{64})$/;

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const validId = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .map(formatGenerationId);
/** Ids that look right at a glance: month 13, hour 25, too many digits, lowercase z… */
const nearId = fc.oneof(
  fc.stringMatching(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$/),
  fc.stringMatching(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{5,7}[Zz]?$/),
  fc.constantFrom('2026-13-45T999999Z', '../x', '2026-02-30T000000Z', '.2026-11-28T061922Z'),
);

const fragment = fc.oneof(
  fc.constantFrom(
    'list',
    'ack',
    'rsync',
    '--server',
    '--sender',
    '--remove-source-files',
    '--delete',
    '-e',
    '.',
    '..',
    '../',
    '/etc/shadow',
    ';',
    '&&',
    '|',
    '$(reboot)',
    '`id`',
    '\n',
    '\r',
    '\t',
    '\u0000',
    '\u001b[2J',
    '\u0085',
    '\u00a0',
    '\ufffd',
    '\u202e',
  ),
  hex64,
  validId,
  nearId,
  fc.string({ maxLength: 6 }),
);
const built = fc
  .array(fc.tuple(fragment, fc.constantFrom(' ', ' ', '', '  ')), { maxLength: 10 })
  .map((parts) => parts.map(([f, sep]) => f + sep).join(''));

/** Requests that are almost allowed: an allowed one with one character inserted, dropped or changed. */
const allowedRequest = fc.oneof(
  fc.constant('list'),
  fc.constant('list-head'),
  fc.tuple(validId, hex64).map(([id, h]) => `ack ${id} ${h}`),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `${RSYNC_SENDER_PREFIX}${s}`),
  fc.constant(`${RSYNC_SENDER_PREFIX}-lHtpre.iLsfxCIvu --timeout=30 --numeric-ids . 2026-11-28T061922Z/`),
);
const nearMiss = fc
  .tuple(
    allowedRequest,
    fc.nat(),
    fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 2 }),
    fc.boolean(),
  )
  .map(([s, at, insert, drop]) => {
    const i = at % (s.length + 1);
    return drop ? s.slice(0, i) + s.slice(i + 1) : s.slice(0, i) + insert + s.slice(i);
  });

/** Long input around the byte limit, with multi-byte characters so bytes and UTF-16 units differ. */
const long = fc
  .tuple(
    fc.constantFrom(RSYNC_SENDER_PREFIX, 'list', 'ack '),
    fc.integer({ min: MAX_GATE_REQUEST_BYTES - 40, max: MAX_GATE_REQUEST_BYTES + 40 }),
    fc.constantFrom('x', 'é', '€', '😀'),
  )
  .map(
    ([prefix, bytes, ch]) => prefix + ch.repeat(Math.ceil((bytes - prefix.length) / Buffer.byteLength(ch))),
  );

const shortLetters = Object.keys(RSYNC_PULL_SHORT_FLAGS).join('');
const subsetOf = (letters: string) =>
  fc
    .subarray(Array.from(letters))
    .chain((chosen) => fc.shuffledSubarray(chosen, { minLength: chosen.length }));
/** Server argv (after `rsync --server --sender `) that baton's pull could send, in any option order. */
const wellFormedPull = fc
  .record({
    flags: subsetOf(shortLetters),
    caps: subsetOf(RSYNC_PULL_CAPABILITIES),
    longs: fc
      .integer({ min: 1, max: 3600 })
      .chain((n) => fc.shuffledSubarray([`--timeout=${n}`, '--numeric-ids', '--inplace'])),
    id: validId,
  })
  .map(({ flags, caps, longs, id }) => ({
    words: [`-${flags.join('')}e.${caps.join('')}`, ...longs, '.', `${id}/`],
    id,
  }));
/** Words an accepted pull may hold (besides the id): what baton's pull sends, nothing else. */
const ALLOWED_LONG = /^--(timeout=[1-9][0-9]*|numeric-ids|inplace)$/;
function assertOnlyAllowedWords(cmd: string): void {
  const words = cmd.slice(RSYNC_SENDER_PREFIX.length).split(' ');
  const [group, ...rest] = words;
  const m = /^-([A-Za-z]*)e\.([A-Za-z]*)$/.exec(group ?? '');
  assert.ok(m, `option group ${JSON.stringify(group)}`);
  for (const c of m[1] ?? '') assert.ok(shortLetters.includes(c), `flag -${c} accepted`);
  for (const c of m[2] ?? '') assert.ok(RSYNC_PULL_CAPABILITIES.includes(c), `capability ${c} accepted`);
  const path = rest.at(-1) ?? '';
  assert.equal(rest.at(-2), '.');
  assert.ok(path.endsWith('/') && isGenerationId(path.slice(0, -1)), `path ${JSON.stringify(path)}`);
  for (const w of rest.slice(0, -2)) assert.match(w, ALLOWED_LONG);
}

/** A pull with one hostile word put in somewhere: an option, a path, a letter. */
const hostileWord = fc.oneof(
  fc.constantFrom(
    '-L',
    '-k',
    '-K',
    '--copy-links',
    '--copy-unsafe-links',
    '--copy-dirlinks',
    '--files-from=/etc/passwd',
    '--files-from=-',
    '--include-from=/etc/x',
    '--exclude-from=/etc/x',
    '--log-file=/tmp/x',
    '--remove-source-files',
    '--temp-dir=/tmp',
    '--daemon',
    '--protect-args',
    '-s',
    '--timeout=0',
    '../',
    '/etc/',
    '.',
    'tree/',
  ),
  fc.string({ maxLength: 12 }),
);
const tamperedPull = fc
  .tuple(wellFormedPull, hostileWord, fc.nat())
  .map(({ 0: { words }, 1: word, 2: at }) => {
    const i = at % (words.length + 1);
    return `${RSYNC_SENDER_PREFIX}${[...words.slice(0, i), word, ...words.slice(i)].join(' ')}`;
  });

const anyCommand = fc.oneof(
  tamperedPull,
  wellFormedPull.map(({ words }) => `${RSYNC_SENDER_PREFIX}${words.join(' ')}`),
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'binary-ascii' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  built,
  allowedRequest,
  nearMiss,
  long,
);

test('property: parseGateRequest never throws and accepts only list, a valid ack or a read-only rsync', () => {
  fc.assert(
    fc.property(anyCommand, (cmd) => {
      const r = parseGateRequest(cmd);
      switch (r.kind) {
        case 'refused':
          assert.ok(r.reason.length > 0);
          assert.ok(!CONTROL.test(r.reason), 'the reason is one printable line');
          return;
        case 'list':
          assert.equal(cmd, 'list');
          break;
        case 'list-head':
          assert.equal(cmd, 'list-head');
          break;
        case 'ack': {
          const m = ACK.exec(cmd);
          assert.ok(m, `ack accepted from ${JSON.stringify(cmd)}`);
          assert.ok(isGenerationId(m[1] ?? ''), `ack of a non-id ${JSON.stringify(m[1])}`);
          assert.equal(r.id, m[1]);
          assert.equal(r.manifestSha256, m[2]);
          break;
        }
        case 'reject': {
          const m = /^reject ([^ ]+) ([0-9a-f]{64})$/.exec(cmd);
          assert.ok(m && isGenerationId(m[1] ?? ''), `reject accepted from ${JSON.stringify(cmd)}`);
          assert.equal(r.id, m[1]);
          assert.equal(r.manifestSha256, m[2]);
          break;
        }
        case 'rsync':
          assert.ok(cmd.startsWith(RSYNC_SENDER_PREFIX), `rsync accepted from ${JSON.stringify(cmd)}`);
          assertOnlyAllowedWords(cmd);
          break;
      }
      assert.ok(!CONTROL.test(cmd), `accepted a control character: ${JSON.stringify(cmd)}`);
      assert.ok(Buffer.byteLength(cmd, 'utf8') <= MAX_GATE_REQUEST_BYTES, 'accepted an oversized command');
      assert.ok(!cmd.includes('\ufffd'), 'accepted text that was not valid UTF-8');
    }),
    { numRuns: 5000 },
  );
});

test('property: no command and an interactive login are refused', () => {
  assert.equal(parseGateRequest(undefined).kind, 'refused');
  assert.equal(parseGateRequest('').kind, 'refused');
});

test('property: every well-formed request within the limits is accepted as what it is', () => {
  fc.assert(
    fc.property(validId, hex64, (id, h) => {
      assert.deepEqual(parseGateRequest(`ack ${id} ${h}`), { kind: 'ack', id, manifestSha256: h });
      assert.deepEqual(parseGateRequest(`reject ${id} ${h}`), { kind: 'reject', id, manifestSha256: h });
    }),
  );
  fc.assert(
    fc.property(wellFormedPull, ({ words, id }) => {
      const r = parseGateRequest(`${RSYNC_SENDER_PREFIX}${words.join(' ')}`);
      assert.equal(r.kind, 'rsync', JSON.stringify(r));
      if (r.kind !== 'rsync') return;
      assert.equal(r.pull.generation, id);
      // The rebuilt argv parses back to the same request: the gate runs what it checked.
      assert.deepEqual(parseGateRequest(`rsync ${rsyncServerArgv(r.pull).join(' ')}`), r);
    }),
    { numRuns: 2000 },
  );
});

test('property: an ack with a non-id, an uppercase or short hash, or extra text is refused', () => {
  const badAck = fc.oneof(
    fc
      .tuple(
        nearId.filter((s) => !isGenerationId(s)),
        hex64,
      )
      .map(([id, h]) => `ack ${id} ${h}`),
    fc.tuple(validId, hex64).map(([id, h]) => `ack ${id} ${h.toUpperCase()}A`),
    fc.tuple(validId, hex64).map(([id, h]) => `ack ${id} ${h.slice(1)}`),
    fc
      .tuple(validId, hex64, fc.string({ minLength: 1, maxLength: 5 }))
      .map(([id, h, x]) => `ack ${id} ${h} ${x}`),
    fc.tuple(validId, hex64).map(([id, h]) => `ack  ${id} ${h}`),
  );
  fc.assert(
    fc.property(badAck, (cmd) => {
      assert.equal(parseGateRequest(cmd).kind, 'refused', cmd);
    }),
    { numRuns: 1000 },
  );
});

test('property: a push (rsync --server without --sender first) is never accepted', () => {
  const push = fc
    .string({ maxLength: 40 })
    .map((tail) => `rsync --server ${tail}`)
    .filter((s) => !s.startsWith(RSYNC_SENDER_PREFIX));
  fc.assert(
    fc.property(push, (cmd) => {
      assert.equal(parseGateRequest(cmd).kind, 'refused', cmd);
    }),
    { numRuns: 1000 },
  );
});

test('property: a pull with a link-following, list-reading or file-writing option is never accepted', () => {
  const follow = fc.constantFrom(
    '-L',
    '-k',
    '-K',
    '--copy-links',
    '--copy-unsafe-links',
    '--copy-dirlinks',
    '--keep-dirlinks',
    '--files-from=/etc/passwd',
    '--log-file=/tmp/x',
    '--remove-source-files',
    '--temp-dir=/tmp',
  );
  fc.assert(
    fc.property(wellFormedPull, follow, fc.nat(), ({ words }, word, at) => {
      const i = at % (words.length + 1);
      const cmd = `${RSYNC_SENDER_PREFIX}${[...words.slice(0, i), word, ...words.slice(i)].join(' ')}`;
      assert.equal(parseGateRequest(cmd).kind, 'refused', cmd);
    }),
    { numRuns: 2000 },
  );
});

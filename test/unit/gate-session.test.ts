import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatReplyHeader,
  isReplyHeader,
  MAX_REPLY_HEADER_BYTES,
  parseReplyHeader,
  parseSessionRequest,
} from '../../src/core/gate-session.js';
import { parseGateRequest, MAX_GATE_REQUEST_BYTES } from '../../src/core/gate-rules.js';
import { FrameReader } from '../../src/adapters/frame-reader.js';
import { LineTimeout } from '../../src/adapters/line-reader.js';

const SHA = 'a'.repeat(64);
const ID = '2026-11-25T061922Z';

test('reply header: what the gate writes parses back, within the cap', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (code, bytes) => {
      const line = formatReplyHeader(code, bytes);
      assert.ok(line.endsWith('\n'));
      assert.ok(line.length - 1 <= MAX_REPLY_HEADER_BYTES);
      assert.ok(isReplyHeader(line));
      const r = parseReplyHeader(line.slice(0, -1), 2 ** 32);
      assert.deepEqual(r, { ok: true, value: { code, bytes } });
    }),
  );
});

test('reply header: hostile lines are refused with a reason', () => {
  const bad = [
    '',
    'reply',
    'reply 0',
    'reply 0 ',
    'reply  0 1',
    'reply 0 1 2',
    'reply -1 5',
    'reply 256 5',
    'reply 999 5',
    'reply 00 5',
    'reply 0 01',
    'reply 0 1e3',
    'reply 0 0x10',
    'reply 0 12345678901',
    'REPLY 0 1',
    'reply 0 1\r',
    `reply 0 ${'1'.repeat(40)}`,
    'challenge 3 abc',
    '\u0000reply 0 1',
  ];
  for (const line of bad) {
    const r = parseReplyHeader(line, 2 ** 40);
    assert.equal(r.ok, false, `accepted ${JSON.stringify(line)}`);
  }
});

test('reply header: a size over the caller cap is refused before any byte of it is read', () => {
  assert.deepEqual(parseReplyHeader('reply 0 65536', 65536), { ok: true, value: { code: 0, bytes: 65536 } });
  const r = parseReplyHeader('reply 0 65537', 65536);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.error, /over the 65536 allowed/);
});

test('reply header: arbitrary strings never throw, and only the exact form parses', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 64 }), (s) => {
      const r = parseReplyHeader(s, 2 ** 40);
      if (r.ok) assert.equal(formatReplyHeader(r.value.code, r.value.bytes), `${s}\n`);
    }),
  );
});

test('session requests: the gate allow-list, minus rsync and a nested session', () => {
  assert.deepEqual(parseSessionRequest('list'), { kind: 'list' });
  assert.deepEqual(parseSessionRequest('list-head'), { kind: 'list-head' });
  assert.deepEqual(parseSessionRequest(`ack ${ID} ${SHA}`), { kind: 'ack', id: ID, manifestSha256: SHA });
  assert.deepEqual(parseSessionRequest(`reject ${ID} ${SHA}`), {
    kind: 'reject',
    id: ID,
    manifestSha256: SHA,
  });
  const refused = (line: string, reason: RegExp) => {
    const r = parseSessionRequest(line);
    assert.equal(r.kind, 'refused', line);
    assert.match(r.kind === 'refused' ? r.reason : '', reason);
  };
  refused('session', /already in a session/);
  refused(
    `rsync --server --sender -lHtpre.iLsfxCIvu --timeout=600 --numeric-ids . ${ID}/`,
    /session of its own/,
  );
  refused('list\r', /control character/);
  refused('list; id', /not an allowed command/);
  refused(`ack ${ID} ${SHA.toUpperCase()}`, /expected "ack/);
  refused(`ack ../../etc ${SHA}`, /no valid generation id/);
  refused('x'.repeat(MAX_GATE_REQUEST_BYTES + 1), /longer than/);
  refused('', /no command given/);
  // bytes that are not UTF-8 (a line arrives as latin1 text): refused, not guessed at
  refused(Buffer.from([0x6c, 0x69, 0x73, 0x74, 0xff]).toString('latin1'), /not valid UTF-8/);
  // a multi-byte character counts by its bytes against the cap
  refused('é'.repeat(MAX_GATE_REQUEST_BYTES / 2 + 1), /longer than|not an allowed/);
});

test('session is an allowed one-shot command, spelled exactly', () => {
  assert.deepEqual(parseGateRequest('session'), { kind: 'session' });
  for (const s of ['session ', ' session', 'session x', 'SESSION', 'session\n']) {
    assert.equal(parseGateRequest(s).kind, 'refused', JSON.stringify(s));
  }
});

function feed(): { stream: PassThrough; reader: FrameReader } {
  const stream = new PassThrough();
  return { stream, reader: new FrameReader(stream, 1024) };
}

test('frame reader: lines and counted bytes, across chunk borders', async () => {
  const { stream, reader } = feed();
  stream.write('hel');
  stream.write('lo\nreply 0 5\nab');
  stream.write('c\nd');
  stream.end('\nlast');
  assert.equal(await reader.line(64, 1000), 'hello');
  assert.equal(await reader.line(64, 1000), 'reply 0 5');
  assert.deepEqual(await reader.bytes(5, 1000), Buffer.from('abc\nd'));
  assert.equal(await reader.line(64, 1000), '');
  // a last line without its newline is no line
  assert.equal(await reader.line(64, 1000), undefined);
  // its bytes are still there for a counted read, but no more than arrived
  assert.equal(await reader.bytes(5, 1000), undefined);
  assert.deepEqual(await reader.bytes(4, 1000), Buffer.from('last'));
});

test('frame reader: a line over the limit is an error before it is buffered whole', async () => {
  const { stream, reader } = feed();
  stream.write('x'.repeat(100));
  await assert.rejects(reader.line(64, 1000), /longer than 64 bytes/);
});

test('frame reader: a missing newline within the limit waits, then times out', async () => {
  const { stream, reader } = feed();
  stream.write('partial');
  await assert.rejects(reader.line(64, 50), LineTimeout);
});

test('frame reader: bytes short of the count at the end of the stream -> undefined', async () => {
  const { stream, reader } = feed();
  stream.end('abc');
  assert.equal(await reader.bytes(4, 1000), undefined);
});

test('frame reader: a peer that floods unasked-for bytes is paused, not buffered', async () => {
  const { stream, reader } = feed();
  const flood = Buffer.alloc(1024 * 1024, 0x61);
  stream.write(flood);
  await new Promise((r) => setImmediate(r));
  assert.ok(stream.isPaused(), 'paused past the slack');
  // what a read asks for is still delivered, and in order
  assert.deepEqual(await reader.bytes(10, 1000), flood.subarray(0, 10));
});

test('frame reader: a stream error reaches the waiting read', async () => {
  const { stream, reader } = feed();
  const pending = reader.line(64, 1000);
  stream.destroy(new Error('EPIPE-ish'));
  await assert.rejects(pending, /EPIPE-ish/);
});

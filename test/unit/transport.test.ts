import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgePreviousTransport } from '../../src/core/transport.js';

const now = new Date('2026-11-28T06:00:00Z');
const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000);

test('no pending generation -> transport ok', () => {
  const j = judgePreviousTransport([], now, undefined);
  assert.equal(j.failed, false);
  assert.deepEqual(j.overdue, []);
});

test('without a threshold any pending generation -> failed', () => {
  const j = judgePreviousTransport([{ stream: 'data', id: 'x', createdAt: hoursAgo(1) }], now, undefined);
  assert.equal(j.failed, true);
  assert.match(j.summary, /transport of data failed: 1 generation/);
});

test('a pending generation younger than transportOverdue -> ok', () => {
  const j = judgePreviousTransport(
    [{ stream: 'data', id: 'x', createdAt: hoursAgo(5) }],
    now,
    20 * 3_600_000,
  );
  assert.equal(j.failed, false);
});

test('older ones than transportOverdue -> failed, oldest first, both streams named', () => {
  const j = judgePreviousTransport(
    [
      { stream: 'logs', id: 'b', createdAt: hoursAgo(25) },
      { stream: 'data', id: 'a', createdAt: hoursAgo(49) },
      { stream: 'data', id: 'c', createdAt: hoursAgo(2) },
    ],
    now,
    20 * 3_600_000,
  );
  assert.equal(j.failed, true);
  assert.deepEqual(
    j.overdue.map((p) => p.id),
    ['a', 'b'],
  );
  assert.match(j.summary, /transport of data and logs failed: 2 generation\(s\).*oldest 2d 1h old/);
});

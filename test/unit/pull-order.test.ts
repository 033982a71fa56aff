import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { inPullWindow, localMinuteOfDay, orderPulls } from '../../src/core/pull-order.js';

const hm = (h: number, m = 0) => h * 60 + m;

test('window within one day: start inclusive, end exclusive', () => {
  assert.equal(inPullWindow('01:00-06:00', hm(0, 59)), false);
  assert.equal(inPullWindow('01:00-06:00', hm(1)), true);
  assert.equal(inPullWindow('01:00-06:00', hm(5, 59)), true);
  assert.equal(inPullWindow('01:00-06:00', hm(6)), false);
  assert.equal(inPullWindow('01:00-06:00', hm(23, 59)), false);
});

test('window crossing midnight: late evening and early morning are inside, midday is not', () => {
  assert.equal(inPullWindow('22:00-06:00', hm(23, 30)), true);
  assert.equal(inPullWindow('22:00-06:00', hm(0)), true);
  assert.equal(inPullWindow('22:00-06:00', hm(5, 59)), true);
  assert.equal(inPullWindow('22:00-06:00', hm(6)), false);
  assert.equal(inPullWindow('22:00-06:00', hm(12)), false);
  assert.equal(inPullWindow('22:00-06:00', hm(21, 59)), false);
});

test('malformed or empty windows throw', () => {
  for (const w of ['1:00-06:00', '24:00-01:00', '01:00-06:60', '01:00 - 06:00', '', '01:00-01:00'])
    assert.throws(() => inPullWindow(w, 0), RangeError, w);
});

test('property: a window and its complement split the day (every minute in exactly one)', () => {
  const t = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }));
  const fmt = ([h, m]: [number, number]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
  fc.assert(
    fc.property(t, t, fc.integer({ min: 0, max: 1439 }), (a, b, minute) => {
      fc.pre(fmt(a) !== fmt(b));
      const w = `${fmt(a)}-${fmt(b)}`;
      const complement = `${fmt(b)}-${fmt(a)}`;
      assert.notEqual(inPullWindow(w, minute), inPullWindow(complement, minute));
    }),
  );
});

test('localMinuteOfDay reads the local clock of the date', () => {
  const d = new Date(2026, 11, 7, 5, 42);
  assert.equal(localMinuteOfDay(d), hm(5, 42));
});

test('order: priority first, then the oldest last success (never before any), then config order', () => {
  const t = (day: number) => new Date(Date.UTC(2026, 11, day));
  const items = [
    { name: 'a', priority: 0, lastSuccess: t(5) },
    { name: 'b', priority: 0, lastSuccess: t(1) },
    { name: 'c', priority: 5, lastSuccess: t(7) },
    { name: 'd', priority: 0, lastSuccess: undefined },
    { name: 'e', priority: -1, lastSuccess: undefined },
    { name: 'f', priority: 0, lastSuccess: t(1) },
    { name: 'g', priority: 0, lastSuccess: undefined },
  ];
  assert.deepEqual(
    orderPulls(items).map((i) => i.name),
    ['c', 'd', 'g', 'b', 'f', 'a', 'e'],
  );
  assert.deepEqual(
    items.map((i) => i.name),
    ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
    'input untouched',
  );
});

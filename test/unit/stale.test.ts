import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeOverdueHandovers, judgeStale, type StreamFreshness } from '../../src/core/stale.js';

const now = new Date('2026-11-28T06:00:00Z');
const H = 3_600_000;
const hoursAgo = (h: number) => new Date(now.getTime() - h * H);
const gen = (h: number) => ({ id: `gen-${h}h`, createdAt: hoursAgo(h) });
const STALE_AFTER = 30 * H;

const cases: Array<{
  name: string;
  input: Omit<StreamFreshness, 'source' | 'stream'>;
  stale: boolean;
  ageH: number | undefined;
  message: RegExp;
}> = [
  {
    name: 'newest 2 days old, staleAfter 30h -> stale, age and limit named',
    input: { newest: gen(48) },
    stale: true,
    ageH: 48,
    message: /^shop\/data: no new verified generation for 2d 0h \(newest gen-48h, staleAfter 30h\)$/,
  },
  {
    name: 'newest 5h old -> fresh',
    input: { newest: gen(5) },
    stale: false,
    ageH: 5,
    message: /is 5h 0m old/,
  },
  {
    name: 'newest exactly staleAfter old -> not yet stale (strictly older counts)',
    input: { newest: gen(30) },
    stale: false,
    ageH: 30,
    message: /30h 0m old/,
  },
  {
    name: 'newest a few minutes in the future (clock skew within 10 min) -> fresh',
    input: { newest: gen(-0.125) },
    stale: false,
    ageH: -0.125,
    message: /old/,
  },
  {
    name: 'newest 2h in the future (beyond the skew: a clock problem or a planted id) -> stale, never "age 0"',
    input: { newest: gen(-2) },
    stale: true,
    ageH: undefined,
    message: /newest generation gen--2h is dated 2h 0m ahead of this host's clock .*not counted as fresh/,
  },
  {
    name: 'newest 9999-12-31T235959Z -> stale',
    input: { newest: { id: '9999-12-31T235959Z', createdAt: new Date('9999-12-31T23:59:59Z') } },
    stale: true,
    ageH: undefined,
    message: /9999-12-31T235959Z is dated .* ahead/,
  },
  {
    name: 'no generation, never watched -> not judged stale',
    input: { newest: undefined },
    stale: false,
    ageH: undefined,
    message: /no verified generation yet$/,
  },
  {
    name: 'no generation, watched for 31h -> stale',
    input: { newest: undefined, watchedSince: hoursAgo(31) },
    stale: true,
    ageH: 31,
    message: /no verified generation at all in 31h 0m \(staleAfter 30h\)/,
  },
  {
    name: 'no generation, watched for 1h -> not yet stale',
    input: { newest: undefined, watchedSince: hoursAgo(1) },
    stale: false,
    ageH: 1,
    message: /watched for 1h 0m/,
  },
  {
    name: 'an old generation and a watch -> the generation decides',
    input: { newest: gen(2), watchedSince: hoursAgo(400) },
    stale: false,
    ageH: 2,
    message: /2h 0m old/,
  },
];

for (const c of cases) {
  test(`judgeStale: ${c.name}`, () => {
    const [v, ...rest] = judgeStale([{ source: 'shop', stream: 'data', ...c.input }], now, STALE_AFTER);
    assert.equal(rest.length, 0);
    assert.ok(v);
    assert.equal(v.stale, c.stale);
    assert.equal(v.ageMs, c.ageH === undefined ? undefined : c.ageH * H);
    assert.match(v.message, c.message);
  });
}

test('judgeStale: one verdict per stream, in the order given', () => {
  const verdicts = judgeStale(
    [
      { source: 'a', stream: 'data', newest: gen(1) },
      { source: 'b', stream: 'logs', newest: gen(100) },
      { source: 'c', stream: 'data', newest: undefined },
    ],
    now,
    STALE_AFTER,
  );
  assert.deepEqual(
    verdicts.map((v) => [v.source, v.stream, v.stale]),
    [
      ['a', 'data', false],
      ['b', 'logs', true],
      ['c', 'data', false],
    ],
  );
});

const pending = [
  { id: '2026-11-26T021500Z', createdAt: new Date('2026-11-26T02:15:00Z') },
  { id: '2026-11-28T021500Z', createdAt: new Date('2026-11-28T02:15:00Z') },
  { id: '2026-11-27T021500Z', createdAt: new Date('2026-11-27T02:15:00Z') },
];

test('judgeOverdueHandovers: with transportOverdue 20h -> the ones older than 20h, oldest first', () => {
  const o = judgeOverdueHandovers(pending, now, 20 * H, undefined);
  assert.deepEqual(
    o.map((p) => p.id),
    ['2026-11-26T021500Z', '2026-11-27T021500Z'],
  );
});

test('judgeOverdueHandovers: without a threshold -> those from before the last run, not its own', () => {
  // the last run started 02:15:00.600 and made 2026-11-28T021500Z (ids are truncated to the second)
  const o = judgeOverdueHandovers(pending, now, undefined, {
    startedAt: new Date('2026-11-28T02:15:00.600Z'),
    id: '2026-11-28T021500Z',
  });
  assert.deepEqual(
    o.map((p) => p.id),
    ['2026-11-26T021500Z', '2026-11-27T021500Z'],
  );
});

test('judgeOverdueHandovers: without a threshold and a failed last run -> every earlier one', () => {
  const o = judgeOverdueHandovers(pending, now, undefined, {
    startedAt: new Date('2026-11-28T05:00:00Z'),
    id: undefined,
  });
  assert.equal(o.length, 3);
});

test('judgeOverdueHandovers: without a threshold and no run recorded -> nothing overdue', () => {
  assert.deepEqual(judgeOverdueHandovers(pending, now, undefined, undefined), []);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeSizeAnomaly, type AnomalyJudgement, type GenerationSize } from '../../src/core/anomaly.js';

const rows: Array<{
  name: string;
  previous: GenerationSize | undefined;
  next: GenerationSize;
  dropPercent: number;
  expected: AnomalyJudgement;
}> = [
  {
    name: 'first generation (no previous) -> not anomalous',
    previous: undefined,
    next: { files: 0, bytes: 0 },
    dropPercent: 50,
    expected: { anomalous: false, reasons: [] },
  },
  {
    name: 'same size -> not anomalous',
    previous: { files: 100, bytes: 1000 },
    next: { files: 100, bytes: 1000 },
    dropPercent: 50,
    expected: { anomalous: false, reasons: [] },
  },
  {
    name: 'growth -> not anomalous',
    previous: { files: 10, bytes: 100 },
    next: { files: 1000, bytes: 100000 },
    dropPercent: 50,
    expected: { anomalous: false, reasons: [] },
  },
  {
    name: 'exactly 50 % fewer files at threshold 50 -> not anomalous (more than, not at)',
    previous: { files: 100, bytes: 1000 },
    next: { files: 50, bytes: 1000 },
    dropPercent: 50,
    expected: { anomalous: false, reasons: [] },
  },
  {
    name: '80 % fewer files -> anomalous, names files',
    previous: { files: 1000, bytes: 1000 },
    next: { files: 200, bytes: 900 },
    dropPercent: 50,
    expected: { anomalous: true, reasons: ['files dropped 80 % (1000 → 200)'] },
  },
  {
    name: 'bytes drop but not files -> anomalous, names bytes',
    previous: { files: 10, bytes: 1_000_000 },
    next: { files: 10, bytes: 1000 },
    dropPercent: 50,
    expected: { anomalous: true, reasons: ['bytes dropped 100 % (1000000 → 1000)'] },
  },
  {
    name: 'both drop -> two reasons',
    previous: { files: 10, bytes: 100 },
    next: { files: 0, bytes: 0 },
    dropPercent: 50,
    expected: {
      anomalous: true,
      reasons: ['files dropped 100 % (10 → 0)', 'bytes dropped 100 % (100 → 0)'],
    },
  },
  {
    name: 'threshold 0 disables -> not anomalous even when emptied',
    previous: { files: 10, bytes: 100 },
    next: { files: 0, bytes: 0 },
    dropPercent: 0,
    expected: { anomalous: false, reasons: [] },
  },
  {
    name: 'previous empty -> nothing to drop from',
    previous: { files: 0, bytes: 0 },
    next: { files: 0, bytes: 0 },
    dropPercent: 50,
    expected: { anomalous: false, reasons: [] },
  },
  {
    name: 'threshold 90 and a 80 % drop -> not anomalous',
    previous: { files: 1000, bytes: 1000 },
    next: { files: 200, bytes: 200 },
    dropPercent: 90,
    expected: { anomalous: false, reasons: [] },
  },
];

for (const row of rows) {
  test(row.name, () => {
    assert.deepEqual(judgeSizeAnomaly(row.previous, row.next, row.dropPercent), row.expected);
  });
}

for (const bad of [-1, 101, Number.NaN]) {
  test(`threshold ${bad} -> throws`, () => {
    assert.throws(() => judgeSizeAnomaly(undefined, { files: 1, bytes: 1 }, bad), RangeError);
  });
}

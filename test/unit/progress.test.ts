import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRsyncProgress } from '../../src/adapters/progress.js';

test('rsync progress2 output -> the last record of the chunk', () => {
  const chunk =
    '\r         32768   0%    0.00kB/s    0:00:00  \r      50000000 100%  744.57MB/s    0:00:00 (xfr#1, to-chk=0/2)\n';
  assert.deepEqual(parseRsyncProgress(chunk), { bytes: 50000000, percent: 100 });
});

test('output without a progress record -> undefined', () => {
  assert.equal(parseRsyncProgress('sending incremental file list\n'), undefined);
  assert.equal(parseRsyncProgress(''), undefined);
});

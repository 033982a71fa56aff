import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backupSummary, pullSummary, SUMMARY_MAX_BYTES } from '../../src/core/run-summary.js';

const base = { pulled: [], pruned: [], warnings: [] };

test('pullSummary: one line per source and stream with ids, sizes, prunes and what was not pulled', () => {
  assert.equal(
    pullSummary([
      {
        ...base,
        source: 'shop',
        stream: 'data',
        pulled: ['2026-12-07T010203Z'],
        pruned: ['a'],
        pulledFiles: 1234,
        pulledBytes: 5_872_026,
      },
      {
        ...base,
        source: 'shop',
        stream: 'logs',
        pulled: ['x', '2026-12-07T010203Z'],
        pulledFiles: 1,
        pulledBytes: 10,
      },
      { ...base, source: 'crm', stream: 'data' },
      { ...base, source: 'erp', stream: 'data', waiting: 'outside 01:00-06:00', warnings: ['w'] },
      { ...base, source: 'web', stream: 'data', locked: true },
    ]),
    [
      'shop/data: pulled 2026-12-07T010203Z (1,234 files, 5.6 MiB), pruned 1',
      'shop/logs: pulled 2 generations up to 2026-12-07T010203Z (1 file, 10 B)',
      'crm/data: nothing new',
      'erp/data: waiting (outside its window), 1 warning',
      'web/data: skipped (another run holds the lock)',
    ].join('\n'),
  );
});

test('pullSummary: a fleet (or hostile names) stays under the bound with whole lines and a count of the rest', () => {
  const many = Array.from({ length: 200 }, (_, i) => ({
    ...base,
    source: `s${i}${'é'.repeat(i)}`,
    stream: 'data',
  }));
  const text = pullSummary(many);
  assert.ok(Buffer.byteLength(text, 'utf8') <= SUMMARY_MAX_BYTES, String(Buffer.byteLength(text)));
  const lines = text.split('\n');
  assert.match(lines.at(-1) ?? '', /^… \d+ more$/);
  const shown = lines.length - 1;
  assert.equal(lines.at(-1), `… ${200 - shown} more`);
  for (const [i, l] of lines.slice(0, -1).entries())
    assert.equal(l, `s${i}${'é'.repeat(i)}/data: nothing new`);
});

test('backupSummary: id, downtime in seconds and each stream', () => {
  assert.equal(
    backupSummary('2026-12-07T010203Z', 1234, [
      { stream: 'data', files: 1234, bytes: 2048 },
      { stream: 'logs', files: 1, bytes: 5 },
    ]),
    'backup 2026-12-07T010203Z, downtime 1.2 s; data 1,234 files, 2.0 KiB; logs 1 file, 5 B',
  );
});

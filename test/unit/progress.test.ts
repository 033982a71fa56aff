import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRsyncProgress, rsyncProgressArgs, type Progress } from '../../src/adapters/progress.js';
import { runProcess } from '../../src/adapters/run.js';

test('rsync progress2 output -> the last record of the chunk', () => {
  const chunk =
    '\r         32768   0%    0.00kB/s    0:00:00  \r      50000000 100%  744.57MB/s    0:00:00 (xfr#1, to-chk=0/2)\n';
  assert.deepEqual(parseRsyncProgress(chunk), { bytes: 50000000, percent: 100, checked: true });
  assert.deepEqual(parseRsyncProgress('\r     120822528  55%  114.96MB/s    0:00:00  '), {
    bytes: 120822528,
    percent: 55,
    checked: false,
  });
});

test('output without a progress record -> undefined', () => {
  assert.equal(parseRsyncProgress('sending incremental file list\n'), undefined);
  assert.equal(parseRsyncProgress(''), undefined);
});

/** The updates a progress bar was given. */
function recorder(): Progress & { seen: Array<[number, number | undefined]> } {
  const seen: Array<[number, number | undefined]> = [];
  return { seen, update: (d, t) => seen.push([d, t]), stop: () => undefined };
}

test('a 0 % record gives no total (not 0.0/0.0 MiB); a known total is shown from the start', () => {
  const first = '\r          32768   0%    0.00kB/s    0:00:00  ';
  const bar = recorder();
  rsyncProgressArgs(bar).onStdout?.(Buffer.from(first));
  assert.deepEqual(bar.seen, [[32768, undefined]]);
  const known = recorder();
  rsyncProgressArgs(known, 216_000_000).onStdout?.(Buffer.from(first));
  assert.deepEqual(known.seen, [[32768, 216_000_000]]);
});

/** Runs a real local rsync with the progress options into `dst`, feeding `bar`. */
async function rsyncWithBar(src: string, dst: string, bar: Progress, totalBytes?: number): Promise<void> {
  const shown = rsyncProgressArgs(bar, totalBytes);
  const r = await runProcess(['rsync', '-a', ...shown.args, `${src}/`, `${dst}/`], {
    env: { ...process.env, LC_ALL: 'C' },
    timeoutMs: 60_000,
    ...(shown.onStdout ? { onStdout: shown.onStdout } : {}),
  });
  assert.equal(r.code, 0, r.stderr);
}

test('a real rsync: the bar ends at what was copied, never below done, with and without a known total', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-progress-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'a'), Buffer.alloc(8_000_000, 1));
  await writeFile(join(src, 'b'), Buffer.alloc(4_000_000, 2));
  const full = recorder();
  await rsyncWithBar(src, join(dir, 'dst'), full);
  assert.deepEqual(full.seen.at(-1), [12_000_000, 12_000_000]);
  // one new file beside unchanged ones: rsync's own share stays at 25 % of its list
  await writeFile(join(src, 'c'), Buffer.alloc(4_000_000, 3));
  const incremental = recorder();
  await rsyncWithBar(src, join(dir, 'dst'), incremental);
  assert.deepEqual(incremental.seen.at(-1), [4_000_000, 4_000_000], JSON.stringify(incremental.seen));
  await writeFile(join(src, 'd'), Buffer.alloc(2_000_000, 4));
  const known = recorder();
  await rsyncWithBar(src, join(dir, 'dst'), known, 2_000_000);
  assert.deepEqual(known.seen.at(-1), [2_000_000, 2_000_000], JSON.stringify(known.seen));
  for (const [done, total] of [...full.seen, ...incremental.seen, ...known.seen]) {
    assert.ok(total === undefined || (total >= done && total > 0), JSON.stringify([done, total]));
  }
});

/**
 * Issue #15: the cost of setting nanosecond mtimes on restore (src/adapters/set-times.ts, one
 * python3 per batch of up to 20,000 records) per 10,000 files, against two baselines in the same
 * run: Node's lutimes loop (microseconds only), a bare python3 start-up (`python3 -c pass`, /usr/bin/python3 as the setter uses),
 * one `touch -d` over all the files (one process, one time for all: the cheapest native way), and
 * `rsync -rt` over a copy of the tree whose mtimes differ (the times rsync itself sets on a restore).
 *
 *   node --import tsx bench/set-times.ts [--files 10000] [--runs 5]
 */
import { lutimes, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { runProcess } from '../src/adapters/run.js';
import { createTimeSetter } from '../src/adapters/set-times.js';

const { values } = parseArgs({ options: { files: { type: 'string' }, runs: { type: 'string' } } });
const FILES = Number(values.files ?? 10_000);
const RUNS = Number(values.runs ?? 5);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const dir = await mkdtemp(join(tmpdir(), 'baton-bench-set-times-'));
try {
  const paths = Array.from({ length: FILES }, (_, i) => join(dir, `f${i}`));
  for (const p of paths) await writeFile(p, '');
  const base = 1_700_000_000_123_456_789n;
  const ns: number[] = [];
  const node: number[] = [];
  const py: number[] = [];
  const touch: number[] = [];
  const rsyncT: number[] = [];
  const tree = join(dir, 'tree');
  const copy = join(dir, 'copy');
  await mkdir(tree);
  for (let i = 0; i < FILES; i++) await writeFile(join(tree, `f${i}`), '');
  for (let run = 0; run < RUNS; run++) {
    touch.push(
      await time(async () => {
        const r = await runProcess(['touch', '-d', `@1700000000.${String(run).padStart(9, '0')}`, ...paths], {
          timeoutMs: 60_000,
        });
        if (r.code !== 0) throw new Error(r.stderr);
      }),
    );
    // the copy holds the same empty files with other mtimes: rsync only sets the times
    await runProcess(['rsync', '-r', `${tree}/`, `${copy}/`], { timeoutMs: 60_000 });
    await runProcess(['touch', '-d', '@1600000000', ...paths.map((p) => p.replace(dir, copy))], {
      timeoutMs: 60_000,
    });
    rsyncT.push(
      await time(async () => {
        const r = await runProcess(['rsync', '-rt', `${tree}/`, `${copy}/`], { timeoutMs: 60_000 });
        if (r.code !== 0) throw new Error(r.stderr);
      }),
    );
    ns.push(
      await time(async () => {
        const setter = await createTimeSetter();
        for (const [i, p] of paths.entries()) {
          setter.add(Buffer.from(p), base + BigInt(run * FILES + i));
          if (setter.due) await setter.flush();
        }
        await setter.flush();
      }),
    );
    node.push(
      await time(async () => {
        for (const [i, p] of paths.entries()) await lutimes(p, 1_700_000_000 + i, 1_700_000_000 + i);
      }),
    );
    py.push(
      await time(async () => {
        await runProcess([existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', '-c', 'pass'], {
          timeoutMs: 30_000,
        });
      }),
    );
  }
  const per10k = (ms: number) => (ms * 10_000) / FILES;
  const n = median(ns);
  const l = median(node);
  const p = median(py);
  const tc = median(touch);
  const rt = median(rsyncT);
  process.stdout.write(
    `files ${FILES}, runs ${RUNS} (medians), load ${loadavg()[0]?.toFixed(1)}\n` +
      `ns setter (python3 batches, incl. the python3 probe): ${per10k(n).toFixed(0)} ms per 10,000 files\n` +
      `Node lutimes loop (µs only):                          ${per10k(l).toFixed(0)} ms per 10,000 files\n` +
      `python3 start-up (python3 -c pass):                   ${p.toFixed(0)} ms\n` +
      `touch -d, one process for all files (one time):      ${per10k(tc).toFixed(0)} ms per 10,000 files\n` +
      `rsync -rt setting the times of an identical tree:     ${per10k(rt).toFixed(0)} ms per 10,000 files\n` +
      `ratio ns setter / lutimes: ${(n / l).toFixed(2)}, / touch -d: ${(n / tc).toFixed(2)}, / rsync -rt: ${(n / rt).toFixed(2)}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}

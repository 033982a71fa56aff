/**
 * Issue #15: the cost of a log line, this tree's logger (src/adapters/log.ts: each event formatted
 * once, straight to its line) against a baseline commit's in the same run (`--baseline REF`, default
 * 142c600: pino serialising to JSON, then a stream of our own parsing every JSON line back to text),
 * both writing to /dev/null. Also the start-up cost of loading pino (`import('pino')` in a fresh
 * node against an empty script), which the CLI no longer pays.
 *
 *   node --import tsx bench/log-format.ts [--lines 20000] [--runs 7] [--baseline REF]
 *
 * baton no longer depends on pino: for the baseline, `npm install --no-save pino@10` first.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const { values } = parseArgs({
  options: { lines: { type: 'string' }, runs: { type: 'string' }, baseline: { type: 'string' } },
});
const LINES = Number(values.lines ?? 20_000);
const RUNS = Number(values.runs ?? 7);
const REF = values.baseline ?? '142c600';

interface LogLike {
  info(fields: Record<string, unknown>, msg: string): void;
  child(bindings: Record<string, unknown>): LogLike;
}
type Create = (o: { format: 'text' | 'json'; fd: number; journal?: boolean }) => LogLike;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

// The baseline's log.ts beside this one, so its relative imports resolve the same way.
const repo = fileURLToPath(new URL('..', import.meta.url));
const basePath = fileURLToPath(new URL('../src/adapters/log-bench-baseline.ts', import.meta.url));
writeFileSync(basePath, execFileSync('git', ['-C', repo, 'show', `${REF}:src/adapters/log.ts`]));
try {
  const now = (await import('../src/adapters/log.js')) as unknown as { createLogger: Create };
  const base = (await import(pathToFileURL(basePath).href).catch((e: unknown) => {
    throw new Error(
      `the baseline ${REF} does not load (pino missing? npm install --no-save pino@10): ${String(e)}`,
    );
  })) as unknown as { createLogger: Create };
  const fd = openSync('/dev/null', 'w');
  const perLine = (create: Create, format: 'text' | 'json', journal = false): number => {
    const log = create({ format, fd, journal }).child({ source: 'shop', stream: 'data' });
    const t0 = performance.now();
    for (let i = 0; i < LINES; i++)
      log.info(
        { step: 'collect', id: `2026-11-28T06-19-22Z-${i}`, ms: i, path: '/srv/app data' },
        `copied ${i} files`,
      );
    return ((performance.now() - t0) * 1000) / LINES;
  };
  const rows: [string, number[], number[]][] = [
    ['text', [], []],
    ['text, journal', [], []],
    ['json', [], []],
  ];
  for (let r = 0; r < RUNS; r++) {
    for (const [name, a, b] of rows) {
      const format = name === 'json' ? 'json' : 'text';
      const journal = name === 'text, journal';
      a.push(perLine(now.createLogger, format, journal));
      b.push(perLine(base.createLogger, format, journal));
    }
  }
  closeSync(fd);
  const nodeMs = (script: string): number[] =>
    Array.from({ length: RUNS }, () => {
      const t0 = performance.now();
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo });
      return performance.now() - t0;
    });
  const bare = nodeMs('');
  const withPino = nodeMs("await import('pino')");
  let out = `lines ${LINES} × runs ${RUNS} (medians), baseline ${REF}, load ${loadavg()[0]?.toFixed(1)}\n`;
  for (const [name, a, b] of rows)
    out += `${name.padEnd(14)} now ${median(a).toFixed(2)} µs/line, baseline ${median(b).toFixed(2)} µs/line, ratio ${(median(a) / median(b)).toFixed(2)}\n`;
  out += `node start-up: bare ${median(bare).toFixed(0)} ms, + import('pino') ${median(withPino).toFixed(0)} ms\n`;
  process.stdout.write(out);
} finally {
  rmSync(basePath, { force: true });
}

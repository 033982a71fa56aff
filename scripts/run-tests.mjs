#!/usr/bin/env node
// Runs the test files given as directories or files. Node 20's test runner does not expand `**`
// globs, so the files are listed here.
//
// With BATON_TEST_CONCURRENCY=1 (or a single file) it is one `node --test` over all files, as
// before. With more lanes (the default for a whole-suite run is 2), the unit files run as one
// job, each e2e file as a job of its own, and a small scheduler runs up to that many jobs at once,
// longest first (test/durations.json, written by a run with BATON_TEST_RECORD=1). Each job's
// output is printed whole when it ends, so the log is never interleaved.
//
// A test file that shares a machine-wide resource with other files names it in a comment line:
//   // test-lock: backup-users (why, in a few words)
// Files that name the same lock never run at the same time; `// test-lock: exclusive` runs alone.
// The named locks also hold across runs on one machine: a job takes flock(1) on
// <tmpdir>/baton-test-lock.NAME, so a second test run (another checkout, a CI beside a developer's
// run) waits instead of, say, finding the package installed by the other run.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const dirs = process.argv.slice(2);
const files = dirs.flatMap((d) => (statSync(d).isDirectory() ? collect(d) : [d]));
if (files.length === 0) {
  console.error('run-tests: no test files found in', dirs.join(' '));
  process.exit(1);
}
const lanesEnv = process.env.BATON_TEST_CONCURRENCY;
const lanes = lanesEnv === undefined ? 2 : Number(lanesEnv);
if (!Number.isInteger(lanes) || lanes < 1 || lanes > 16) {
  console.error(`run-tests: BATON_TEST_CONCURRENCY must be a whole number from 1 to 16, not "${lanesEnv}"`);
  process.exit(2);
}
const nodeTest = (list) => [process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...list]];

function locksOf(file) {
  const locks = new Set();
  for (const m of readFileSync(file, 'utf8').matchAll(/^\/\/ test-lock: ([a-z0-9-]+)(?:\s.*)?$/gm))
    locks.add(m[1]);
  return locks;
}

/** The command line that runs `cmd args` holding each named lock machine-wide (flock -x, waiting). */
function underLocks(locks, cmd, args) {
  const prefix = [...locks]
    .filter((l) => l !== 'exclusive')
    .sort()
    .flatMap((l) => ['flock', join(tmpdir(), `baton-test-lock.${l}`)]);
  return prefix.length === 0 ? [cmd, args] : [prefix[0], [...prefix.slice(1), cmd, ...args]];
}

if (lanes === 1 || files.length === 1) {
  const [node, args] = nodeTest(files);
  const [cmd, argv] = underLocks(new Set(files.flatMap((f) => [...locksOf(f)])), node, [
    '--test-concurrency=1',
    ...args,
  ]);
  const r = spawnSync(cmd, argv, { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// ---- the scheduler ----
const DURATIONS = 'test/durations.json';
let known = {};
try {
  known = JSON.parse(readFileSync(DURATIONS, 'utf8'));
} catch {
  /* no record yet: e2e files first, in name order */
}
const posix = (p) => relative(process.cwd(), p).split(sep).join('/');
const isUnit = (f) => posix(f).startsWith('test/unit/');

const jobs = [];
const unit = files.filter(isUnit);
if (unit.length > 0) jobs.push({ name: 'test/unit', files: unit, locks: new Set() });
for (const f of files.filter((f) => !isUnit(f))) jobs.push({ name: posix(f), files: [f], locks: locksOf(f) });
const estimate = (j) => known[j.name] ?? (j.name === 'test/unit' ? 90 : 20);
jobs.sort((a, b) => estimate(b) - estimate(a));

const running = new Set();
const heldLocks = new Map(); // lock -> job
const results = [];
const children = new Set();

function canStart(job) {
  if (running.size >= lanes) return false;
  if (job.locks.has('exclusive')) return running.size === 0;
  for (const r of running) if (r.locks.has('exclusive')) return false;
  for (const l of job.locks) if (heldLocks.has(l)) return false;
  return true;
}

function count(out, key) {
  const m = new RegExp(`^ℹ ${key} (\\d+)$`, 'm').exec(out);
  return m ? Number(m[1]) : 0;
}

function start(job) {
  running.add(job);
  for (const l of job.locks) heldLocks.set(l, job);
  const [node, args] = nodeTest(job.files);
  const [cmd, argv] = underLocks(job.locks, node, ['--test-concurrency=1', ...args]);
  const t0 = Date.now();
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      children.delete(child);
      running.delete(job);
      for (const l of job.locks) heldLocks.delete(l);
      const out = Buffer.concat(chunks).toString('utf8');
      const seconds = (Date.now() - t0) / 1000;
      const r = {
        name: job.name,
        seconds,
        ok: code === 0,
        exit: code ?? signal,
        tests: count(out, 'tests'),
        pass: count(out, 'pass'),
        fail: count(out, 'fail'),
        skipped: count(out, 'skipped'),
        cancelled: count(out, 'cancelled'),
      };
      results.push(r);
      const verdict = r.ok ? 'ok' : `FAILED (exit ${r.exit})`;
      process.stdout.write(`\n━━ ${job.name}: ${verdict}, ${r.tests} tests, ${seconds.toFixed(1)} s\n${out}`);
      resolve();
    });
  });
}

function stopAll(sig) {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  process.exit(sig === 'SIGINT' ? 130 : 143);
}
process.once('SIGINT', () => stopAll('SIGINT'));
process.once('SIGTERM', () => stopAll('SIGTERM'));

const t0 = Date.now();
const pending = [...jobs];
const inFlight = new Set();
while (pending.length > 0 || inFlight.size > 0) {
  let started = false;
  for (let i = 0; i < pending.length; i++) {
    if (!canStart(pending[i])) continue;
    const [job] = pending.splice(i, 1);
    const p = start(job).then(() => inFlight.delete(p));
    inFlight.add(p);
    started = true;
    break;
  }
  if (!started) await Promise.race(inFlight);
}

const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const failed = results.filter((r) => !r.ok);
const wall = (Date.now() - t0) / 1000;
const busy = results.reduce((a, r) => a + r.seconds, 0);
process.stdout.write(
  `\n━━ all ${results.length} jobs in ${lanes} lanes: ${wall.toFixed(0)} s wall, ${busy.toFixed(0)} s of jobs\n` +
    `ℹ tests ${sum('tests')}\nℹ pass ${sum('pass')}\nℹ fail ${sum('fail')}\nℹ cancelled ${sum('cancelled')}\n` +
    `ℹ skipped ${sum('skipped')}\n`,
);
if (failed.length > 0) process.stdout.write(`FAILED: ${failed.map((r) => r.name).join(', ')}\n`);
if (process.env.BATON_TEST_RECORD === '1') {
  const record = { ...known };
  for (const r of results) record[r.name] = Math.round(r.seconds);
  const sorted = Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
  writeFileSync(DURATIONS, `${JSON.stringify(sorted, null, 2)}\n`);
}
process.exit(failed.length > 0 ? 1 : 0);

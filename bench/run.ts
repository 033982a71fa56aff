/**
 * `npm run bench`: baton against the plain tools on this machine, same data, same run.
 *
 *   npm run bench                       # 20,000 files / ~1.7 GiB, 3 runs per figure (~10 min)
 *   npm run bench -- --scale            # and the 1,000,000-file scale set (memory, time per file)
 *   npm run bench:quick                 # ~50 MiB, 1 run: the CI smoke test's variant (< 1 min)
 *
 * Options: --runs N, --scale-runs N, --scale-files N, --seed N, --only main|scale,
 * --out FILE (default bench/RESULTS.md), --dir PARENT (default /var/tmp), --keep,
 * --users DATA,LOGS (default batonBenchData,batonBenchLogs; two runs at once need different users),
 * --json FILE (also save the raw results), --merge FILE (take the figures this run does not
 * measure from an earlier run's --json, e.g. `--only main --merge scale.json`).
 * Needs root: it creates the stream users and runs sshd on 127.0.0.1.
 *
 * This file checks the machine and runs the sets; options.ts reads the command line, steps.ts and
 * sets.ts measure, results.ts and report.ts assemble and write the report.
 */
import { statfs } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runProcess } from '../src/adapters/run.js';
import { FULL_SPEC, QUICK_SPEC } from './dataset.js';
import { createEnv } from './env.js';
import { GNU_TIME } from './measure.js';
import { diskNeed, parseOptions, scaleSpecFor, UsageError, type Options } from './options.js';
import { runMain, runScale, type Collected } from './sets.js';
import { errorLine, fmtBytes, say } from './steps.js';
import { assembleReport, loadSaved, machineInfo, writeResults } from './results.js';
import { renderReport, type Report } from './report.js';

async function checkTools(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new UsageError(
      'needs root: it creates the users batonBenchData/batonBenchLogs and runs sshd on 127.0.0.1',
    );
  for (const [bin, pkg] of [
    ['rsync', 'rsync'],
    ['ssh', 'openssh-client'],
    ['sha256sum', 'coreutils'],
  ] as const) {
    const r = await runProcess(['sh', '-c', `command -v ${bin}`], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new UsageError(`${bin} is missing (apt-get install ${pkg})`);
  }
  if (!existsSync('/usr/sbin/sshd'))
    throw new UsageError('/usr/sbin/sshd is missing (apt-get install openssh-server)');
  if (!existsSync(GNU_TIME))
    say(`${GNU_TIME} is missing (apt-get install time): peak RSS is polled from /proc instead`);
}

export async function runBench(o: Options): Promise<Report> {
  await checkTools();
  const need = diskNeed(o);
  await runProcess(['mkdir', '-p', o.dir]);
  const fsStat = await statfs(o.dir);
  const free = fsStat.bavail * fsStat.bsize;
  if (free < need)
    throw new UsageError(
      `${o.dir} has ${fmtBytes(free)} free, the run needs about ${fmtBytes(need)} (use --dir)`,
    );
  const started = Date.now();
  const mainSpec = { ...(o.quick ? QUICK_SPEC : FULL_SPEC), seed: o.seed };
  const scaleSpec = scaleSpecFor(o);
  const command =
    `npm run bench${o.quick ? ':quick' : ''} --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`.replace(
      / --$/,
      '',
    );
  const machineBase = await machineInfo(o.dir);
  const c: Collected = { figures: new Map(), dataset: [], details: [], notes: [] };
  const earlier = o.merge === undefined ? undefined : await loadSaved(o.merge);
  const report = (): Report =>
    assembleReport({ options: o, collected: c, earlier, started, command, machine: machineBase });
  let written: Report | undefined;
  const write = async () => {
    written = report();
    await writeResults(o, written, c);
  };
  c.notes.push(
    'Both sides of each figure run back to back on the same data with a warm page cache (the machine’s RAM holds the whole set); `sync` runs before each timed command, and the order of baton and the plain tool alternates between runs.',
    'The app is trivial (`stop`/`start` are `true`), so downtime is baton’s own work. The bare refresh is one `rsync -a --delete` of both paths; baton refreshes the data and logs mirrors with one rsync each, in parallel.',
    'The pulls fetch the data stream only; sink and source keep 50 generations, so nothing is pruned during the run. The bare pulls log in as the same user on the same sshd with the same cipher (aes128-gcm@openssh.com), through a key without the forced command.',
  );
  const env = await createEnv(o.dir, o.users);
  let failure: unknown;
  try {
    if (o.only !== 'scale') {
      try {
        await runMain(env, mainSpec, o.runs, c);
      } catch (e) {
        failure = e;
        c.notes.push(`The main set failed: ${errorLine(e)}`);
      }
      await write();
    }
    if (o.scale && failure === undefined) {
      try {
        await runScale(env, scaleSpec, o.scaleRuns, c);
      } catch (e) {
        failure = e;
        c.notes.push(`The scale set failed: ${errorLine(e)}`);
      }
    } else if (!o.scale && !earlier?.figures.some((f) => f.id === '5c')) {
      c.notes.push(
        'The scale set (figures 5c, 5d, 6a–6c) was not run: add `--scale` (1,000,000 files; about an hour here).',
      );
    }
    await write();
  } finally {
    await env.close(o.keep);
    if (o.keep) say(`kept ${env.root}`);
  }
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(errorLine(failure));
  // the very report written to the file (its duration included), so stdout and the file agree
  return written ?? report();
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: usage: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    const r = await runBench(o);
    process.stdout.write(renderReport(r));
    say(`wrote ${o.out}`);
  } catch (e) {
    process.stderr.write(`bench: ${e instanceof UsageError ? '' : 'run: '}${errorLine(e)}\n`);
    process.exitCode = e instanceof UsageError ? 2 : 1;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();

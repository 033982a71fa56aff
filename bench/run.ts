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
 */
import { mkdir, readFile, statfs, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { generationMetaSchema } from '../src/core/meta.js';
import { runProcess } from '../src/adapters/run.js';
import {
  FULL_SPEC,
  QUICK_SPEC,
  SCALE_SPEC,
  generateDataset,
  mutateDataset,
  type DatasetSpec,
  type MutationSummary,
} from './dataset.js';
import {
  BENCH_USERS,
  baton,
  createEnv,
  type BenchUsers,
  generationIds,
  markSinkStore,
  removeTree,
  resetStores,
  sourceGenerationDir,
  trimLogHandover,
  unack,
  type BenchEnv,
} from './env.js';
import { CommandFailed, GNU_TIME, loadSeen, measure, measureOk, runOk, type Measured } from './measure.js';
import {
  FIGURE_IDS,
  judge,
  median,
  renderReport,
  type Figure,
  type MachineInfo,
  type Report,
  type Side,
} from './report.js';

const DEFAULT_OUT = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
const REPO_DIR = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;

interface Options {
  quick: boolean;
  scale: boolean;
  only: 'all' | 'main' | 'scale';
  runs: number;
  scaleRuns: number;
  scaleFiles: number | undefined;
  seed: number;
  out: string;
  dir: string;
  keep: boolean;
  users: BenchUsers;
  /** also write the raw results here (JSON), for --merge */
  json: string | undefined;
  /** figures of an earlier run (its --json) fill the ones this run does not measure */
  merge: string | undefined;
}

class UsageError extends Error {}

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      only: { type: 'string', default: 'all' },
      runs: { type: 'string' },
      'scale-runs': { type: 'string' },
      'scale-files': { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string', default: DEFAULT_OUT },
      dir: { type: 'string', default: '/var/tmp' },
      keep: { type: 'boolean', default: false },
      users: { type: 'string' },
      json: { type: 'string' },
      merge: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(`--${name} wants an integer ≥ ${min}, got "${v}"`);
    return n;
  };
  const only = values.only;
  if (only !== 'all' && only !== 'main' && only !== 'scale')
    throw new UsageError(`--only wants main or scale, got "${only}"`);
  const quick = values.quick;
  let users = BENCH_USERS;
  if (values.users !== undefined) {
    const [data, logs, ...rest] = values.users.split(',');
    const ok = (n: string | undefined): n is string =>
      n !== undefined && /^[A-Za-z_][A-Za-z0-9_-]{0,31}$/.test(n);
    if (!ok(data) || !ok(logs) || rest.length > 0 || data === logs)
      throw new UsageError(`--users wants two user names, DATA,LOGS, got "${values.users}"`);
    users = { data, logs };
  }
  return {
    users,
    json: values.json,
    merge: values.merge,
    quick,
    // the quick variant runs a small scale set too, so that path is exercised in CI
    scale: values.scale || quick || only === 'scale',
    only,
    runs: int('runs', values.runs, 1) ?? (quick ? 1 : 3),
    scaleRuns: int('scale-runs', values['scale-runs'], 1) ?? 1,
    scaleFiles: int('scale-files', values['scale-files'], 100) ?? (quick ? 3000 : undefined),
    seed: int('seed', values.seed, 0) ?? 1,
    out: values.out,
    dir: values.dir,
    keep: values.keep,
  };
}

const T0 = Date.now();
const say = (s: string) => process.stderr.write(`bench: [${((Date.now() - T0) / 1000).toFixed(0)} s] ${s}\n`);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (kib: number | undefined) =>
  kib === undefined || !Number.isFinite(kib) ? '?' : `${(kib / 1024).toFixed(0)} MiB`;
const cpu = (m: Measured) => (m.cpuS === undefined ? '?' : `${m.cpuS.toFixed(1)} s`);
const fmtBytes = (b: number) =>
  b >= 1024 * MiB ? `${(b / 1024 / MiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`;
const int = (n: number) => n.toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// Running baton and the plain tools

const logLineSchema = z.looseObject({
  time: z.number(),
  msg: z.string().optional(),
  step: z.string().optional(),
});
type LogLine = z.infer<typeof logLineSchema>;
/** what the sink's `verified <id>` log line counts */
const verifyCounts = z.looseObject({
  hashed: z.number(),
  hashedDuringTransfer: z.number(),
  reused: z.number(),
});

function logLines(stderr: string): LogLine[] {
  const out: LogLine[] = [];
  for (const l of stderr.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      const r = logLineSchema.safeParse(JSON.parse(l));
      if (r.success) out.push(r.data);
    } catch {
      /* not a log line */
    }
  }
  return out;
}

/** ms since the command started at which the first log line matching `re` was written. */
function logAt(m: Measured, lines: readonly LogLine[], re: RegExp): number | undefined {
  const l = lines.find((x) => re.test(x.msg ?? ''));
  return l ? l.time - m.startedAt : undefined;
}

const backupOutput = z.object({
  id: z.string(),
  downtimeMs: z.number(),
  generations: z.array(
    z.looseObject({
      stream: z.enum(['data', 'logs']),
      files: z.number(),
      bytes: z.number(),
      bytesCopied: z.number(),
    }),
  ),
});

interface BackupRun {
  m: Measured;
  id: string;
  downtimeMs: number;
  files: number;
  bytes: number;
  bytesCopied: number;
  breakdown: string;
}

async function sync(): Promise<void> {
  await runOk('sync', ['sync']);
}

async function sourceBackup(env: BenchEnv): Promise<BackupRun> {
  await sync();
  const m = await measureOk(
    'baton source backup',
    baton('--log-format', 'json', 'source', 'backup', '--config', env.sourceConfig, '--json'),
  );
  const out = backupOutput.parse(JSON.parse(m.stdout));
  const meta = generationMetaSchema.parse(
    JSON.parse(await readFile(join(env.handoverData, out.id, 'meta.json'), 'utf8')),
  );
  const files = out.generations.reduce((a, g) => a + g.files, 0);
  const bytes = out.generations.reduce((a, g) => a + g.bytes, 0);
  const bytesCopied = out.generations.reduce((a, g) => a + g.bytesCopied, 0);
  const stopped = meta.appStoppedAt ? Date.parse(meta.appStoppedAt) - m.startedAt : undefined;
  const started = meta.appStartedAt ? Date.parse(meta.appStartedAt) - m.startedAt : undefined;
  const rsyncs = m.children.filter((c) => c.comm === 'rsync');
  const collect = rsyncs.length
    ? Math.max(...rsyncs.map((c) => c.lastMs)) - Math.min(...rsyncs.map((c) => c.firstMs))
    : undefined;
  const parts = [
    stopped !== undefined ? `start-up and preflight ${secs(stopped)}` : undefined,
    `app down ${secs(meta.downtimeMs ?? out.downtimeMs)}${collect !== undefined ? ` (of which the mirror rsyncs ≈ ${secs(collect)})` : ''}`,
    started !== undefined
      ? `build, hash and hand over after the app was back ${secs(m.wallMs - started)}`
      : undefined,
  ].filter((p) => p !== undefined);
  return {
    m,
    id: out.id,
    downtimeMs: meta.downtimeMs ?? out.downtimeMs,
    files,
    bytes,
    bytesCopied,
    breakdown: `${parts.join('; ')} (total ${secs(m.wallMs)})`,
  };
}

interface PullRun {
  m: Measured;
  breakdown: string;
}

async function sinkPull(env: BenchEnv): Promise<PullRun> {
  await markSinkStore(env);
  await sync();
  const m = await measureOk(
    'baton sink pull data',
    baton('--log-format', 'json', 'sink', 'pull', 'data', '--config', env.sinkConfig),
  );
  const lines = logLines(m.stderr);
  const rsyncs = m.children
    .filter((c) => c.comm === 'rsync')
    .sort((a, b) => b.lastMs - b.firstMs - (a.lastMs - a.firstMs));
  const main = rsyncs[0];
  const listed = logAt(m, lines, /pending/);
  const verified = logAt(m, lines, /^verified /);
  const published = logAt(m, lines, /^published /);
  const acked = logAt(m, lines, /^acked /);
  const parts: string[] = [];
  if (listed !== undefined) parts.push(`start-up, ssh and list ${secs(listed)}`);
  if (main) {
    if (listed !== undefined) parts.push(`until the tree rsync starts ${secs(main.firstMs - listed)}`);
    parts.push(`tree rsync ${secs(main.lastMs - main.firstMs)}`);
    if (verified !== undefined) parts.push(`verify after it ${secs(verified - main.lastMs)}`);
  }
  const counts = verifyCounts.safeParse(lines.find((x) => /^verified /.test(x.msg ?? '')));
  if (counts.success) {
    const v = counts.data;
    parts.push(
      `${v.hashed} files hashed (${v.hashedDuringTransfer} of them during the transfer), ${v.reused} hard links to the previous generation not re-read`,
    );
  }
  if (verified !== undefined && published !== undefined)
    parts.push(`publish (syncfs) ${secs(published - verified)}`);
  if (published !== undefined && acked !== undefined) parts.push(`prune and ack ${secs(acked - published)}`);
  if (acked !== undefined) parts.push(`exit ${secs(m.wallMs - acked)}`);
  return { m, breakdown: `${parts.join('; ')} (total ${secs(m.wallMs)})` };
}

/** `verifyGeneration({ hashes: true })` with its defaults, timed without the process start-up. */
async function verifyDirect(genDir: string): Promise<{ ms: number; m: Measured }> {
  const m = await measureOk('verify-deep', [
    process.execPath,
    '--import',
    'tsx',
    fileURLToPath(new URL('./verify-deep.ts', import.meta.url)),
    genDir,
  ]);
  const out = z.object({ ok: z.boolean(), ms: z.number(), bytes: z.number() }).parse(JSON.parse(m.stdout));
  return { ms: out.ms, m };
}

async function bareRefresh(env: BenchEnv): Promise<Measured> {
  await sync();
  return measureOk('bare rsync refresh', [
    'rsync',
    '-a',
    '--delete',
    env.appData,
    env.appLogs,
    `${env.bareMirror}/`,
  ]);
}

/** A bare pull, and how long flushing what it wrote takes then (baton's publish makes its copy durable). */
type BarePull = Measured & { flushMs: number };

async function barePull(env: BenchEnv, from: string, to: string, linkDest?: string): Promise<BarePull> {
  await mkdir(env.bareSink, { recursive: true });
  await sync();
  const m = await measureOk('bare rsync over ssh', [
    'rsync',
    '-a',
    ...(linkDest ? [`--link-dest=${linkDest}`] : []),
    '-e',
    env.bareRsh,
    `${env.remote}:${from}/`,
    `${to}/`,
  ]);
  const flush = await measureOk('sync -f', ['sync', '-f', to]);
  return { ...m, flushMs: flush.wallMs };
}

/** Measurements that failed once and were run again, with why (shown in the notes). */
const retried: string[] = [];

/**
 * Runs a measured step; if its command fails, says so (with the sshd log's last auth lines), cleans
 * up with `reset` and runs it once more. Other engineers' tests on a shared machine change users and
 * load it; one transient failure should not void an hour of measurements, and a retry is never silent.
 */
async function withRetry<T>(
  env: BenchEnv,
  what: string,
  fn: () => Promise<T>,
  reset?: () => Promise<void>,
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof CommandFailed)) throw e;
    const sshdSaid = env.sshd
      .logs()
      .split('\n')
      .filter((l) => /denied|Failed|Invalid|error|refused|closed/i.test(l))
      .slice(-3)
      .join(' / ');
    say(`${what} failed, running it once more: ${errorLine(e)}${sshdSaid ? ` (sshd: ${sshdSaid})` : ''}`);
    retried.push(`${what}: ${errorLine(e)}${sshdSaid ? ` (sshd: ${sshdSaid})` : ''}`);
    // a refused key: something else on the machine rewrote our users' authorized_keys (another run)
    if (/Permission denied|authentication refused/.test(e.message)) await env.writeKeys();
    await reset?.();
    return fn();
  }
}

/** Runs `a` and `b`, alternating which goes first by run number (page cache and writeback fairness). */
async function pair<A, B>(run: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (run % 2 === 0) {
    const x = await a();
    return [x, await b()];
  }
  const y = await b();
  return [await a(), y];
}

// ---------------------------------------------------------------------------------------------
// Results being collected

interface Collected {
  figures: Map<string, Figure>;
  dataset: string[];
  details: string[];
  notes: string[];
}

const sideSchema = z.object({
  label: z.string(),
  values: z.array(
    z
      .number()
      .nullable()
      .transform((v) => v ?? Number.NaN),
  ),
  unit: z.enum(['ms', 'MiB/s', 'MiB', 'µs/file']),
});
const figureSchema = z.object({
  id: z.string(),
  title: z.string(),
  baton: sideSchema.optional(),
  plain: sideSchema.optional(),
  target: z.object({ op: z.enum(['le', 'ge']), value: z.number(), absolute: z.boolean().optional() }),
  missing: z.string().optional(),
  detail: z.string().optional(),
});
/** What --json saves and --merge reads back. */
const savedSchema = z.object({
  date: z.string(),
  figures: z.array(figureSchema),
  dataset: z.array(z.string()),
  details: z.array(z.string()),
  loadSeen: z.array(z.number()),
});
type Saved = z.infer<typeof savedSchema>;

async function loadSaved(file: string): Promise<Saved> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--merge ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const r = savedSchema.safeParse(raw);
  if (!r.success)
    throw new UsageError(
      `--merge ${file}: not a benchmark --json file (${r.error.issues[0]?.message ?? ''})`,
    );
  return r.data;
}

const side = (label: string, values: number[], unit: Side['unit']): Side => ({ label, values, unit });
const rssMiB = (m: Measured) => (m.maxRssKiB ?? Number.NaN) / 1024;
/** The largest value, NaN for none (shown as –). */
const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : Number.NaN);

// Why a figure misses its target, in this code base (shown only when it does). Keep in step with the code.
const KNOWN_CAUSES: Record<string, string> = {
  '1a': 'the downtime is the two mirror rsyncs (see the breakdown); a local rsync copies every changed file whole (`--whole-file` is its default between local paths), baton’s refresh and the bare one alike.',
  '1b': 'the change appends to every log file (8 × 25 MiB) and to one 50–200 MiB database file, and a local rsync copies a changed file whole (`--whole-file`, its default between local paths): about 250–400 MiB move while the app is down, against 1.7 GiB for the first full backup, so the ratio sits near 0.1–0.2 by construction, for the bare refresh as much as for baton. Only copying less while the app is down gets safely under 0.1, e.g. cloning the data with reflinks where the filesystem can.',
  '2': 'verification reads every byte: files are hashed as rsync completes them (src/sink/early-hash.ts) on two worker threads, but on two cores the hashing competes with rsync and ssh for the CPU; what is left after the transfer is the walk over the tree and the files rsync finished last (see the breakdown).',
  '3': 'fixed costs weigh on a small change: the sink’s own start-up and four of the gate (list, manifest, tree, ack; about 0.15 s each, the CLI is one bundled file), the list round trip, the manifest-first rsync session and its precheck, the walk that compares every file’s inode with the previous generation’s, and the ack (see the breakdown).',
  '4': '`baton verify --deep` hashes on two worker threads with 32 files in flight; its start-up and the walk over the tree count against it (see the detail line for the rate without start-up).',
  '5a': 'node alone is the peak (the rsync children are small): about 55 MiB of Node runtime and baton’s bundled code before any work starts, two hashing worker threads of about 8 MiB each, and the V8 heap while the build allocates fast (young generation capped by `--max-semi-space-size=4`, src/cli/node-flags.ts).',
  '5b': 'as for 5a: the Node runtime and baton’s code, two hashing worker threads and the V8 heap; memory does not grow with the file count (both manifests are streamed, the table of hashes taken during the transfer is capped at 25,000 files).',
  '5c': 'as for 5a: node alone is the peak; memory does not grow with the file count (the previous manifest is streamed, directories are kept as strings), the rest is the V8 heap under a high allocation rate.',
  '5d': 'as for 5b: node alone is the peak; the manifests are streamed (a link base is read alongside the walk with `ManifestCursor`), so what remains is the V8 heap under the allocation rate of a million manifest lines and lstat results.',
  '6a': 'per file, baton adds what rsync does not do: a manifest line parsed and checked, an lstat in the walk, and the file read and hashed (during the transfer where it can).',
  '6b': 'per file, baton adds a verification pass after the transfer that rsync does not do: a walk step, two manifest lines parsed (the new one and the link base’s) and an lstat of the link base’s file.',
  '6c': 'per file, the build walks the mirror, reads the previous manifest, checks and hard-links the previous generation’s file (three system calls) and writes two manifest lines, all on one JavaScript thread; `cp -al` makes two system calls in C and writes no manifest.',
};

// ---------------------------------------------------------------------------------------------
// The main set (20,000 files; 2,000 in quick mode)

async function runMain(env: BenchEnv, spec: DatasetSpec, runs: number, c: Collected): Promise<void> {
  say(`generating the ${spec.name} dataset (seed ${spec.seed}) in ${env.root}/app`);
  let t = Date.now();
  const ds = await generateDataset(spec, env.appData, env.appLogs);
  c.dataset.push(
    `main set (${spec.name}, seed ${spec.seed}): ${int(ds.files)} files in ${int(ds.dirs)} leaf dirs, ${fmtBytes(ds.dataBytes)} app data ` +
      `(${int(spec.smallFiles)} small files ${spec.smallMin / 1024}–${spec.smallMax / 1024} KiB log-uniform, half of them text; ` +
      `${spec.largeFiles} large files ${spec.largeMin / MiB}–${spec.largeMax / MiB} MiB) + ${fmtBytes(ds.logBytes)} logs in ${spec.logFiles} files; generated in ${secs(Date.now() - t)}`,
  );

  // 1b (part): the first full backup, and the bare full mirror copy beside it
  const fullBackups: BackupRun[] = [];
  const bareFull: Measured[] = [];
  for (let r = 0; r < runs; r++) {
    say(`full backup, run ${r + 1}/${runs}`);
    await resetStores(env);
    const [b, bare] = await pair(
      r,
      () => withRetry(env, 'baton source backup', () => sourceBackup(env)),
      () => withRetry(env, 'bare rsync refresh', () => bareRefresh(env)),
    );
    fullBackups.push(b);
    bareFull.push(bare);
    c.details.push(
      `first full backup, run ${r + 1}: downtime ${secs(b.downtimeMs)}, wall ${secs(b.m.wallMs)} (CPU ${cpu(b.m)}), peak RSS ${mib(b.m.maxRssKiB)} (node alone ${mib(b.m.selfHwmKiB)}); ${b.breakdown}. ` +
        `Bare \`rsync -a --delete\` into an empty mirror: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}`,
    );
  }
  await trimLogHandover(env);
  const g0 = fullBackups.at(-1)?.id;
  if (g0 === undefined) throw new Error('no full backup was made');

  // 2: full pull against a bare rsync -a over the same ssh
  const fullPulls: PullRun[] = [];
  const bareFullPulls: BarePull[] = [];
  const bareFullDir = join(env.bareSink, 'full');
  for (let r = 0; r < runs; r++) {
    say(`full pull, run ${r + 1}/${runs}`);
    await unack(env, g0);
    await removeTree(env.sinkStore);
    await removeTree(bareFullDir);
    const [p, bare] = await pair(
      r,
      () =>
        withRetry(
          env,
          'baton sink pull',
          () => sinkPull(env),
          () => removeTree(join(env.sinkStream, '.incoming')),
        ),
      () =>
        withRetry(
          env,
          'bare rsync pull',
          () => barePull(env, sourceGenerationDir(env, g0), bareFullDir),
          () => removeTree(bareFullDir),
        ),
    );
    fullPulls.push(p);
    bareFullPulls.push(bare);
    c.details.push(
      `full pull, run ${r + 1}: wall ${secs(p.m.wallMs)} (CPU ${cpu(p.m)}), peak RSS ${mib(p.m.maxRssKiB)} (node alone ${mib(p.m.selfHwmKiB)}); ${p.breakdown}. ` +
        `Bare \`rsync -a\` over ssh: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}, then \`sync -f\` ${secs(bare.flushMs)}`,
    );
  }
  if ((await generationIds(env.sinkStream)).length !== 1)
    throw new Error('the full pull did not publish one generation');

  // 1a, 3: the 1 % change — downtime, then the incremental pull
  const incBackups: BackupRun[] = [];
  const bareRefreshes: Measured[] = [];
  const incPulls: PullRun[] = [];
  const bareIncPulls: BarePull[] = [];
  const mutations: MutationSummary[] = [];
  let bareBase = bareFullDir;
  for (let r = 0; r < runs; r++) {
    say(`1 % change, round ${r + 1}/${runs}: backup and incremental pull`);
    t = Date.now();
    const mu = await mutateDataset(spec, env.appData, env.appLogs, r + 1);
    mutations.push(mu);
    c.dataset.push(
      `change round ${r + 1}: ${mu.rewritten} small files rewritten, ${mu.added} added, ${mu.deleted} deleted, ` +
        `${fmtBytes(mu.appendedLarge)} appended to a large file, ${fmtBytes(mu.appendedLogs)} to the logs: ${fmtBytes(mu.changedBytes)} new (${secs(Date.now() - t)})`,
    );
    const [b, bare] = await pair(
      r,
      () => withRetry(env, 'baton source backup', () => sourceBackup(env)),
      () => withRetry(env, 'bare rsync refresh', () => bareRefresh(env)),
    );
    incBackups.push(b);
    bareRefreshes.push(bare);
    await trimLogHandover(env);
    const incDir = join(env.bareSink, `inc-${r + 1}`);
    const [p, barePulled] = await pair(
      r,
      () =>
        withRetry(
          env,
          'baton sink pull',
          () => sinkPull(env),
          () => removeTree(join(env.sinkStream, '.incoming')),
        ),
      () =>
        withRetry(
          env,
          'bare rsync --link-dest pull',
          () => barePull(env, sourceGenerationDir(env, b.id), incDir, bareBase),
          () => removeTree(incDir),
        ),
    );
    bareBase = incDir;
    incPulls.push(p);
    bareIncPulls.push(barePulled);
    c.details.push(
      `backup after change ${r + 1}: downtime ${secs(b.downtimeMs)}, wall ${secs(b.m.wallMs)} (CPU ${cpu(b.m)}), ${fmtBytes(b.bytesCopied)} copied, peak RSS ${mib(b.m.maxRssKiB)} (node alone ${mib(b.m.selfHwmKiB)}); ${b.breakdown}. ` +
        `Bare \`rsync -a --delete\` refresh: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}`,
      `incremental pull ${r + 1}: wall ${secs(p.m.wallMs)} (CPU ${cpu(p.m)}), peak RSS ${mib(p.m.maxRssKiB)} (node alone ${mib(p.m.selfHwmKiB)}); ${p.breakdown}. ` +
        `Bare \`rsync -a --link-dest\` over ssh: ${secs(barePulled.wallMs)} (CPU ${cpu(barePulled)}), peak RSS ${mib(barePulled.maxRssKiB)}, then \`sync -f\` ${secs(barePulled.flushMs)}`,
    );
  }

  c.figures.set('1a', {
    id: '1a',
    title:
      'downtime after a 1 % change (meta.json downtimeMs) vs a bare `rsync -a --delete` refresh of a mirror',
    baton: side(
      'baton source backup',
      incBackups.map((b) => b.downtimeMs),
      'ms',
    ),
    plain: side(
      'rsync refresh',
      bareRefreshes.map((m) => m.wallMs),
      'ms',
    ),
    target: { op: 'le', value: 1.3 },
    detail: `downtime after the change: ${incBackups.map((b) => b.breakdown).join(' | ')}`,
  });
  c.figures.set('1b', {
    id: '1b',
    title: 'downtime after a 1 % change vs the first full backup’s downtime',
    baton: side(
      'after the change',
      incBackups.map((b) => b.downtimeMs),
      'ms',
    ),
    plain: side(
      'first full backup',
      fullBackups.map((b) => b.downtimeMs),
      'ms',
    ),
    target: { op: 'le', value: 0.1 },
  });
  c.figures.set('2', {
    id: '2',
    title: 'full pull (`baton sink pull data`, verification included) vs a bare `rsync -a` over the same ssh',
    baton: side(
      'baton sink pull',
      fullPulls.map((p) => p.m.wallMs),
      'ms',
    ),
    plain: side(
      'rsync -a',
      bareFullPulls.map((m) => m.wallMs),
      'ms',
    ),
    target: { op: 'le', value: 1.25 },
    detail: fullPulls.map((p) => p.breakdown).join(' | '),
  });
  c.figures.set('3', {
    id: '3',
    title:
      'incremental pull after the 1 % change vs a bare `rsync -a --link-dest` into a new dir over the same ssh',
    baton: side(
      'baton sink pull',
      incPulls.map((p) => p.m.wallMs),
      'ms',
    ),
    plain: side(
      'rsync --link-dest',
      bareIncPulls.map((m) => m.wallMs),
      'ms',
    ),
    target: { op: 'le', value: 1.2 },
    detail: incPulls.map((p) => p.breakdown).join(' | '),
  });

  // 4: deep verification of the newest sink generation against sha256sum -c over the same files
  const newest = (await generationIds(env.sinkStream)).at(-1);
  if (newest === undefined) throw new Error('no generation in the sink store');
  const genDir = join(env.sinkStream, newest);
  const meta = generationMetaSchema.parse(JSON.parse(await readFile(join(genDir, 'meta.json'), 'utf8')));
  const haveVerify = (await runProcess(baton('verify', '--help'), { timeoutMs: 30_000 })).code === 0;
  const verifyRates: number[] = [];
  const shaRates: number[] = [];
  let verifyHow = '';
  let verifyRss: number | undefined;
  for (let r = 0; r < runs; r++) {
    say(`verify --deep, run ${r + 1}/${runs}`);
    const [v, s] = await pair(
      r,
      async () => {
        await sync();
        if (haveVerify) {
          const m = await measure(baton('verify', '--deep', genDir));
          if (m.code === 0) {
            verifyHow = '`baton verify --deep` (wall time of the command)';
            return { ms: m.wallMs, m };
          }
          say(`baton verify --deep exited ${String(m.code)}; timing verifyGeneration directly`);
        }
        verifyHow =
          '`baton verify` does not exist yet: `verifyGeneration({ hashes: true })` of src/generation/verify.ts timed directly by bench/verify-deep.ts (without its start-up)';
        return verifyDirect(genDir);
      },
      async () => {
        await sync();
        return measureOk(
          'sha256sum -c',
          ['sh', '-c', 'cd tree && exec sha256sum --quiet --strict -c ../SHA256SUMS'],
          {
            cwd: genDir,
          },
        );
      },
    );
    verifyRates.push(meta.bytes / MiB / (v.ms / 1000));
    shaRates.push(meta.bytes / MiB / (s.wallMs / 1000));
    verifyRss = Math.max(verifyRss ?? 0, v.m.maxRssKiB ?? 0);
    c.details.push(
      `verify --deep run ${r + 1} over ${fmtBytes(meta.bytes)} in ${int(meta.files)} files: baton ${secs(v.ms)} (peak RSS ${mib(v.m.maxRssKiB)}), sha256sum -c ${secs(s.wallMs)}`,
    );
  }
  // the command chooses its own files in flight; the function's default, for comparison
  const directRates: number[] = [];
  if (haveVerify) {
    for (let r = 0; r < runs; r++) {
      await sync();
      directRates.push(meta.bytes / MiB / ((await verifyDirect(genDir)).ms / 1000));
    }
  }
  const directText = directRates.length
    ? `; \`verifyGeneration\` with its default files in flight (bench/verify-deep.ts, no start-up): ${median(directRates).toFixed(0)} MiB/s, ${(median(directRates) / median(shaRates)).toFixed(2)}× sha256sum`
    : '';
  c.figures.set('4', {
    id: '4',
    title: 'verify --deep throughput vs `sha256sum -c` over the same files',
    baton: side('baton', verifyRates, 'MiB/s'),
    plain: side('sha256sum', shaRates, 'MiB/s'),
    target: { op: 'ge', value: 2 },
    detail: `${verifyHow}; ${fmtBytes(meta.bytes)} in ${int(meta.files)} files of generation ${newest} (page cache warm for both); peak RSS ${mib(verifyRss)}${directText}`,
  });

  // 5a, 5b: memory at this size
  const backups = [...fullBackups, ...incBackups];
  const pulls = [...fullPulls, ...incPulls];
  c.figures.set('5a', {
    id: '5a',
    title: `peak RSS of \`baton source backup\`, ${int(ds.files)} files (full and after the change)`,
    baton: side('baton', [Math.max(...backups.map((b) => rssMiB(b.m)))], 'MiB'),
    plain: side('bare rsync refresh', [Math.max(...[...bareFull, ...bareRefreshes].map(rssMiB))], 'MiB'),
    target: { op: 'le', value: 150, absolute: true },
    detail: `node alone ${mib(Math.max(...backups.map((b) => b.m.selfHwmKiB ?? 0)))} (a higher peak than that would be its rsync children)`,
  });
  c.figures.set('5b', {
    id: '5b',
    title: `peak RSS of \`baton sink pull\`, ${int(ds.files)} files (full and incremental)`,
    baton: side('baton', [Math.max(...pulls.map((p) => rssMiB(p.m)))], 'MiB'),
    plain: side('bare rsync over ssh', [Math.max(...[...bareFullPulls, ...bareIncPulls].map(rssMiB))], 'MiB'),
    target: { op: 'le', value: 150, absolute: true },
    detail: `node alone ${mib(Math.max(...pulls.map((p) => p.m.selfHwmKiB ?? 0)))}`,
  });
}

// ---------------------------------------------------------------------------------------------
// The scale set (1,000,000 files): memory and time per file

async function runScale(env: BenchEnv, spec: DatasetSpec, runs: number, c: Collected): Promise<void> {
  await resetStores(env);
  await removeTree(env.appData);
  await removeTree(env.appLogs);
  say(`generating the scale set: ${int(spec.smallFiles)} files`);
  let t = Date.now();
  const ds = await generateDataset(spec, env.appData, env.appLogs);
  c.dataset.push(
    `scale set (seed ${spec.seed}): ${int(ds.files)} files in ${int(ds.dirs)} leaf dirs, ${fmtBytes(ds.dataBytes)} app data ` +
      `(${spec.smallMin}–${spec.smallMax} bytes each) + ${fmtBytes(ds.logBytes)} logs; generated in ${secs(Date.now() - t)}`,
  );
  const backups: BackupRun[] = [];
  const bareCopies: Measured[] = [];
  for (let r = 0; r < runs; r++) {
    say(`scale: full backup, run ${r + 1}/${runs}`);
    await resetStores(env);
    const [b, bare] = await pair(
      r,
      () => withRetry(env, 'baton source backup', () => sourceBackup(env)),
      () => withRetry(env, 'bare rsync refresh', () => bareRefresh(env)),
    );
    backups.push(b);
    bareCopies.push(bare);
    c.details.push(
      `scale full backup ${r + 1}: downtime ${secs(b.downtimeMs)}, wall ${secs(b.m.wallMs)} (CPU ${cpu(b.m)}), peak RSS ${mib(b.m.maxRssKiB)} (node alone ${mib(b.m.selfHwmKiB)}); ${b.breakdown}. ` +
        `Bare \`rsync -a --delete\` into an empty mirror: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}`,
    );
  }
  await trimLogHandover(env);
  const g0 = backups.at(-1)?.id;
  if (g0 === undefined) throw new Error('no scale backup was made');
  const fullPulls: PullRun[] = [];
  const bareFullPulls: BarePull[] = [];
  const incBackups: BackupRun[] = [];
  const bareRefreshes: Measured[] = [];
  const bareSnapshots: Measured[] = [];
  const incPulls: PullRun[] = [];
  const bareIncPulls: BarePull[] = [];
  /** The scale figures from what has been measured so far (a later failure keeps them). */
  const setFigures = () => {
    const n = ds.files;
    const perFile = (ms: number) => (ms * 1000) / n;
    const allBackups = [...backups, ...incBackups];
    const allPulls = [...fullPulls, ...incPulls];
    c.figures.set('5c', {
      id: '5c',
      title: `peak RSS of \`baton source backup\`, ${int(n)} files (full and after the change)`,
      baton: side('baton', [maxOf(allBackups.map((b) => rssMiB(b.m)))], 'MiB'),
      plain: side('bare rsync refresh', [maxOf([...bareCopies, ...bareRefreshes].map(rssMiB))], 'MiB'),
      target: { op: 'le', value: 150, absolute: true },
      detail: `node alone: full ${mib(maxOf(backups.map((b) => b.m.selfHwmKiB ?? 0)))}, after the change ${mib(maxOf(incBackups.map((b) => b.m.selfHwmKiB ?? 0)))}; a higher peak than that would be baton’s mirror rsync (\`--no-inc-recursive\` holds the whole file list)`,
    });
    c.figures.set('5d', {
      id: '5d',
      title: `peak RSS of \`baton sink pull\`, ${int(n)} files (full and incremental)`,
      baton: side('baton', [maxOf(allPulls.map((p) => rssMiB(p.m)))], 'MiB'),
      plain: side('bare rsync over ssh', [maxOf([...bareFullPulls, ...bareIncPulls].map(rssMiB))], 'MiB'),
      target: { op: 'le', value: 150, absolute: true },
      detail: `node alone: full ${mib(maxOf(fullPulls.map((p) => p.m.selfHwmKiB ?? 0)))}, incremental ${mib(maxOf(incPulls.map((p) => p.m.selfHwmKiB ?? 0)))}`,
    });
    c.figures.set('6a', {
      id: '6a',
      title: `time per file, full pull of ${int(n)} files vs bare \`rsync -a\` over ssh`,
      baton: side(
        'baton sink pull',
        fullPulls.map((p) => perFile(p.m.wallMs)),
        'µs/file',
      ),
      plain: side(
        'rsync -a',
        bareFullPulls.map((m) => perFile(m.wallMs)),
        'µs/file',
      ),
      target: { op: 'le', value: 1.5 },
      detail: fullPulls.map((p) => p.breakdown).join(' | '),
    });
    if (incPulls.length > 0)
      c.figures.set('6b', {
        id: '6b',
        title: `time per file, incremental pull of ${int(n)} files vs bare \`rsync -a --link-dest\` over ssh`,
        baton: side(
          'baton sink pull',
          incPulls.map((p) => perFile(p.m.wallMs)),
          'µs/file',
        ),
        plain: side(
          'rsync --link-dest',
          bareIncPulls.map((m) => perFile(m.wallMs)),
          'µs/file',
        ),
        target: { op: 'le', value: 1.5 },
        detail: incPulls.map((p) => p.breakdown).join(' | '),
      });
    if (incBackups.length > 0)
      c.figures.set('6c', {
        id: '6c',
        title: `time per file, \`baton source backup\` of ${int(n)} files after the change (whole run) vs a bare \`rsync -a --delete\` refresh plus \`cp -al\` of the mirror (the rsnapshot way to a hard-linked generation)`,
        baton: side(
          'baton source backup',
          incBackups.map((b) => perFile(b.m.wallMs)),
          'µs/file',
        ),
        plain: side(
          'rsync refresh + cp -al',
          bareRefreshes.map((m, i) => perFile(m.wallMs + (bareSnapshots[i]?.wallMs ?? Number.NaN))),
          'µs/file',
        ),
        target: { op: 'le', value: 1.5 },
        detail: `${incBackups.map((b) => b.breakdown).join(' | ')}; plain: ${bareRefreshes.map((m, i) => `refresh ${secs(m.wallMs)} + cp -al ${secs(bareSnapshots[i]?.wallMs ?? Number.NaN)}`).join(' | ')}`,
      });
  };

  const bareFullDir = join(env.bareSink, 'full');
  for (let r = 0; r < runs; r++) {
    say(`scale: full pull, run ${r + 1}/${runs}`);
    await unack(env, g0);
    await removeTree(env.sinkStore);
    await removeTree(bareFullDir);
    const [p, bare] = await pair(
      r,
      () =>
        withRetry(
          env,
          'baton sink pull',
          () => sinkPull(env),
          () => removeTree(join(env.sinkStream, '.incoming')),
        ),
      () =>
        withRetry(
          env,
          'bare rsync pull',
          () => barePull(env, sourceGenerationDir(env, g0), bareFullDir),
          () => removeTree(bareFullDir),
        ),
    );
    fullPulls.push(p);
    bareFullPulls.push(bare);
    c.details.push(
      `scale full pull ${r + 1}: wall ${secs(p.m.wallMs)} (CPU ${cpu(p.m)}), peak RSS ${mib(p.m.maxRssKiB)} (node alone ${mib(p.m.selfHwmKiB)}); ${p.breakdown}. ` +
        `Bare \`rsync -a\` over ssh: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}, then \`sync -f\` ${secs(bare.flushMs)}`,
    );
  }
  setFigures();
  let bareBase = bareFullDir;
  for (let r = 0; r < runs; r++) {
    say(`scale: 1 % change, round ${r + 1}/${runs}`);
    t = Date.now();
    const mu = await mutateDataset(spec, env.appData, env.appLogs, r + 1);
    c.dataset.push(
      `scale change round ${r + 1}: ${int(mu.rewritten)} rewritten, ${int(mu.added)} added, ${int(mu.deleted)} deleted, ${fmtBytes(mu.appendedLogs)} appended to the logs (${secs(Date.now() - t)})`,
    );
    const [b, bare] = await pair(
      r,
      () => withRetry(env, 'baton source backup', () => sourceBackup(env)),
      () => withRetry(env, 'bare rsync refresh', () => bareRefresh(env)),
    );
    incBackups.push(b);
    bareRefreshes.push(bare);
    // the plain tools' way to a hard-linked generation (rsnapshot): refresh a mirror, then cp -al it
    await sync();
    const snap = await measureOk('cp -al', [
      'cp',
      '-al',
      env.bareMirror,
      join(env.bareSink, `snap-${r + 1}`),
    ]);
    bareSnapshots.push(snap);
    await trimLogHandover(env);
    const incDir = join(env.bareSink, `inc-${r + 1}`);
    const [p, barePulled] = await pair(
      r,
      () =>
        withRetry(
          env,
          'baton sink pull',
          () => sinkPull(env),
          () => removeTree(join(env.sinkStream, '.incoming')),
        ),
      () =>
        withRetry(
          env,
          'bare rsync --link-dest pull',
          () => barePull(env, sourceGenerationDir(env, b.id), incDir, bareBase),
          () => removeTree(incDir),
        ),
    );
    bareBase = incDir;
    incPulls.push(p);
    bareIncPulls.push(barePulled);
    c.details.push(
      `scale backup after change ${r + 1}: downtime ${secs(b.downtimeMs)}, wall ${secs(b.m.wallMs)} (CPU ${cpu(b.m)}), peak RSS ${mib(b.m.maxRssKiB)} (node alone ${mib(b.m.selfHwmKiB)}); ${b.breakdown}. ` +
        `Bare refresh: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}`,
      `scale incremental pull ${r + 1}: wall ${secs(p.m.wallMs)} (CPU ${cpu(p.m)}), peak RSS ${mib(p.m.maxRssKiB)} (node alone ${mib(p.m.selfHwmKiB)}); ${p.breakdown}. ` +
        `Bare \`rsync -a --link-dest\` over ssh: ${secs(barePulled.wallMs)} (CPU ${cpu(barePulled)}), peak RSS ${mib(barePulled.maxRssKiB)}, then \`sync -f\` ${secs(barePulled.flushMs)}`,
    );
  }
  setFigures();
}

// ---------------------------------------------------------------------------------------------

async function firstLine(argv: string[]): Promise<string> {
  const r = await runProcess(argv, { timeoutMs: 10_000, captureStdout: true });
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?';
}

async function machineInfo(dir: string): Promise<Omit<MachineInfo, 'load'>> {
  const c = cpus();
  const fs = await firstLine(['findmnt', '-n', '-o', 'FSTYPE,SOURCE', '-T', dir]);
  return {
    cpus: `${c.length} × ${c[0]?.model.trim() ?? '?'}`,
    ramGiB: totalmem() / 1024 ** 3,
    fs: fs.replace(/\s+/g, ' on '),
    kernel: release(),
    node: process.version,
    rsync: (await firstLine(['rsync', '--version'])).replace(/\s+/g, ' '),
    openssh: await firstLine(['ssh', '-V']),
    sha256sum: await firstLine(['sha256sum', '--version']),
    gnuTime: existsSync(GNU_TIME)
      ? `peak RSS by ${GNU_TIME} -v`
      : `${GNU_TIME} missing (apt-get install time): peak RSS polled from /proc VmHWM`,
    code: await firstLine(['git', '-C', REPO_DIR, 'describe', '--always', '--dirty', '--abbrev=12']),
  };
}

function scaleSpecFor(o: Options): DatasetSpec {
  const base = { ...SCALE_SPEC, seed: o.seed };
  if (o.scaleFiles === undefined) return base;
  return {
    ...base,
    smallFiles: o.scaleFiles,
    logBytes: Math.min(base.logBytes, Math.max(MiB, o.scaleFiles * 16)),
  };
}

/** Bytes the run needs on disk: about six copies of the data (app, mirror, handover/store, sink, bare mirror, bare sink). */
function diskNeed(o: Options): number {
  const main = o.quick ? QUICK_SPEC : FULL_SPEC;
  const mainBytes =
    main.smallFiles *
      Math.max(4096, (main.smallMax - main.smallMin) / Math.log(main.smallMax / main.smallMin)) +
    (main.largeFiles * (main.largeMin + main.largeMax)) / 2 +
    main.logBytes;
  const s = scaleSpecFor(o);
  const scaleBytes = s.smallFiles * 4096 + s.logBytes;
  return 7 * Math.max(o.only === 'scale' ? 0 : mainBytes, o.scale ? scaleBytes : 0);
}

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
  const report = (): Report => {
    const merged = (id: string): Figure | undefined => {
      const f = earlier?.figures.find((x) => x.id === id && x.missing === undefined);
      return f ? { ...f, title: `${f.title} (from the run of ${earlier?.date ?? '?'})` } : undefined;
    };
    const figures: Figure[] = FIGURE_IDS.map(
      (id) =>
        c.figures.get(id) ??
        merged(id) ?? {
          id,
          title: id.startsWith('5c') || id.startsWith('5d') || id.startsWith('6') ? 'scale set' : 'main set',
          target: { op: 'le', value: 1 },
          missing: 'not run',
        },
    );
    const notes = [...c.notes];
    for (const r of retried)
      notes.push(`Retried once (its first attempt failed, the figure uses the second): ${r}`);
    for (const f of figures) {
      const v = judge(f);
      if (v.kind === 'missed' && KNOWN_CAUSES[f.id])
        notes.push(`**${f.id}** missed: ${KNOWN_CAUSES[f.id] ?? ''}`);
    }
    const ls = [...loadSeen, ...(earlier?.loadSeen ?? [])].sort((a, b) => a - b);
    const machine: MachineInfo = {
      ...machineBase,
      load: ls.length
        ? `1-minute load average when the ${ls.length} measurements started: median ${median(ls).toFixed(1)}, max ${(ls.at(-1) ?? 0).toFixed(1)} (${cpus().length} cores; above that, other work competed for the CPU)`
        : 'load: not sampled',
    };
    return {
      title: 'baton benchmark',
      date: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
      mode: o.quick
        ? 'quick (smoke test: 1 run, small sets, not a measurement)'
        : `full, ${o.runs} runs per figure${o.scale ? `, scale set ${o.scaleRuns} run(s)` : ''}`,
      command,
      durationS: (Date.now() - started) / 1000,
      machine,
      dataset: [...c.dataset, ...(earlier?.dataset.map((d) => `(run of ${earlier.date}) ${d}`) ?? [])],
      figures,
      details: [...c.details, ...(earlier?.details.map((d) => `(run of ${earlier.date}) ${d}`) ?? [])],
      notes,
    };
  };
  let written: Report | undefined;
  const write = async () => {
    const r = report();
    written = r;
    await writeFile(o.out, renderReport(r));
    if (o.json !== undefined) {
      const saved: Saved = {
        date: r.date,
        figures: [...c.figures.values()],
        dataset: c.dataset,
        details: c.details,
        loadSeen,
      };
      await writeFile(o.json, `${JSON.stringify(saved, null, 2)}\n`);
    }
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

function errorLine(e: unknown): string {
  if (e instanceof CommandFailed) return e.message.split('\n').slice(0, 3).join(' / ');
  return e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e);
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

/**
 * The two measured sets: the main set (20,000 files; figures 1a–5b) and the scale set (1,000,000
 * files; figures 5c–6c). Each runs baton and the plain tool back to back and collects the figures.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generationMetaSchema } from '../src/core/meta.js';
import { runProcess } from '../src/adapters/run.js';
import { generateDataset, mutateDataset, type DatasetSpec, type MutationSummary } from './dataset.js';
import {
  baton,
  generationIds,
  removeTree,
  resetStores,
  sourceGenerationDir,
  trimLogHandover,
  unack,
  type BenchEnv,
} from './env.js';
import { measure, measureOk, type Measured } from './measure.js';
import { MiB } from './options.js';
import {
  bareRefresh,
  barePull,
  cpu,
  fmtBytes,
  int,
  mib,
  pair,
  say,
  secs,
  sinkPull,
  sourceBackup,
  sync,
  verifyDirect,
  withRetry,
  type BackupRun,
  type BarePull,
  type PullRun,
} from './steps.js';
import { median, type Figure, type Side } from './report.js';

// ---------------------------------------------------------------------------------------------
// Results being collected

export interface Collected {
  figures: Map<string, Figure>;
  dataset: string[];
  details: string[];
  notes: string[];
}

const side = (label: string, values: number[], unit: Side['unit']): Side => ({ label, values, unit });
const rssMiB = (m: Measured) => (m.maxRssKiB ?? Number.NaN) / 1024;
/** The largest value, NaN for none (shown as –). */
const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : Number.NaN);

/** baton's pull of generation `id` and a bare `rsync -a [--link-dest=base]` of it into `dir`, in round r's order. */
function pullBoth(
  env: BenchEnv,
  r: number,
  id: string,
  dir: string,
  base?: string,
): Promise<[PullRun, BarePull]> {
  return pair(
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
        base === undefined ? 'bare rsync pull' : 'bare rsync --link-dest pull',
        () => barePull(env, sourceGenerationDir(env, id), dir, base),
        () => removeTree(dir),
      ),
  );
}

/** A figure of baton's pulls (wall time) against the bare rsync's, with baton's breakdowns below. */
function pullFigure(
  id: string,
  title: string,
  batonPulls: readonly PullRun[],
  bare: readonly Measured[],
  plainLabel: string,
  target: number,
): Figure {
  return {
    id,
    title,
    baton: side(
      'baton sink pull',
      batonPulls.map((p) => p.m.wallMs),
      'ms',
    ),
    plain: side(
      plainLabel,
      bare.map((m) => m.wallMs),
      'ms',
    ),
    target: { op: 'le', value: target },
    detail: batonPulls.map((p) => p.breakdown).join(' | '),
  };
}

// ---------------------------------------------------------------------------------------------
// The main set (20,000 files; 2,000 in quick mode)

export async function runMain(env: BenchEnv, spec: DatasetSpec, runs: number, c: Collected): Promise<void> {
  say(`generating the ${spec.name} dataset (seed ${spec.seed}) in ${env.root}/app`);
  const t = Date.now();
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
    const [p, bare] = await pullBoth(env, r, g0, bareFullDir);
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
  let bareBase = await changeRounds(env, spec, runs, c, 'main', bareFullDir, {
    incBackups,
    bareRefreshes,
    incPulls,
    bareIncPulls,
    mutations,
  });

  // 3b: a small change (0.1 %), where the pull's fixed costs (starts, round trips) weigh most
  const smallPulls: PullRun[] = [];
  const bareSmallPulls: BarePull[] = [];
  for (let r = 0; r < runs; r++) {
    say(`0.1 % change, round ${r + 1}/${runs}: backup and incremental pull`);
    const mu = await mutateDataset(spec, env.appData, env.appLogs, runs + r + 1, 0.1);
    c.dataset.push(
      `small change round ${r + 1}: ${mu.rewritten} small files rewritten, ${mu.added} added, ${mu.deleted} deleted, ` +
        `${fmtBytes(mu.appendedLarge)} appended to a large file, ${fmtBytes(mu.appendedLogs)} to the logs: ${fmtBytes(mu.changedBytes)} new`,
    );
    const b = await withRetry(env, 'baton source backup', () => sourceBackup(env));
    await trimLogHandover(env);
    const smallDir = join(env.bareSink, `small-${r + 1}`);
    const [p, barePulled] = await pullBoth(env, r, b.id, smallDir, bareBase);
    bareBase = smallDir;
    smallPulls.push(p);
    bareSmallPulls.push(barePulled);
    c.details.push(
      `incremental pull after the small change ${r + 1}: wall ${secs(p.m.wallMs)} (CPU ${cpu(p.m)}), peak RSS ${mib(p.m.maxRssKiB)}; ${p.breakdown}. ` +
        `Bare \`rsync -a --link-dest\` over ssh: ${secs(barePulled.wallMs)} (CPU ${cpu(barePulled)})`,
    );
  }
  c.figures.set(
    '3b',
    pullFigure(
      '3b',
      'incremental pull after a 0.1 % change vs a bare `rsync -a --link-dest` into a new dir over the same ssh',
      smallPulls,
      bareSmallPulls,
      'rsync --link-dest',
      1.2,
    ),
  );

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
  c.figures.set(
    '2',
    pullFigure(
      '2',
      'full pull (`baton sink pull data`, verification included) vs a bare `rsync -a` over the same ssh',
      fullPulls,
      bareFullPulls,
      'rsync -a',
      1.1,
    ),
  );
  c.figures.set(
    '3',
    pullFigure(
      '3',
      'incremental pull after the 1 % change vs a bare `rsync -a --link-dest` into a new dir over the same ssh',
      incPulls,
      bareIncPulls,
      'rsync --link-dest',
      1.2,
    ),
  );

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
    target: { op: 'ge', value: 2.5 },
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

/** What the 1 % change rounds of a set measure, filled round by round. */
interface ChangeRoundRuns {
  incBackups: BackupRun[];
  bareRefreshes: Measured[];
  incPulls: PullRun[];
  bareIncPulls: BarePull[];
  mutations: MutationSummary[];
  /** the scale set: the rsnapshot way to a hard-linked generation (bare refresh, then `cp -al`) */
  bareSnapshots?: Measured[];
}

/**
 * The 1 % change rounds, one step list for the main and the scale set: change the data, back up
 * beside a bare `rsync -a --delete` refresh (the scale set also times `cp -al` of the bare mirror),
 * then pull incrementally beside a bare `rsync -a --link-dest` over the same ssh. Returns the last
 * bare pull's dir (the next bare pull's --link-dest base).
 */
async function changeRounds(
  env: BenchEnv,
  spec: DatasetSpec,
  runs: number,
  c: Collected,
  set: 'main' | 'scale',
  bareFullDir: string,
  out: ChangeRoundRuns,
  afterRound?: () => void,
): Promise<string> {
  const label = set === 'scale' ? 'scale ' : '';
  let bareBase = bareFullDir;
  for (let r = 0; r < runs; r++) {
    say(`${label}1 % change, round ${r + 1}/${runs}: backup and incremental pull`);
    const t = Date.now();
    const mu = await mutateDataset(spec, env.appData, env.appLogs, r + 1);
    out.mutations.push(mu);
    c.dataset.push(
      `${label}change round ${r + 1}: ${int(mu.rewritten)} small files rewritten, ${int(mu.added)} added, ${int(mu.deleted)} deleted, ` +
        `${fmtBytes(mu.appendedLarge)} appended to a large file, ${fmtBytes(mu.appendedLogs)} to the logs: ${fmtBytes(mu.changedBytes)} new (${secs(Date.now() - t)})`,
    );
    const [b, bare] = await pair(
      r,
      () => withRetry(env, 'baton source backup', () => sourceBackup(env)),
      () => withRetry(env, 'bare rsync refresh', () => bareRefresh(env)),
    );
    out.incBackups.push(b);
    out.bareRefreshes.push(bare);
    if (out.bareSnapshots) {
      await sync();
      out.bareSnapshots.push(
        await measureOk('cp -al', ['cp', '-al', env.bareMirror, join(env.bareSink, `snap-${r + 1}`)]),
      );
    }
    await trimLogHandover(env);
    const incDir = join(env.bareSink, `inc-${r + 1}`);
    const [p, barePulled] = await pullBoth(env, r, b.id, incDir, bareBase);
    bareBase = incDir;
    out.incPulls.push(p);
    out.bareIncPulls.push(barePulled);
    c.details.push(
      `${label}backup after change ${r + 1}: downtime ${secs(b.downtimeMs)}, wall ${secs(b.m.wallMs)} (CPU ${cpu(b.m)}), ${fmtBytes(b.bytesCopied)} copied, peak RSS ${mib(b.m.maxRssKiB)} (node alone ${mib(b.m.selfHwmKiB)}); ${b.breakdown}. ` +
        `Bare \`rsync -a --delete\` refresh: ${secs(bare.wallMs)} (CPU ${cpu(bare)}), peak RSS ${mib(bare.maxRssKiB)}`,
      `${label}incremental pull ${r + 1}: wall ${secs(p.m.wallMs)} (CPU ${cpu(p.m)}), peak RSS ${mib(p.m.maxRssKiB)} (node alone ${mib(p.m.selfHwmKiB)}); ${p.breakdown}. ` +
        `Bare \`rsync -a --link-dest\` over ssh: ${secs(barePulled.wallMs)} (CPU ${cpu(barePulled)}), peak RSS ${mib(barePulled.maxRssKiB)}, then \`sync -f\` ${secs(barePulled.flushMs)}`,
    );
    afterRound?.();
  }
  return bareBase;
}

// ---------------------------------------------------------------------------------------------
// The scale set (1,000,000 files): memory and time per file

export async function runScale(env: BenchEnv, spec: DatasetSpec, runs: number, c: Collected): Promise<void> {
  await resetStores(env);
  await removeTree(env.appData);
  await removeTree(env.appLogs);
  say(`generating the scale set: ${int(spec.smallFiles)} files`);
  const t = Date.now();
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
  await changeRounds(
    env,
    spec,
    runs,
    c,
    'scale',
    bareFullDir,
    { incBackups, bareRefreshes, incPulls, bareIncPulls, mutations: [], bareSnapshots },
    setFigures,
  );
}

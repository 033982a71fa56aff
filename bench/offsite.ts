/**
 * Issue #13's benchmark (`npm run bench:offsite`): `baton offsite push|restore` against restic
 * (Debian's package) backing up the same sink generation to the same moto_server, ratios measured
 * in one run. Main set: the first push, a 1 % day and a full restore of the main benchmark set
 * (bench/dataset.ts). Scale set: peak RSS of push and restore at many tiny files.
 *
 *   node --import tsx bench/offsite.ts [--quick|--tiny] [--only main|scale] [--scale-files N]
 *        [--out bench/RESULTS-offsite.md] [--dir /var/tmp] [--keep]
 *
 * Needs root (the builder writes owners), moto_server, restic and age-keygen. No users, no sshd.
 */
import { mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  FULL_SPEC,
  QUICK_SPEC,
  SCALE_SPEC,
  generateDataset,
  mutateDataset,
  type DatasetSpec,
} from './dataset.js';
import { baton, removeTree } from './env.js';
import { runOk, type Measured } from './measure.js';
import { findMotoServer } from '../test/helpers/moto.js';
import { machineInfo } from './results.js';
import { fmtBytes, int, say, secs } from './steps.js';
import {
  addGeneration,
  batonPush,
  batonRestore,
  bucketBytes,
  createWorld,
  flush,
  resticBackup,
  resticInit,
  resticRestore,
  type OffsiteWorld,
} from './offsite-steps.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DEFAULT_OUT = fileURLToPath(new URL('./RESULTS-offsite.md', import.meta.url));
/** The smoke test's main set: 200 small files, one 2 MiB file, 256 KiB of logs. */
const TINY_SPEC: DatasetSpec = {
  ...QUICK_SPEC,
  name: 'quick',
  smallFiles: 200,
  largeFiles: 1,
  largeMin: 2 * MiB,
  largeMax: 2 * MiB,
  logFiles: 1,
  logBytes: 256 * KiB,
  largeAppend: 64 * KiB,
};
/** issue #13: peak RSS of push and restore at 1,000,000 files */
export const RSS_LIMIT_MIB = 150;

export interface OffsiteOptions {
  quick: boolean;
  /** a few hundred files: the smoke test's size (test/e2e/bench-smoke.test.ts) */
  tiny: boolean;
  only: 'all' | 'main' | 'scale';
  scaleFiles: number;
  out: string;
  dir: string;
  keep: boolean;
}

export function parseOffsiteOptions(argv: string[]): OffsiteOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      only: { type: 'string', default: 'all' },
      'scale-files': { type: 'string' },
      out: { type: 'string', default: DEFAULT_OUT },
      dir: { type: 'string', default: '/var/tmp' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const only = values.only;
  if (only !== 'all' && only !== 'main' && only !== 'scale')
    throw new Error(`--only wants main or scale, got "${only}"`);
  const n = values['scale-files'] === undefined ? undefined : Number(values['scale-files']);
  if (n !== undefined && (!Number.isInteger(n) || n < 100))
    throw new Error(`--scale-files wants an integer ≥ 100, got "${values['scale-files']}"`);
  return {
    quick: values.quick,
    tiny: values.tiny,
    only,
    scaleFiles: n ?? (values.tiny ? 300 : values.quick ? 2000 : SCALE_SPEC.smallFiles),
    out: values.out,
    dir: values.dir,
    keep: values.keep,
  };
}

/** One compared figure: baton's value, restic's, what the issue asks of it. */
export interface Row {
  id: string;
  title: string;
  unit: 's' | 'MiB' | 'B';
  baton: number;
  restic: number;
  /** `ratio`: baton/restic ≤ 1; `rss`: baton ≤ RSS_LIMIT_MIB; `none`: shown, not judged */
  target: 'ratio' | 'rss' | 'none';
  note?: string;
}

interface Collected {
  rows: Row[];
  sets: string[];
  details: string[];
}

const rssMiB = (m: Measured) => (m.maxRssKiB ?? Number.NaN) / 1024;
const wallS = (m: Measured) => m.wallMs / 1000;

/** The set's mirror: `<root>/mirror/srv/app/{data,logs}`. */
async function makeMirror(root: string, spec: DatasetSpec) {
  const mirror = join(root, 'mirror');
  const data = join(mirror, 'srv', 'app', 'data');
  const logs = join(mirror, 'srv', 'app', 'logs');
  const t = Date.now();
  const ds = await generateDataset(spec, data, logs);
  return { mirror, data, logs, ds, ms: Date.now() - t };
}

/** Restores with both tools into fresh dirs; baton's copy is checked with `baton verify --deep`. */
async function restoreBoth(w: OffsiteWorld, id: string, tag: string) {
  const bDir = join(w.root, `restore-baton-${tag}`);
  const rDir = join(w.root, `restore-restic-${tag}`);
  const b = await batonRestore(w, id, bDir);
  const bFlush = await flush(bDir);
  const r = await resticRestore(w, rDir);
  const rFlush = await flush(rDir);
  await runOk('baton verify --deep on the restored generation', baton('verify', '--deep', bDir));
  await removeTree(bDir);
  await removeTree(rDir);
  return { b, r, bS: (b.wallMs + bFlush) / 1000, rS: (r.wallMs + rFlush) / 1000 };
}

async function runMain(w: OffsiteWorld, spec: DatasetSpec, c: Collected): Promise<void> {
  say(`generating the ${spec.name} set in ${w.root}/mirror`);
  const { mirror, data, logs, ds, ms } = await makeMirror(w.root, spec);
  c.sets.push(
    `main set (${spec.name}, seed ${spec.seed}): ${int(ds.files)} files, ${fmtBytes(ds.bytes)} ` +
      `(${int(spec.smallFiles)} small files ${spec.smallMin / KiB}–${spec.smallMax / KiB} KiB, half of them text; ` +
      `${spec.largeFiles} large files ${spec.largeMin / MiB}–${spec.largeMax / MiB} MiB; ${fmtBytes(ds.logBytes)} logs); generated in ${secs(ms)}`,
  );
  say('building sink generation 1 (full) and 2 (after a 1 % day, hard-linked to 1)');
  const g0 = await addGeneration(w, mirror, undefined);
  const mu = await mutateDataset(spec, data, logs, 1);
  const g1 = await addGeneration(w, mirror, g0);
  // held back until the day's push: `offsite push` pushes every generation not yet offsite
  const held = join(w.root, 'held');
  await rename(g1.dir, held);
  c.sets.push(
    `1 % day: ${int(mu.rewritten)} small files rewritten, ${int(mu.added)} added, ${int(mu.deleted)} deleted, ` +
      `${fmtBytes(mu.appendedLarge)} appended to a large file, ${fmtBytes(mu.appendedLogs)} to the logs: ${fmtBytes(mu.changedBytes)} new bytes`,
  );

  await resticInit(w);
  const before0 = { baton: await bucketBytes(w, 'baton'), restic: await bucketBytes(w, 'restic') };
  say('first push: baton offsite push, then restic backup');
  const bp0 = await batonPush(w);
  const rp0 = await resticBackup(w, g0);
  const after0 = { baton: await bucketBytes(w, 'baton'), restic: await bucketBytes(w, 'restic') };

  await rename(held, g1.dir);
  say('1 % day: baton offsite push, then restic backup');
  const bp1 = await batonPush(w);
  const rp1 = await resticBackup(w, g1);
  const after1 = { baton: await bucketBytes(w, 'baton'), restic: await bucketBytes(w, 'restic') };

  say('full restore of the 1 % day generation: baton, then restic');
  const rs = await restoreBoth(w, g1.id, 'main');

  const grow = (k: 'baton' | 'restic') => after1[k].bytes - after0[k].bytes;
  c.rows.push(
    {
      id: 'P1',
      title: 'first push, wall',
      unit: 's',
      baton: wallS(bp0),
      restic: wallS(rp0),
      target: 'ratio',
    },
    {
      id: 'P2',
      title: '1 % day push, wall',
      unit: 's',
      baton: wallS(bp1),
      restic: wallS(rp1),
      target: 'ratio',
    },
    {
      id: 'B1',
      title: 'bucket after the first push',
      unit: 'B',
      baton: after0.baton.bytes - before0.baton.bytes,
      restic: after0.restic.bytes - before0.restic.bytes,
      target: 'none',
    },
    {
      id: 'B2',
      title: 'bucket growth per 1 % day',
      unit: 'B',
      baton: grow('baton'),
      restic: grow('restic'),
      target: 'ratio',
    },
    {
      id: 'R1',
      title: 'full restore, wall (until flushed)',
      unit: 's',
      baton: rs.bS,
      restic: rs.rS,
      target: 'ratio',
    },
    {
      id: 'M1',
      title: `peak RSS, push (${int(ds.files)} files)`,
      unit: 'MiB',
      baton: Math.max(rssMiB(bp0), rssMiB(bp1)),
      restic: Math.max(rssMiB(rp0), rssMiB(rp1)),
      target: 'none',
    },
    {
      id: 'M2',
      title: `peak RSS, restore (${int(ds.files)} files)`,
      unit: 'MiB',
      baton: rssMiB(rs.b),
      restic: rssMiB(rs.r),
      target: 'none',
    },
  );
  c.details.push(
    `objects in the bucket: baton ${int(after0.baton.objects)} after the first push, ${int(after1.baton.objects)} after the day; ` +
      `restic ${int(after0.restic.objects)} → ${int(after1.restic.objects)}`,
    `CPU seconds (user+sys): first push baton ${cpuS(bp0)} / restic ${cpuS(rp0)}; day baton ${cpuS(bp1)} / restic ${cpuS(rp1)}; ` +
      `restore baton ${cpuS(rs.b)} / restic ${cpuS(rs.r)}`,
    `baton push --json, day: ${oneLine(bp1.stdout)}`,
  );
  await removeTree(join(w.root, 'mirror'));
}

const cpuS = (m: Measured) => (m.cpuS === undefined ? '?' : `${m.cpuS.toFixed(1)} s`);
const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 600);

/** Many tiny files (64–512 B): the per-file cost and memory of push and restore. */
async function runScale(w: OffsiteWorld, files: number, c: Collected): Promise<void> {
  const spec: DatasetSpec = {
    ...SCALE_SPEC,
    smallFiles: files,
    smallMin: 64,
    smallMax: 512,
    logFiles: 1,
    logBytes: 64 * KiB,
  };
  say(`generating the scale set: ${int(files)} tiny files`);
  const { mirror, ds, ms } = await makeMirror(w.root, spec);
  c.sets.push(
    `scale set: ${int(ds.files)} files (${int(files)} of 64–512 B in ${int(ds.dirs)} dirs + 1 log), ${fmtBytes(ds.bytes)}; generated in ${secs(ms)}`,
  );
  say('building the scale generation');
  const t = Date.now();
  const g = await addGeneration(w, mirror, undefined);
  c.sets.push(`scale generation built (hashed, manifest written) in ${secs(Date.now() - t)}`);
  await removeTree(mirror);
  await resticInit(w).catch(() => undefined); // already there after the main set
  say('scale push: baton, then restic');
  const bp = await batonPush(w);
  const rp = await resticBackup(w, g);
  say('scale restore: baton, then restic');
  const rs = await restoreBoth(w, g.id, 'scale');
  const n = int(ds.files);
  c.rows.push(
    {
      id: 'S1',
      title: `peak RSS, push (${n} files)`,
      unit: 'MiB',
      baton: rssMiB(bp),
      restic: rssMiB(rp),
      target: 'rss',
    },
    {
      id: 'S2',
      title: `peak RSS, restore (${n} files)`,
      unit: 'MiB',
      baton: rssMiB(rs.b),
      restic: rssMiB(rs.r),
      target: 'rss',
    },
    {
      id: 'S3',
      title: `push, wall (${n} files)`,
      unit: 's',
      baton: wallS(bp),
      restic: wallS(rp),
      target: 'none',
    },
    { id: 'S4', title: `restore, wall (${n} files)`, unit: 's', baton: rs.bS, restic: rs.rS, target: 'none' },
  );
  c.details.push(
    `scale CPU seconds: push baton ${cpuS(bp)} / restic ${cpuS(rp)}; restore baton ${cpuS(rs.b)} / restic ${cpuS(rs.r)}`,
  );
}

function fmt(v: number, unit: Row['unit']): string {
  if (!Number.isFinite(v)) return '–';
  if (unit === 's') return `${v.toFixed(2)} s`;
  if (unit === 'MiB') return `${v.toFixed(0)} MiB`;
  return `${int(v)} B (${fmtBytes(v)})`;
}

export function verdict(r: Row): string {
  if (r.target === 'none') return '(not a target)';
  if (r.target === 'rss') {
    if (!Number.isFinite(r.baton)) return 'not measured';
    return r.baton <= RSS_LIMIT_MIB
      ? `met (≤ ${RSS_LIMIT_MIB} MiB)`
      : `**missed** by ${(r.baton - RSS_LIMIT_MIB).toFixed(0)} MiB`;
  }
  const ratio = r.baton / r.restic;
  if (!Number.isFinite(ratio)) return 'not measured';
  return ratio <= 1 ? 'met (≤ 1×)' : `**missed** by ${((ratio - 1) * 100).toFixed(0)} %`;
}

export function renderRows(rows: readonly Row[]): string[] {
  const out = ['| id | figure | baton | restic | baton/restic | target |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const ratio = r.baton / r.restic;
    out.push(
      `| ${r.id} | ${r.title} | **${fmt(r.baton, r.unit)}** | ${fmt(r.restic, r.unit)} | ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–'} | ${verdict(r)} |`,
    );
  }
  return out;
}

async function main(): Promise<void> {
  const o = parseOffsiteOptions(process.argv.slice(2));
  const started = Date.now();
  await mkdir(o.dir, { recursive: true });
  const root = await mkdtemp(join(o.dir, 'baton-offsite-bench-'));
  const loads: number[] = [loadavg()[0] ?? 0];
  const c: Collected = { rows: [], sets: [], details: [] };
  const w = await createWorld(root, '32M');
  try {
    if (o.only !== 'scale') await runMain(w, o.tiny ? TINY_SPEC : o.quick ? QUICK_SPEC : FULL_SPEC, c);
    loads.push(loadavg()[0] ?? 0);
    if (o.only !== 'main') await runScale(w, o.scaleFiles, c);
    loads.push(loadavg()[0] ?? 0);
  } finally {
    await w.stop();
    if (!o.keep) await removeTree(root);
  }
  const m = await machineInfo(o.dir);
  const restic = (await runOk('restic version', ['restic', 'version'])).stdout.trim();
  const moto = (await runOk('moto_server --version', [findMotoServer(), '--version']).catch(() => undefined))
    ?.stdout;
  const md = [
    '# baton offsite vs restic (issue #13)',
    '',
    `${new Date().toISOString()}, \`${['bench/offsite.ts', ...process.argv.slice(2)].join(' ')}\`, ${secs(Date.now() - started)}.`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpus}; RAM: ${m.ramGiB.toFixed(1)} GiB; filesystem: ${m.fs}; kernel ${m.kernel}; node ${m.node}`,
    `- ${restic}; moto_server ${(moto ?? '?').trim()} on 127.0.0.1 (objects in memory), one plain bucket for both tools`,
    `- baton ${m.code ?? '?'}; peak RSS: ${m.gnuTime}`,
    `- 1-min load average at the start of each set: ${loads.map((l) => l.toFixed(1)).join(', ')} (other jobs shared the cores; the ratios are from the same run)`,
    '',
    '## Sets',
    '',
    ...c.sets.map((s) => `- ${s}`),
    '',
    '## Figures',
    '',
    ...renderRows(c.rows),
    '',
    ...c.details.map((s) => `- ${s}`),
    '',
  ].join('\n');
  await writeFile(o.out, md);
  process.stdout.write(md);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:offsite: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}

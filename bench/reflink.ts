/**
 * Issue #6 benchmark: `collect: reflink` and `storeMode: reflink` on an XFS image (mkfs.xfs -m
 * reflink=1, mounted with -o loop), against the rsync collect and the hard-link sink store on the
 * same filesystem, with the seeded dataset and 1 % mutator of the main benchmark plus scattered
 * page writes in three large "database" files (what made hard links expensive).
 *
 *   npm run build && node --import tsx bench/reflink.ts [--quick] [--runs N] [--dir DIR] [--pages N]
 *
 * or from code: `await benchReflink({ dir: '/var/tmp' })`. Needs root (users, sshd, loop mount).
 * Reported as ratios (reflink / rsync collect downtime; reflink / hard-link store bytes per
 * generation), with every raw figure beside them.
 */
import { chmod, mkdir, mkdtemp, open, readFile, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { runProcess } from '../src/adapters/run.js';
import { FULL_SPEC, Prng, QUICK_SPEC, generateDataset, mutateDataset, type DatasetSpec } from './dataset.js';
import {
  baton,
  createEnv,
  generationIds,
  markSinkStore,
  removeTree,
  unack,
  type BenchEnv,
  type BenchUsers,
} from './env.js';

const MiB = 1024 * 1024;
const PAGE = 4096;

export interface ReflinkBenchOptions {
  /** where the XFS image file and its mount point go (default /var/tmp) */
  dir?: string;
  spec?: DatasetSpec;
  /** change rounds per collect mode (default 2) */
  runs?: number;
  /** 4 KiB pages rewritten in place in each of three large files per round (default 64) */
  pagesPerFile?: number;
  /** stream users (their own, so a running main benchmark is not disturbed) */
  users?: BenchUsers;
  log?: (line: string) => void;
}

export interface ReflinkBenchResult {
  spec: DatasetSpec['name'];
  datasetBytes: number;
  /** per round: bytes the mutator and the page writes changed in the data */
  changedBytes: number[];
  downtime: {
    rsyncMs: number[];
    reflinkMs: number[];
    medianRatio: number;
    /** the first backup with the rsync collect (empty mirror: everything is new, a 100 % change) */
    rsyncFirstMs: number;
    /** median reflink downtime / that: a clone costs the same whatever changed */
    reflinkVsRsyncFirstRatio: number;
  };
  sinkBytesPerGeneration: { hardlink: number[]; reflink: number[]; medianRatio: number };
  notes: string[];
}

export const REFLINK_BENCH_USERS: BenchUsers = { data: 'batonRflBenchD', logs: 'batonRflBenchL' };

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

async function sh(what: string, argv: string[]): Promise<string> {
  const r = await runProcess(argv, { timeoutMs: 3600_000, captureStdout: true });
  if (r.code !== 0)
    throw new Error(
      `${what}: ${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`,
    );
  return r.stdout;
}

/**
 * Used bytes on the filesystem of `dir`: written back, and without XFS's speculative copy-on-write
 * preallocations (up to 128 KiB around each rewritten block; XFS frees them by itself later).
 */
async function usedBytes(dir: string): Promise<number> {
  await sh('sync', ['sync', '-f', dir]);
  await sh('xfs_spaceman', ['xfs_spaceman', '-c', 'prealloc -s -m 0', dir]);
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Rewrites `pages` scattered 4 KiB pages of each of three large files in place (same size, later mtime). */
async function writePages(env: BenchEnv, spec: DatasetSpec, round: number, pages: number): Promise<number> {
  const dir = join(env.appData, 'large');
  const prng = new Prng(spec.seed, 77, round);
  let changed = 0;
  for (let k = 0; k < Math.min(3, spec.largeFiles); k++) {
    const file = join(dir, `large-${String((k * 3 + round) % spec.largeFiles).padStart(2, '0')}.db`);
    const fh = await open(file, 'r+');
    try {
      const size = (await fh.stat()).size;
      const buf = Buffer.alloc(PAGE);
      for (let i = 0; i < pages; i++) {
        for (let b = 0; b < PAGE; b += 4) buf.writeUInt32LE(prng.next(), b);
        await fh.write(buf, 0, PAGE, prng.int(Math.floor(size / PAGE)) * PAGE);
        changed += PAGE;
      }
      const t = Date.now() / 1000 + 2; // rsync compares whole seconds
      await fh.utimes(t, t);
    } finally {
      await fh.close();
    }
  }
  return changed;
}

async function setCollect(env: BenchEnv, mode: 'rsync' | 'reflink'): Promise<void> {
  const cfg = parse(await readFile(env.sourceConfig, 'utf8')) as {
    streams: { data: Record<string, unknown>; logs: Record<string, unknown> };
  };
  cfg.streams.data.collect = mode;
  cfg.streams.logs.collect = mode;
  await writeFile(env.sourceConfig, stringify(cfg), { mode: 0o644 });
}

/** A sink config like the env's, with its own store, stateDir and storeMode. */
async function sinkConfig(
  env: BenchEnv,
  mode: 'hardlink' | 'reflink',
): Promise<{ file: string; store: string }> {
  const cfg = parse(await readFile(env.sinkConfig, 'utf8')) as Record<string, unknown>;
  const store = join(env.root, `sink-store-${mode}`);
  cfg.store = store;
  cfg.stateDir = join(env.root, `sink-state-${mode}`);
  cfg.storeMode = mode;
  await markSinkStore({ sinkStore: store });
  const file = join(env.root, `sink-${mode}.yaml`);
  await writeFile(file, stringify(cfg), { mode: 0o644 });
  return { file, store };
}

async function backup(env: BenchEnv): Promise<{ id: string; downtimeMs: number }> {
  await sh('sync', ['sync']);
  const out = await sh(
    'baton source backup',
    baton('source', 'backup', '--config', env.sourceConfig, '--json'),
  );
  return JSON.parse(out) as { id: string; downtimeMs: number };
}

/** Pulls `id` into the hard-link store, puts it back into the handover, pulls it into the reflink store. */
async function pullBoth(
  env: BenchEnv,
  sinks: Record<'hardlink' | 'reflink', { file: string }>,
  id: string,
): Promise<Record<'hardlink' | 'reflink', number>> {
  const grew = { hardlink: 0, reflink: 0 };
  for (const mode of ['hardlink', 'reflink'] as const) {
    if (mode === 'reflink') await unack(env, id);
    const before = await usedBytes(env.root);
    await sh(`baton sink pull data (${mode})`, baton('sink', 'pull', 'data', '--config', sinks[mode].file));
    grew[mode] = (await usedBytes(env.root)) - before;
  }
  return grew;
}

export async function benchReflink(o: ReflinkBenchOptions = {}): Promise<ReflinkBenchResult> {
  const say = o.log ?? ((l: string) => process.stderr.write(`bench-reflink: ${l}\n`));
  const spec = o.spec ?? FULL_SPEC;
  const runs = o.runs ?? 2;
  const pages = o.pagesPerFile ?? 64;
  if (process.getuid?.() !== 0) throw new Error('needs root (users, sshd, a loop mount)');
  await sh('mkfs.xfs (apt-get install xfsprogs)', ['sh', '-c', 'command -v mkfs.xfs']);
  const parent = o.dir ?? '/var/tmp';
  const work = await mkdtemp(join(parent, 'baton-reflink-bench-'));
  await chmod(work, 0o755);
  const img = join(work, 'xfs.img');
  const mnt = join(work, 'mnt');
  const dataBytes = spec.smallFiles * spec.smallMax + spec.largeFiles * spec.largeMax + spec.logBytes;
  // app data, mirror, source generation, two sink stores, and the changes: about 6 copies
  const imageMiB = Math.ceil((dataBytes * 6) / MiB) + 1024;
  let mounted = false;
  let env: BenchEnv | undefined;
  const notes: string[] = [];
  try {
    await mkdir(mnt);
    await sh('truncate', ['truncate', '-s', `${imageMiB}M`, img]);
    await sh('mkfs.xfs', ['mkfs.xfs', '-q', '-m', 'reflink=1', img]);
    await sh('mount -o loop', ['mount', '-o', 'loop', img, mnt]);
    mounted = true;
    await chmod(mnt, 0o755);
    notes.push(`XFS image of ${imageMiB} MiB (mkfs.xfs -m reflink=1) on a loop device under ${parent}`);
    env = await createEnv(mnt, o.users ?? REFLINK_BENCH_USERS);
    say(`generating the ${spec.name} dataset`);
    const ds = await generateDataset(spec, env.appData, env.appLogs);
    const sinks = { hardlink: await sinkConfig(env, 'hardlink'), reflink: await sinkConfig(env, 'reflink') };
    await setCollect(env, 'rsync');
    say('first full backup and pulls');
    const first = await backup(env);
    await pullBoth(env, sinks, first.id);
    const res: ReflinkBenchResult = {
      spec: spec.name,
      datasetBytes: ds.bytes,
      changedBytes: [],
      downtime: {
        rsyncMs: [],
        reflinkMs: [],
        medianRatio: 0,
        rsyncFirstMs: first.downtimeMs,
        reflinkVsRsyncFirstRatio: 0,
      },
      sinkBytesPerGeneration: { hardlink: [], reflink: [], medianRatio: 0 },
      notes,
    };
    let round = 0;
    for (let r = 0; r < runs; r++) {
      // alternate the collect modes, each after its own 1 % change
      for (const mode of ['rsync', 'reflink'] as const) {
        round++;
        const mu = await mutateDataset(spec, env.appData, env.appLogs, round);
        const paged = await writePages(env, spec, round, pages);
        res.changedBytes.push(mu.changedBytes + paged);
        await setCollect(env, mode);
        const b = await backup(env);
        (mode === 'rsync' ? res.downtime.rsyncMs : res.downtime.reflinkMs).push(b.downtimeMs);
        const grew = await pullBoth(env, sinks, b.id);
        res.sinkBytesPerGeneration.hardlink.push(grew.hardlink);
        res.sinkBytesPerGeneration.reflink.push(grew.reflink);
        say(
          `round ${round} (${mode} collect): ${((mu.changedBytes + paged) / MiB).toFixed(1)} MiB changed, downtime ${b.downtimeMs} ms, sink store +${(grew.hardlink / MiB).toFixed(1)} MiB hard links / +${(grew.reflink / MiB).toFixed(1)} MiB reflink`,
        );
      }
    }
    for (const [mode, store] of Object.entries(sinks)) {
      const ids = await generationIds(join(store.store, 'bench', 'data'));
      notes.push(`${mode} store holds ${ids.length} generations`);
    }
    res.downtime.medianRatio = median(res.downtime.reflinkMs) / Math.max(1, median(res.downtime.rsyncMs));
    res.downtime.reflinkVsRsyncFirstRatio =
      median(res.downtime.reflinkMs) / Math.max(1, res.downtime.rsyncFirstMs);
    res.sinkBytesPerGeneration.medianRatio =
      median(res.sinkBytesPerGeneration.reflink) / Math.max(1, median(res.sinkBytesPerGeneration.hardlink));
    notes.push(
      'store growth measured after `sync -f` and `xfs_spaceman -c "prealloc -s -m 0"` (frees the speculative copy-on-write preallocation XFS keeps around rewritten blocks for up to 30 min; before that a rewritten page shows as up to 128 KiB)',
    );
    return res;
  } finally {
    await env?.close(false).catch((e: unknown) => say(`cleanup: ${String(e)}`));
    if (mounted) {
      const u = await runProcess(['umount', mnt], { timeoutMs: 120_000 });
      if (u.code !== 0) await runProcess(['umount', '-l', mnt], { timeoutMs: 120_000 });
    }
    await removeTree(work).catch((e: unknown) => say(`cleanup: ${String(e)}`));
  }
}

/** The result as Markdown lines: ratios first, the raw figures beside them. */
export function renderReflinkResult(r: ReflinkBenchResult): string {
  const ms = (xs: number[]) => xs.map((x) => `${x} ms`).join(', ');
  const mib = (xs: number[]) => xs.map((x) => `${(x / MiB).toFixed(1)} MiB`).join(', ');
  return [
    `## Reflinks on XFS (${r.spec} dataset, ${(r.datasetBytes / MiB).toFixed(0)} MiB; changes per round: ${mib(r.changedBytes)})`,
    '',
    `- downtime after the change, collect reflink / rsync (median): **${r.downtime.medianRatio.toFixed(2)}** (reflink ${ms(r.downtime.reflinkMs)}; rsync ${ms(r.downtime.rsyncMs)})`,
    `- downtime, collect reflink (median) / the first backup with collect rsync (empty mirror, everything new): **${r.downtime.reflinkVsRsyncFirstRatio.toFixed(2)}** (rsync first ${r.downtime.rsyncFirstMs} ms)`,
    `- sink store growth per generation, storeMode reflink / hardlink (median): **${r.sinkBytesPerGeneration.medianRatio.toFixed(3)}** (reflink ${mib(r.sinkBytesPerGeneration.reflink)}; hard links ${mib(r.sinkBytesPerGeneration.hardlink)})`,
    ...r.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const val = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const opts: ReflinkBenchOptions = { spec: args.includes('--quick') ? QUICK_SPEC : FULL_SPEC };
  const dir = val('--dir');
  if (dir !== undefined) opts.dir = dir;
  const runs = val('--runs');
  if (runs !== undefined) opts.runs = Number(runs);
  const pages = val('--pages');
  if (pages !== undefined) opts.pagesPerFile = Number(pages);
  const out = val('--out') ?? fileURLToPath(new URL('./RESULTS-reflink.md', import.meta.url));
  try {
    const started = new Date();
    const body = renderReflinkResult(await benchReflink(opts));
    const code = await runProcess(
      [
        'git',
        '-C',
        fileURLToPath(new URL('..', import.meta.url)),
        'describe',
        '--always',
        '--dirty',
        '--abbrev=12',
      ],
      { timeoutMs: 10_000, captureStdout: true },
    );
    const text = [
      '# baton benchmark: reflinks',
      '',
      `Run ${started.toISOString().replace(/\.\d+Z$/, 'Z')}, \`node --import tsx bench/reflink.ts ${args.join(' ')}\`, baton code measured: ${code.stdout.trim() || '?'}. The ext4 figures are in RESULTS.md.`,
      '',
      body,
    ].join('\n');
    await writeFile(out, text);
    process.stdout.write(text);
    process.stderr.write(`bench-reflink: wrote ${out}\n`);
  } catch (e) {
    process.stderr.write(`bench-reflink: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();

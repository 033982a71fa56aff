/**
 * Interleaved pairs for issue #13's time targets: the quick set's first push, 1 % day and full
 * restore, baton then restic, repeated `--rounds` times on one moto_server (each round a fresh
 * baton prefix + state dir and a fresh restic repository), with the 1-minute load average next to
 * every pair. On a shared, loaded machine the per-round ratios and their median say more than one
 * run of bench/offsite.ts.
 *
 *   node --import tsx bench/offsite-pairs.ts [--rounds 3] [--tiny] [--dir /var/tmp] [--out FILE]
 *        [--base DIR/cli/main.js]
 *
 * `--base` also measures another build (e.g. a copy of the old dist) in every round, right after
 * the current one, on its own prefix and state dir: before/after ratios from the same run.
 *
 * `BATON_BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR"` profiles each baton run.
 */
import { appendFile, mkdir, mkdtemp, readFile, rename, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { QUICK_SPEC, generateDataset, mutateDataset } from './dataset.js';
import { baton, removeTree } from './env.js';
import { runOk, type Measured } from './measure.js';
import {
  addGeneration,
  batonPush,
  batonRestore,
  createWorld,
  flush,
  resticBackup,
  resticInit,
  resticRestore,
  type OffsiteWorld,
} from './offsite-steps.js';
import { say } from './steps.js';

interface Pair {
  step: 'first push' | '1 % day' | 'restore';
  build: 'current' | 'base';
  baton: number;
  restic: number;
  batonCpu: number | undefined;
  resticCpu: number | undefined;
  load: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
};

/** The world's config and restic repository, moved to round `r`'s own prefix, state dir and repository. */
async function forRound(w: OffsiteWorld, r: number | string): Promise<OffsiteWorld> {
  const cfg = parse(await readFile(w.config, 'utf8')) as {
    stateDir: string;
    offsite: { prefix: string };
  };
  cfg.stateDir = join(w.root, `sink-state-${r}`);
  cfg.offsite.prefix = `baton-${r}`;
  const config = join(w.root, `sink-${r}.yaml`);
  await writeFile(config, stringify(cfg));
  const repo = `s3:${w.moto.endpoint}/${w.bucket}/restic-${r}`;
  return {
    ...w,
    config,
    resticEnv: { ...w.resticEnv, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: join(w.root, `rc-${r}`) },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      dir: { type: 'string', default: '/var/tmp' },
      out: { type: 'string' },
      tiny: { type: 'boolean', default: false },
      base: { type: 'string' },
    },
    strict: true,
  });
  const rounds = Number(values.rounds);
  const spec = values.tiny
    ? { ...QUICK_SPEC, smallFiles: 200, largeFiles: 1, largeMin: 2 << 20, largeMax: 2 << 20 }
    : QUICK_SPEC;
  await mkdir(values.dir, { recursive: true });
  const root = await mkdtemp(join(values.dir, 'baton-offsite-pairs-'));
  const w0 = await createWorld(root, '32M');
  const pairs: Pair[] = [];
  try {
    const data = join(root, 'mirror', 'srv', 'app', 'data');
    const logs = join(root, 'mirror', 'srv', 'app', 'logs');
    await generateDataset(spec, data, logs);
    const g0 = await addGeneration(w0, join(root, 'mirror'), undefined);
    await mutateDataset(spec, data, logs, 1);
    const g1 = await addGeneration(w0, join(root, 'mirror'), g0);
    await removeTree(join(root, 'mirror'));
    const held = join(root, 'held');
    await rename(g1.dir, held);
    const cpu = (m: Measured) => m.cpuS;
    const add = (
      build: Pair['build'],
      step: Pair['step'],
      b: Measured,
      r: Measured,
      bs: number,
      rs: number,
      load: number,
    ) => {
      const p = { build, step, baton: bs, restic: rs, batonCpu: cpu(b), resticCpu: cpu(r), load };
      pairs.push(p);
      say(
        `${build} ${step}: baton ${bs.toFixed(2)} s / restic ${rs.toFixed(2)} s = ${(bs / rs).toFixed(2)}× ` +
          `(CPU ${p.batonCpu?.toFixed(1)} / ${p.resticCpu?.toFixed(1)} s, load ${load.toFixed(1)})`,
      );
    };
    const builds: Array<[Pair['build'], string | undefined]> = [['current', undefined]];
    if (values.base !== undefined) builds.push(['base', values.base]);
    const withBuild = async <T>(main: string | undefined, fn: () => Promise<T>): Promise<T> => {
      const old = process.env['BATON_BENCH_MAIN'];
      if (main === undefined) delete process.env['BATON_BENCH_MAIN'];
      else process.env['BATON_BENCH_MAIN'] = main;
      try {
        return await fn();
      } finally {
        if (old === undefined) delete process.env['BATON_BENCH_MAIN'];
        else process.env['BATON_BENCH_MAIN'] = old;
      }
    };
    for (let r = 1; r <= rounds; r++) {
      const w = await forRound(w0, r);
      const wb = await forRound(w0, `${r}-base`);
      await resticInit(w);
      // restic backs up each generation once per round; every baton build is paired with that run
      const gen = async (g: 'g0' | 'g1') => {
        let rr: Measured | undefined;
        for (const [build, main] of builds) {
          const load = loadavg()[0] ?? 0;
          const b = await withBuild(main, () => batonPush(build === 'base' ? wb : w));
          rr ??= await resticBackup(w, g === 'g0' ? g0 : g1);
          add(build, g === 'g0' ? 'first push' : '1 % day', b, rr, b.wallMs / 1000, rr.wallMs / 1000, load);
        }
      };
      await gen('g0');
      await rename(held, g1.dir);
      await gen('g1');
      let rr: { m: Measured; s: number } | undefined;
      for (const [build, main] of builds) {
        const load = loadavg()[0] ?? 0;
        const bDir = join(root, `restore-baton-${r}-${build}`);
        const b = await withBuild(main, () => batonRestore(build === 'base' ? wb : w, g1.id, bDir));
        const bFlush = await flush(bDir);
        if (rr === undefined) {
          const rDir = join(root, `restore-restic-${r}`);
          const m = await resticRestore(w, rDir);
          rr = { m, s: (m.wallMs + (await flush(rDir))) / 1000 };
          await removeTree(rDir);
        }
        add(build, 'restore', b, rr.m, (b.wallMs + bFlush) / 1000, rr.s, load);
        await runOk('baton verify --deep on the restored generation', baton('verify', '--deep', bDir));
        await removeTree(bDir);
      }
      await rename(g1.dir, held);
    }
  } finally {
    await w0.stop();
    await removeTree(root);
  }
  const lines = [
    `| build | step | rounds | baton/restic per round (1-min load) | median | CPU s baton / restic (median) |`,
    `|---|---|---|---|---|---|`,
  ];
  for (const build of ['current', 'base'] as const)
    for (const step of ['first push', '1 % day', 'restore'] as const) {
      const ps = pairs.filter((p) => p.step === step && p.build === build);
      if (ps.length === 0) continue;
      const each = ps.map((p) => `${(p.baton / p.restic).toFixed(2)}× (${p.load.toFixed(0)})`).join(', ');
      const cpuB = median(ps.map((p) => p.batonCpu ?? NaN)).toFixed(1);
      const cpuR = median(ps.map((p) => p.resticCpu ?? NaN)).toFixed(1);
      lines.push(
        `| ${build} | ${step} | ${ps.length} | ${each} | **${median(ps.map((p) => p.baton / p.restic)).toFixed(2)}×** | ${cpuB} / ${cpuR} |`,
      );
    }
  const md = lines.join('\n') + '\n';
  process.stdout.write(md);
  if (values.out !== undefined) await appendFile(values.out, md);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:offsite-pairs: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}

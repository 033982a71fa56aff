/**
 * Interleaved pairs for issue #13's time targets: the quick set's first push, 1 % day and full
 * restore, baton then restic, repeated `--rounds` times on one moto_server (each round a fresh
 * baton prefix + state dir and a fresh restic repository), with the 1-minute load average next to
 * every pair. On a shared, loaded machine the per-round ratios and their median say more than one
 * run of bench/offsite.ts.
 *
 *   node --import tsx bench/offsite-pairs.ts [--rounds 3] [--quick|--tiny] [--dir /var/tmp] [--out FILE]
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
async function forRound(w: OffsiteWorld, r: number): Promise<OffsiteWorld> {
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
    const add = (step: Pair['step'], b: Measured, r: Measured, bs: number, rs: number, load: number) => {
      const p = { step, baton: bs, restic: rs, batonCpu: cpu(b), resticCpu: cpu(r), load };
      pairs.push(p);
      say(
        `${step}: baton ${bs.toFixed(2)} s / restic ${rs.toFixed(2)} s = ${(bs / rs).toFixed(2)}× ` +
          `(CPU ${p.batonCpu?.toFixed(1)} / ${p.resticCpu?.toFixed(1)} s, load ${load.toFixed(1)})`,
      );
    };
    for (let r = 1; r <= rounds; r++) {
      const w = await forRound(w0, r);
      await resticInit(w);
      let load = loadavg()[0] ?? 0;
      const bp0 = await batonPush(w);
      const rp0 = await resticBackup(w, g0);
      add('first push', bp0, rp0, bp0.wallMs / 1000, rp0.wallMs / 1000, load);
      await rename(held, g1.dir);
      load = loadavg()[0] ?? 0;
      const bp1 = await batonPush(w);
      const rp1 = await resticBackup(w, g1);
      add('1 % day', bp1, rp1, bp1.wallMs / 1000, rp1.wallMs / 1000, load);
      load = loadavg()[0] ?? 0;
      const bDir = join(root, `restore-baton-${r}`);
      const rDir = join(root, `restore-restic-${r}`);
      const b = await batonRestore(w, g1.id, bDir);
      const bFlush = await flush(bDir);
      const rr = await resticRestore(w, rDir);
      const rFlush = await flush(rDir);
      add('restore', b, rr, (b.wallMs + bFlush) / 1000, (rr.wallMs + rFlush) / 1000, load);
      await runOk('baton verify --deep on the restored generation', baton('verify', '--deep', bDir));
      await removeTree(bDir);
      await removeTree(rDir);
      await rename(g1.dir, held);
    }
  } finally {
    await w0.stop();
    await removeTree(root);
  }
  const lines = [
    `| step | rounds | baton/restic per round (1-min load) | median | CPU s baton / restic (median) |`,
    `|---|---|---|---|---|`,
  ];
  for (const step of ['first push', '1 % day', 'restore'] as const) {
    const ps = pairs.filter((p) => p.step === step);
    const each = ps.map((p) => `${(p.baton / p.restic).toFixed(2)}× (${p.load.toFixed(0)})`).join(', ');
    const cpuB = median(ps.map((p) => p.batonCpu ?? NaN)).toFixed(1);
    const cpuR = median(ps.map((p) => p.resticCpu ?? NaN)).toFixed(1);
    lines.push(
      `| ${step} | ${ps.length} | ${each} | **${median(ps.map((p) => p.baton / p.restic)).toFixed(2)}×** | ${cpuB} / ${cpuR} |`,
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

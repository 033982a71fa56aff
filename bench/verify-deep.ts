/**
 * `verifyGeneration` timed alone (without the CLI's start-up): hashes on, no link base (every file
 * is read and hashed). Prints `{"ok":…,"files":…,"bytes":…,"hashed":…,"ms":…,"peakRssMiB":…}`
 * (ms: the verification alone; peakRssMiB: the process's VmHWM at the end).
 *
 *   node --import tsx bench/verify-deep.ts GENERATION_DIR [--early N]
 *   node --import tsx bench/verify-deep.ts prep DIR --files N      # a scale-like set and one generation
 *
 * `--early N` plays a full pull's verification: the hashes of the first N files are handed in as
 * taken during the transfer (the pull's EarlyHashes keeps up to 25,000), the rest are read.
 * `prep` writes a data set of N small files (bench/dataset.ts's scale spec) to DIR/mirror/srv/app
 * and builds a generation of it with the source's builder under DIR/store; it prints its path.
 */
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { verifyGeneration, type KnownHash } from '../src/generation/verify.js';
import { readManifest } from '../src/generation/manifest-file.js';
import { loadNameMaps } from '../src/adapters/accounts.js';
import { createLogger } from '../src/adapters/log.js';
import { buildGeneration } from '../src/source/build-generation.js';
import { generateDataset, SCALE_SPEC } from './dataset.js';

const vmHwmMiB = async (): Promise<number> => {
  const m = /VmHWM:\s+(\d+) kB/.exec(await readFile('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
};

async function prep(dir: string, files: number): Promise<void> {
  const t = performance.now();
  await rm(dir, { recursive: true, force: true });
  const app = join(dir, 'mirror', 'srv', 'app');
  const ds = await generateDataset(
    { ...SCALE_SPEC, smallFiles: files, logBytes: 1024 * 1024 },
    app,
    join(dir, 'logs'),
  );
  const store = join(dir, 'store');
  await mkdir(store, { recursive: true });
  const built = await buildGeneration({
    source: 'bench',
    stream: 'data',
    id: '2026-11-01T060000Z',
    mirror: join(dir, 'mirror'),
    paths: ['/srv/app'],
    parent: store,
    owner: { name: 'root', uid: 0, gid: 0, home: '/root' },
    names: await loadNameMaps(),
    previous: undefined,
    appStoppedAt: new Date(),
    appStartedAt: new Date(),
    log: createLogger({ format: 'json', level: 'error' }),
  });
  await rename(built.work, built.dir);
  process.stdout.write(
    `${JSON.stringify({ dir: built.dir, files: ds.files, ms: Math.round(performance.now() - t) })}\n`,
  );
}

/** The first `n` files' hashes with their identities, kept as EarlyHashes keeps them. */
async function earlyHashes(genDir: string, n: number): Promise<Map<string, KnownHash>> {
  const known = new Map<string, KnownHash>();
  if (n <= 0) return known;
  for await (const e of readManifest(join(genDir, 'manifest'))) {
    if (e.type !== 'f' || e.sha256 === undefined) continue;
    const st = lstatSync(Buffer.concat([Buffer.from(`${genDir}/tree/`), e.path]), { bigint: true });
    const { dev, ino, size, mtimeNs, ctimeNs } = st;
    known.set(e.path.toString('latin1'), { dev, ino, size, mtimeNs, ctimeNs, sha256: e.sha256 });
    if (known.size >= n) break;
  }
  return known;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { files: { type: 'string' }, early: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals[0] === 'prep' && positionals[1]) {
    await prep(positionals[1], Number(values.files ?? 200_000));
    return;
  }
  const dir = positionals[0];
  if (!dir) {
    process.stderr.write(
      'usage: node --import tsx bench/verify-deep.ts GENERATION_DIR [--early N] | prep DIR --files N\n',
    );
    process.exitCode = 2;
    return;
  }
  const known = await earlyHashes(dir, Number(values.early ?? 0));
  const t = performance.now();
  const r = await verifyGeneration({
    dir,
    hashes: true,
    ...(known.size > 0 ? { knownHash: (rel: Buffer) => known.get(rel.toString('latin1')) } : {}),
  });
  const ms = performance.now() - t;
  process.stdout.write(
    `${JSON.stringify({ ok: r.ok, files: r.files, bytes: r.bytes, hashed: r.hashed, ms: Math.round(ms), peakRssMiB: await vmHwmMiB(), problems: r.problems.slice(0, 5) })}\n`,
  );
  if (!r.ok) {
    process.stderr.write(`verify-deep: ${dir}: ${r.problems.length} problem(s)\n`);
    process.exitCode = 1;
  }
}

await main(process.argv.slice(2));

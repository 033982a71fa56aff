/**
 * Peak RSS of `baton offsite push` and `baton offsite restore` against the number of files (issue #13:
 * ≤ 150 MiB at 1,000,000 files). The sink generation of N tiny files is made once and kept:
 *
 *   node --import tsx bench/offsite-rss.ts prep N ROOT   # a python writer fills a mirror (fast), then
 *                                                        # the source's own builder makes the generation
 *   node --import tsx bench/offsite-rss.ts run N ROOT    # fresh moto + state: push, restore, both measured
 *
 * ROOT is best a tmpfs (e.g. /dev/shm/rss): the point is memory, not disk speed. Each `run` prints one
 * JSON line with the figures and the 1-minute load average at each step.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../src/core/store-marker.js';
import { removeTree } from './env.js';
import { runOk } from './measure.js';
import { addGeneration, batonPush, batonRestore, createWorld, SOURCE, STREAM } from './offsite-steps.js';

const WRITER = `
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(13)
for i in range(n):
    d = os.path.join(root, 'd%04d' % (i // 1000))
    if i % 1000 == 0: os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f%07d' % i), 'wb') as f: f.write(rnd.randbytes(rnd.randint(64, 512)))
`;

async function prep(n: number, root: string): Promise<void> {
  const store = join(root, 'sink-store');
  const stream = join(store, SOURCE, STREAM);
  if (existsSync(stream) && (await readdir(stream)).length > 0) {
    console.log(`${stream} already holds a generation`);
    return;
  }
  const mirror = join(root, 'mirror');
  const data = join(mirror, 'srv', 'app', 'data');
  await mkdir(data, { recursive: true });
  let t = Date.now();
  await runOk('python writer', ['python3', '-c', WRITER, data, String(n)], { timeoutMs: 4 * 3600_000 });
  console.log(`wrote ${n} files in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  await mkdir(store, { recursive: true, mode: 0o750 });
  await writeFile(join(store, STORE_MARKER), STORE_MARKER_CONTENT, { mode: 0o644 });
  t = Date.now();
  const g = await addGeneration({ stream } as Parameters<typeof addGeneration>[0], mirror, undefined);
  console.log(`built ${g.dir} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  await removeTree(mirror);
}

async function run(n: number, root: string): Promise<void> {
  await rm(join(root, 'sink-state'), { recursive: true, force: true });
  await rm(join(root, 'identity.txt'), { force: true });
  const w = await createWorld(root, '32M');
  try {
    const id = (await readdir(w.stream)).filter((x) => /^\d{4}-/.test(x)).sort()[0];
    if (id === undefined) throw new Error(`no generation in ${w.stream}: run prep first`);
    const load0 = loadavg()[0] ?? 0;
    const push = await batonPush(w);
    const load1 = loadavg()[0] ?? 0;
    const to = join(root, 'restored');
    await removeTree(to);
    const restore = await batonRestore(w, id, to);
    const load2 = loadavg()[0] ?? 0;
    await removeTree(to);
    const mib = (k: number | undefined) => Math.round(((k ?? Number.NaN) / 1024) * 10) / 10;
    console.log(
      JSON.stringify({
        files: n,
        pushRssMiB: mib(push.maxRssKiB),
        pushWallS: push.wallMs / 1000,
        pushCpuS: push.cpuS,
        restoreRssMiB: mib(restore.maxRssKiB),
        restoreWallS: restore.wallMs / 1000,
        restoreCpuS: restore.cpuS,
        load1min: [load0, load1, load2].map((l) => Math.round(l * 10) / 10),
      }),
    );
  } finally {
    await w.stop();
  }
}

const [mode, nText, root] = process.argv.slice(2);
const n = Number(nText);
if ((mode !== 'prep' && mode !== 'run') || !Number.isSafeInteger(n) || n < 1 || root === undefined) {
  console.error('usage: offsite-rss.ts prep|run N ROOT');
  process.exit(2);
}
await (mode === 'prep' ? prep(n, root) : run(n, root));

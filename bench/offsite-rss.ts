/**
 * Peak RSS of `baton offsite push` and `baton offsite restore` against the number of files (issue #13:
 * ≤ 150 MiB at 1,000,000 files). The sink generation of N tiny files is made once and kept:
 *
 *   node --import tsx bench/offsite-rss.ts prep N ROOT   # a python writer fills a mirror (fast), then
 *                                                        # the source's own builder makes the generation
 *   node --import tsx bench/offsite-rss.ts run N ROOT    # fresh moto + state: push, verify --deep,
 *                                                        # restore, each measured
 *
 * ROOT is best a tmpfs (e.g. /dev/shm/rss): the point is memory, not disk speed. Each `run` prints one
 * JSON line with the figures and the 1-minute load average at each step. The RSS figures are baton's
 * own node process: its VmHWM polled from /proc/<pid>/status (`*HwmMiB`) and GNU time's maxrss
 * (`*RssMiB`); moto_server grows with the bucket and is not counted.
 *
 *   node --import tsx bench/offsite-rss.ts serve N ROOT  # push once, then keep moto up (until killed) and
 *                                                        # print the env and config to run baton by hand
 *
 * With `BATON_RSS_TRACE=DIR`, each baton process also loads bench/mem-trace.mjs (NODE_OPTIONS), which
 * writes `DIR/<step>.trace`: rss / heap / external every second and the maxima, to tell which phase
 * holds the peak.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../src/core/store-marker.js';
import { removeTree } from './env.js';
import { measureOk, runOk, type Measured } from './measure.js';
import {
  addGeneration,
  batonPush,
  batonRestore,
  createWorld,
  SOURCE,
  STREAM,
  type OffsiteWorld,
} from './offsite-steps.js';
import { baton } from './env.js';

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

const TRACE = fileURLToPath(new URL('./mem-trace.mjs', import.meta.url));

/** The world's env for one measured step: with BATON_RSS_TRACE, the memory trace of that step. */
function traced(w: OffsiteWorld, step: string): NodeJS.ProcessEnv {
  const dir = process.env.BATON_RSS_TRACE;
  if (dir === undefined || dir === '') return w.batonEnv;
  return { ...w.batonEnv, NODE_OPTIONS: `--import=${TRACE}`, MEMTRACE_OUT: join(dir, `${step}.trace`) };
}

async function verifyDeep(w: OffsiteWorld): Promise<Measured> {
  await runOk('sync', ['sync']);
  return measureOk(
    'baton offsite verify --deep',
    baton('offsite', 'verify', '--deep', '--identity', w.identity, '--config', w.config),
    { env: w.batonEnv, timeoutMs: 4 * 3600_000 },
  );
}

async function run(n: number, root: string): Promise<void> {
  await rm(join(root, 'sink-state'), { recursive: true, force: true });
  await rm(join(root, 'identity.txt'), { force: true });
  const w = await createWorld(root, '32M');
  try {
    const id = (await readdir(w.stream)).filter((x) => /^\d{4}-/.test(x)).sort()[0];
    if (id === undefined) throw new Error(`no generation in ${w.stream}: run prep first`);
    const load0 = loadavg()[0] ?? 0;
    const push = await batonPush({ ...w, batonEnv: traced(w, 'push') });
    const load1 = loadavg()[0] ?? 0;
    const verify = await verifyDeep({ ...w, batonEnv: traced(w, 'verify') });
    const load2 = loadavg()[0] ?? 0;
    const to = join(root, 'restored');
    await removeTree(to);
    const restore = await batonRestore({ ...w, batonEnv: traced(w, 'restore') }, id, to);
    const load3 = loadavg()[0] ?? 0;
    await removeTree(to);
    const mib = (k: number | undefined) => Math.round(((k ?? Number.NaN) / 1024) * 10) / 10;
    console.log(
      JSON.stringify({
        files: n,
        pushHwmMiB: mib(push.selfHwmKiB),
        pushRssMiB: mib(push.maxRssKiB),
        pushWallS: push.wallMs / 1000,
        pushCpuS: push.cpuS,
        verifyHwmMiB: mib(verify.selfHwmKiB),
        verifyRssMiB: mib(verify.maxRssKiB),
        verifyWallS: verify.wallMs / 1000,
        verifyCpuS: verify.cpuS,
        restoreHwmMiB: mib(restore.selfHwmKiB),
        restoreRssMiB: mib(restore.maxRssKiB),
        restoreWallS: restore.wallMs / 1000,
        restoreCpuS: restore.cpuS,
        load1min: [load0, load1, load2, load3].map((l) => Math.round(l * 10) / 10),
      }),
    );
  } finally {
    await w.stop();
  }
}

/** Pushes once, then keeps the world up for profiling by hand (heap snapshots, traces) until killed. */
async function serve(n: number, root: string): Promise<void> {
  await rm(join(root, 'sink-state'), { recursive: true, force: true });
  await rm(join(root, 'identity.txt'), { force: true });
  const w = await createWorld(root, '32M');
  const push = await batonPush({ ...w, batonEnv: traced(w, 'push') });
  const env = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'].map((k) => `${k}=${w.batonEnv[k] ?? ''}`);
  console.log(
    JSON.stringify({ files: n, pushHwmMiB: push.selfHwmKiB === undefined ? null : push.selfHwmKiB / 1024 }),
  );
  console.log(`export ${env.join(' ')}; CONFIG=${w.config} IDENTITY=${w.identity}`);
  const stop = () => void w.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await new Promise(() => undefined);
}

const [mode, nText, root] = process.argv.slice(2);
const n = Number(nText);
if (
  (mode !== 'prep' && mode !== 'run' && mode !== 'serve') ||
  !Number.isSafeInteger(n) ||
  n < 1 ||
  root === undefined
) {
  console.error('usage: offsite-rss.ts prep|run|serve N ROOT');
  process.exit(2);
}
await (mode === 'prep' ? prep(n, root) : mode === 'run' ? run(n, root) : serve(n, root));

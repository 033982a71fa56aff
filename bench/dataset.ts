/**
 * The benchmark's data: a seeded app tree (many small files in nested dirs, half of them
 * compressible text, a few large binary files) plus logs, and a mutator that changes about 1 % of
 * it the way a day of an app server would (rewrites small files, appends to a large file and to
 * every log, adds and deletes files). Same seed, same bytes: content comes from a seeded sfc32
 * stream per file; only mtimes are the wall clock's.
 *
 *   node --import tsx bench/dataset.ts DIR [--quick|--scale] [--seed N] [--mutate ROUND]
 */
import { lstat, mkdir, open, readdir, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface DatasetSpec {
  name: 'full' | 'quick' | 'scale';
  seed: number;
  smallFiles: number;
  /** small file sizes are log-uniform in [smallMin, smallMax] bytes */
  smallMin: number;
  smallMax: number;
  /** small files per leaf directory */
  perDir: number;
  largeFiles: number;
  largeMin: number;
  largeMax: number;
  logFiles: number;
  logBytes: number;
  /** bytes appended to one large file per mutation round */
  largeAppend: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** ~1.5 GiB app tree (20,000 small files, 10 large) plus 200 MiB of logs. */
export const FULL_SPEC: DatasetSpec = {
  name: 'full',
  seed: 1,
  smallFiles: 20_000,
  smallMin: 1 * KiB,
  smallMax: 64 * KiB,
  perDir: 50,
  largeFiles: 10,
  largeMin: 50 * MiB,
  largeMax: 200 * MiB,
  logFiles: 8,
  logBytes: 200 * MiB,
  largeAppend: 8 * MiB,
};

/** ~50 MiB, 2,000 small files: the CI smoke test. */
export const QUICK_SPEC: DatasetSpec = {
  name: 'quick',
  seed: 1,
  smallFiles: 2_000,
  smallMin: 1 * KiB,
  smallMax: 16 * KiB,
  perDir: 50,
  largeFiles: 2,
  largeMin: 10 * MiB,
  largeMax: 20 * MiB,
  logFiles: 2,
  logBytes: 8 * MiB,
  largeAppend: 512 * KiB,
};

/** 1,000,000 small files (0.5–4 KiB: what matters here is the per-file cost), no large ones. */
export const SCALE_SPEC: DatasetSpec = {
  name: 'scale',
  seed: 1,
  smallFiles: 1_000_000,
  smallMin: 512,
  smallMax: 4 * KiB,
  perDir: 50,
  largeFiles: 0,
  largeMin: 0,
  largeMax: 0,
  logFiles: 2,
  logBytes: 16 * MiB,
  largeAppend: 0,
};

// ---------------------------------------------------------------------------------------------
// PRNG: sfc32 (fast, good statistical quality), seeded through splitmix32 from a few integers.

function splitmix32(a: number): () => number {
  let s = a >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** Seeded by any number of integers (seed, kind, index, version …). */
  constructor(...parts: number[]) {
    let h = 0x6a09e667;
    for (const p of parts) h = splitmix32(h ^ Math.imul(p | 0, 0x27d4eb2d) ^ ((p / 2 ** 32) >>> 0))();
    const sm = splitmix32(h);
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    for (let i = 0; i < 12; i++) this.next();
  }
  /** uint32 */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** float in [0, 1) */
  float(): number {
    return this.next() / 2 ** 32;
  }
  /** integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** Fills `out` (4-byte aligned length) with random bytes. */
  fill(out: Uint32Array): void {
    let { a, b, c, d } = this;
    for (let i = 0; i < out.length; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      out[i] = t;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
}

const KIND = { small: 1, large: 2, log: 3, size: 4, mutate: 5, largeSize: 6 } as const;

/**
 * `len` bytes of content: random (incompressible), or `text`: lowercase letters with a newline
 * every 64 bytes (4 bits of entropy per byte, so about 2:1 for gzip/zstd).
 */
export function contentBytes(prng: Prng, len: number, text: boolean): Buffer {
  const words = Math.ceil(len / 4);
  const buf = Buffer.allocUnsafeSlow(words * 4);
  const u32 = new Uint32Array(buf.buffer, buf.byteOffset, words);
  prng.fill(u32);
  if (text) {
    for (let i = 0; i < words; i++) u32[i] = ((u32[i] ?? 0) & 0x0f0f0f0f) | 0x61616161;
    for (let i = 63; i < len; i += 64) buf[i] = 0x0a;
  }
  return buf.subarray(0, len);
}

// ---------------------------------------------------------------------------------------------
// Layout: data/small/<d1>/<d2>/<d3>/f<index>.(txt|bin), data/large/large-NN.db, logs/app-N.log

const pad = (n: number, w: number) => n.toString().padStart(w, '0');

function leafDirs(spec: DatasetSpec): { leaves: number; fanout: number } {
  const leaves = Math.max(1, Math.ceil(spec.smallFiles / spec.perDir));
  return { leaves, fanout: Math.max(2, Math.ceil(Math.cbrt(leaves))) };
}

/** Relative path (under data/) of small file `i`; files past the initial count land in existing dirs. */
export function smallPath(spec: DatasetSpec, i: number): string {
  const { leaves, fanout } = leafDirs(spec);
  const leaf = i % leaves;
  const d1 = Math.floor(leaf / (fanout * fanout));
  const d2 = Math.floor(leaf / fanout) % fanout;
  const d3 = leaf % fanout;
  return `small/d${pad(d1, 2)}/d${pad(d2, 2)}/d${pad(d3, 2)}/f${pad(i, 7)}.${i % 2 === 0 ? 'txt' : 'bin'}`;
}

function smallSize(spec: DatasetSpec, i: number, version: number): number {
  const p = new Prng(spec.seed, KIND.size, i, version);
  return Math.round(spec.smallMin * (spec.smallMax / spec.smallMin) ** p.float());
}

function smallContent(spec: DatasetSpec, i: number, version: number): Buffer {
  return contentBytes(new Prng(spec.seed, KIND.small, i, version), smallSize(spec, i, version), i % 2 === 0);
}

/** Large file sizes: evenly spread over [largeMin, largeMax] with seeded jitter. */
function largeSize(spec: DatasetSpec, j: number): number {
  const p = new Prng(spec.seed, KIND.largeSize, j);
  const span = spec.largeMax - spec.largeMin;
  const frac = (j + p.float()) / Math.max(1, spec.largeFiles);
  return Math.floor((spec.largeMin + span * frac) / 4096) * 4096;
}

const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
const PATHS = [
  '/api/orders',
  '/api/cart',
  '/api/users',
  '/health',
  '/static/app.js',
  '/api/search',
  '/login',
];

/** About `bytes` of log lines (whole lines), from `prng`, with timestamps from `t0` (ms). */
export function logLines(prng: Prng, bytes: number, t0: number): Buffer {
  const parts: string[] = [];
  let size = 0;
  let t = t0;
  while (size < bytes) {
    t += prng.int(50);
    const line = `${new Date(t).toISOString()} ${LEVELS[prng.int(LEVELS.length)] ?? 'INFO'} req=${prng.next().toString(16).padStart(8, '0')} ${PATHS[prng.int(PATHS.length)] ?? '/'} status=${prng.float() < 0.97 ? 200 : 500} ms=${prng.int(900)} user=${prng.int(5000)}\n`;
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1');
}

/** Runs `fn` over 0..n-1 with at most `limit` at once. */
export async function forEachLimited(
  n: number,
  limit: number,
  fn: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

async function writeLarge(file: string, prng: Prng, size: number, flags: 'w' | 'a'): Promise<void> {
  const fh = await open(file, flags, 0o640);
  try {
    const CHUNK = 8 * MiB;
    for (let done = 0; done < size; done += CHUNK) {
      await fh.write(contentBytes(prng, Math.min(CHUNK, size - done), false));
    }
  } finally {
    await fh.close();
  }
}

export interface DatasetSummary {
  files: number;
  bytes: number;
  dataBytes: number;
  logBytes: number;
  dirs: number;
}

/**
 * Writes the dataset of `spec` into `dataDir` and `logDir` (created; must not hold an older
 * dataset). Deterministic from `spec.seed`.
 */
export async function generateDataset(
  spec: DatasetSpec,
  dataDir: string,
  logDir: string,
): Promise<DatasetSummary> {
  const sum: DatasetSummary = { files: 0, bytes: 0, dataBytes: 0, logBytes: 0, dirs: 0 };
  const dirs = new Set<string>();
  for (let i = 0; i < Math.min(spec.smallFiles, leafDirs(spec).leaves); i++) {
    const p = smallPath(spec, i);
    dirs.add(p.slice(0, p.lastIndexOf('/')));
  }
  for (const d of dirs) await mkdir(join(dataDir, d), { recursive: true });
  sum.dirs = dirs.size;
  await forEachLimited(spec.smallFiles, 32, async (i) => {
    const buf = smallContent(spec, i, 0);
    await writeFile(join(dataDir, smallPath(spec, i)), buf, { mode: 0o640 });
    sum.files++;
    sum.dataBytes += buf.length;
  });
  if (spec.largeFiles > 0) await mkdir(join(dataDir, 'large'), { recursive: true });
  for (let j = 0; j < spec.largeFiles; j++) {
    const size = largeSize(spec, j);
    await writeLarge(
      join(dataDir, 'large', `large-${pad(j, 2)}.db`),
      new Prng(spec.seed, KIND.large, j),
      size,
      'w',
    );
    sum.files++;
    sum.dataBytes += size;
  }
  await mkdir(logDir, { recursive: true });
  const t0 = Date.UTC(2026, 0, 1);
  for (let k = 0; k < spec.logFiles; k++) {
    const buf = logLines(new Prng(spec.seed, KIND.log, k, 0), spec.logBytes / spec.logFiles, t0);
    await writeFile(join(logDir, `app-${k}.log`), buf, { mode: 0o640 });
    sum.files++;
    sum.logBytes += buf.length;
  }
  sum.bytes = sum.dataBytes + sum.logBytes;
  return sum;
}

export interface MutationSummary {
  round: number;
  rewritten: number;
  added: number;
  deleted: number;
  appendedLarge: number;
  appendedLogs: number;
  /** new bytes: rewritten and added files plus appends */
  changedBytes: number;
}

async function mtimeSeconds(file: string): Promise<number | undefined> {
  try {
    return Number((await lstat(file, { bigint: true })).mtimeNs / 1_000_000n) / 1000;
  } catch {
    return undefined;
  }
}

/** A changed file gets an mtime at least 2 s past its old one: rsync compares whole seconds. */
async function touchAfter(file: string, old: number | undefined): Promise<void> {
  const t = Math.max(Date.now() / 1000, (old ?? 0) + 2);
  await utimes(file, t, t);
}

/**
 * Round `round` (1, 2, …) of changes, about 1 % of the dataset: rewrites 0.6 % of the small
 * files, deletes 0.2 %, adds 0.2 % (new names in existing dirs), appends `largeAppend` bytes to
 * one large file and 1 % of the log volume to the logs. Deterministic from the seed and round
 * (given the same earlier rounds).
 */
export async function mutateDataset(
  spec: DatasetSpec,
  dataDir: string,
  logDir: string,
  round: number,
  /** a smaller change: 0.1 rewrites, adds, deletes and appends a tenth as much (rounds after the full ones) */
  scale = 1,
): Promise<MutationSummary> {
  const prng = new Prng(spec.seed, KIND.mutate, round);
  const sum: MutationSummary = {
    round,
    rewritten: 0,
    added: 0,
    deleted: 0,
    appendedLarge: 0,
    appendedLogs: 0,
    changedBytes: 0,
  };
  const fullAdd = Math.max(1, Math.round(spec.smallFiles * 0.002));
  const nAdd = Math.max(1, Math.round(fullAdd * scale));
  const nDelete = nAdd;
  const nRewrite = Math.max(1, Math.round(spec.smallFiles * 0.006 * scale));
  // names added by earlier full rounds (a later scaled round adds past them)
  const known = spec.smallFiles + (round - 1) * fullAdd;
  const rewrite = new Set<number>();
  while (rewrite.size < nRewrite) rewrite.add(prng.int(known));
  const doomed = new Set<number>();
  while (doomed.size < nDelete) {
    const i = prng.int(known);
    if (!rewrite.has(i)) doomed.add(i);
  }
  for (const i of rewrite) {
    const file = join(dataDir, smallPath(spec, i));
    const old = await mtimeSeconds(file);
    if (old === undefined) continue; // deleted in an earlier round
    const buf = smallContent(spec, i, round);
    await writeFile(file, buf);
    await touchAfter(file, old);
    sum.rewritten++;
    sum.changedBytes += buf.length;
  }
  for (const i of doomed) {
    try {
      await unlink(join(dataDir, smallPath(spec, i)));
      sum.deleted++;
    } catch {
      /* deleted in an earlier round */
    }
  }
  for (let k = 0; k < nAdd; k++) {
    const i = known + k;
    const file = join(dataDir, smallPath(spec, i));
    const buf = smallContent(spec, i, round);
    await writeFile(file, buf, { mode: 0o640 });
    await touchAfter(file, undefined);
    sum.added++;
    sum.changedBytes += buf.length;
  }
  if (spec.largeFiles > 0 && spec.largeAppend > 0) {
    const j = prng.int(spec.largeFiles);
    const file = join(dataDir, 'large', `large-${pad(j, 2)}.db`);
    const old = await mtimeSeconds(file);
    const append = Math.round(spec.largeAppend * scale);
    await writeLarge(file, new Prng(spec.seed, KIND.large, j, round), append, 'a');
    await touchAfter(file, old);
    sum.appendedLarge += append;
    sum.changedBytes += append;
  }
  const t0 = Date.UTC(2026, 0, 1) + round * 86_400_000;
  for (let k = 0; k < spec.logFiles; k++) {
    const file = join(logDir, `app-${k}.log`);
    const old = await mtimeSeconds(file);
    const buf = logLines(
      new Prng(spec.seed, KIND.log, k, round),
      (spec.logBytes * 0.01 * scale) / spec.logFiles,
      t0,
    );
    const fh = await open(file, 'a');
    try {
      await fh.write(buf);
    } finally {
      await fh.close();
    }
    await touchAfter(file, old);
    sum.appendedLogs += buf.length;
    sum.changedBytes += buf.length;
  }
  return sum;
}

/** Counts regular files and their bytes under `dir` (for the report). */
export async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const visit = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p);
      else if (e.isFile()) {
        files++;
        bytes += (await lstat(p)).size;
      }
    }
  };
  await visit(dir);
  return { files, bytes };
}

async function main(argv: string[]): Promise<void> {
  const dir = argv.find((a) => !a.startsWith('--'));
  if (!dir) {
    process.stderr.write(
      'usage: node --import tsx bench/dataset.ts DIR [--quick|--scale] [--seed N] [--mutate ROUND]\n',
    );
    process.exitCode = 2;
    return;
  }
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const base = argv.includes('--quick') ? QUICK_SPEC : argv.includes('--scale') ? SCALE_SPEC : FULL_SPEC;
  const spec = { ...base, seed: Number(flag('--seed') ?? base.seed) };
  const round = flag('--mutate');
  const t = Date.now();
  if (round === undefined) {
    await rm(dir, { recursive: true, force: true });
    const s = await generateDataset(spec, join(dir, 'data'), join(dir, 'logs'));
    process.stdout.write(`${JSON.stringify({ ...s, ms: Date.now() - t })}\n`);
  } else {
    const s = await mutateDataset(spec, join(dir, 'data'), join(dir, 'logs'), Number(round));
    process.stdout.write(`${JSON.stringify({ ...s, ms: Date.now() - t })}\n`);
  }
}

if (process.argv[1]?.endsWith('dataset.ts')) await main(process.argv.slice(2));

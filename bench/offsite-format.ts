/**
 * Issue #13 micro-benchmark of the offsite format (no S3): FastCDC throughput and chunk-size distribution,
 * blob sealing/opening throughput and per-blob cost. The full push/restore comparison with restic is
 * `npm run bench:offsite` (the engine's); this one isolates the CPU cost of the format.
 *
 *   node --import tsx bench/offsite-format.ts [--mib 256] [--out bench/RESULTS-offsite-format.md]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { chunkFile, chunkLengths, DEFAULT_CHUNKER_PARAMS as P, MiB } from '../src/offsite/chunker.js';
import { BlobOpener, BlobSealer } from '../src/offsite/crypto.js';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '256' }, out: { type: 'string' } },
});
const size = Number(values.mib) * MiB;

function mbps(bytes: number, ms: number): string {
  return (bytes / 1e6 / (ms / 1000)).toFixed(0);
}

/** Wall and CPU milliseconds of `fn` (CPU time is the honest figure when other jobs share the cores). */
async function timed(fn: () => unknown): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
}

function rate(bytes: number, t: { wall: number; cpu: number }): string {
  return `${mbps(bytes, t.cpu)} MB/s per CPU (${mbps(bytes, t.wall)} MB/s wall)`;
}

const lines: string[] = [];
const say = (s: string) => {
  lines.push(s);
  console.log(s);
};

say(`# Offsite format micro-benchmark\n`);
say(
  `${new Date().toISOString()}, node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}\n`,
);

const data = randomBytes(size);
let lens: number[] = [];
const mem = await timed(() => {
  lens = chunkLengths(data, P);
});

const dir = await mkdtemp(join(tmpdir(), 'baton-bench-cdc-'));
try {
  await writeFile(join(dir, 'f'), data);
  let n = 0;
  const file = await timed(async () => {
    for await (const c of chunkFile(join(dir, 'f'), P)) n += c.bytes.length;
  });
  if (n !== size) throw new Error('chunkFile lost bytes');
  const sorted = [...lens].sort((a, b) => a - b);
  const q = (f: number) => ((sorted[Math.floor(f * (sorted.length - 1))] ?? 0) / 1024).toFixed(0);
  say(
    `## FastCDC ${P.minSize / 1024} KiB / ${P.avgSize / 1024} KiB / ${P.maxSize / 1024} KiB over ${size / MiB} MiB of random data\n`,
  );
  say(`| measure | value |\n|---|---|`);
  say(`| in memory (chunkLengths) | ${rate(size, mem)} |`);
  say(`| from a file in page cache (chunkFile, copies each chunk) | ${rate(size, file)} |`);
  say(`| chunks | ${lens.length}, mean ${(size / lens.length / 1024).toFixed(0)} KiB |`);
  say(`| sizes min / p10 / p50 / p90 / max | ${q(0)} / ${q(0.1)} / ${q(0.5)} / ${q(0.9)} / ${q(1)} KiB |`);
  say(`| cut at maxSize | ${lens.filter((l) => l === P.maxSize).length} |\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}

const identity = await generateX25519Identity();
const recipient = await identityToRecipient(identity);
const sealer = await BlobSealer.create([recipient]);
const opener = new BlobOpener([identity]);
const big = data.subarray(0, 64 * MiB);
let sealed: Uint8Array = new Uint8Array(0);
const seal = await timed(() => {
  sealed = sealer.seal(big);
});
const open = await timed(() => opener.open(sealed, 'bench'));
const small = randomBytes(4096);
const rounds = 5000;
let last: Uint8Array = sealed;
const smallSeal = await timed(() => {
  for (let i = 0; i < rounds; i++) last = sealer.seal(small);
});
const smallOpen = await timed(async () => {
  for (let i = 0; i < rounds; i++) await opener.open(last, 'bench');
});
const create = await timed(async () => {
  for (let i = 0; i < 20; i++) await BlobSealer.create([recipient]);
});
const us = (t: { cpu: number; wall: number }, n: number) =>
  `${((t.cpu * 1000) / n).toFixed(0)} µs CPU (${((t.wall * 1000) / n).toFixed(0)} µs wall)`;
say(`## Sealing (age v1 files, ChaCha20-Poly1305 via node:crypto)\n`);
say(`| measure | value |\n|---|---|`);
say(`| seal 64 MiB | ${rate(big.length, seal)} |`);
say(`| open 64 MiB | ${rate(big.length, open)} |`);
say(`| seal a 4 KiB blob | ${us(smallSeal, rounds)} |`);
say(`| open a 4 KiB blob (header cached) | ${us(smallOpen, rounds)} |`);
say(`| new sealer (X25519 wrap, once per pack) | ${us(create, 20)} |`);

if (values.out !== undefined) await writeFile(values.out, `${lines.join('\n')}\n`);

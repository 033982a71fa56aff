import { lstat, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { StreamName } from '../config/schema.js';
import { JobError } from '../errors.js';
import { runProcess, type RunResult } from '../adapters/run.js';
import { describeRsyncResult, rsyncEnv } from '../adapters/rsync.js';
import { mkdirp, writeFileAtomic } from '../adapters/fsx.js';
import { MANIFEST } from '../generation/names.js';
import type { Logger } from '../adapters/log.js';
import { joinRsh } from '../adapters/ssh.js';
import type { Transport } from './transport.js';
import { createProgress, rsyncProgressArgs } from '../adapters/progress.js';
import type { EarlyHashes } from './early-hash.js';
import { watchReads } from '../adapters/stall-watch.js';

export interface PullInput {
  transport: Transport;
  id: string;
  /** `.incoming` of the stream in the sink store; the generation lands in `<incoming>/<id>` */
  incoming: string;
  /** newest verified generation in the sink store: unchanged files become hard links to it */
  linkDest: string | undefined;
  /**
   * storeMode reflink: `<incoming>/<id>/tree` already holds a reflink clone of the previous
   * generation's tree; rsync updates it in place, writing only the changed blocks (no --link-dest)
   */
  inplace?: boolean;
  ioTimeoutMs: number;
  stream: StreamName;
  log: Logger;
  signal?: AbortSignal;
  /** show an rsync progress bar on stderr (only when it is a terminal) */
  progress?: boolean;
  /** hashes files as rsync completes them (the tree phase only) */
  early?: EarlyHashes;
  /** rsync `--bwlimit` (the source's `bwlimit:`), bytes per second; passed in KiB, at least 1 */
  bwlimitBytes?: number | undefined;
  /** rsync `--max-size`: no file larger than this is written (the largest one the manifest declares) */
  maxFileBytes?: number | undefined;
  /** rsync is killed once it has read more than this (the source sends more than it declared) */
  maxReadBytes?: number | undefined;
  /** the bytes rsync is to copy, from the manifest: the progress bar's total */
  newBytes?: number | undefined;
  /** rsync is killed when it reads fewer than `bytes` within `windowMs` (a trickling source) */
  minThroughput?: { bytes: number; windowMs: number } | undefined;
}

/**
 * rsync's own `--timeout` misses a source whose rsync stops while ssh stays up (SIGSTOP, a hung
 * disk): the receiver's own keep-alives count as I/O, so it waits forever. A live sender sends
 * data or a keep-alive at least every half `--timeout`; the sink kills its rsync when nothing at
 * all was read for the timeout plus a margin.
 */
export function stallAfterMs(ioTimeoutMs: number): number {
  return ioTimeoutMs + Math.min(ioTimeoutMs, 30_000);
}

/** Only these two files in phase one: small, and enough to judge the generation before the tree moves. */
const HEAD_FILTER = ['--include=/manifest', '--include=/meta.json', '--exclude=*'];

/**
 * Phase two: the four names a generation has, nothing else at its top level is even transferred
 * (verify refuses any other name that still arrives). Filter rules travel in the protocol, not in
 * the server's argv.
 */
const GENERATION_FILTER = [
  '--include=/tree/',
  '--include=/manifest',
  '--include=/meta.json',
  '--include=/SHA256SUMS',
  '--exclude=/*',
];

/**
 * Modes in the sink store whatever the source sent: no setuid, setgid or sticky bit, no write bit on
 * files, owner read (and rwx on directories); the same shape the source gives its trees
 * (`storedFileMode`/`storedDirMode`, which verify checks). The original modes live in the manifest.
 */
export const STORE_CHMOD = 'Fa-wt,Fug-s,Fu+r,Dgo-w,Dug-s,Da-t,Du+rwx';

/** rsync argv that pulls one generation (or, with `headOnly`, its manifest and meta.json) through the gate. */
export function pullArgv(
  input: Pick<
    PullInput,
    'transport' | 'id' | 'incoming' | 'linkDest' | 'ioTimeoutMs' | 'inplace' | 'maxFileBytes' | 'bwlimitBytes'
  >,
  headOnly = false,
): string[] {
  return [
    'rsync',
    // recursive, links as links, perms and mtimes; no owners (the sink store belongs to the sink), no devices
    '-rlpt',
    // the data's hard links (manifest link groups) arrive as links; verify checks each group is one inode
    '-H',
    '--no-owner',
    '--no-group',
    `--chmod=${STORE_CHMOD}`,
    // --delete-excluded: a stray top-level name left in .incoming/<id> (by a killed run, by hand) is
    // removed, not kept to fail verify; rsync sends no delete option to a sender server
    ...(headOnly ? HEAD_FILTER : [...GENERATION_FILTER, '--delete', '--delete-excluded']),
    '--numeric-ids',
    // compare mtimes to the nanosecond (rsync >= 3.1.3; the receiver's own setting, not sent to the
    // gate): with whole seconds, --link-dest took a base file of the same size and second for the new
    // one and linked its old content over the pulled file; verify refused that, and every later pull
    // repeated it against the same base (docs/design.md §2)
    '--modify-window=-1',
    '--partial',
    `--timeout=${Math.max(1, Math.round(input.ioTimeoutMs / 1000))}`,
    // plain bytes; at least 1 (older rsyncs read 0 as "no limit")
    ...(input.maxFileBytes === undefined ? [] : [`--max-size=${Math.max(1, Math.ceil(input.maxFileBytes))}`]),
    // KiB per second, rsync's unit on every version (a suffix is not understood by all)
    ...(input.bwlimitBytes === undefined
      ? []
      : [`--bwlimit=${Math.max(1, Math.ceil(input.bwlimitBytes / 1024))}`]),
    // in place: a changed file keeps its cloned extents and only the differing blocks are written
    ...(input.inplace ? (headOnly ? [] : ['--inplace', '--no-whole-file']) : []),
    // never for the head: a manifest of the same size and second as the base's would be linked, not
    // fetched, and the generation wrongly quarantined (and rejected on the source)
    ...(input.linkDest && !input.inplace && !headOnly ? [`--link-dest=${input.linkDest}`] : []),
    '-e',
    joinRsh(input.transport.rsh),
    '--',
    `${input.transport.remote}:${input.id}/`,
    `${join(input.incoming, input.id)}/`,
  ];
}

const mib = (n: number) => `${Math.ceil(n / 2 ** 20)} MiB`;

function isNoSpace(r: RunResult): boolean {
  return r.code === 11 || /No space left on device|Disk quota exceeded/.test(r.stderr);
}

async function runPull(input: PullInput, headOnly: boolean): Promise<RunResult> {
  await mkdirp(join(input.incoming, input.id), 0o700);
  const progress = headOnly
    ? undefined
    : createProgress(`pull ${input.stream} ${input.id}`, input.progress === true);
  const shown = rsyncProgressArgs(input.progress === true ? progress : undefined, input.newBytes);
  const early = headOnly ? undefined : input.early;
  const onStdout =
    shown.onStdout && early
      ? (b: Buffer) => {
          shown.onStdout?.(b);
          early.onStdout(b);
        }
      : (shown.onStdout ?? early?.onStdout);
  const [rsync, ...rest] = pullArgv(input, headOnly);
  if (input.bwlimitBytes !== undefined)
    input.log.info(
      { step: 'pull', id: input.id, argv: [rsync, ...rest] },
      `rsync limited to ${Math.max(1, Math.ceil(input.bwlimitBytes / 1024))} KiB/s (bwlimit)`,
    );
  const quietMs = stallAfterMs(input.ioTimeoutMs);
  const watch = watchReads('rsync', {
    quietMs,
    maxReadBytes: input.maxReadBytes,
    minThroughput: input.minThroughput,
  });
  const r = await runProcess([rsync ?? 'rsync', ...shown.args, ...(early?.args ?? []), ...rest], {
    env: rsyncEnv(),
    tailBytes: 16 * 1024,
    signal: input.signal ? AbortSignal.any([input.signal, watch.signal]) : watch.signal,
    onSpawn: (pid) => watch.attach(pid),
    killGraceMs: 2000,
    ...(onStdout ? { onStdout } : {}),
  }).finally(() => early?.finish());
  watch.stop();
  progress?.stop();
  // the run's deadline (limits.maxPullDuration) ended it: its reason is the one-line error
  if (input.signal?.aborted && input.signal.reason instanceof JobError) throw input.signal.reason;
  if (watch.verdict === 'too-much') {
    throw new JobError(
      `pulling ${input.stream} ${input.id} over ${input.transport.describe}: the source sent more than its manifest declares (rsync read over ${mib(input.maxReadBytes ?? 0)}; rsync killed, not acked)`,
      { step: 'pull' },
    );
  }
  if (watch.verdict === 'too-slow' && input.minThroughput) {
    throw new JobError(
      `pulling ${input.stream} ${input.id} over ${input.transport.describe}: too slow, fewer than ${input.minThroughput.bytes} bytes received in ${Math.round(input.minThroughput.windowMs / 1000)}s (limits.minThroughput; rsync killed, the partial copy is kept for the next run)`,
      { step: 'pull' },
    );
  }
  if (watch.stalled) {
    throw new JobError(
      `pulling ${input.stream} ${input.id} over ${input.transport.describe}: stalled, nothing received for ${Math.round(quietMs / 1000)}s (rsync killed; the partial copy is kept for the next run)`,
      { step: 'pull' },
    );
  }
  const problem = describeRsyncResult(r);
  if (problem) {
    if (isNoSpace(r)) {
      // Nothing to resume from a full disk: free what this pull took, keep the store as it was.
      await rm(join(input.incoming, input.id), { recursive: true, force: true });
      throw new JobError(
        `pulling ${input.stream} ${input.id}: the sink store's disk is full (${problem}); removed the partial copy`,
        {
          step: 'pull',
        },
      );
    }
    const notResponding = /Timeout, server .* not responding/.exec(r.stderr);
    throw new JobError(
      `pulling ${input.stream} ${input.id} over ${input.transport.describe}: ${notResponding ? `the ssh connection stalled (${notResponding[0]})` : problem}`,
      { step: 'pull' },
    );
  }
  return r;
}

/** Phase one: only `manifest` and `meta.json`, so the generation can be judged before its tree moves. */
export async function pullHead(input: PullInput): Promise<void> {
  input.log.info(
    { step: 'pull', stream: input.stream, id: input.id },
    `fetching the manifest of ${input.id}`,
  );
  await runPull(input, true);
}

/**
 * Step 2.a / 3.a, phase two: rsync the whole generation into `.incoming/<id>`. An interrupted
 * pull leaves the directory behind and the next run resumes into it; a full disk removes it.
 */
export async function pullGeneration(input: PullInput): Promise<{ ms: number }> {
  input.log.info(
    {
      step: 'pull',
      stream: input.stream,
      id: input.id,
      ...(input.inplace ? { inplace: true } : { linkDest: input.linkDest }),
    },
    `pulling ${input.id}${input.inplace ? ' in place into the clone' : ''}`,
  );
  const r = await runPull(input, false);
  return { ms: r.durationMs };
}

/**
 * Phase one without rsync: the manifest the gate sent with the listing becomes `<dir>/manifest`, as the
 * head pull would leave it. Whatever an interrupted pull left at that name (a symlink from the source,
 * a directory) is replaced, never followed: a temp file opened O_EXCL|O_NOFOLLOW, renamed over it. Its
 * hash is checked next, like a pulled head's.
 */
export async function writeInlineHead(dir: string, manifest: Buffer): Promise<void> {
  await mkdirp(dir, 0o700);
  const target = join(dir, MANIFEST);
  const st = await lstat(target).catch(() => undefined);
  if (st?.isDirectory()) await rm(target, { recursive: true, force: true });
  await writeFileAtomic(target, manifest, 0o444, { exactMode: true, sync: false });
}

/** Bytes free on the filesystem holding `dir`, and the headroom always left free (5 %, at most 64 MiB). */
export async function freeBytes(dir: string): Promise<{ free: number; headroom: number }> {
  const s = await statfs(dir);
  return {
    free: s.bavail * s.bsize,
    headroom: Math.min(64 * 2 ** 20, Math.floor((s.blocks * s.bsize) / 20)),
  };
}

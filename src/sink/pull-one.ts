import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SinkConfig, SinkSourceConfig, SinkStreamConfig, StreamName } from '../config/schema.js';
import type { HandoverGeneration } from '../core/gate-replies.js';
import { JobError, oneLine } from '../errors.js';
import { sha256File } from '../adapters/fsx.js';
import { listGenerations, type StoredGeneration } from '../generation/list.js';
import { ManifestError } from '../generation/manifest-file.js';
import { crashPoint } from '../adapters/crash-point.js';
import type { Logger } from '../adapters/log.js';
import type { Transport } from './transport.js';
import { freeBytes, pullGeneration, pullHead, writeInlineHead, type PullInput } from './pull.js';
import { precheckManifest, type Precheck } from './precheck.js';
import { EarlyHashes } from './early-hash.js';
import {
  describeProblems,
  pulledManifestSha256,
  verifyGeneration,
  type VerifyResult,
} from '../generation/verify.js';
import { publishGeneration, quarantineGeneration } from './publish.js';
import { boundQuarantine } from './quarantine-bound.js';
import { pruneSinkStream } from './prune.js';
import { calendarPolicy } from '../core/retention.js';
import { checkSizeAnomaly } from './check-anomaly.js';
import { ackGeneration, rejectGeneration } from './ack.js';
import { prepareClonedTree } from './reflink-store.js';
import type { SinkPaths } from './state.js';
import { MANIFEST, TREE } from '../generation/names.js';

/** What the pulls of one source and stream share, and what they did so far. */
export interface PullContext {
  config: SinkConfig;
  src: SinkSourceConfig;
  stream: StreamName;
  streamCfg: SinkStreamConfig;
  transport: Transport;
  paths: SinkPaths;
  log: Logger;
  now: () => Date;
  /** progress bars on stderr */
  progress: boolean;
  /** limits.maxPullDuration (and the end of the run) */
  deadline: AbortSignal;
  /** storeMode: each generation starts as a reflink clone of the previous one, else hard links */
  reflink: boolean;
  /** what this run did: pulled, pruned, acked, quarantined, warnings (recorded at its end) */
  out: {
    pulled: string[];
    acked: string[];
    pruned: string[];
    quarantined: string[];
    warnings: string[];
    pulledFiles?: number;
    pulledBytes?: number;
  };
  /** set by a quarantine or a suspicious size drop: nothing is pruned for this stream for the rest of this run */
  retentionFrozen: boolean;
  /** why the run fails at its end although it went on to the newer generations (quarantines) */
  failures: string[];
  /**
   * The manifest the gate sent with the listing (`list-head`, bounded and parsed there): its
   * generation's head needs no rsync. Taken (and dropped) by that generation's precheck.
   */
  inlineHead?: { id: string; manifest: Buffer } | undefined;
}

/** How one generation is pulled: where to, and against which generation of the store. */
interface PullPlan {
  /** `<incoming>/<id>` */
  dir: string;
  /** the newest stored generation older than this one (else the newest): files unchanged since are reused */
  base: StoredGeneration | undefined;
  /** its manifest, read alongside the new one in tree order (never loaded whole) */
  baseManifest: string | undefined;
  /** the rsync part common to the head and the tree */
  input: PullInput;
}

/**
 * One pending generation, in the order of the process: precheck → space → transfer → verify →
 * anomaly → publish → prune → ack. A generation found bad is quarantined and set aside (the run goes on
 * and fails at its end, `ctx.failures`); anything else that goes wrong throws and ends the run.
 */
export async function pullOne(g: HandoverGeneration, ctx: PullContext): Promise<void> {
  const stored = await listGenerations(ctx.paths.streamDir);
  const already = stored.find((s) => s.id === g.id);
  if (already) return ackPublishedEarlier(g, already, ctx);
  const plan = planPull(g, stored, ctx);
  const pre = await precheck(g, plan, ctx);
  if (pre === undefined) return;
  await checkSpace(g, plan, pre, ctx);
  const early = await transfer(g, plan, pre, ctx);
  const v = await verify(g, plan, pre, early, ctx);
  if (v === undefined) return;
  await checkAnomaly(g, v, ctx);
  await publish(g, ctx);
  ctx.out.pulledFiles = (ctx.out.pulledFiles ?? 0) + v.files;
  ctx.out.pulledBytes = (ctx.out.pulledBytes ?? 0) + v.bytes;
  await prune(g, ctx);
  await ack(g, ctx);
}

/** Published by an earlier run that died before its ack: ack it now, if it is the same generation. */
async function ackPublishedEarlier(
  g: HandoverGeneration,
  already: StoredGeneration,
  ctx: PullContext,
): Promise<void> {
  const have = await sha256File(join(already.dir, MANIFEST));
  if (have !== g.manifestSha256) {
    throw new JobError(
      `generation ${g.id} differs from the one already in the sink store (manifest hash); not acked`,
      { step: 'verify' },
    );
  }
  await ackGeneration(ctx.transport, g.id, g.manifestSha256, already.dir, ctx.config.timeout, ctx.log);
  ctx.out.acked.push(g.id);
}

function planPull(g: HandoverGeneration, stored: readonly StoredGeneration[], ctx: PullContext): PullPlan {
  const base = stored.filter((s) => s.id < g.id).at(-1) ?? stored.at(-1);
  const { limits } = ctx.config;
  return {
    dir: join(ctx.paths.incoming, g.id),
    base,
    baseManifest: base ? join(base.dir, MANIFEST) : undefined,
    input: {
      transport: ctx.transport,
      id: g.id,
      incoming: ctx.paths.incoming,
      linkDest: base?.dir,
      inplace: ctx.reflink && base !== undefined,
      ioTimeoutMs: ctx.config.timeout,
      stream: ctx.stream,
      log: ctx.log,
      progress: ctx.progress,
      signal: ctx.deadline,
      minThroughput: { bytes: limits.minThroughput.bytes, windowMs: limits.minThroughput.window },
      bwlimitBytes: ctx.src.bwlimit,
    },
  };
}

/**
 * Phase precheck: manifest and meta.json only. A hostile, oversized or too-large generation is
 * rejected here, before its tree takes any space. Returns what the manifest declares, or undefined
 * when the manifest is bad (quarantined, set aside).
 */
async function precheck(
  g: HandoverGeneration,
  plan: PullPlan,
  ctx: PullContext,
): Promise<Precheck | undefined> {
  const { limits } = ctx.config;
  const maxManifestBytes = limits.maxManifestBytes ?? Math.min(limits.maxBytes, limits.maxFiles * 1024);
  if (g.manifestBytes > maxManifestBytes) {
    throw new JobError(
      `generation ${g.id} announces a manifest of ${g.manifestBytes} bytes, over limits.maxManifestBytes (${maxManifestBytes}); not pulled, not acked`,
      { step: 'pull' },
    );
  }
  // no file of the head larger than announced (meta.json: at most 1 MiB), nothing read beyond that
  const headMax = Math.max(g.manifestBytes, META_MAX_BYTES);
  const inline = ctx.inlineHead?.id === g.id ? ctx.inlineHead.manifest : undefined;
  ctx.inlineHead = undefined;
  if (inline !== undefined) {
    await writeInlineHead(plan.dir, inline);
  } else {
    const baseManifestBytes = plan.baseManifest
      ? ((await lstat(plan.baseManifest).catch(() => undefined))?.size ?? 0)
      : 0;
    await pullHead({
      ...plan.input,
      maxFileBytes: headMax,
      maxReadBytes: 3 * (headMax + META_MAX_BYTES) + 2 * baseManifestBytes + READ_SLACK_BYTES,
    });
  }
  // Never follows a symlink from the source (to a FIFO, /dev/zero, /etc/shadow): not a hash then.
  const manifestHash = await pulledManifestSha256(plan.dir);
  try {
    if (manifestHash !== g.manifestSha256)
      throw new ManifestError(
        /^[0-9a-f]{64}$/.test(manifestHash)
          ? 'manifest hash differs from the one listed'
          : `manifest ${manifestHash}`,
      );
    // a tree left by an interrupted pull of this generation is resumed: its complete files cost nothing more
    return await precheckManifest(plan.dir, limits.maxFiles, plan.baseManifest, join(plan.dir, TREE));
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    const q = await quarantine(g.id, ctx);
    // the head is fetched whole from the source (no --link-dest): a bad manifest is the source's
    await setAside(
      g,
      `generation ${g.id} has a bad manifest (quarantined in ${q}, not acked): ${e.message}`,
      undefined,
      ctx,
    );
    return undefined;
  }
}

/** Phase space: the declared size fits limits.maxBytes and the new bytes fit the disk; nothing is deleted to make room. */
async function checkSpace(
  g: HandoverGeneration,
  plan: PullPlan,
  pre: Precheck,
  ctx: PullContext,
): Promise<void> {
  const { limits } = ctx.config;
  if (pre.bytes > limits.maxBytes) {
    await rm(plan.dir, { recursive: true, force: true });
    throw new JobError(
      `generation ${g.id} holds ${pre.bytes} bytes, over limits.maxBytes (${limits.maxBytes}); not pulled, nothing deleted to make room`,
      { step: 'pull' },
    );
  }
  const { free, headroom } = await freeBytes(ctx.paths.streamDir);
  if (pre.newBytes + headroom > free) {
    await rm(plan.dir, { recursive: true, force: true });
    throw new JobError(
      `generation ${g.id} needs about ${Math.ceil(pre.newBytes / 2 ** 20)} MiB new in ${ctx.paths.streamDir}${pre.resumedBytes > 0 ? ` (besides ${Math.ceil(pre.resumedBytes / 2 ** 20)} MiB already in .incoming)` : ''}, only ${Math.floor(free / 2 ** 20)} MiB free; not pulled, nothing deleted to make room`,
      { step: 'pull' },
    );
  }
}

/**
 * Phase transfer: the tree, bounded by what the manifest declares. Returns the hashes taken while
 * rsync transferred (verify on), for the verify phase.
 */
async function transfer(
  g: HandoverGeneration,
  plan: PullPlan,
  pre: Precheck,
  ctx: PullContext,
): Promise<EarlyHashes | undefined> {
  if (plan.input.inplace && plan.base) {
    await prepareClonedTree(plan.dir, plan.base.dir, ctx.log);
    await crashPoint('sink-cloned');
  }
  // files are hashed as rsync completes them, while it transfers the next ones
  const early = ctx.config.verify ? new EarlyHashes(plan.dir) : undefined;
  await pullGeneration({
    ...plan.input,
    ...(early ? { early } : {}),
    // no file larger than the largest declared one (SHA256SUMS and meta.json are smaller than the manifest)
    maxFileBytes: Math.max(pre.largest, g.manifestBytes, META_MAX_BYTES),
    // what rsync may read: the declared data, the delta bases of changed files (read by the
    // generator and the receiver), a resumed partial copy, the file list; more means the source
    // sends more than it declared
    maxReadBytes: 3 * pre.bytes + 2 * pre.basisBytes + 2 * g.manifestBytes + READ_SLACK_BYTES,
    // the progress bar's total: the new and changed files the manifest declares
    newBytes: pre.newBytes,
  });
  return early;
}

/**
 * Phase verify: every file against the manifest, and the manifest still the listed one. Returns the
 * result, or undefined when the generation failed (quarantined, set aside).
 */
async function verify(
  g: HandoverGeneration,
  plan: PullPlan,
  pre: Precheck,
  early: EarlyHashes | undefined,
  ctx: PullContext,
): Promise<VerifyResult | undefined> {
  const { base, baseManifest } = plan;
  const v = await verifyGeneration({
    dir: plan.dir,
    expect: { id: g.id, source: ctx.src.name, stream: ctx.stream },
    hashes: ctx.config.verify,
    // a clone written in place shares no inode with the base: every file is hashed (no shortcut)
    ...(base && baseManifest && !plan.input.inplace
      ? {
          linkBase: {
            tree: join(base.dir, TREE),
            manifest: baseManifest,
            // the precheck paired this manifest with the base's already: not read a second time
            sameHash: (ordinal: number) => pre.sameAsBase.has(ordinal),
          },
        }
      : {}),
    maxFiles: ctx.config.limits.maxFiles,
    maxBytes: ctx.config.limits.maxBytes,
    ...(early ? { knownHash: (rel: Buffer) => early.candidate(rel) } : {}),
  });
  if ((await pulledManifestSha256(plan.dir)) !== g.manifestSha256) {
    v.ok = false;
    v.problems.unshift({ kind: 'manifest', path: MANIFEST, detail: 'manifest changed during the pull' });
  }
  if (!v.ok) {
    const q = await quarantine(g.id, ctx);
    await setAside(
      g,
      `generation ${g.id} failed verification (quarantined in ${q}, not acked):\n${describeProblems(v.problems)}`,
      base?.id,
      ctx,
    );
    return undefined;
  }
  ctx.log.info(
    {
      step: 'verify',
      id: g.id,
      files: v.files,
      bytes: v.bytes,
      hashed: v.hashed,
      hashedDuringTransfer: early?.hashed ?? 0,
      reused: v.reused,
    },
    `verified ${g.id}`,
  );
  return v;
}

/** Phase anomaly: a suspicious size drop (retention under attack) warns and freezes retention for the run. */
async function checkAnomaly(g: HandoverGeneration, v: VerifyResult, ctx: PullContext): Promise<void> {
  const anomaly = await checkSizeAnomaly({
    source: ctx.src.name,
    stream: ctx.stream,
    streamDir: ctx.paths.streamDir,
    id: g.id,
    size: { files: v.files, bytes: v.bytes },
    dropPercent: ctx.streamCfg.anomalyDropPercent,
    alerts: ctx.config.alerts,
    pendingAlerts: ctx.paths.pendingAlerts,
    log: ctx.log,
  });
  if (anomaly !== undefined) {
    ctx.out.warnings.push(anomaly);
    ctx.retentionFrozen = true;
  }
}

/** Phase publish: the verified generation moves from `.incoming` into the sink store. */
async function publish(g: HandoverGeneration, ctx: PullContext): Promise<void> {
  await crashPoint('sink-verified');
  await publishGeneration(ctx.paths.incoming, ctx.paths.streamDir, g.id, ctx.log);
  ctx.out.pulled.push(g.id);
  await crashPoint('sink-published');
}

/** Phase prune: the stream's retention, unless frozen by a quarantine or a size drop in this run. */
async function prune(g: HandoverGeneration, ctx: PullContext): Promise<void> {
  if (ctx.retentionFrozen) {
    ctx.log.warn(
      { step: 'prune' },
      ctx.failures.length > 0
        ? 'a generation was quarantined in this run: nothing pruned'
        : `retention frozen after a suspicious size drop: nothing pruned`,
    );
  } else {
    const plan = await pruneSinkStream(
      ctx.paths.streamDir,
      {
        keep: ctx.streamCfg.generations,
        keepWithin: ctx.streamCfg.keepWithin,
        ...calendarPolicy(ctx.streamCfg),
      },
      [g.id],
      ctx.log,
      { clock: ctx.now(), skewMs: ctx.config.limits.futureSkew },
    );
    ctx.out.pruned.push(...plan.remove.map((r) => r.id));
  }
  await crashPoint('sink-pruned');
}

/** Phase ack: the source is told (and shown, by the ack challenge) that the generation is safe here. */
async function ack(g: HandoverGeneration, ctx: PullContext): Promise<void> {
  const published = join(ctx.paths.streamDir, g.id);
  await ackGeneration(ctx.transport, g.id, g.manifestSha256, published, ctx.config.timeout, ctx.log);
  ctx.out.acked.push(g.id);
  await crashPoint('sink-acked');
}

/** Moves `<incoming>/<id>` into `.quarantine/` (bounded in count and bytes); returns where it went. */
async function quarantine(id: string, ctx: PullContext): Promise<string> {
  const { paths, config } = ctx;
  const q = await quarantineGeneration(paths.incoming, paths.quarantine, id, ctx.now());
  ctx.out.quarantined.push(q);
  await boundQuarantine(
    paths.quarantine,
    { maxCount: config.limits.maxQuarantined, maxBytes: config.limits.maxQuarantineBytes },
    ctx.log,
  );
  return q;
}

/**
 * A quarantined generation does not block the newer ones behind it (issue 10, hole 12): it is rejected
 * on the source (set aside there), the pull goes on, and the run still fails at the end.
 */
async function setAside(
  g: HandoverGeneration,
  message: string,
  reusedBase: string | undefined,
  ctx: PullContext,
): Promise<void> {
  ctx.failures.push(message);
  // a failed run prunes nothing, this one included
  ctx.retentionFrozen = true;
  ctx.log.error({ step: 'verify', id: g.id }, message);
  if (reusedBase !== undefined) {
    // Files may have come from our own generation (hard links, a clone), not the source: the fault
    // may be on this side, so the source's copy is not set aside. The next run pulls it again.
    ctx.failures.push(
      `  not rejected on the source: the pull reused ${reusedBase} from this store, which may be at fault; the next run pulls it again`,
    );
    return;
  }
  try {
    const keptIn = await rejectGeneration(ctx.transport, g.id, g.manifestSha256, ctx.config.timeout, ctx.log);
    ctx.failures.push(`  rejected on the source: kept in ${keptIn}, no longer pending`);
  } catch (e) {
    ctx.failures.push(`  ${oneLine(e)}: it stays pending on the source`);
  }
}

/** meta.json is a few hundred bytes; this much is the most pulled for it. */
const META_MAX_BYTES = 2 ** 20;
/** Reads of rsync beyond the declared bytes that are never suspicious (protocol, file list, checksums). */
const READ_SLACK_BYTES = 64 * 2 ** 20;

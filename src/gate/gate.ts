import { createHash, randomBytes, randomInt } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, type FileHandle } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { Readable } from 'node:stream';
import { runAttached, runProcess } from '../adapters/run.js';
import { existsOrFail, fsyncDirOrFail, removeTreeOrFail, renameOrFail } from '../adapters/fsx.js';
import { proveChallenge, sampleChallenge } from '../generation/ack-proof.js';
import { recordGateEvent } from '../adapters/gate-events.js';
import { LineReader, LineTimeout } from '../adapters/line-reader.js';
import { rewriteOwnMetricsFile } from '../adapters/metrics.js';
import { handoverMetricsText, handoverMetricsTextfile } from '../generation/handover-metrics.js';
import {
  checkAnswer,
  formatChallenge,
  MAX_ACK_LINE_BYTES,
  MAX_ACK_RANGES,
  parseAnswerHeader,
} from '../core/ack-challenge.js';
import { describeGateEvent, eventText, type GateEvent } from '../core/gate-events.js';
import type { SourceConfig, StreamName } from '../config/schema.js';
import {
  deletingName,
  GATE_EVENTS_DIR,
  isGenerationId,
  MANIFEST,
  parseGenerationId,
  parseWorkName,
  REJECTED_DIR,
} from '../generation/names.js';
import {
  MAX_GATE_REQUEST_BYTES,
  parseGateRequest,
  rsyncServerArgv,
  type GateRequest,
  type RsyncPullRequest,
} from '../core/gate-rules.js';
import {
  formatReplyHeader,
  MAX_SESSION_REQUESTS,
  parseSessionRequest,
  SESSION_HELLO,
  SESSION_IDLE_MS,
} from '../core/gate-session.js';
import { FrameReader } from '../adapters/frame-reader.js';
import {
  formatHeadLine,
  MAX_INLINE_MANIFEST_BYTES,
  type GateAck,
  type GateListing,
  type GateReject,
  type HandoverGeneration,
} from '../core/gate-replies.js';
import { calendarPolicy, planRetention } from '../core/retention.js';
import { BatonError, ConfigError, errnoCode, ExitCode, JobError, oneLine } from '../errors.js';

/**
 * `baton gate data|logs`: the forced command of a stream user's ssh key, the only thing the sink may run
 * on the source (docs/design.md §3). It runs as that stream user, never as root, and touches only the stream's
 * handover and (for data) the source store.
 */

/** Writes to the session; bytes only for the inline manifest of `list-head`. */
export type Writer = (text: string | Uint8Array) => void;

export interface GateOptions {
  stream: StreamName;
  config: SourceConfig;
  /** SSH_ORIGINAL_COMMAND as sshd set it; undefined when the caller asked for a shell. */
  original: string | undefined;
  env: NodeJS.ProcessEnv;
  now: Date;
  stdout: Writer;
  stderr: Writer;
  /** Best-effort syslog line for a refusal; default `logger -t baton-gate -p auth.warning`. */
  syslog?: (message: string) => Promise<void>;
  /** The session's stdin, where the sink answers an ack challenge; taken only for an ack. */
  stdin?: () => Readable;
  /** How long the gate waits for the answer to an ack challenge. Default {@link ACK_ANSWER_TIMEOUT_MS}. */
  answerTimeoutMs?: number;
  /** How long a session waits for its next request. Default {@link SESSION_IDLE_MS}. */
  sessionIdleMs?: number;
  /** In a session: where the ack challenge goes (at once, unframed) and where the answer's lines come from. */
  challenge?: { write: Writer; readLine: (timeoutMs: number) => Promise<string | undefined> };
}

/** How long the gate waits for the sink's answer to an ack challenge. */
export const ACK_ANSWER_TIMEOUT_MS = 5 * 60_000;
/** The most generations kept in `<handover>/.rejected/`; a reject beyond it is refused (nothing moves). */
export const MAX_REJECTED = 20;
/** The gate mails an event itself at most this often (the next backup mails every event anyway). */
const DIRECT_MAIL_INTERVAL_MS = 10 * 60_000;

/** Where rsync is looked for after PATH's absolute entries. */
export const RSYNC_FALLBACKS = ['/usr/bin/rsync', '/bin/rsync'] as const;

/** A refusal: logged, one line to the caller, exit 1; with `event`, also recorded as a gate event. */
class GateRefusal extends Error {
  constructor(
    message: string,
    readonly event?: { kind: GateEvent['kind']; id: string },
  ) {
    super(message);
  }
}

/**
 * Answers one request of the sink and returns the exit code. Never throws a BatonError: refusals and
 * failures end as `baton gate: …` on stderr. For a pull it runs `rsync --server --sender` with an argv
 * rebuilt from the parsed request on this process's own stdin/stdout (the rsync protocol), so nothing
 * else may be written to stdout then.
 */
export async function runGate(opts: GateOptions): Promise<number> {
  const request = parseGateRequest(opts.original);
  return request.kind === 'session' ? serveSession(opts) : answer(request, opts);
}

/** One request, answered on `opts.stdout` (refusals and failures on `opts.stderr`); returns the exit code. */
async function answer(request: GateRequest, opts: GateOptions): Promise<number> {
  try {
    const stream = streamConfig(opts.config, opts.stream);
    switch (request.kind) {
      case 'refused':
        throw new GateRefusal(request.reason);
      case 'session':
        throw new GateRefusal('already in a session');
      case 'rsync':
        return await serveRsync(stream.handover, request.pull, opts.env, opts.stderr);
      case 'list':
      case 'list-head': {
        const listing = await listHandover(opts.config.name, opts.stream, stream.handover, opts.now);
        const oldest = request.kind === 'list-head' ? listing.generations[0] : undefined;
        const head = oldest && (await readInlineManifest(stream.handover, oldest));
        opts.stdout(`${JSON.stringify(listing)}\n`);
        if (oldest && head) {
          opts.stdout(formatHeadLine(oldest.id, head.length));
          opts.stdout(head);
        }
        return ExitCode.ok;
      }
      case 'ack': {
        const prove = (genDir: string, manifestBytes: number) =>
          proveReceipt(opts, request.id, genDir, manifestBytes);
        const result =
          opts.stream === 'data'
            ? await ackData(opts.config.streams.data, request.id, request.manifestSha256, prove)
            : await ackLogs(stream.handover, request.id, request.manifestSha256, prove);
        await refreshHandoverMetrics(opts.config, opts.stream);
        opts.stdout(`${JSON.stringify(result)}\n`);
        return ExitCode.ok;
      }
      case 'reject': {
        const result = await rejectGeneration(stream.handover, request.id, request.manifestSha256);
        await recordEvent(opts, stream.handover, {
          kind: 'rejected',
          id: request.id,
          reason: `the sink failed to verify ${request.id} and set it aside: kept in ${result.keptIn} for inspection`,
        });
        opts.stdout(`${JSON.stringify(result)}\n`);
        return ExitCode.ok;
      }
    }
  } catch (err) {
    if (err instanceof GateRefusal) {
      await logRefusal(opts, err.message);
      opts.stderr(`baton gate: refused: ${err.message}\n`);
      if (err.event) {
        const handover = streamHandover(opts);
        if (handover !== undefined)
          await recordEvent(opts, handover, { kind: err.event.kind, id: err.event.id, reason: err.message });
      }
      return ExitCode.failed;
    }
    if (err instanceof BatonError) {
      opts.stderr(`${JSON.stringify(logRecord(opts, 'error', 'gate failed', { error: oneLine(err) }))}\n`);
      opts.stderr(`baton gate: ${oneLine(err)}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

function streamHandover(opts: GateOptions): string | undefined {
  return opts.stream === 'data' ? opts.config.streams.data.handover : opts.config.streams.logs?.handover;
}

function streamConfig(config: SourceConfig, stream: StreamName): { handover: string } {
  if (stream === 'data') return config.streams.data;
  const logs = config.streams.logs;
  if (logs === undefined) throw new ConfigError('this source has no logs stream configured (streams.logs)');
  return logs;
}

// ---------------------------------------------------------------------------------------------------------
// session: list-head, ack and reject of one pull in one gate process (src/core/gate-session.ts)

/**
 * Serves requests one line at a time on this session's stdin, each answered with a `reply <code> <bytes>`
 * frame holding what the one-shot command prints (or its `baton gate: …` line). Each request goes through
 * the same allow-list, logging and refusal records as a one-shot command. The session ends when the sink
 * closes its side, after a refused or failed request, on a line that breaks the bounds, after
 * {@link MAX_SESSION_REQUESTS} requests, or when none came for {@link SESSION_IDLE_MS}.
 */
async function serveSession(opts: GateOptions): Promise<number> {
  if (opts.stdin === undefined) return answer({ kind: 'refused', reason: 'a session needs stdin' }, opts);
  const reader = new FrameReader(opts.stdin());
  const started = Date.now();
  opts.stdout(`${SESSION_HELLO}\n`);
  for (let n = 0; n < MAX_SESSION_REQUESTS; n++) {
    let line: string | undefined;
    try {
      line = await reader.line(MAX_GATE_REQUEST_BYTES, opts.sessionIdleMs ?? SESSION_IDLE_MS);
    } catch (err) {
      if (err instanceof LineTimeout) return ExitCode.ok;
      return answer({ kind: 'refused', reason: `session: ${oneLine(err)}` }, opts);
    }
    if (line === undefined) return ExitCode.ok;
    const out: Buffer[] = [];
    let said = '';
    const cmd: GateOptions = {
      ...opts,
      original: Buffer.from(line, 'latin1').toString('utf8'),
      now: new Date(opts.now.getTime() + (Date.now() - started)),
      stdout: (data) => out.push(Buffer.from(data)),
      stderr: (data) => {
        opts.stderr(data);
        const text = Buffer.from(data).toString('utf8');
        for (const l of text.split('\n')) if (l.startsWith('baton gate:')) said = l;
      },
      challenge: {
        write: opts.stdout,
        readLine: (timeoutMs) => reader.line(MAX_ACK_LINE_BYTES, timeoutMs),
      },
    };
    const code = await answer(parseSessionRequest(line), cmd);
    const reply =
      code === ExitCode.ok ? Buffer.concat(out) : Buffer.from(`${said || 'baton gate: failed'}\n`);
    opts.stdout(formatReplyHeader(code, reply.length));
    opts.stdout(reply);
    if (code !== ExitCode.ok) return code;
  }
  return ExitCode.ok;
}

// ---------------------------------------------------------------------------------------------------------
// rsync: the system rsync as a read-only sender of one generation, argv rebuilt from the allow-listed request
// (src/core/gate-rules.ts). No rrsync: its checks differ between versions (3.2.7 lets --copy-unsafe-links
// through), and the allow-list makes them unnecessary.

/** The rsync binary: the first executable file named rsync among PATH's absolute entries and {@link RSYNC_FALLBACKS}. */
export function findRsync(env: NodeJS.ProcessEnv): string | undefined {
  const fromPath = (env.PATH ?? '')
    .split(':')
    .filter((d) => isAbsolute(d))
    .map((d) => join(d, 'rsync'));
  for (const candidate of [...fromPath, ...RSYNC_FALLBACKS]) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * Opens `<handover>/<id>` as a directory without following a symlink (O_NOFOLLOW on the last component;
 * the handover itself is the operator's configured path). The open directory, not its name, becomes the
 * rsync server's working directory, so a rename or symlink swap after this check changes nothing.
 */
async function openGeneration(handover: string, id: string): Promise<FileHandle> {
  const dir = join(handover, id);
  try {
    return await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new GateRefusal(`generation ${id} is not in the handover`);
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw new GateRefusal(`generation ${id} in the handover is not a directory (a symlink?)`);
    }
    throw new JobError(`cannot open ${dir}: ${code ?? String(err)}`, { step: 'gate', cause: err });
  }
}

async function serveRsync(
  handover: string,
  pull: RsyncPullRequest,
  env: NodeJS.ProcessEnv,
  stderr: Writer,
): Promise<number> {
  const rsync = findRsync(env);
  if (rsync === undefined) {
    throw new JobError(`rsync is not installed (looked in PATH, ${RSYNC_FALLBACKS.join(', ')})`, {
      step: 'gate',
    });
  }
  const generation = await openGeneration(handover, pull.generation);
  // The child gets the open directory as fd 3 and starts in it (libuv sets up the fds before chdir), and
  // is asked for "./": the same file list as "<id>/" from the handover, with no name left to swap.
  const argv = rsyncServerArgv(pull).slice(0, -1).concat('./');
  // A clean environment: nothing the caller's session set reaches rsync.
  const childEnv: NodeJS.ProcessEnv = {
    PATH: env.PATH ?? '/usr/bin:/bin',
    LC_ALL: 'C',
    ...(env.HOME === undefined ? {} : { HOME: env.HOME }),
  };
  try {
    const r = await runAttached([rsync, ...argv], {
      fds: [generation.fd],
      cwd: '/proc/self/fd/3',
      env: childEnv,
      // ssh hanging up or a kill of the gate must reach rsync too, not leave it orphaned.
      forwardSignals: ['SIGTERM', 'SIGHUP', 'SIGINT'],
      onSpawn: (child) => {
        sessionChildren.add(child);
        return () => sessionChildren.delete(child);
      },
    });
    if (r.error !== undefined) {
      stderr(`baton gate: cannot run ${rsync}: ${r.error}\n`);
      return ExitCode.failed;
    }
    return r.code ?? 128 + (r.signal ? osConstants.signals[r.signal] : 0);
  } finally {
    await generation.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// list

/**
 * The complete generations in `dir`, oldest first: directories (not symlinks) named by a valid id that
 * hold a regular-file `manifest` (not a symlink). Work dirs (dot-names) and partial generations are left out.
 */
export async function listCompleteGenerations(dir: string): Promise<HandoverGeneration[]> {
  const ids = await generationDirs(dir);
  const out: HandoverGeneration[] = [];
  for (const id of ids) {
    const g = await readCompleteGeneration(dir, id);
    if (g !== undefined) out.push(g);
  }
  return out;
}

/** The names of the directories (not symlinks) in `dir` that are valid generation ids, sorted. */
async function generationDirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
    throw new JobError(`cannot read ${dir}: ${errnoCode(err) ?? String(err)}`, { cause: err });
  });
  return entries
    .filter((e) => e.isDirectory() && isGenerationId(e.name))
    .map((e) => e.name)
    .sort();
}

/**
 * The ids of the complete generations in `dir` (as {@link listCompleteGenerations}: a regular-file
 * `manifest`, not a symlink), without hashing their manifests: what retention needs. An ack used to
 * hash every manifest of the source store (50 generations of 20,000 files: 125 MiB read per ack).
 */
export async function listCompleteIds(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const id of await generationDirs(dir)) {
    const st = await lstat(join(dir, id, MANIFEST)).catch((err: unknown) => {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw new JobError(`cannot inspect ${join(dir, id)}: ${code ?? String(err)}`, {
        step: 'gate',
        cause: err,
      });
    });
    if (st?.isFile()) out.push(id);
  }
  return out;
}

/** One complete generation `dir/id` (see {@link listCompleteGenerations}), or undefined. */
export async function readCompleteGeneration(
  dir: string,
  id: string,
): Promise<HandoverGeneration | undefined> {
  if (!isGenerationId(id)) return undefined;
  const genDir = join(dir, id);
  try {
    if (!(await lstat(genDir)).isDirectory()) return undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new JobError(`cannot inspect ${genDir}: ${errnoCode(err) ?? String(err)}`, {
      step: 'gate',
      cause: err,
    });
  }
  const hashed = await hashRegularFile(join(genDir, MANIFEST));
  return hashed === undefined
    ? undefined
    : { id, manifestSha256: hashed.sha256, manifestBytes: hashed.bytes };
}

/** sha256 (hex) and size of a regular file; undefined when missing, a symlink or not a regular file. */
export async function hashRegularFile(path: string): Promise<{ sha256: string; bytes: number } | undefined> {
  let fh;
  try {
    // O_NOFOLLOW: a symlinked manifest is no manifest. O_NONBLOCK: a FIFO must not hang the gate.
    fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENXIO') return undefined;
    throw new JobError(`cannot open ${path}: ${code ?? String(err)}`, { cause: err });
  }
  try {
    if (!(await fh.stat()).isFile()) return undefined;
    const hash = createHash('sha256');
    const buf = Buffer.alloc(1024 * 1024);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { sha256: hash.digest('hex'), bytes };
  } finally {
    await fh.close();
  }
}

/**
 * The manifest of `g` for `list-head`, read whole: only when it is a regular file (not followed through
 * a symlink) of at most {@link MAX_INLINE_MANIFEST_BYTES} and still the listed bytes (size and sha256);
 * otherwise undefined, and the sink fetches it with rsync.
 */
async function readInlineManifest(handover: string, g: HandoverGeneration): Promise<Buffer | undefined> {
  if (g.manifestBytes > MAX_INLINE_MANIFEST_BYTES) return undefined;
  let fh;
  try {
    fh = await open(
      join(handover, g.id, MANIFEST),
      fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK,
    );
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== g.manifestBytes) return undefined;
    const buf = Buffer.alloc(g.manifestBytes);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) return undefined;
      got += bytesRead;
    }
    return createHash('sha256').update(buf).digest('hex') === g.manifestSha256 ? buf : undefined;
  } finally {
    await fh.close();
  }
}

async function listHandover(
  source: string,
  stream: StreamName,
  handover: string,
  now: Date,
): Promise<GateListing> {
  const generations = (await listCompleteGenerations(handover)).map((g) => {
    const created = parseGenerationId(g.id)?.getTime() ?? now.getTime();
    return { ...g, ageSeconds: Math.floor((now.getTime() - created) / 1000) };
  });
  return { source, stream, generations };
}

// ---------------------------------------------------------------------------------------------------------
// ack

/** Challenges the sink for the generation in `genDir`; throws a GateRefusal unless it proves receipt. */
type ProveReceipt = (genDir: string, manifestBytes: number) => Promise<void>;

async function ackData(
  data: SourceConfig['streams']['data'],
  id: string,
  manifestSha256: string,
  prove: ProveReceipt,
): Promise<GateAck> {
  const pending = await readCompleteGeneration(data.handover, id);
  if (pending === undefined) {
    // A repeated ack after a crash (or a lost answer): the move happened already.
    const stored = await readCompleteGeneration(data.store, id);
    if (stored === undefined) throw new GateRefusal(`generation ${id} is not pending in the data handover`);
    if (stored.manifestSha256 !== manifestSha256) {
      throw new GateRefusal(`manifest sha256 of ${id} does not match (it is already in the source store)`, {
        kind: 'ack-refused',
        id,
      });
    }
    await prove(join(data.store, id), stored.manifestBytes);
    return { acked: id, action: 'moved', pruned: await pruneStore(data.store, data, id) };
  }
  if (pending.manifestSha256 !== manifestSha256) {
    throw new GateRefusal(`manifest sha256 of ${id} does not match; nothing moved`, {
      kind: 'ack-refused',
      id,
    });
  }
  await prove(join(data.handover, id), pending.manifestBytes);

  const target = join(data.store, id);
  if (await existsOrFail(target, 'ack')) {
    throw new JobError(`${target} exists already but ${id} is still in the handover; nothing moved`, {
      step: 'ack',
    });
  }
  await mkdir(data.store, { recursive: true }).catch((err: unknown) => {
    throw new JobError(`cannot create the source store ${data.store}: ${errnoCode(err) ?? String(err)}`, {
      step: 'ack',
      cause: err,
    });
  });
  try {
    await rename(join(data.handover, id), target);
  } catch (err) {
    const code = errnoCode(err);
    throw new JobError(
      code === 'EXDEV'
        ? `the data handover ${data.handover} and the source store ${data.store} must be on the same filesystem`
        : `cannot move ${id} into the source store: ${code ?? String(err)}`,
      { step: 'ack', cause: err },
    );
  }
  await fsyncDirOrFail(data.store, 'ack');
  await fsyncDirOrFail(data.handover, 'ack');
  return { acked: id, action: 'moved', pruned: await pruneStore(data.store, data, id) };
}

async function ackLogs(
  handover: string,
  id: string,
  manifestSha256: string,
  prove: ProveReceipt,
): Promise<GateAck> {
  const pending = await readCompleteGeneration(handover, id);
  const deleting = join(handover, deletingName(id));
  if (pending === undefined) {
    // An ack accepted before the crash that interrupted its delete: finish it.
    if (await existsOrFail(deleting, 'ack')) {
      await removeTreeOrFail(deleting, 'ack');
      return { acked: id, action: 'deleted', pruned: [] };
    }
    throw new GateRefusal(`generation ${id} is not pending in the logs handover (acked already?)`);
  }
  if (pending.manifestSha256 !== manifestSha256) {
    throw new GateRefusal(`manifest sha256 of ${id} does not match; nothing deleted`, {
      kind: 'ack-refused',
      id,
    });
  }
  await prove(join(handover, id), pending.manifestBytes);
  await renameOrFail(join(handover, id), deleting, 'ack');
  await fsyncDirOrFail(handover, 'ack');
  await removeTreeOrFail(deleting, 'ack');
  return { acked: id, action: 'deleted', pruned: [] };
}

/**
 * Prunes the source store to `generations` (+ the calendar rules `keepDaily` …, in this host's local
 * time zone; all count as verified: they were acked), never the one just acked. Each victim is first renamed to `.<id>.deleting`, so a crash never leaves a half-deleted
 * generation under its real name; leftovers of such a crash are removed first.
 */
async function pruneStore(
  store: string,
  retention: SourceConfig['streams']['data'],
  justAcked: string,
): Promise<string[]> {
  const names = await readdir(store).catch((err: unknown) => {
    throw new JobError(`cannot read ${store}: ${errnoCode(err) ?? String(err)}`, {
      step: 'prune',
      cause: err,
    });
  });
  for (const name of names) {
    const leftover = parseWorkName(name);
    if (leftover?.kind === 'deleting' && isGenerationId(leftover.id))
      await removeTreeOrFail(join(store, name), 'ack');
  }
  const plan = planRetention(
    (await listCompleteIds(store)).map((id) => ({ id, verified: true })),
    { keep: retention.generations, ...calendarPolicy(retention), protect: [justAcked] },
  );
  if (plan.remove.length === 0) return [];
  for (const { id } of plan.remove) await renameOrFail(join(store, id), join(store, deletingName(id)), 'ack');
  await fsyncDirOrFail(store, 'ack');
  for (const { id } of plan.remove) await removeTreeOrFail(join(store, deletingName(id)), 'ack');
  return plan.remove.map((r) => r.id);
}

/**
 * The ack challenge (src/core/ack-challenge.ts): random byte ranges of random files of the generation in
 * `genDir`, a nonce, and the sink's hashes of them read on this session's stdin, bounded in lines, length
 * and time. Anything but the right answer is a refusal, recorded as a gate event.
 */
async function proveReceipt(
  opts: GateOptions,
  id: string,
  genDir: string,
  manifestBytes: number,
): Promise<void> {
  const nonce = randomBytes(32).toString('hex');
  const challenge = await sampleChallenge(genDir, manifestBytes, nonce, (max) => randomInt(max));
  let expected: string[];
  try {
    expected = await proveChallenge(genDir, challenge);
  } catch (err) {
    throw new JobError(`cannot read ${id} to challenge the ack: ${oneLine(err)}`, {
      step: 'ack',
      cause: err,
    });
  }
  (opts.challenge?.write ?? opts.stdout)(formatChallenge(challenge));
  const refuse = (why: string) =>
    new GateRefusal(`ack of ${id} refused: ${why}; nothing moved or deleted`, { kind: 'ack-refused', id });
  let next = opts.challenge?.readLine;
  if (next === undefined) {
    if (opts.stdin === undefined) throw refuse('no session to read an answer from');
    const reader = new LineReader(opts.stdin(), MAX_ACK_LINE_BYTES, MAX_ACK_RANGES + 1);
    next = (ms) => reader.next(ms);
  }
  const timeoutMs = opts.answerTimeoutMs ?? ACK_ANSWER_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const lines: string[] = [];
  try {
    const head = await next(timeoutMs);
    if (head === undefined) throw refuse('no answer to the challenge (the sink proved no receipt)');
    lines.push(head);
    const count = parseAnswerHeader(head);
    if (!count.ok) throw refuse(`bad answer: ${count.error}`);
    for (let i = 0; i < Math.min(count.value, expected.length); i++) {
      const line = await next(Math.max(1, deadline - Date.now()));
      if (line === undefined) throw refuse('the answer ended early');
      lines.push(line);
    }
  } catch (err) {
    if (err instanceof GateRefusal) throw err;
    throw refuse(`bad or late answer: ${oneLine(err)}`);
  }
  const checked = checkAnswer(expected, lines);
  if (!checked.ok) throw refuse(`wrong proof of receipt: ${checked.error}`);
}

// ---------------------------------------------------------------------------------------------------------
// reject: the sink quarantined a generation; it leaves the pending set and is kept for inspection

/**
 * Moves the pending generation `id` (its manifest hash must match) to `<handover>/.rejected/<id>`. Kept at
 * most {@link MAX_REJECTED}: beyond that the reject is refused and nothing moves (the operator empties
 * `.rejected/`; nothing is ever deleted here). A repeated reject of a generation already there is ok.
 */
async function rejectGeneration(handover: string, id: string, manifestSha256: string): Promise<GateReject> {
  const rejectedDir = join(handover, REJECTED_DIR);
  const keptIn = join(rejectedDir, id);
  const pending = await readCompleteGeneration(handover, id);
  if (pending === undefined) {
    const kept = (await lstatOrUndefined(rejectedDir))?.isDirectory()
      ? await readCompleteGeneration(rejectedDir, id)
      : undefined;
    if (kept !== undefined && kept.manifestSha256 === manifestSha256) return { rejected: id, keptIn };
    throw new GateRefusal(`generation ${id} is not pending in the handover; nothing rejected`);
  }
  if (pending.manifestSha256 !== manifestSha256) {
    throw new GateRefusal(`manifest sha256 of ${id} does not match; nothing rejected`, {
      kind: 'reject-refused',
      id,
    });
  }
  await mkdir(rejectedDir, { mode: 0o750 }).catch((err: unknown) => {
    if (errnoCode(err) !== 'EEXIST')
      throw new JobError(`cannot create ${rejectedDir}: ${errnoCode(err) ?? String(err)}`, {
        step: 'reject',
        cause: err,
      });
  });
  if (!(await lstatOrUndefined(rejectedDir))?.isDirectory()) {
    throw new GateRefusal(`${rejectedDir} is not a directory; nothing rejected`, {
      kind: 'reject-refused',
      id,
    });
  }
  const held = (await readdir(rejectedDir)).filter((n) => !n.startsWith('.')).length;
  if (held >= MAX_REJECTED) {
    throw new GateRefusal(
      `${rejectedDir} already holds ${held} rejected generations (at most ${MAX_REJECTED}): ${id} stays pending; inspect and delete them`,
      { kind: 'reject-refused', id },
    );
  }
  if (await existsOrFail(keptIn, 'ack')) {
    throw new GateRefusal(`${keptIn} exists already; ${id} stays pending`, { kind: 'reject-refused', id });
  }
  await renameOrFail(join(handover, id), keptIn, 'ack');
  await fsyncDirOrFail(rejectedDir, 'ack');
  await fsyncDirOrFail(handover, 'ack');
  return { rejected: id, keptIn };
}

async function lstatOrUndefined(path: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// gate events: refusals and rejects, for the source's next backup (root) to mail and status to show

async function recordEvent(
  opts: GateOptions,
  handover: string,
  e: { kind: GateEvent['kind']; id: string; reason: string },
): Promise<void> {
  const event: GateEvent = {
    v: 1,
    time: opts.now.toISOString(),
    kind: e.kind,
    source: opts.config.name.slice(0, 64),
    stream: opts.stream,
    id: e.id,
    client: (opts.env.SSH_CONNECTION?.split(' ')[0] ?? '').slice(0, 64) || null,
    reason: eventText(e.reason),
  };
  if (e.kind === 'rejected') {
    await (opts.syslog ?? ((m: string) => syslogWarning(m, opts.env)))(
      `rejected ${opts.config.name}/${opts.stream}: ${event.reason}`,
    ).catch(() => undefined);
  }
  let previous: Date | undefined;
  try {
    previous = await recordGateEvent(handover, event, opts.now);
  } catch (err) {
    opts.stderr(`baton gate: could not record the gate event: ${oneLine(err)}\n`);
  }
  // Mail at once when the gate can (the stream user may reach the SMTP server), rate-limited: a key
  // holder must not turn refusals into a mail flood. The next source backup mails every event anyway.
  const mail = opts.config.alerts.mail;
  if (mail === undefined) return;
  if (previous !== undefined && opts.now.getTime() - previous.getTime() < DIRECT_MAIL_INTERVAL_MS) return;
  try {
    // loaded only here: the SMTP client is most of what a gate start would otherwise compile
    const { sendMail } = await import('../adapters/mail.js');
    await sendMail(
      mail,
      {
        subject: `[baton] ${opts.config.name}: gate ${e.kind} ${e.id} (${opts.stream})`,
        text:
          `The gate of ${opts.config.name} (${opts.stream}) recorded:\n\n${describeGateEvent(event)}\n\n` +
          `Recorded in ${join(handover, GATE_EVENTS_DIR)}; the next \`baton source backup\` reports it too.\n`,
      },
      opts.env,
      { timeoutMs: 15_000 },
    );
  } catch {
    /* best effort: the event file is the record */
  }
}

/**
 * After an ack: the handover count in the textfile copy of `baton_handover_<stream>.prom` (a file
 * `source backup` handed to the stream user) drops at once. Best effort, silent: metrics never
 * change an ack's answer.
 */
async function refreshHandoverMetrics(config: SourceConfig, stream: StreamName): Promise<void> {
  const file = handoverMetricsTextfile(config, stream);
  if (file === undefined) return;
  try {
    await rewriteOwnMetricsFile(file, await handoverMetricsText(config, stream));
  } catch {
    /* the next backup writes it again */
  }
}

// ---------------------------------------------------------------------------------------------------------
// the gate ends with its ssh session

/**
 * Makes this gate process end with its ssh session (issue 10, hole 11): sshd does not signal a forced
 * command when the client goes away without a pty, so a hung gate would run on. The gate exits (and kills
 * what it started) on SIGHUP, or once its parent (the sshd session) is gone: a changed parent pid.
 * SIGKILL on itself, because a read blocked in the thread pool (a hung mount) holds a normal exit.
 */
export function watchSession(pollMs = 1000): void {
  // sshd may run the gate through `sh -c` without exec: watch the parent and the grandparent
  const chain: Array<[number, number | undefined]> = [[process.pid, process.ppid]];
  const grand = parentOf(process.ppid);
  if (process.ppid > 1 && grand !== undefined) chain.push([process.ppid, grand]);
  const end = (): void => {
    for (const child of sessionChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    process.kill(process.pid, 'SIGKILL');
  };
  process.on('SIGHUP', end);
  const timer = setInterval(() => {
    if (chain.some(([pid, parent]) => parentOf(pid) !== parent)) end();
  }, pollMs);
  timer.unref();
}

/** The parent pid of `pid` from /proc (undefined when it is gone or /proc cannot tell). */
function parentOf(pid: number): number | undefined {
  if (pid === process.pid) return process.ppid;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; the last ")" ends it
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** What the gate started (rrsync): killed when the session ends. */
const sessionChildren = new Set<{ kill: (sig: NodeJS.Signals) => boolean }>();

// ---------------------------------------------------------------------------------------------------------
// refusal log

/** How much of a refused command reaches the logs (it is the caller's text: bounded and JSON-escaped). */
const LOGGED_COMMAND_CHARS = 256;

function logRecord(opts: GateOptions, level: string, msg: string, extra: Record<string, unknown>) {
  const command =
    opts.original === undefined
      ? null
      : opts.original.length > LOGGED_COMMAND_CHARS
        ? `${opts.original.slice(0, LOGGED_COMMAND_CHARS)}…`
        : opts.original;
  return {
    time: opts.now.toISOString(),
    level,
    step: 'gate',
    msg,
    source: opts.config.name,
    stream: opts.stream,
    client: opts.env.SSH_CONNECTION?.split(' ')[0] ?? null,
    command,
    ...extra,
  };
}

async function logRefusal(opts: GateOptions, reason: string): Promise<void> {
  const record = logRecord(opts, 'warn', 'gate refused', { reason });
  opts.stderr(`${JSON.stringify(record)}\n`);
  const line =
    `refused ${opts.config.name}/${opts.stream} from ${record.client ?? 'unknown'}: ${reason}; ` +
    `command=${JSON.stringify(record.command)}`;
  try {
    await (opts.syslog ?? ((m: string) => syslogWarning(m, opts.env)))(line);
  } catch {
    /* best effort: the stderr line above is the record */
  }
}

async function syslogWarning(message: string, env: NodeJS.ProcessEnv): Promise<void> {
  // argv, no shell: the message carries remote text.
  await runProcess(['logger', '-t', 'baton-gate', '-p', 'auth.warning', '--', message], {
    timeoutMs: 5000,
    killGraceMs: 1000,
    env: { PATH: env.PATH ?? '/usr/bin:/bin' },
  });
}

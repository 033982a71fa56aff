import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { runProcess } from '../adapters/run.js';
import type { SourceConfig, StreamName } from '../config/schema.js';
import { isGenerationId, parseGenerationId } from '../core/generation-id.js';
import { parseGateRequest, rsyncServerArgv, type RsyncPullRequest } from '../core/gate-rules.js';
import { planRetention } from '../core/retention.js';
import { BatonError, ConfigError, errnoCode, ExitCode, JobError, oneLine } from '../errors.js';

/**
 * `baton gate data|logs`: the forced command of a stream user's ssh key, the only thing the sink may run
 * on the source (DESIGN.md §5). It runs as that stream user, never as root, and touches only the stream's
 * handover and (for data) the source store.
 */

export type Writer = (text: string) => void;

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
}

/** A complete generation: a directory named by a valid id (not a symlink) holding a regular `manifest`. */
export interface HandoverGeneration {
  id: string;
  manifestSha256: string;
  manifestBytes: number;
}

export interface GateListing {
  source: string;
  stream: StreamName;
  /** Oldest first. */
  generations: Array<HandoverGeneration & { ageSeconds: number }>;
}

export interface GateAck {
  acked: string;
  action: 'moved' | 'deleted';
  /** Source store generations pruned by this ack (data only), newest first. */
  pruned: string[];
}

/** Where rsync is looked for after PATH's absolute entries. */
export const RSYNC_FALLBACKS = ['/usr/bin/rsync', '/bin/rsync'] as const;

/** A refusal: logged, one line to the caller, exit 1. */
class GateRefusal extends Error {}

/**
 * Answers one request of the sink and returns the exit code. Never throws a BatonError: refusals and
 * failures end as `baton gate: …` on stderr. For a pull it runs `rsync --server --sender` with an argv
 * rebuilt from the parsed request on this process's own stdin/stdout (the rsync protocol), so nothing
 * else may be written to stdout then.
 */
export async function runGate(opts: GateOptions): Promise<number> {
  const request = parseGateRequest(opts.original);
  try {
    const stream = streamConfig(opts.config, opts.stream);
    switch (request.kind) {
      case 'refused':
        throw new GateRefusal(request.reason);
      case 'rsync':
        return await serveRsync(stream.handover, request.pull, opts.env, opts.stderr);
      case 'list': {
        opts.stdout(
          `${JSON.stringify(await listHandover(opts.config.name, opts.stream, stream.handover, opts.now))}\n`,
        );
        return ExitCode.ok;
      }
      case 'ack': {
        const result =
          opts.stream === 'data'
            ? await ackData(opts.config.streams.data, request.id, request.manifestSha256)
            : await ackLogs(stream.handover, request.id, request.manifestSha256);
        opts.stdout(`${JSON.stringify(result)}\n`);
        return ExitCode.ok;
      }
    }
  } catch (err) {
    if (err instanceof GateRefusal) {
      await logRefusal(opts, err.message);
      opts.stderr(`baton gate: refused: ${err.message}\n`);
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

function streamConfig(config: SourceConfig, stream: StreamName): { handover: string } {
  if (stream === 'data') return config.streams.data;
  const logs = config.streams.logs;
  if (logs === undefined) throw new ConfigError('this source has no logs stream configured (streams.logs)');
  return logs;
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
    return await new Promise((resolve) => {
      const child = spawn(rsync, argv, {
        stdio: ['inherit', 'inherit', 'inherit', generation.fd],
        cwd: '/proc/self/fd/3',
        env: childEnv,
      });
      // ssh hanging up or a kill of the gate must reach rsync too, not leave it orphaned.
      const forwarded = ['SIGTERM', 'SIGHUP', 'SIGINT'] as const;
      const forward = (sig: NodeJS.Signals): void => {
        child.kill(sig);
      };
      for (const sig of forwarded) process.on(sig, forward);
      const done = (code: number): void => {
        for (const sig of forwarded) process.off(sig, forward);
        resolve(code);
      };
      child.on('error', (e) => {
        stderr(`baton gate: cannot run ${rsync}: ${e.message}\n`);
        done(ExitCode.failed);
      });
      child.on('exit', (code, signal) => {
        done(code ?? 128 + (signal ? osConstants.signals[signal] : 0));
      });
    });
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
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
    throw new JobError(`cannot read ${dir}: ${errnoCode(err) ?? String(err)}`, { cause: err });
  });
  const ids = entries
    .filter((e) => e.isDirectory() && isGenerationId(e.name))
    .map((e) => e.name)
    .sort();
  const out: HandoverGeneration[] = [];
  for (const id of ids) {
    const g = await readCompleteGeneration(dir, id);
    if (g !== undefined) out.push(g);
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
  const hashed = await hashRegularFile(join(genDir, 'manifest'));
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

async function ackData(
  data: SourceConfig['streams']['data'],
  id: string,
  manifestSha256: string,
): Promise<GateAck> {
  const pending = await readCompleteGeneration(data.handover, id);
  if (pending === undefined) {
    // A repeated ack after a crash (or a lost answer): the move happened already.
    const stored = await readCompleteGeneration(data.store, id);
    if (stored === undefined) throw new GateRefusal(`generation ${id} is not pending in the data handover`);
    if (stored.manifestSha256 !== manifestSha256) {
      throw new GateRefusal(`manifest sha256 of ${id} does not match (it is already in the source store)`);
    }
    return { acked: id, action: 'moved', pruned: await pruneStore(data.store, data.generations, id) };
  }
  if (pending.manifestSha256 !== manifestSha256) {
    throw new GateRefusal(`manifest sha256 of ${id} does not match; nothing moved`);
  }

  const target = join(data.store, id);
  if (await exists(target)) {
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
  await fsyncDir(data.store);
  await fsyncDir(data.handover);
  return { acked: id, action: 'moved', pruned: await pruneStore(data.store, data.generations, id) };
}

async function ackLogs(handover: string, id: string, manifestSha256: string): Promise<GateAck> {
  const pending = await readCompleteGeneration(handover, id);
  const deleting = join(handover, deletingName(id));
  if (pending === undefined) {
    // An ack accepted before the crash that interrupted its delete: finish it.
    if (await exists(deleting)) {
      await removeTree(deleting);
      return { acked: id, action: 'deleted', pruned: [] };
    }
    throw new GateRefusal(`generation ${id} is not pending in the logs handover (acked already?)`);
  }
  if (pending.manifestSha256 !== manifestSha256) {
    throw new GateRefusal(`manifest sha256 of ${id} does not match; nothing deleted`);
  }
  await renameOrFail(join(handover, id), deleting);
  await fsyncDir(handover);
  await removeTree(deleting);
  return { acked: id, action: 'deleted', pruned: [] };
}

/**
 * Prunes the source store to `keep` generations (all count as verified: they were acked), never the one
 * just acked. Each victim is first renamed to `.<id>.deleting`, so a crash never leaves a half-deleted
 * generation under its real name; leftovers of such a crash are removed first.
 */
async function pruneStore(store: string, keep: number, justAcked: string): Promise<string[]> {
  const names = await readdir(store).catch((err: unknown) => {
    throw new JobError(`cannot read ${store}: ${errnoCode(err) ?? String(err)}`, {
      step: 'prune',
      cause: err,
    });
  });
  for (const name of names) {
    const leftover = /^\.(.+)\.deleting$/.exec(name)?.[1];
    if (leftover !== undefined && isGenerationId(leftover)) await removeTree(join(store, name));
  }
  const generations = await listCompleteGenerations(store);
  const plan = planRetention(
    generations.map((g) => ({ id: g.id, verified: true })),
    { keep, protect: [justAcked] },
  );
  if (plan.remove.length === 0) return [];
  for (const { id } of plan.remove) await renameOrFail(join(store, id), join(store, deletingName(id)));
  await fsyncDir(store);
  for (const { id } of plan.remove) await removeTree(join(store, deletingName(id)));
  return plan.remove.map((r) => r.id);
}

function deletingName(id: string): string {
  return `.${id}.deleting`;
}

// ---------------------------------------------------------------------------------------------------------
// fs helpers

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw new JobError(`cannot inspect ${path}: ${errnoCode(err) ?? String(err)}`, {
      step: 'ack',
      cause: err,
    });
  }
}

async function renameOrFail(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    throw new JobError(`cannot rename ${from} to ${to}: ${errnoCode(err) ?? String(err)}`, {
      step: 'ack',
      cause: err,
    });
  }
}

async function removeTree(path: string): Promise<void> {
  try {
    // Like rm -rf: symlinks inside are removed, never followed.
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    throw new JobError(`cannot remove ${path}: ${errnoCode(err) ?? String(err)}`, {
      step: 'ack',
      cause: err,
    });
  }
}

/** Makes a rename in `dir` durable. */
async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new JobError(`cannot fsync ${dir}: ${errnoCode(err) ?? String(err)}`, { step: 'ack', cause: err });
  }
}

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

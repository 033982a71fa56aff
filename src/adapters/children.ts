import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync, unlinkSync, readFileSync } from 'node:fs';
import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { z } from 'zod';
import { JobError, errnoCode } from '../errors.js';
import { writeFileAtomicSync } from './fsx.js';
import type { Logger } from './log.js';

/**
 * The process groups a run starts (rsync, ssh, the app's stop command, ...) are recorded in its
 * state, so that a later run can end what a killed run left behind before it touches the mirror,
 * the work dirs or the gate. Every child runs in a process group of its own (runProcess, detached),
 * so killing baton's group does not reach them.
 *
 * A record names the group (pgid = the leader's pid) and the leader's start time from
 * /proc/PID/stat with the boot id, so a reused pid or a record from before a reboot is never
 * mistaken for the group. Records are written synchronously (temp file + rename) right after the
 * spawn, in the same turn of the event loop, and removed when the child ends.
 */

export interface ChildRecord {
  /** the process group id = the leader's pid */
  pgid: number;
  /** the leader's start time, field 22 of /proc/PID/stat (clock ticks since boot) */
  start: string;
  /** /proc/sys/kernel/random/boot_id when it was started */
  boot: string;
  host: string;
  /** argv[0] and the first few arguments, for the log */
  command: string;
  since: string;
  /** the baton process that started it, and its start time */
  by: number;
  byStart: string;
}

const digits = z.string().regex(/^[0-9]{1,20}$/);
const recordSchema = z.object({
  pgid: z
    .number()
    .int()
    .min(2)
    .max(2 ** 31),
  start: digits,
  boot: z.string().max(64),
  host: z.string().max(255),
  command: z.string().max(400),
  since: z.string().max(40),
  by: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31),
  byStart: z.string().max(20),
});
const fileSchema = z.object({ children: z.array(recordSchema).max(10_000) });

/** A record file is small; a larger one is not ours to parse. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

export interface ProcStat {
  pid: number;
  state: string;
  pgrp: number;
  start: string;
}

/** Parses /proc/PID/stat. The command name may hold spaces and parentheses: fields follow the last ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open));
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime)
  const state = f[0];
  const pgrp = Number(f[2]);
  const start = f[19];
  if (!Number.isInteger(pid) || !state || !Number.isInteger(pgrp) || !start || !/^[0-9]+$/.test(start))
    return undefined;
  return { pid, state, pgrp, start };
}

function procStatSync(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

let bootIdCache: string | undefined;
function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

function describeArgv(argv: readonly string[]): string {
  return argv.slice(0, 4).join(' ').slice(0, 400);
}

/** The live children of one run, mirrored into one file. */
export class ChildRecords {
  private readonly live = new Map<number, ChildRecord>();
  private readonly self = procStatSync(process.pid)?.start ?? '';
  private dirMade = false;
  constructor(readonly file: string) {}

  /** Records a just-spawned group leader. Throws when the record cannot be written. */
  add(pid: number, argv: readonly string[]): void {
    const st = procStatSync(pid);
    this.live.set(pid, {
      pgid: pid,
      // the leader may already be gone (then nothing is left to end, but its group may be)
      start: st?.start ?? '0',
      boot: bootId(),
      host: hostname(),
      command: describeArgv(argv),
      since: new Date().toISOString(),
      by: process.pid,
      byStart: this.self,
    });
    this.write();
  }

  /** Forgets a child that ended. Never throws (a stale record is harmless: its group is gone). */
  remove(pid: number): void {
    if (!this.live.delete(pid)) return;
    try {
      this.write();
    } catch {
      /* the next run finds an ended group */
    }
  }

  private write(): void {
    if (this.live.size === 0) {
      try {
        unlinkSync(this.file);
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT') throw e;
      }
      return;
    }
    if (!this.dirMade) {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o755 });
      this.dirMade = true;
    }
    // Not fsynced: the processes it names do not survive a crash of the machine either.
    writeFileAtomicSync(this.file, `${JSON.stringify({ children: [...this.live.values()] })}\n`, 0o600, {
      durable: false,
    });
  }
}

const current = new AsyncLocalStorage<ChildRecords>();

/**
 * First ends what a killed run recorded in `file` (endLeftoverChildren), then runs `fn` with every
 * child that runProcess starts in it recorded there. The caller holds the run's lock.
 */
export async function withChildRecords<T>(file: string, log: Logger, fn: () => Promise<T>): Promise<T> {
  await endLeftoverChildren(file, log);
  return current.run(new ChildRecords(file), fn);
}

/** The records of the run this code runs for, if any (used by runProcess). */
export function currentChildRecords(): ChildRecords | undefined {
  return current.getStore();
}

/**
 * Records a just-spawned group leader in the records of the run this code runs for (if any), so a
 * later run can end it should this one be killed; returns what forgets it once it ended. When the
 * record cannot be written, the group is killed and the error thrown: no child runs unrecorded.
 */
export function recordChild(pid: number | undefined, argv: readonly string[]): () => void {
  const records = currentChildRecords();
  if (records === undefined || pid === undefined) return () => undefined;
  try {
    records.add(pid, argv);
  } catch (e) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    throw e;
  }
  return () => records.remove(pid);
}

async function readRecords(file: string, log: Logger): Promise<ChildRecord[] | undefined> {
  const fh = await open(file, 'r').catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  });
  if (!fh) return undefined;
  let text: string;
  try {
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    text = bytesRead > MAX_FILE_BYTES ? '' : buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
  let parsed;
  try {
    parsed = fileSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) {
    log.warn({ step: 'children', file }, `ignoring an unreadable record of child processes: ${file}`);
    return [];
  }
  return parsed.data.children;
}

/** Every process on this host, from /proc. */
async function allProcesses(): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    const st = text === undefined ? undefined : parseProcStat(text);
    if (st) out.push(st);
  }
  return out;
}

/**
 * The live (not zombie) members of a recorded group. When the leader still exists it must have
 * the recorded start time (else the pid was reused: not ours). When it is gone, its pgid cannot be
 * handed out again while any member lives, so members started no earlier than it are its group.
 */
export function groupMembers(rec: ChildRecord, procs: readonly ProcStat[]): ProcStat[] {
  const leader = procs.find((p) => p.pid === rec.pgid);
  if (leader && leader.start !== rec.start) return [];
  return procs.filter(
    (p) =>
      p.pgrp === rec.pgid &&
      p.state !== 'Z' &&
      p.state !== 'X' &&
      (leader !== undefined || BigInt(p.start) >= BigInt(rec.start)),
  );
}

/** Whether a record may name a group of a run that is over (same host, same boot, owner gone). */
function isLeftover(rec: ChildRecord, procs: readonly ProcStat[]): boolean {
  if (rec.host !== hostname() || rec.boot !== bootId()) return false;
  const owner = procs.find((p) => p.pid === rec.by);
  return !(owner !== undefined && owner.start === rec.byStart && owner.state !== 'Z');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface EndedGroup {
  pgid: number;
  command: string;
  /** how many of its processes were alive */
  processes: number;
  /** SIGKILL was needed after the grace */
  killed: boolean;
}

/**
 * Ends what a killed run left running: for each recorded group that is still the same group,
 * SIGTERM, then SIGKILL after `graceMs`, then waits until none of its processes is left. Removes
 * the record file. Throws (one line) when a group does not end: the caller must not go on to
 * touch what it may still be writing. The caller holds the run's lock.
 */
export async function endLeftoverChildren(
  file: string,
  log: Logger,
  opts: { graceMs?: number; killWaitMs?: number } = {},
): Promise<EndedGroup[]> {
  const records = await readRecords(file, log);
  if (records === undefined) return [];
  const graceMs = opts.graceMs ?? 5000;
  const killWaitMs = opts.killWaitMs ?? 10_000;
  let procs = await allProcesses();
  const leftovers = records.filter((r) => isLeftover(r, procs));
  const groups = leftovers
    .map((rec) => ({ rec, members: groupMembers(rec, procs), killed: false }))
    .filter((g) => g.members.length > 0);
  const ended: EndedGroup[] = groups.map((g) => ({
    pgid: g.rec.pgid,
    command: g.rec.command,
    processes: g.members.length,
    killed: false,
  }));
  const signal = (sig: NodeJS.Signals, pgid: number) => {
    try {
      process.kill(-pgid, sig);
    } catch (e) {
      if (errnoCode(e) !== 'ESRCH') throw e;
    }
  };
  for (const g of groups) {
    log.warn(
      { step: 'children', pgid: g.rec.pgid, command: g.rec.command, since: g.rec.since },
      `ending processes a killed run left running: ${g.rec.command} (process group ${g.rec.pgid}, ${g.members.length} process(es))`,
    );
    signal('SIGTERM', g.rec.pgid);
  }
  const waitGone = async (ms: number) => {
    const until = Date.now() + ms;
    let left = groups;
    for (;;) {
      procs = await allProcesses();
      left = left.filter((g) => groupMembers(g.rec, procs).length > 0);
      if (left.length === 0 || Date.now() >= until) return left;
      await sleep(50);
    }
  };
  let left = await waitGone(graceMs);
  for (const g of left) {
    signal('SIGKILL', g.rec.pgid);
    const e = ended.find((x) => x.pgid === g.rec.pgid);
    if (e) e.killed = true;
  }
  if (left.length > 0) left = await waitGone(killWaitMs);
  if (left.length > 0) {
    throw new JobError(
      `processes of a killed run do not end (${left.map((g) => `${g.rec.command}: process group ${g.rec.pgid}`).join('; ')}); not touching what they may still write — end them by hand (kill -KILL -- -PGID) and run again`,
      { step: 'children' },
    );
  }
  // records of a live run (this one, or another host's) stay
  if (leftovers.length === records.length)
    await unlink(file).catch((e: unknown) => {
      if (errnoCode(e) !== 'ENOENT') throw e;
    });
  return ended;
}

import { readFileSync, unlinkSync } from 'node:fs';
import { open, readFile, unlink, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { errnoCode, LockedError } from '../errors.js';
import { mkdirp } from './fsx.js';

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  /** the kernel's start time of the process (field 22 of /proc/PID/stat), against pid reuse */
  procStart: string | undefined;
  command: string;
}

async function procStartTime(pid: number): Promise<string | undefined> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    // the command name may contain spaces and parentheses: fields start after the last ')'
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

async function isAlive(owner: LockOwner): Promise<boolean> {
  if (owner.host !== hostname()) return true; // cannot tell: treat as held
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
  const now = await procStartTime(owner.pid);
  return owner.procStart === undefined || now === undefined || now === owner.procStart;
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string') {
      return {
        pid: o.pid,
        host: o.host,
        startedAt: String(o.startedAt),
        procStart: typeof o.procStart === 'string' ? o.procStart : undefined,
        command: String(o.command),
      };
    }
  } catch {
    /* torn write of a killed run */
  }
  return undefined;
}

/** A live run holds the lock: who, and since when (its own clock at the time it took the lock). */
export class HeldLockError extends LockedError {
  constructor(
    message: string,
    readonly owner: { pid: number; host: string; startedAt: Date | undefined; command: string },
  ) {
    super(message);
  }
}

/** Locks this process holds, for a last-resort release when the process is going down. */
const held = new Set<string>();

/**
 * Removes every lock this process still holds, synchronously: for the crash path (an unexpected
 * error) where the normal `release()` in a `finally` will never run.
 */
export function releaseHeldLocksSync(): void {
  for (const path of held) {
    try {
      const cur = parseOwner(readFileSync(path, 'utf8'));
      if (cur?.pid === process.pid && cur.host === hostname()) unlinkSync(path);
    } catch {
      /* gone already */
    }
    held.delete(path);
  }
}

export interface Lock {
  path: string;
  /** true when a lock left by a dead run was taken over */
  tookOverStale: boolean;
  release(): Promise<void>;
}

/**
 * An exclusive lock file holding pid, host and process start time. A lock whose process is gone
 * (killed run) is stale and taken over at once; a live one makes this throw LockedError (exit 75).
 */
export async function acquireLock(path: string, command: string): Promise<Lock> {
  await mkdirp(path.slice(0, path.lastIndexOf('/')), 0o755);
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    procStart: await procStartTime(process.pid),
    command,
  };
  let tookOverStale = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(JSON.stringify(me));
      await fh.sync();
      await fh.close();
      held.add(path);
      return {
        path,
        tookOverStale,
        release: async () => {
          held.delete(path);
          const cur = parseOwner(await readFile(path, 'utf8').catch(() => ''));
          if (cur?.pid === me.pid && cur.host === me.host) await unlink(path).catch(() => undefined);
        },
      };
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    const owner = parseOwner(text);
    if (owner && (await isAlive(owner))) {
      const since = new Date(owner.startedAt);
      throw new HeldLockError(
        `another run holds ${path} (pid ${owner.pid} on ${owner.host}, since ${owner.startedAt}: ${owner.command})`,
        {
          pid: owner.pid,
          host: owner.host,
          startedAt: Number.isNaN(since.getTime()) ? undefined : since,
          command: owner.command,
        },
      );
    }
    if (!owner) {
      // Unreadable: a torn write by a killed run, unless it is being written right now. "Right now"
      // is within 5 s either way: a file stamped in the future was written before the clock jumped
      // back, and must not block every run until the clock catches up.
      const age =
        Date.now() -
        (await stat(path)
          .then((s) => s.mtimeMs)
          .catch(() => 0));
      if (Math.abs(age) < 5000) throw new LockedError(`another run is taking ${path}`);
    }
    await unlink(path).catch(() => undefined);
    tookOverStale = true;
  }
  throw new LockedError(`could not take ${path}`);
}

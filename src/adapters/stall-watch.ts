import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

/**
 * Bytes read so far by the processes named `comm` in process group `pgid` (Linux /proc), or
 * undefined when /proc cannot tell (no such group, not Linux, hidepid).
 */
export async function groupReadBytes(pgid: number, comm: string): Promise<number | undefined> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return undefined;
  }
  let total: number | undefined;
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0 || stat.slice(stat.indexOf('(') + 1, close) !== comm) continue;
    // after ") ": state ppid pgrp …
    const pgrp = Number(stat.slice(close + 2).split(' ')[2]);
    if (pgrp !== pgid) continue;
    const io = await readFile(`/proc/${name}/io`, 'utf8').catch(() => '');
    const m = /^rchar:\s*(\d+)$/m.exec(io);
    if (m) total = (total ?? 0) + Number(m[1]);
  }
  return total;
}

export interface StallWatch {
  /** aborted when the group read nothing for `quietMs` */
  signal: AbortSignal;
  /** true once the watch fired */
  readonly stalled: boolean;
  /** call with the process group id once the process runs */
  attach(pgid: number): void;
  stop(): void;
}

/**
 * Watches a process group for reads: when its `comm` processes read nothing at all for `quietMs`
 * (measured on the monotonic clock, so a wall-clock jump changes nothing), `signal` aborts.
 * Without /proc the watch never fires.
 */
export function watchForStall(comm: string, quietMs: number, everyMs = 1000): StallWatch {
  const ac = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  let last: number | undefined;
  let lastChange = performance.now();
  let busy = false;
  return {
    signal: ac.signal,
    get stalled() {
      return stalled;
    },
    attach(pgid) {
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        void groupReadBytes(pgid, comm)
          .then((bytes) => {
            const now = performance.now();
            if (bytes === undefined) return;
            if (bytes !== last) {
              last = bytes;
              lastChange = now;
            } else if (now - lastChange >= quietMs && !stalled) {
              stalled = true;
              ac.abort();
            }
          })
          .finally(() => {
            busy = false;
          });
      }, everyMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

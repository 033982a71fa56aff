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
  /** aborted when the watch fired (see `verdict`) */
  signal: AbortSignal;
  /** true once the watch fired because nothing was read for `quietMs` */
  readonly stalled: boolean;
  /** why the watch fired: nothing read for quietMs, more read than maxReadBytes, too little within the window */
  readonly verdict: 'stalled' | 'too-much' | 'too-slow' | undefined;
  /** bytes read by the group when last sampled */
  readonly readBytes: number;
  /** call with the process group id once the process runs */
  attach(pgid: number): void;
  stop(): void;
}

export interface ReadLimits {
  /** nothing at all read for this long → `stalled` */
  quietMs: number;
  /** more than this read in all → `too-much` (a source sending more than it declared) */
  maxReadBytes?: number | undefined;
  /** fewer than `bytes` read within any `windowMs` → `too-slow` (a trickling source) */
  minThroughput?: { bytes: number; windowMs: number } | undefined;
}

/**
 * Watches a process group for reads: when its `comm` processes read nothing at all for `quietMs`,
 * `signal` aborts.
 */
export function watchForStall(comm: string, quietMs: number, everyMs = 1000): StallWatch {
  return watchReads(comm, { quietMs }, everyMs);
}

/**
 * Watches what a process group's `comm` processes read (Linux /proc rchar), measured on the
 * monotonic clock so a wall-clock jump changes nothing, and aborts `signal` when they read nothing
 * for `quietMs`, more than `maxReadBytes` in all, or fewer than `minThroughput.bytes` within any
 * `minThroughput.windowMs`. Without /proc the watch never fires.
 */
export function watchReads(comm: string, limits: ReadLimits, everyMs = 1000): StallWatch {
  const ac = new AbortController();
  let verdict: StallWatch['verdict'];
  let timer: NodeJS.Timeout | undefined;
  let last: number | undefined;
  let lastChange = performance.now();
  let busy = false;
  // samples within the throughput window, oldest first (bytes read only grow while the group lives)
  const samples: Array<{ at: number; bytes: number }> = [];
  let watchedSince: number | undefined;
  const fire = (v: NonNullable<StallWatch['verdict']>) => {
    if (verdict !== undefined) return;
    verdict = v;
    ac.abort();
  };
  return {
    signal: ac.signal,
    get stalled() {
      return verdict === 'stalled';
    },
    get verdict() {
      return verdict;
    },
    get readBytes() {
      return last ?? 0;
    },
    attach(pgid) {
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        void groupReadBytes(pgid, comm)
          .then((bytes) => {
            const now = performance.now();
            if (bytes === undefined) return;
            watchedSince ??= now;
            if (bytes !== last) {
              last = bytes;
              lastChange = now;
            } else if (now - lastChange >= limits.quietMs) {
              fire('stalled');
            }
            if (limits.maxReadBytes !== undefined && bytes > limits.maxReadBytes) fire('too-much');
            const min = limits.minThroughput;
            if (min !== undefined && min.bytes > 0) {
              samples.push({ at: now, bytes });
              while (samples.length > 1 && now - (samples[1]?.at ?? now) >= min.windowMs) samples.shift();
              const first = samples[0];
              if (first && now - watchedSince >= min.windowMs && now - first.at >= min.windowMs) {
                if (bytes - first.bytes < min.bytes) fire('too-slow');
              }
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

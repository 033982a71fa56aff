import { writeSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { endStatusLine, setStatusLine, type StatusLine } from './log.js';

/** A progress display on stderr; a no-op unless stderr is a terminal (cron logs stay clean). */
export interface Progress {
  /** `total` undefined: not known yet (shown as `?`) */
  update(done: number, total: number | undefined): void;
  stop(): void;
}

const NONE: Progress = { update: () => undefined, stop: () => undefined };

export function createProgress(label: string, enabled: boolean): Progress {
  if (!enabled) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {done}/{all} MiB`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 30,
      // drawn again after a log line cleared it, even when its text did not change
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  // log lines go above the bar: the bar's line is cleared first and the bar drawn again below them
  const line: StatusLine = {
    clear: () => writeSync(2, '\r\x1b[2K'),
    redraw: () => bar.render(),
  };
  return {
    update(done, total) {
      const mib = (n: number) => (n / 2 ** 20).toFixed(1);
      // the bar's own scale is never 0 (cli-progress); the text shows the real figures
      const t = Math.max(total ?? 0, done, 1);
      const payload = { done: mib(done), all: total === undefined ? '?' : mib(Math.max(total, done)) };
      if (!started) {
        bar.start(t, total === undefined ? 0 : done, payload);
        started = true;
        setStatusLine(line);
      }
      // an unknown total: an empty bar, not a guessed share
      bar.setTotal(total === undefined ? 1 : t);
      bar.update(total === undefined ? 0 : done, payload);
    },
    stop() {
      if (!started) return;
      endStatusLine(line);
      bar.stop();
    },
  };
}

export interface RsyncProgress {
  bytes: number;
  percent: number;
  /** `to-chk=0/N`: every file of the list checked, rsync is through */
  checked: boolean;
}

/**
 * The last `--info=progress2 --no-h` record in a chunk of rsync output
 * (`\r     50000000 100%  744.57MB/s    0:00:00 (xfr#1, to-chk=0/2)`), or undefined.
 */
export function parseRsyncProgress(chunk: string): RsyncProgress | undefined {
  let last: RsyncProgress | undefined;
  for (const rec of chunk.split(/[\r\n]/)) {
    const m = /^\s*([0-9]+)\s+([0-9]{1,3})%\s/.exec(rec);
    if (m) last = { bytes: Number(m[1]), percent: Number(m[2]), checked: /\bto-chk=0\//.test(rec) };
  }
  return last;
}

/**
 * Bytes done and the total for a progress record. rsync's `bytes` are what it copied so far and its
 * percentage is of the whole file list, unchanged files included: the total is `totalBytes` when the
 * caller knows what is to come (the sink: the manifest's new bytes), else rsync's list total,
 * `bytes × 100 / percent`, known only once a percent is reported (`0 %` gives none, not `0`). Once
 * every file is checked the copy is complete: done is the total (what was copied, when the caller
 * had no figure).
 */
export function rsyncProgressFigures(
  p: RsyncProgress,
  totalBytes?: number,
): { done: number; total: number | undefined } {
  if (totalBytes !== undefined) {
    const total = Math.max(totalBytes, p.bytes);
    return { done: p.checked ? total : p.bytes, total };
  }
  if (p.checked) return { done: p.bytes, total: p.bytes };
  if (p.percent === 0) return { done: p.bytes, total: undefined };
  return { done: p.bytes, total: Math.max(Math.round((p.bytes * 100) / p.percent), p.bytes) };
}

/**
 * rsync options that make it report overall progress, and the stdout handler that feeds a Progress
 * (`totalBytes`: what rsync is to copy, when the caller knows it; see {@link rsyncProgressFigures}).
 */
export function rsyncProgressArgs(
  progress: Progress | undefined,
  totalBytes?: number,
): {
  args: string[];
  onStdout?: (b: Buffer) => void;
} {
  if (!progress) return { args: [] };
  return {
    args: ['--info=progress2', '--no-inc-recursive', '--no-h'],
    onStdout: (b) => {
      const p = parseRsyncProgress(b.toString('latin1'));
      if (!p) return;
      const { done, total } = rsyncProgressFigures(p, totalBytes);
      progress.update(done, total);
    },
  };
}

import { writeSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { endStatusLine, setStatusLine, type StatusLine } from './log.js';

/** A progress display on stderr; a no-op unless stderr is a terminal (cron logs stay clean). */
export interface Progress {
  update(done: number, total: number): void;
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
      const t = Math.max(total, done, 1);
      if (!started) {
        bar.start(t, done, { done: mib(done), all: mib(t) });
        started = true;
        setStatusLine(line);
      }
      bar.setTotal(t);
      bar.update(done, { done: mib(done), all: mib(t) });
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
}

/**
 * The last `--info=progress2 --no-h` record in a chunk of rsync output
 * (`\r     50000000 100%  744.57MB/s    0:00:00 (xfr#1, to-chk=0/2)`), or undefined.
 */
export function parseRsyncProgress(chunk: string): RsyncProgress | undefined {
  let last: RsyncProgress | undefined;
  for (const rec of chunk.split(/[\r\n]/)) {
    const m = /^\s*([0-9]+)\s+([0-9]{1,3})%\s/.exec(rec);
    if (m) last = { bytes: Number(m[1]), percent: Number(m[2]) };
  }
  return last;
}

/** rsync options that make it report overall progress, and the stdout handler that feeds a Progress. */
export function rsyncProgressArgs(progress: Progress | undefined): {
  args: string[];
  onStdout?: (b: Buffer) => void;
} {
  if (!progress) return { args: [] };
  return {
    args: ['--info=progress2', '--no-inc-recursive', '--no-h'],
    onStdout: (b) => {
      const p = parseRsyncProgress(b.toString('latin1'));
      if (!p) return;
      // rsync reports the bytes sent so far and the share of the whole it makes
      const total = p.percent > 0 ? Math.round((p.bytes * 100) / p.percent) : p.bytes;
      progress.update(p.percent >= 100 ? total : p.bytes, total);
    },
  };
}

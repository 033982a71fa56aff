import { pino, type Logger as PinoLogger } from 'pino';
import { Writable } from 'node:stream';
import { writeSync } from 'node:fs';

export type Logger = PinoLogger;
export type LogFormat = 'text' | 'json';

// Keys whose values never reach a log line (SMTP passwords, URLs with credentials).
const REDACT = ['password', 'pass', '*.password', '*.pass', 'auth', '*.auth', 'smtp.auth'];

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** pino JSON line → `2026-11-28T06:19:22.123Z INFO  collect: message key=value`. */
export function formatTextLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, step, ...rest } = rec;
  delete rest.pid;
  delete rest.hostname;
  const lvl = (typeof level === 'number' ? (LEVEL_NAMES[level] ?? String(level)) : 'INFO').padEnd(5);
  const ts = typeof time === 'number' ? new Date(time).toISOString() : '';
  const kv = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  const stepText = typeof step === 'string' ? `${step}: ` : '';
  return `${ts} ${lvl} ${stepText}${typeof msg === 'string' ? msg : ''}${kv ? `  ${kv}` : ''}\n`;
}

// The last lines logged, for failure mails ("what happened just before").
const recent: string[] = [];
const RECENT_MAX = 40;

/** The last log lines of this process, as text, oldest first. */
export function recentLogLines(): string[] {
  return [...recent];
}

/** A synchronous logger to stderr (no worker threads: nothing is lost when the process exits). */
export function createLogger(opts: { format: LogFormat; level?: string; fd?: number }): Logger {
  const fd = opts.fd ?? 2;
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk.toString('utf8');
      for (const l of text.split('\n')) {
        if (l.length === 0) continue;
        recent.push(formatTextLine(l).trimEnd());
        if (recent.length > RECENT_MAX) recent.shift();
      }
      const out =
        opts.format === 'json'
          ? text
          : text
              .split('\n')
              .filter((l) => l.length > 0)
              .map(formatTextLine)
              .join('');
      try {
        writeSync(fd, out);
      } catch {
        /* stderr closed: nothing better to do */
      }
      cb();
    },
  });
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      redact: { paths: REDACT, censor: '[secret]' },
    },
    dest,
  );
}

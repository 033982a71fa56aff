import { pino, stdTimeFunctions, type Logger as PinoLogger } from 'pino';
import { Writable } from 'node:stream';
import { fstatSync, writeSync } from 'node:fs';
import { singleLine } from '../errors.js';

export type Logger = PinoLogger;
export type LogFormat = 'text' | 'json';

// Keys whose values never reach a log line (SMTP passwords, URLs with credentials).
const REDACT = ['password', 'pass', '*.password', '*.pass', 'auth', '*.auth', 'smtp.auth'];

/** sd-daemon(3) priority prefixes, for a stderr that is the journal's stream. */
const JOURNAL_PRIORITY: Record<string, number> = { trace: 7, debug: 7, info: 6, warn: 4, error: 3, fatal: 2 };

/** Control characters (a newline above all) shown escaped: one log line is one line. */
function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) =>
    c === '\n'
      ? '\\n'
      : c === '\r'
        ? '\\r'
        : c === '\t'
          ? '\\t'
          : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/**
 * pino JSON line → `2026-11-28T06:19:22.123Z INFO  collect: message key=value`, one line whatever
 * the message holds; under the journal (`journal`) `<6>INFO  collect: …`, no timestamp (journald
 * stamps each line itself).
 */
export function formatTextLine(line: string, journal = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${escapeControls(line)}\n`;
  }
  const { level, time, msg, step, ...rest } = rec;
  delete rest.pid;
  delete rest.hostname;
  const name = typeof level === 'string' ? level : 'info';
  const lvl = name.toUpperCase().padEnd(5);
  const kv = Object.entries(rest)
    .map(
      ([k, v]) =>
        // eslint-disable-next-line no-control-regex
        `${k}=${typeof v === 'string' && /^[^\s"\\\u0000-\u001f]*$/.test(v) ? v : JSON.stringify(v)}`,
    )
    .join(' ');
  const stepText = typeof step === 'string' ? `${escapeControls(step)}: ` : '';
  const body = `${lvl} ${stepText}${typeof msg === 'string' ? escapeControls(msg) : ''}${kv ? `  ${kv}` : ''}`;
  if (journal) return `<${JOURNAL_PRIORITY[name] ?? 6}>${body}\n`;
  const ts = typeof time === 'string' ? time : '';
  return `${ts} ${body}\n`;
}

/**
 * Whether stderr is connected to the journal: `JOURNAL_STREAM` (`device:inode`, set by systemd)
 * names the very file descriptor 2 points at (a child's stderr redirected elsewhere does not count).
 */
export function stderrIsJournal(journalStream: string | undefined, fd = 2): boolean {
  if (journalStream === undefined || journalStream === '') return false;
  const [dev, ino] = journalStream.split(':');
  try {
    const st = fstatSync(fd, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

/** The `baton: …` line for an error: one whole line ({@link singleLine}), `<3>`-prefixed for the journal. */
export function errorLine(message: string, journal: boolean): string {
  return `${journal ? '<3>' : ''}baton: ${escapeControls(singleLine(message))}\n`;
}

// The last lines logged, for failure mails ("what happened just before").
const recent: string[] = [];
const RECENT_MAX = 40;

/** The last log lines of this process, as text, oldest first. */
export function recentLogLines(): string[] {
  return [...recent];
}

/** A line the terminal shows below the log (a progress bar): cleared before each log line, drawn again after. */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}
let statusLine: StatusLine | undefined;

/** Sets the status line the log lines go above. */
export function setStatusLine(line: StatusLine): void {
  statusLine = line;
}

/** Ends `line` as the status line (a newer one set meanwhile stays). */
export function endStatusLine(line: StatusLine): void {
  if (statusLine === line) statusLine = undefined;
}

/** A synchronous logger to stderr (no worker threads: nothing is lost when the process exits). */
export function createLogger(opts: {
  format: LogFormat;
  level?: string;
  fd?: number;
  /** stderr is the journal's: sd-daemon `<N>` prefixes, no own timestamp (text format) */
  journal?: boolean;
}): Logger {
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
              .map((l) => formatTextLine(l, opts.journal === true))
              .join('');
      try {
        statusLine?.clear();
        writeSync(fd, out);
        statusLine?.redraw();
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
      // level names and ISO times, for `--log-format json` and the text formatter alike
      formatters: { level: (label) => ({ level: label }) },
      timestamp: stdTimeFunctions.isoTime,
    },
    dest,
  );
}

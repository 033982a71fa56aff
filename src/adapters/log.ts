import { fstatSync, writeSync } from 'node:fs';
import { singleLine } from '../errors.js';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
type Fields = Record<string, unknown>;

/** `log.info({ step: 'pull', id }, 'message')` or `log.info('message')`, as pino's loggers take them. */
export interface LogFn {
  (fields: Fields, msg?: string): void;
  (msg: string): void;
}

/** The logger every step takes: leveled methods and `child` bindings (the shape of pino's, a subset). */
export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose lines carry `bindings` too (`source=shop stream=data`). */
  child(bindings: Fields): Logger;
}

const LEVELS: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

// Keys whose values never reach a log line (SMTP passwords, URLs with credentials): at the top or
// one object down, the paths pino's `redact` took before (`password`, `*.password`, …).
const SECRET_KEYS = new Set(['password', 'pass', 'auth']);
const CENSOR = '[secret]';

/** sd-daemon(3) priority prefixes, for a stderr that is the journal's stream. */
const JOURNAL_PRIORITY: Record<LogLevel, number> = {
  trace: 7,
  debug: 7,
  info: 6,
  warn: 4,
  error: 3,
  fatal: 2,
};

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

/** One log event, fields redacted and made JSON-able: what both formats print. */
export interface LogRecord {
  level: LogLevel;
  /** ISO time */
  time: string;
  msg?: string;
  fields: Fields;
}

/** `JSON.stringify` that never throws from inside a log call: a bigint as digits, a cycle as `[Circular]`. */
function toJson(v: unknown): string | undefined {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(v, (_k, x: unknown) => {
      if (typeof x === 'bigint') return x.toString();
      if (typeof x === 'object' && x !== null) {
        if (seen.has(x)) return '[Circular]';
        seen.add(x);
      }
      return x;
    });
  } catch {
    return '"[unserializable]"';
  }
}

/** An Error as data (pino's `err` serializer: type, message, stack, cause, own fields). */
function serializeError(err: Error, seen = new Set<Error>()): Fields {
  seen.add(err);
  const out: Fields = { type: err.constructor.name, message: err.message, stack: err.stack };
  if (err.cause instanceof Error && !seen.has(err.cause)) out.cause = serializeError(err.cause, seen);
  for (const [k, v] of Object.entries(err)) if (!(k in out)) out[k] = v;
  return out;
}

/** The value a field shows: secrets censored one level down, an `err` as data. */
function fieldValue(key: string, v: unknown): unknown {
  if (SECRET_KEYS.has(key)) return CENSOR;
  if (key === 'err' && v instanceof Error) return serializeError(v);
  if (typeof v !== 'object' || v === null) return v;
  let copy: Fields | unknown[] | undefined;
  for (const k of SECRET_KEYS) {
    if (!Object.hasOwn(v, k)) continue;
    copy ??= Array.isArray(v) ? [...(v as unknown[])] : { ...(v as Fields) };
    (copy as Fields)[k] = CENSOR;
  }
  return copy ?? v;
}

/**
 * A record as a text line: `2026-11-28T06:19:22.123Z INFO  collect: message key=value`, one line
 * whatever the message or a field holds; under the journal (`journal`) `<6>INFO  collect: …`, no
 * timestamp (journald stamps each line itself).
 */
export function formatTextLine(rec: LogRecord, journal = false): string {
  const { step, ...rest } = rec.fields;
  let kv = '';
  for (const [k, raw] of Object.entries(rest)) {
    const v = typeof raw === 'object' && raw !== null && 'toJSON' in raw ? toJsonValue(raw) : raw;
    // eslint-disable-next-line no-control-regex
    const text = typeof v === 'string' && /^[^\s"\\\u0000-\u001f]*$/.test(v) ? v : toJson(v);
    if (text !== undefined) kv += `${kv === '' ? '' : ' '}${k}=${text}`;
  }
  const stepText = typeof step === 'string' ? `${escapeControls(step)}: ` : '';
  const body = `${rec.level.toUpperCase().padEnd(5)} ${stepText}${rec.msg === undefined ? '' : escapeControls(rec.msg)}${kv ? `  ${kv}` : ''}`;
  return journal ? `<${JOURNAL_PRIORITY[rec.level]}>${body}\n` : `${rec.time} ${body}\n`;
}

function toJsonValue(v: object): unknown {
  try {
    return (v as { toJSON(): unknown }).toJSON();
  } catch {
    return '[unserializable]';
  }
}

/** A record as a JSON line, the shape pino wrote: level name, ISO time, pid, the fields, msg. */
export function formatJsonLine(rec: LogRecord, pid = process.pid): string {
  return `${toJson({ level: rec.level, time: rec.time, pid, ...rec.fields, ...(rec.msg === undefined ? {} : { msg: rec.msg }) }) ?? '{}'}\n`;
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

/**
 * A synchronous logger to stderr: each event is formatted once, straight to its text or JSON line,
 * and written with one `writeSync` (no worker thread, no stream: nothing is lost when the process
 * exits, and no line is parsed back).
 */
export function createLogger(opts: {
  format: LogFormat;
  level?: string;
  fd?: number;
  /** stderr is the journal's: sd-daemon `<N>` prefixes, no own timestamp (text format) */
  journal?: boolean;
}): Logger {
  const fd = opts.fd ?? 2;
  const least = LEVELS[(opts.level ?? 'info') as LogLevel] ?? LEVELS.info;
  const journal = opts.journal === true;
  const emit = (rec: LogRecord) => {
    const text = formatTextLine(rec);
    recent.push(text.trimEnd());
    if (recent.length > RECENT_MAX) recent.shift();
    const out = opts.format === 'json' ? formatJsonLine(rec) : journal ? formatTextLine(rec, true) : text;
    try {
      statusLine?.clear();
      writeSync(fd, out);
      statusLine?.redraw();
    } catch {
      /* stderr closed: nothing better to do */
    }
  };
  const make = (bindings: Fields): Logger => {
    const at =
      (level: LogLevel): LogFn =>
      (a: Fields | string, msg?: string) => {
        if (LEVELS[level] < least) return;
        const given = typeof a === 'string' ? {} : a;
        const fields: Fields = {};
        for (const src of [bindings, given])
          for (const [k, v] of Object.entries(src)) if (v !== undefined) fields[k] = fieldValue(k, v);
        emit({ level, time: new Date().toISOString(), msg: typeof a === 'string' ? a : msg, fields });
      };
    return {
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      fatal: at('fatal'),
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return make({});
}

import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { createTransport } from 'nodemailer';
import { parseConnectionUrl } from 'nodemailer/lib/shared';
import type { MailConfig } from '../config/schema.js';
import { JobError, errnoCode } from '../errors.js';
import { describeExit, runProcess } from './run.js';

export interface MailMessage {
  subject: string;
  text: string;
}

export interface SendMailOptions {
  /** Bound on the whole send (SMTP session or sendmail run). Default 60 s. */
  timeoutMs?: number;
}

const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 15_000;
const DEFAULT_TIMEOUT_MS = 60_000;
const SUBJECT_MAX = 250;

/** Where alerts go, for logs: `smtp://user@host:port → a@x, b@y` (never a password, nor a query). */
export function describeMailTarget(cfg: MailConfig): string {
  const via = cfg.sendmail !== undefined ? `sendmail ${cfg.sendmail}` : redactUrl(cfg.smtp ?? '');
  return `${via} → ${cfg.to.join(', ')}`;
}

function redactUrl(url: string): string {
  if (!URL.canParse(url)) return '(invalid smtp URL)';
  const u = new URL(url);
  u.password = '';
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

interface SmtpTarget {
  host: string;
  port: number;
  secure: boolean;
  user: string | undefined;
}

/** What a URL may carry: nodemailer reads any other option from its query, over baton's own settings. */
const URL_KEYS = new Set(['secure', 'host', 'port', 'auth']);

/**
 * `smtp[s]://[user@]host[:port]`, read by nodemailer's own URL parser. Refused in one line: not a
 * URL (checked first: for what WHATWG refuses, nodemailer falls back to `url.parse()`, which warns
 * on stderr), another scheme, no host, a password (a secret comes from a file or the environment),
 * or options in the query (baton sets the TLS policy, timeouts and logging itself).
 */
function parseSmtpUrl(url: string): SmtpTarget {
  const refuse = (why: string) =>
    new JobError(`smtp URL ${JSON.stringify(redactUrl(url))}: ${why}`, { step: 'mail' });
  if (!URL.canParse(url)) throw refuse('not a valid URL');
  const o = parseConnectionUrl(url);
  if (o.secure === undefined) throw refuse('must start with smtp:// or smtps://');
  if (o.auth?.pass !== undefined && o.auth.pass !== '') {
    // docs/design.md §3: secrets come from files or the environment, never from the config itself.
    throw new JobError(
      'the smtp URL holds a password: put it in passwordFile or BATON_SMTP_PASSWORD instead',
      { step: 'mail' },
    );
  }
  if (o.host === undefined || o.host === '') throw refuse('names no host');
  const extra = Object.keys(o).filter((k) => !URL_KEYS.has(k));
  if (extra.length > 0)
    throw refuse(`takes no options (got ${extra.join(', ')}); write smtp[s]://[user@]host[:port]`);
  return {
    host: o.host,
    port: o.port ?? (o.secure ? 465 : 25),
    secure: o.secure,
    user: o.auth?.user === undefined || o.auth.user === '' ? undefined : o.auth.user,
  };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

async function readPassword(
  cfg: MailConfig,
  user: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  if (cfg.passwordFile !== undefined) {
    if (user === undefined) {
      throw new JobError(
        `passwordFile is set but the smtp URL names no user (write it as smtp://USER@host:port)`,
        { step: 'mail' },
      );
    }
    try {
      return (await readFile(cfg.passwordFile, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      throw new JobError(
        `cannot read the SMTP password file ${cfg.passwordFile}: ${errnoCode(err) ?? 'error'}`,
        {
          step: 'mail',
        },
      );
    }
  }
  if (user === undefined) return undefined;
  const fromEnv = env.BATON_SMTP_PASSWORD;
  if (fromEnv === undefined || fromEnv === '') {
    throw new JobError(
      `the smtp URL names user ${user} but there is no password (set passwordFile or BATON_SMTP_PASSWORD)`,
      { step: 'mail' },
    );
  }
  return fromEnv;
}

/** Every form in which a password could show up in an SMTP client's error text. */
function secretForms(user: string | undefined, password: string | undefined): string[] {
  if (password === undefined || password === '') return [];
  const forms = [
    password,
    encodeURIComponent(password),
    Buffer.from(password).toString('base64'),
    Buffer.from(`\0${user ?? ''}\0${password}`).toString('base64'),
    Buffer.from(`${user ?? ''}\0${password}`).toString('base64'),
  ];
  // Longest first, so a form containing another is removed whole.
  return [...new Set(forms)].filter((f) => f.length > 0).sort((a, b) => b.length - a.length);
}

function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

/** One line from whatever the mail library threw, with the secrets taken out. */
function describeFailure(err: unknown, secrets: readonly string[]): string {
  const e = err as { message?: unknown; code?: unknown; name?: unknown } | undefined;
  let text = typeof e?.message === 'string' ? e.message : String(err);
  if (e?.name === 'AbortError' || e?.code === 'EABORT') text = 'gave up: the send took too long';
  const code = typeof e?.code === 'string' && !text.includes(e.code) ? ` (${e.code})` : '';
  return redact(`${text.replace(/\s+/g, ' ').trim()}${code}`, secrets);
}

function composeHeaders(cfg: MailConfig, msg: MailMessage) {
  return {
    from: cfg.from,
    to: cfg.to,
    // A subject is one line; an error message pasted into it must not start new headers.
    subject: msg.subject.replace(/[\r\n]+/g, ' ').slice(0, SUBJECT_MAX),
    text: msg.text,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/**
 * Sends one plain-text alert through `cfg` (SMTP URL or sendmail binary). Throws a JobError
 * (step `mail`) whose message names the target and the reason but never the password.
 */
export async function sendMail(
  cfg: MailConfig,
  msg: MailMessage,
  env: NodeJS.ProcessEnv = process.env,
  opts: SendMailOptions = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (cfg.sendmail !== undefined) {
    await sendViaSendmail(cfg, cfg.sendmail, msg, timeoutMs);
    return;
  }
  if (cfg.smtp === undefined) throw new JobError('no smtp URL and no sendmail configured', { step: 'mail' });
  const target = parseSmtpUrl(cfg.smtp);
  const password = await readPassword(cfg, target.user, env);
  const secrets = secretForms(target.user, password);
  const loopback = isLoopback(target.host);
  const transport = createTransport({
    host: target.host,
    port: target.port,
    secure: target.secure,
    // A local relay's self-signed STARTTLS certificate must not stop an alert that never leaves
    // the machine; over the network, a password is only ever sent inside TLS.
    ignoreTLS: loopback && !target.secure,
    requireTLS: !loopback && !target.secure && password !== undefined,
    auth: target.user === undefined ? undefined : { user: target.user, pass: password },
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    dnsTimeout: CONNECTION_TIMEOUT_MS,
    logger: false,
    debug: false,
  });
  try {
    await transport.sendMail({ ...composeHeaders(cfg, msg), signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    // No `cause`: the library's error object carries the session (commands, responses) and may hold the password.
    throw new JobError(
      `sending mail via ${describeMailTarget(cfg)} failed: ${describeFailure(err, secrets)}`,
      {
        step: 'mail',
      },
    );
  } finally {
    transport.close();
  }
}

async function sendViaSendmail(
  cfg: MailConfig,
  binary: string,
  msg: MailMessage,
  timeoutMs: number,
): Promise<void> {
  for (const address of [cfg.from, ...cfg.to]) {
    // These become sendmail arguments: an address that looks like an option would be one.
    if (address.startsWith('-')) {
      throw new JobError(`refusing mail address ${JSON.stringify(address)}: starts with "-"`, {
        step: 'mail',
      });
    }
  }
  // nodemailer composes the message; our own runner pipes it to sendmail, so a hanging sendmail
  // is killed after `timeoutMs` and its stderr ends up in the error.
  const composer = createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  let message: Buffer;
  try {
    const info = await composer.sendMail(composeHeaders(cfg, msg));
    if (!Buffer.isBuffer(info.message)) throw new Error('message was not buffered');
    message = info.message;
  } catch (err) {
    throw new JobError(`composing the mail failed: ${describeFailure(err, [])}`, { step: 'mail' });
  }
  const r = await runProcess([binary, '-i', '-f', cfg.from, ...cfg.to], {
    input: message,
    timeoutMs,
    killGraceMs: 2000,
    tailBytes: 8192,
  });
  if (r.code !== 0 || r.timedOut) {
    throw new JobError(`sending mail via ${describeMailTarget(cfg)} failed: ${describeExit(r)}`, {
      step: 'mail',
    });
  }
}

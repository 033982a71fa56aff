/**
 * A real SMTP server (smtp-server, in-process) on 127.0.0.1 that keeps every message it receives,
 * for tests of mail alerts. Plain text messages only: the parser below knows headers,
 * RFC 2047 encoded words, quoted-printable and base64 bodies, not multipart.
 */
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';

export interface ReceivedMail {
  /** Envelope sender (MAIL FROM). */
  from: string;
  /** Envelope recipients (RCPT TO). */
  to: string[];
  subject: string;
  /** The decoded body, line ends normalised to \n. */
  text: string;
  /** The message exactly as received. */
  raw: string;
  /** Header names lower-cased, values unfolded and decoded. The last one wins. */
  headers: Record<string, string>;
  /** The user name the client authenticated as, if it did. */
  user: string | undefined;
}

export interface SmtpOptions {
  /** Require AUTH PLAIN / LOGIN with these credentials (otherwise auth is optional and anything goes). */
  user?: string;
  password?: string;
  /** A chatty server: failed AUTH replies quote the password received (to test that clients redact it). */
  echoAuthFailure?: boolean;
}

export interface SmtpSink {
  port: number;
  url: string;
  messages: ReceivedMail[];
  /** Every AUTH attempt: method, user name and whether it was accepted. */
  authAttempts: Array<{ method: string; username: string | undefined; ok: boolean }>;
  /** Resolves with the messages once at least `n` arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  stop(): Promise<void>;
}

export async function startSmtp(opts: SmtpOptions = {}): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const authAttempts: SmtpSink['authAttempts'] = [];
  const waiters = new Set<() => void>();
  const requireAuth = opts.user !== undefined;

  const server = new SMTPServer({
    authOptional: !requireAuth,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    banner: 'baton test smtp',
    onAuth(
      auth: SMTPServerAuthentication,
      _session: SMTPServerSession,
      callback: (err: Error | null | undefined, response?: { user: string }) => void,
    ) {
      const ok = requireAuth && auth.username === opts.user && auth.password === opts.password;
      authAttempts.push({ method: auth.method, username: auth.username, ok });
      if (ok) {
        callback(null, { user: auth.username ?? '' });
        return;
      }
      const err = new Error(
        opts.echoAuthFailure
          ? `Invalid credentials: user ${auth.username ?? ''} password ${auth.password ?? ''}`
          : 'Invalid username or password',
      ) as Error & { responseCode: number };
      err.responseCode = 535;
      callback(err);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err: Error) => callback(err));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const { headers, body } = parseMessage(raw);
        const mailFrom = session.envelope.mailFrom;
        messages.push({
          from: mailFrom === false ? '' : mailFrom.address,
          to: session.envelope.rcptTo.map((a) => a.address),
          subject: headers.subject ?? '',
          text: decodeBody(body, headers['content-transfer-encoding']),
          raw,
          headers,
          user: typeof session.user === 'string' ? session.user : undefined,
        });
        for (const w of waiters) w();
        callback();
      });
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const addr = server.server.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('smtp server: no address');
  const port = addr.port;
  // Errors after start (a client hanging up mid-session) are the client's problem, not the test's.
  server.on('error', () => undefined);

  let stopped: Promise<void> | undefined;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    authAttempts,
    waitFor(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (messages.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(messages);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`smtp: expected ${n} message(s) within ${timeoutMs} ms, got ${messages.length}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => server.close(() => resolve()));
      return stopped;
    },
  };
}

/** Splits a message into unfolded, decoded headers and the raw body. */
export function parseMessage(raw: string): { headers: Record<string, string>; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const headers: Record<string, string> = {};
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = decodeEncodedWords(line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/** RFC 2047 `=?UTF-8?Q?…?=` / `=?UTF-8?B?…?=` (UTF-8 and ASCII only), adjacent words joined. */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[QqBb]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_all, _charset: string, enc: string, text: string) => {
      if (enc.toUpperCase() === 'B') return Buffer.from(text, 'base64').toString('utf8');
      return qpBytes(text.replaceAll('_', ' ')).toString('utf8');
    });
}

function qpBytes(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(...Buffer.from(text[i] ?? '', 'utf8'));
    }
  }
  return Buffer.from(out);
}

/** The body as text: quoted-printable (soft line breaks) and base64 decoded, CRLF → LF. */
export function decodeBody(body: string, transferEncoding: string | undefined): string {
  const enc = (transferEncoding ?? '').trim().toLowerCase();
  let text: string;
  if (enc === 'quoted-printable') text = qpBytes(body.replace(/=\r?\n/g, '')).toString('utf8');
  else if (enc === 'base64') text = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  else text = body;
  return text.replace(/\r\n/g, '\n');
}

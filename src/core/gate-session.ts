import { MAX_GATE_REQUEST_BYTES, parseGateRequest, type GateRequest } from './gate-rules.js';

/*
 * The gate session (`baton gate data|logs` asked for `session`): one gate process and one ssh channel
 * serve every `list-head`, `ack` and `reject` of a pull, instead of one ssh channel and one node start on
 * the source for each. The rsync of a tree still has its own channel (the rsync protocol owns it).
 *
 *   gate → sink   `baton-gate-session 1\n`                    once, when the session is ready
 *   sink → gate   one request line, as SSH_ORIGINAL_COMMAND would be (list, list-head, ack …, reject …)
 *   gate → sink   for `ack` only: the challenge lines, then the sink's answer lines (src/core/ack-challenge.ts)
 *   gate → sink   `reply <exit code> <bytes>\n` and exactly that many bytes: on exit 0 what the one-shot
 *                 command prints on stdout, else its `baton gate: …` line
 *
 * The session ends when the sink closes its side, after {@link MAX_SESSION_REQUESTS} requests, or when
 * no request came for {@link SESSION_IDLE_MS}. A gate of an older baton refuses `session` (one line on
 * stderr, no hello): the sink then runs each command in a session of its own, as before.
 */

/** The first line of a session, written by the gate once it is ready for requests. */
export const SESSION_HELLO = 'baton-gate-session 1';

/** Requests one session serves; then the gate ends it (the sink goes on one command per session). */
export const MAX_SESSION_REQUESTS = 20_000;

/**
 * How long the gate waits for the next request. The sink's pull of a large tree runs between the listing
 * and the ack; past this the gate ends the session and the sink acks in a session of its own.
 */
export const SESSION_IDLE_MS = 6 * 3600_000;

/** The longest reply header line: `reply 255 4294967295`. */
export const MAX_REPLY_HEADER_BYTES = 32;

const REPLY_HEADER = /^reply (0|[1-9][0-9]{0,2}) (0|[1-9][0-9]{0,9})$/;

/** The header the gate writes before a reply of `bytes` bytes that ended with `code`. */
export function formatReplyHeader(code: number, bytes: number): string {
  return `reply ${code} ${bytes}\n`;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses a reply header line (without its `\n`) from the gate, hostile input: exactly `reply <code>
 * <bytes>`, a code 0–255 and a byte count of at most `maxBytes` (the caller's cap for this request).
 */
export function parseReplyHeader(line: string, maxBytes: number): Parsed<{ code: number; bytes: number }> {
  if (line.length > MAX_REPLY_HEADER_BYTES) return { ok: false, error: 'reply header too long' };
  const m = REPLY_HEADER.exec(line);
  if (m?.[1] === undefined || m[2] === undefined)
    return { ok: false, error: `not a reply header: ${JSON.stringify(line.slice(0, 40))}` };
  const code = Number(m[1]);
  const bytes = Number(m[2]);
  if (code > 255) return { ok: false, error: `reply exit code ${code} out of range` };
  if (bytes > maxBytes) return { ok: false, error: `reply of ${bytes} bytes, over the ${maxBytes} allowed` };
  return { ok: true, value: { code, bytes } };
}

/** True when a line from the gate starts a reply (and so is not a challenge line). */
export function isReplyHeader(line: string): boolean {
  return line.startsWith('reply ');
}

/** What a session may be asked, one line at a time: the gate's own requests, but no rsync and no nesting. */
export type SessionRequest = Extract<GateRequest, { kind: 'list' | 'list-head' | 'ack' | 'reject' }>;

/**
 * Parses one request line of a session (hostile input) with the gate's allow-list
 * ({@link parseGateRequest}: length, control characters, UTF-8, exact forms). An rsync pull needs a
 * channel of its own and a session is not opened inside one: both are refused here.
 */
export function parseSessionRequest(line: string): SessionRequest | { kind: 'refused'; reason: string } {
  if (Buffer.byteLength(line, 'latin1') > MAX_GATE_REQUEST_BYTES)
    return { kind: 'refused', reason: `request longer than ${MAX_GATE_REQUEST_BYTES} bytes` };
  // the line arrived as bytes (latin1): decode as UTF-8 so the allow-list sees what the sink sent
  const text = Buffer.from(line, 'latin1').toString('utf8');
  const r = parseGateRequest(text);
  if (r.kind === 'rsync') return { kind: 'refused', reason: 'an rsync pull needs a session of its own' };
  if (r.kind === 'session') return { kind: 'refused', reason: 'already in a session' };
  return r;
}

import type { PingConfig } from '../config/schema.js';

export type PingKind = 'start' | 'success' | 'fail';

export interface PingResult {
  ok: boolean;
  /** True when no ping is configured (nothing was sent). */
  skipped?: boolean;
  /** HTTP status, when the server answered. */
  status?: number;
  /** Why the ping failed, one line, without the ping URL (its path is the check's secret). */
  error?: string;
}

/** healthchecks.io and its clones store at most 100 kB of a ping body; keep the tail, where errors are. */
const BODY_MAX_BYTES = 10_000;

/** The URL for `kind`: `url/start`, `url`, `url/fail` (a query string stays at the end). */
export function pingUrl(base: string, kind: PingKind): string {
  const u = new URL(base);
  if (kind !== 'success') u.pathname = `${u.pathname.replace(/\/+$/, '')}/${kind}`;
  return u.toString();
}

/** Where pings go, for logs: scheme and host only. */
export function describePingTarget(cfg: PingConfig): string {
  try {
    const u = new URL(cfg.url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return '(invalid ping URL)';
  }
}

function tail(body: string): string {
  const b = Buffer.from(body, 'utf8');
  return b.length <= BODY_MAX_BYTES ? body : b.subarray(b.length - BODY_MAX_BYTES).toString('utf8');
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `timed out after ${timeoutMs} ms`;
  }
  // undici: TypeError('fetch failed') with the socket error as cause.
  const cause =
    err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.message === 'string' && cause.message !== '') {
    return cause.message.split('\n')[0] ?? cause.message;
  }
  if (cause && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Tells the monitoring service about a run: GET `url/start`, `url` (success) or `url/fail`, or
 * POST with `body` (the run's summary or error, shown by healthchecks with the ping). Never
 * throws: a monitoring outage must not fail or hide a backup. Not configured → ok, skipped.
 */
export async function ping(cfg: PingConfig | undefined, kind: PingKind, body?: string): Promise<PingResult> {
  if (cfg === undefined) return { ok: true, skipped: true };
  let url: string;
  try {
    url = pingUrl(cfg.url, kind);
  } catch {
    return { ok: false, error: `ping ${kind}: invalid URL` };
  }
  try {
    const res = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      body: body === undefined ? undefined : tail(body),
      headers: body === undefined ? undefined : { 'content-type': 'text/plain; charset=utf-8' },
      signal: AbortSignal.timeout(cfg.timeout),
      redirect: 'follow',
    });
    // Free the connection; the answer ("OK") does not matter.
    await res.body?.cancel().catch(() => undefined);
    if (!res.ok) return { ok: false, status: res.status, error: `ping ${kind}: HTTP ${res.status}` };
    return { ok: true, status: res.status };
  } catch (err) {
    return { ok: false, error: `ping ${kind}: ${describeFetchError(err, cfg.timeout)}` };
  }
}

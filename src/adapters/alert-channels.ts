import { readFile } from 'node:fs/promises';
import type { AlertCommandConfig, WebhookConfig } from '../config/schema.js';
import { eventEnvironment, webhookRequest, type AlertEvent } from '../core/alert-event.js';
import { JobError, errnoCode } from '../errors.js';
import { describeExit, runProcess } from './run.js';

/** Where a webhook goes, for logs: scheme and host only (paths and queries often hold the secret). */
export function describeWebhookTarget(cfg: WebhookConfig): string {
  try {
    const u = new URL(cfg.url);
    return `${cfg.preset} ${u.protocol}//${u.host}/…`;
  } catch {
    return '(invalid webhook URL)';
  }
}

function fetchFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
    return `timed out after ${timeoutMs} ms`;
  const cause =
    err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message.split('\n')[0] ?? 'fetch failed';
  return err instanceof Error ? (err.message.split('\n')[0] ?? 'fetch failed') : 'fetch failed';
}

/**
 * POSTs the event to `cfg.url` in the preset's format. Throws a JobError (step `alert`) with the
 * reason only: header values, the token and the URL never reach the message.
 */
export async function postWebhook(cfg: WebhookConfig, ev: AlertEvent): Promise<void> {
  const headers: Record<string, string> = { ...cfg.headers, 'content-type': 'application/json' };
  if (cfg.tokenFile !== undefined) {
    let token: string;
    try {
      token = (await readFile(cfg.tokenFile, 'utf8')).trim();
    } catch (e) {
      throw new JobError(`cannot read the token file ${cfg.tokenFile}: ${errnoCode(e) ?? 'error'}`, {
        step: 'alert',
      });
    }
    headers.authorization = `Bearer ${token}`;
  }
  const req = webhookRequest(cfg.preset, cfg.url, ev);
  let res: Response;
  try {
    res = await fetch(req.url, {
      method: 'POST',
      headers,
      body: req.body,
      signal: AbortSignal.timeout(cfg.timeout),
      redirect: 'error',
    });
  } catch (e) {
    throw new JobError(fetchFailure(e, cfg.timeout), { step: 'alert' });
  }
  await res.body?.cancel().catch(() => undefined);
  if (!res.ok) throw new JobError(`HTTP ${res.status}`, { step: 'alert' });
}

/**
 * Runs the alert command with the event as JSON on stdin and `BATON_EVENT_*` in its environment;
 * its process group is killed after `cfg.timeout`. Throws a JobError (step `alert`) on a non-zero
 * exit or a timeout, with the tail of its stderr.
 */
export async function runAlertCommand(cfg: AlertCommandConfig, ev: AlertEvent): Promise<void> {
  const r = await runProcess(cfg.run, {
    input: `${JSON.stringify(ev)}\n`,
    env: { ...process.env, ...eventEnvironment(ev) },
    timeoutMs: cfg.timeout,
    killGraceMs: 2000,
    tailBytes: 2048,
  });
  if (r.code !== 0 || r.timedOut) throw new JobError(describeExit(r), { step: 'alert' });
}

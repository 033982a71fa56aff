import { appendFile, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { hostname } from 'node:os';
import type { AlertChannels, MailConfig } from '../config/schema.js';
import { alertEvent } from '../core/alert-event.js';
import { oneLine } from '../errors.js';
import type { Logger } from './log.js';
import { mkdirp, writeFileAtomic } from './fsx.js';
import { describeWebhookTarget, postWebhook, runAlertCommand } from './alert-channels.js';

export interface Alert {
  subject: string;
  text: string;
  /**
   * This alert reports the run's own failure (not a warning on the side, such as a stale stream or
   * a failed offsite push): only such an alert makes the unit's failure handler stay quiet.
   */
  reportsFailure?: boolean;
}

/**
 * Sends an alert through every configured channel at once: mail, webhook, command. Each channel is
 * isolated (own timeout, own failure line in the log): a hanging webhook or a failing command never
 * delays past its timeout, blocks the others, or fails the run. A mail that cannot be sent is kept
 * in `pendingDir` and retried by the next run (`flushPendingAlerts`); a failing alert never hides or
 * replaces the error it reports. Under systemd, a run whose alert reports its own failure records so
 * (noteAlerted), and its unit's failure handler then stays quiet. Returns whether the mail went out.
 */
export async function sendAlert(
  channels: AlertChannels,
  pendingDir: string,
  alert: Alert,
  log: Logger,
): Promise<boolean> {
  const ev = alertEvent(alert, hostname(), new Date());
  const others = [
    channels.webhook === undefined
      ? undefined
      : sendVia(
          log,
          `webhook ${describeWebhookTarget(channels.webhook)}`,
          alert,
          postWebhook(channels.webhook, ev),
        ),
    channels.command === undefined
      ? undefined
      : sendVia(log, 'command', alert, runAlertCommand(channels.command, ev)),
  ].filter((p) => p !== undefined);
  const [mailed, ...sent] = await Promise.all([
    sendAlertMail(channels.mail, others.length > 0, pendingDir, alert, log),
    ...others,
  ]);
  if (alert.reportsFailure === true && (mailed === 'sent' || mailed === 'kept' || sent.includes(true))) {
    await noteAlerted(dirname(pendingDir), alert.subject, process.env.INVOCATION_ID, log);
  }
  return mailed === 'sent';
}

/** systemd's id of one service run (`INVOCATION_ID`, `MONITOR_INVOCATION_ID`): 32 lowercase hex digits. */
export function parseInvocationId(v: string | undefined): string | undefined {
  return v !== undefined && /^[0-9a-f]{32}$/.test(v) ? v : undefined;
}

/** `<stateDir>/alerted/<invocation id>`: the subjects a systemd run alerted, one JSON line each. */
const alertedFile = (stateDir: string, id: string) => join(stateDir, 'alerted', id);
/** Records of runs older than this are removed when a new one is written. */
const ALERTED_KEEP_MS = 7 * 24 * 3600_000;
const ALERTED_MAX_BYTES = 64 * 1024;

/**
 * Under systemd (`INVOCATION_ID` set), records that this run alerted, so that the unit's
 * `OnFailure=` handler (`baton notify-failure`, which gets the id as `MONITOR_INVOCATION_ID`) does
 * not alert the same failure a second time. Never throws: at worst the operator hears twice.
 */
async function noteAlerted(stateDir: string, subject: string, env: string | undefined, log: Logger) {
  const id = parseInvocationId(env);
  if (id === undefined) return;
  try {
    const dir = join(stateDir, 'alerted');
    await mkdirp(dir, 0o700);
    const now = Date.now();
    for (const n of await readdir(dir)) {
      const st = await stat(join(dir, n)).catch(() => undefined);
      if (n !== id && st !== undefined && now - st.mtimeMs > ALERTED_KEEP_MS)
        await unlink(join(dir, n)).catch(() => undefined);
    }
    await appendFile(
      alertedFile(stateDir, id),
      `${JSON.stringify({ at: new Date(now).toISOString(), subject })}\n`,
      {
        mode: 0o600,
      },
    );
  } catch (e) {
    log.warn({ step: 'alert' }, `could not record that this run alerted: ${oneLine(e)}`);
  }
}

/**
 * The subjects the systemd run `id` alerted (see noteAlerted), oldest first; empty when it sent
 * none or left no record. Reads at most 64 KiB.
 */
export async function alertsOfRun(stateDir: string, id: string): Promise<string[]> {
  let text: string;
  try {
    const fh = await open(alertedFile(stateDir, id), 'r');
    try {
      const buf = Buffer.alloc(ALERTED_MAX_BYTES);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    try {
      const v = JSON.parse(line) as unknown;
      return typeof v === 'object' && v !== null && 'subject' in v && typeof v.subject === 'string'
        ? [v.subject]
        : [];
    } catch {
      return [];
    }
  });
}

async function sendVia(log: Logger, what: string, alert: Alert, sending: Promise<void>): Promise<boolean> {
  try {
    await sending;
    log.info({ step: 'alert' }, `alert sent via ${what}: ${alert.subject}`);
    return true;
  } catch (e) {
    log.error({ step: 'alert' }, `alert via ${what} failed: ${e instanceof Error ? e.message : String(e)}`);
    return false;
  }
}

async function sendAlertMail(
  mail: MailConfig | undefined,
  otherChannels: boolean,
  pendingDir: string,
  alert: Alert,
  log: Logger,
): Promise<'sent' | 'kept' | 'lost' | 'none'> {
  if (!mail) {
    if (!otherChannels)
      log.warn({ step: 'alert' }, `no alert channel configured; not sent: ${alert.subject}`);
    return 'none';
  }
  try {
    await (await loadMail()).sendMail(mail, alert);
    log.info({ step: 'alert', to: mail.to }, `alert mailed: ${alert.subject}`);
    return 'sent';
  } catch (e) {
    log.error({ step: 'alert' }, `alert mail failed, kept for the next run: ${oneLine(e)}`);
    try {
      await mkdirp(pendingDir, 0o700);
      const file = join(pendingDir, `${Date.now()}-${process.pid}.json`);
      await writeFileAtomic(file, JSON.stringify({ ...alert, failedAt: new Date().toISOString() }), 0o600);
      return 'kept';
    } catch (e2) {
      log.error({ step: 'alert' }, `could not keep the alert either: ${oneLine(e2)}`);
      return 'lost';
    }
  }
}

/** Retries alerts that earlier runs could not send, oldest first; stops at the first failure. */
export async function flushPendingAlerts(
  mail: MailConfig | undefined,
  pendingDir: string,
  log: Logger,
): Promise<void> {
  if (!mail) return;
  const names = (await readdir(pendingDir).catch(() => [] as string[]))
    .filter((n) => n.endsWith('.json'))
    .sort();
  for (const n of names) {
    const file = join(pendingDir, n);
    let alert: Alert & { failedAt?: string };
    try {
      alert = JSON.parse(await readFile(file, 'utf8')) as Alert & { failedAt?: string };
    } catch {
      await unlink(file).catch(() => undefined);
      continue;
    }
    try {
      await (
        await loadMail()
      ).sendMail(mail, {
        subject: `${alert.subject} (delayed: mail failed at ${alert.failedAt ?? '?'})`,
        text: alert.text,
      });
      await unlink(file);
      log.info({ step: 'alert' }, `delayed alert mailed: ${alert.subject}`);
    } catch (e) {
      log.warn({ step: 'alert' }, `delayed alerts still cannot be mailed: ${oneLine(e)}`);
      return;
    }
  }
}

export function alertSubject(who: string, what: string): string {
  return `[baton] ${who}: ${what}`;
}

export function alertFooter(): string {
  return `\n--\nbaton on ${hostname()} at ${new Date().toISOString()}\n`;
}

/** The SMTP client (nodemailer), loaded when a mail is sent: a run that mails nothing never compiles it. */
function loadMail(): Promise<typeof import('./mail.js')> {
  return import('./mail.js');
}

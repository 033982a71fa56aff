import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { AlertChannels, MailConfig } from '../config/schema.js';
import { alertEvent } from '../core/alert-event.js';
import { oneLine } from '../errors.js';
import type { Logger } from './log.js';
import { mkdirp, writeFileAtomic } from './fsx.js';
import { sendMail } from './mail.js';
import { describeWebhookTarget, postWebhook, runAlertCommand } from './alert-channels.js';

export interface Alert {
  subject: string;
  text: string;
}

/**
 * Sends an alert through every configured channel at once: mail, webhook, command. Each channel is
 * isolated (own timeout, own failure line in the log): a hanging webhook or a failing command never
 * delays past its timeout, blocks the others, or fails the run. A mail that cannot be sent is kept
 * in `pendingDir` and retried by the next run (`flushPendingAlerts`); a failing alert never hides or
 * replaces the error it reports. Returns whether the mail went out.
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
  const [mailed] = await Promise.all([
    sendAlertMail(channels.mail, others.length > 0, pendingDir, alert, log),
    ...others,
  ]);
  return mailed;
}

async function sendVia(log: Logger, what: string, alert: Alert, sending: Promise<void>): Promise<void> {
  try {
    await sending;
    log.info({ step: 'alert' }, `alert sent via ${what}: ${alert.subject}`);
  } catch (e) {
    log.error({ step: 'alert' }, `alert via ${what} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

async function sendAlertMail(
  mail: MailConfig | undefined,
  otherChannels: boolean,
  pendingDir: string,
  alert: Alert,
  log: Logger,
): Promise<boolean> {
  if (!mail) {
    if (!otherChannels)
      log.warn({ step: 'alert' }, `no alert channel configured; not sent: ${alert.subject}`);
    return false;
  }
  try {
    await sendMail(mail, alert);
    log.info({ step: 'alert', to: mail.to }, `alert mailed: ${alert.subject}`);
    return true;
  } catch (e) {
    log.error({ step: 'alert' }, `alert mail failed, kept for the next run: ${oneLine(e)}`);
    try {
      await mkdirp(pendingDir, 0o700);
      const file = join(pendingDir, `${Date.now()}-${process.pid}.json`);
      await writeFileAtomic(file, JSON.stringify({ ...alert, failedAt: new Date().toISOString() }), 0o600);
    } catch (e2) {
      log.error({ step: 'alert' }, `could not keep the alert either: ${oneLine(e2)}`);
    }
    return false;
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
      await sendMail(mail, {
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

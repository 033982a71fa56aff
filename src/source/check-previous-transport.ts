import type { SourceConfig } from '../config/schema.js';
import { formatAge } from '../core/duration.js';
import { judgePreviousTransport, type TransportJudgement } from '../core/transport.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import type { Logger } from '../adapters/log.js';
import type { BackupPlan } from './preflight.js';
import { sourceState } from './state.js';

/**
 * The "previous transport failed" case: generations an earlier run left in a handover and the
 * sink never acked. Mails an alert naming source, stream(s) and the pending generations; the
 * pending generations stay (nothing the sink has not confirmed is deleted).
 */
export async function checkPreviousTransport(
  config: SourceConfig,
  plan: BackupPlan,
  now: Date,
  log: Logger,
): Promise<TransportJudgement> {
  const pending = plan.streams.flatMap((s) =>
    s.pending.map((g) => ({ stream: s.name, id: g.id, createdAt: g.createdAt })),
  );
  const j = judgePreviousTransport(pending, now, config.alerts.transportOverdue);
  if (!j.failed) return j;
  log.error(
    { step: 'check-previous-transport', pending: j.overdue.map((p) => `${p.stream}/${p.id}`) },
    j.summary,
  );
  const lines = j.overdue.map(
    (p) => `  ${p.stream.padEnd(5)} ${p.id}  ${formatAge(now.getTime() - p.createdAt.getTime())} old`,
  );
  const streams = [...new Set(j.overdue.map((p) => p.stream))].join(' and ');
  await sendAlert(
    config.alerts,
    sourceState(config).pendingAlerts,
    {
      subject: alertSubject(
        config.name,
        `transport of ${streams} failed — ${j.overdue.length} generation(s) not acked`,
      ),
      text:
        `The sink has not acked these generations of source "${config.name}":\n\n${lines.join('\n')}\n\n` +
        `They stay in the handover until the sink pulls and acks them; this run adds a new generation beside them.\n` +
        `Check the sink: its \`baton sink pull\` cron job, its log, ssh from the sink to this host as the stream user.\n` +
        alertFooter(),
    },
    log,
  );
  return j;
}

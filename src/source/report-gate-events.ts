import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { SourceConfig, StreamName } from '../config/schema.js';
import { describeGateEvent } from '../core/gate-events.js';
import { oneLine } from '../errors.js';
import { readGateEvents, type StoredGateEvent } from '../adapters/gate-events.js';
import { writeFileAtomic } from '../adapters/fsx.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import type { Logger } from '../adapters/log.js';
import { sourceState } from './state.js';

/**
 * Gate events (refused acks, rejects; src/core/gate-events.ts) are written by the gate, which runs as
 * the stream user and may not be able to mail. `source backup` (root) mails the new ones; which ones
 * were mailed is kept in the state dir (the newest mailed name per stream), never by deleting in the
 * stream user's directory. Names more than a day ahead of the clock are left out (they would hide
 * later events).
 */

const seenSchema = z.object({ data: z.string().max(64).optional(), logs: z.string().max(64).optional() });
type Seen = z.infer<typeof seenSchema>;
const AHEAD_MS = 24 * 3600_000;

function seenFile(config: SourceConfig): string {
  return join(sourceState(config).root, 'gate-events-mailed.json');
}

async function readSeen(config: SourceConfig): Promise<Seen> {
  try {
    const r = seenSchema.safeParse(JSON.parse(await readFile(seenFile(config), 'utf8')));
    return r.success ? r.data : {};
  } catch {
    return {};
  }
}

function handovers(config: SourceConfig): Array<{ stream: StreamName; handover: string }> {
  return [
    { stream: 'data', handover: config.streams.data.handover },
    ...(config.streams.logs ? [{ stream: 'logs' as const, handover: config.streams.logs.handover }] : []),
  ];
}

function notAhead(e: StoredGateEvent, now: Date): boolean {
  return (
    Date.parse(e.event.time) <= now.getTime() + AHEAD_MS &&
    e.name.slice(0, 4) <= String(now.getUTCFullYear() + 1)
  );
}

/** Per stream, the gate events not yet mailed (oldest first, at most the bound the reader keeps). */
export async function unmailedGateEvents(
  config: SourceConfig,
  now: Date,
): Promise<Array<{ stream: StreamName; events: StoredGateEvent[] }>> {
  const seen = await readSeen(config);
  const out: Array<{ stream: StreamName; events: StoredGateEvent[] }> = [];
  for (const { stream, handover } of handovers(config)) {
    const events = (await readGateEvents(handover, seen[stream]).catch(() => [])).filter((e) =>
      notAhead(e, now),
    );
    if (events.length > 0) out.push({ stream, events });
  }
  return out;
}

/** Mails the new gate events as one alert and remembers them as mailed. Never fails the backup. */
export async function reportGateEvents(config: SourceConfig, now: Date, log: Logger): Promise<void> {
  try {
    const fresh = await unmailedGateEvents(config, now);
    if (fresh.length === 0) return;
    const lines = fresh.flatMap(({ events }) => events.map((e) => describeGateEvent(e.event)));
    const kinds = [...new Set(fresh.flatMap(({ events }) => events.map((e) => e.event.kind)))].join(', ');
    log.warn({ step: 'gate-events', events: lines.length }, `${lines.length} gate event(s): ${kinds}`);
    await sendAlert(
      config.alerts,
      sourceState(config).pendingAlerts,
      {
        subject: alertSubject(config.name, `gate ${kinds}: ${lines.length} event(s)`),
        text:
          `The gate of "${config.name}" (the sink's forced command) recorded:\n\n${lines.join('\n')}\n\n` +
          `ack-refused: a caller with a sink key asked to ack a generation without proving it holds it (a stolen key?) or with a wrong hash; nothing was moved or deleted.\n` +
          `rejected: the sink failed to verify a generation; it is kept in <handover>/.rejected/<id> — inspect it, then delete it or move it back into the handover to have it pulled again.\n` +
          `reject-refused: the sink asked to set a generation aside but the gate refused (e.g. .rejected/ full); it stays pending.\n` +
          `Records: <handover>/.gate-events/ (the newest 50 are kept).\n` +
          alertFooter(),
      },
      log,
    );
    const seen = await readSeen(config);
    for (const { stream, events } of fresh) {
      const last = events.at(-1);
      if (last) seen[stream] = last.name;
    }
    await writeFileAtomic(seenFile(config), `${JSON.stringify(seen)}\n`, 0o600);
  } catch (e) {
    log.error({ step: 'gate-events' }, `could not report gate events: ${oneLine(e)}`);
  }
}

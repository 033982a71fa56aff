import { z } from 'zod';

/**
 * Gate events: what the gate refused or set aside (a wrong ack proof, a reject), recorded as small files
 * in `<handover>/.gate-events/` because the gate runs as the unprivileged stream user and may not be able
 * to mail. The next `baton source backup` (root) mails them, `baton status` shows them. The directory is
 * writable by the stream user: its names and contents are parsed and bounded like any hostile input.
 */

export { GATE_EVENTS_DIR } from '../generation/names.js';
/** The most event files the gate keeps (oldest dropped first) and a reader looks at. */
export const MAX_GATE_EVENTS = 50;
/** The largest event file a reader accepts. */
export const MAX_GATE_EVENT_BYTES = 2048;
/** Field lengths in an event. */
const MAX_TEXT = 300;

/** `20261207T122856123Z-0a1b2c3d.json`: sorts by time. */
const NAME = /^([0-9]{8}T[0-9]{9}Z)-[0-9a-f]{8}\.json$/;

export const gateEventSchema = z
  .object({
    v: z.literal(1),
    time: z.iso.datetime(),
    kind: z.enum(['ack-refused', 'rejected', 'reject-refused']),
    source: z.string().max(64),
    stream: z.enum(['data', 'logs']),
    id: z.string().max(32).nullable(),
    client: z.string().max(64).nullable(),
    reason: z.string().max(MAX_TEXT),
  })
  .strict();
export type GateEvent = z.infer<typeof gateEventSchema>;

/** The file name for an event at `time` with 4 random bytes (8 hex). */
export function gateEventName(time: Date, randomHex: string): string {
  const stamp = time.toISOString().replace(/[-:.]/g, '');
  return `${stamp}-${randomHex}.json`;
}

/** Whether `name` is an event file name (else a reader ignores it). */
export function isGateEventName(name: string): boolean {
  return NAME.test(name);
}

/** Cuts a text to what an event holds, on one line. */
export function eventText(text: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return flat.length > MAX_TEXT ? `${flat.slice(0, MAX_TEXT - 1)}…` : flat;
}

/** Parses an event file's text; undefined when it is not one. */
export function parseGateEvent(text: string): GateEvent | undefined {
  if (text.length > MAX_GATE_EVENT_BYTES) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = gateEventSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

/** One line for mails and status: `2026-12-07T12:28:56Z data ack-refused 2026-…Z from 10.0.0.7: reason`. */
export function describeGateEvent(e: GateEvent): string {
  return `${e.time} ${e.stream} ${e.kind}${e.id ? ` ${e.id}` : ''}${e.client ? ` from ${e.client}` : ''}: ${e.reason}`;
}

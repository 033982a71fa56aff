import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, opendir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  GATE_EVENTS_DIR,
  gateEventName,
  isGateEventName,
  MAX_GATE_EVENT_BYTES,
  MAX_GATE_EVENTS,
  parseGateEvent,
  type GateEvent,
} from '../core/gate-events.js';
import { errnoCode } from '../errors.js';

/** How many directory entries a reader looks at, at most (the directory is the stream user's). */
const MAX_SCANNED = 10 * MAX_GATE_EVENTS;

/** The event file names in `dir`, oldest first, from at most {@link MAX_SCANNED} entries. */
async function eventNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  let scanned = 0;
  const d = await opendir(dir);
  try {
    for await (const e of d) {
      if (++scanned > MAX_SCANNED) break;
      if (e.isFile() && isGateEventName(e.name)) names.push(e.name);
    }
  } finally {
    await d.close().catch(() => undefined);
  }
  return names.sort();
}

/** The events directory, if it is a real directory (never through a symlink). */
async function eventsDir(handover: string): Promise<string | undefined> {
  const dir = join(handover, GATE_EVENTS_DIR);
  try {
    return (await lstat(dir)).isDirectory() ? dir : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The gate's side (runs as the stream user): writes `event` into `<handover>/.gate-events/`, first
 * dropping the oldest events beyond {@link MAX_GATE_EVENTS} − 1. Returns the time of the newest event
 * that was there before (to rate-limit direct mails), or undefined.
 */
export async function recordGateEvent(
  handover: string,
  event: GateEvent,
  now: Date,
): Promise<Date | undefined> {
  const dir = join(handover, GATE_EVENTS_DIR);
  await mkdir(dir, { mode: 0o750 }).catch((err: unknown) => {
    if (errnoCode(err) !== 'EEXIST') throw err;
  });
  if (!(await lstat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
  const names = await eventNames(dir);
  for (const name of names.slice(0, Math.max(0, names.length - (MAX_GATE_EVENTS - 1)))) {
    await unlink(join(dir, name)).catch(() => undefined);
  }
  const newest = names.at(-1);
  const text = `${JSON.stringify(event)}\n`;
  const fh = await open(
    join(dir, gateEventName(now, randomBytes(4).toString('hex'))),
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
    0o640,
  );
  try {
    await fh.writeFile(text.length <= MAX_GATE_EVENT_BYTES ? text : text.slice(0, MAX_GATE_EVENT_BYTES));
    await fh.sync();
  } finally {
    await fh.close();
  }
  return newest === undefined ? undefined : timeOfName(newest);
}

function timeOfName(name: string): Date | undefined {
  const m = /^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{3})Z/.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number) as [number, ...number[]];
  return new Date(Date.UTC(y ?? 0, (mo ?? 1) - 1, d, h, mi, s, ms));
}

export interface StoredGateEvent {
  name: string;
  event: GateEvent;
}

/**
 * The reader's side (root: `source backup`, `status`): the newest {@link MAX_GATE_EVENTS} well-formed
 * events in `<handover>/.gate-events/`, oldest first, optionally only those named after `after`.
 * Files are opened without following symlinks or blocking on FIFOs, and read only up to the size bound;
 * anything else is skipped. Never writes or deletes there.
 */
export async function readGateEvents(handover: string, after?: string): Promise<StoredGateEvent[]> {
  const dir = await eventsDir(handover);
  if (dir === undefined) return [];
  const names = (await eventNames(dir))
    .filter((n) => after === undefined || n > after)
    .slice(-MAX_GATE_EVENTS);
  const out: StoredGateEvent[] = [];
  for (const name of names) {
    let fh;
    try {
      fh = await open(
        join(dir, name),
        fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK,
      );
    } catch {
      continue;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size > MAX_GATE_EVENT_BYTES) continue;
      const buf = Buffer.alloc(MAX_GATE_EVENT_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_GATE_EVENT_BYTES) continue;
      const event = parseGateEvent(buf.subarray(0, bytesRead).toString('utf8'));
      if (event) out.push({ name, event });
    } catch {
      /* unreadable: skipped */
    } finally {
      await fh.close();
    }
  }
  return out;
}

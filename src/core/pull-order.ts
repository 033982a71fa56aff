/**
 * Which sources a sink pull starts, and in what order (pure: the caller passes the local time and
 * what it knows of each source's last success).
 */

/** `HH:MM-HH:MM`, 24-hour local time; the end may be earlier than the start (the window crosses midnight). */
export const PULL_WINDOW_PATTERN = /^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$/;

/** Minutes since local midnight of `HH:MM`. */
function minutes(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

/**
 * True when `minuteOfDay` (0–1439, local) is inside `window`: from its start (inclusive) to its end
 * (exclusive); `22:00-06:00` holds 23:30 and 05:59 but not 06:00. Throws on a malformed window.
 */
export function inPullWindow(window: string, minuteOfDay: number): boolean {
  if (!PULL_WINDOW_PATTERN.test(window)) throw new RangeError(`not a time window: ${JSON.stringify(window)}`);
  const start = minutes(window.slice(0, 5));
  const end = minutes(window.slice(6));
  if (start === end) throw new RangeError(`time window ${window} is empty`);
  return start < end ? minuteOfDay >= start && minuteOfDay < end : minuteOfDay >= start || minuteOfDay < end;
}

/** Minutes since local midnight of `at` in the host's time zone (what `window:` is written in). */
export function localMinuteOfDay(at: Date): number {
  return at.getHours() * 60 + at.getMinutes();
}

export interface PullCandidate {
  /** higher first (default 0) */
  priority: number;
  /** when this source and stream last succeeded; undefined (never) goes before any date */
  lastSuccess: Date | undefined;
}

/**
 * The order parallel pulls start in: higher `priority` first, then the oldest last success (never
 * first), then the configured order. Returns a new array; the input is not changed.
 */
export function orderPulls<T extends PullCandidate>(items: readonly T[]): T[] {
  const time = (d: Date | undefined) => (d === undefined ? -Infinity : d.getTime());
  return items
    .map((item, index) => ({ item, index }))
    .sort(
      (a, b) =>
        b.item.priority - a.item.priority ||
        time(a.item.lastSuccess) - time(b.item.lastSuccess) ||
        a.index - b.index,
    )
    .map((x) => x.item);
}

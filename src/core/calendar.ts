/**
 * Calendar buckets of an instant in a time zone: the day, ISO week, month and year it falls in there.
 * Pure (Intl only; the zone's rules come from the ICU data Node ships, never from the host clock).
 */

export type CalendarUnit = 'daily' | 'weekly' | 'monthly' | 'yearly';
export const CALENDAR_UNITS: readonly CalendarUnit[] = ['daily', 'weekly', 'monthly', 'yearly'];

export type CalendarKeys = Record<CalendarUnit, string>;

const DAY_MS = 86_400_000;

/** The host's time zone as the runtime sees it (`TZ`, else /etc/localtime). */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/**
 * A function from an instant to its bucket keys in `timeZone` (IANA name; throws RangeError on an
 * unknown one): `2026-12-07`, `2026-W50` (ISO 8601 week-numbering year and week), `2026-12`, `2026`.
 */
export function calendarKeysIn(timeZone: string): (at: Date) => CalendarKeys {
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
  });
  return (at) => {
    let y = 0;
    let m = 0;
    let d = 0;
    for (const p of fmt.formatToParts(at)) {
      if (p.type === 'year') y = Number(p.value);
      else if (p.type === 'month') m = Number(p.value);
      else if (p.type === 'day') d = Number(p.value);
    }
    const pad = (n: number, w = 2) => String(n).padStart(w, '0');
    const { year: wy, week } = isoWeek(y, m, d);
    return {
      daily: `${pad(y, 4)}-${pad(m)}-${pad(d)}`,
      weekly: `${pad(wy, 4)}-W${pad(week)}`,
      monthly: `${pad(y, 4)}-${pad(m)}`,
      yearly: pad(y, 4),
    };
  };
}

/** ISO 8601 week of a calendar date: the week (Monday first) holding its Thursday, numbered in that Thursday's year. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const t = utcDay(year, month, day);
  const mondayBased = (new Date(t).getUTCDay() + 6) % 7;
  const thursday = t + (3 - mondayBased) * DAY_MS;
  const wy = new Date(thursday).getUTCFullYear();
  return { year: wy, week: 1 + Math.floor((thursday - utcDay(wy, 1, 1)) / (7 * DAY_MS)) };
}

/** Midnight UTC of a calendar date (years below 100 too, which Date.UTC would move to 19xx). */
function utcDay(year: number, month: number, day: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  return d.getTime();
}

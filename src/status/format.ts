/** Small formatters shared by the text and HTML status reports. */
import type { StreamReport } from './report.js';

export { formatBytes } from '../core/run-summary.js';

/** 3200 → `3.20s`, 95000 → `1m 35s`, 2 h → `2h 0m`; null → `` (unknown). */
export function formatDowntime(ms: number | null): string {
  if (ms === null) return '';
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h ${Math.floor((ms % 3_600_000) / 60_000)}m`;
}

/** `2026-11-28T06:19:22.123Z` → `2026-11-28 06:19Z` (what a table has room for). */
export function formatInstant(iso: string | null): string {
  if (iso === null) return '';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`;
}

/** Seconds as a run duration: `0.4s`, `12.3s`, `4m 2s`. */
export function formatRunDuration(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
}

/**
 * What is wrong with a stream, as short labels for the STREAMS table, the HTML stores table and the
 * timeline: `FAILED` (its last run failed), `STALE`/`OVERDUE`, `DAMAGED` (a generation failed `baton
 * verify`), `OFFSITE STALE`, `OFFSITE FAILED`. Empty when nothing is.
 */
export function streamFlags(s: StreamReport): string[] {
  const flags: string[] = [];
  if (s.lastRunOk === false) flags.push('FAILED');
  if (s.stale) flags.push(s.stale.reason === 'no-new-generation' ? 'STALE' : 'OVERDUE');
  if (s.stores.some((st) => st.generations.some((g) => g.bad === true))) flags.push('DAMAGED');
  if (s.offsite?.stale === true) flags.push('OFFSITE STALE');
  if (s.offsite !== null && s.offsite.lastError !== null) flags.push('OFFSITE FAILED');
  return flags;
}

/** The one-word state of a stream: its flags, else `empty` (no generation yet) or `ok`. */
export function streamState(s: StreamReport): { text: string; bad: boolean } {
  const flags = streamFlags(s);
  if (flags.length > 0) return { text: flags.join(', '), bad: true };
  if (s.waiting !== undefined) return { text: 'waiting', bad: false };
  return { text: s.newest === null ? 'empty' : 'ok', bad: false };
}

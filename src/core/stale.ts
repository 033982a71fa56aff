import type { StreamName } from './streams.js';
import { formatAge, formatDuration } from './duration.js';

/** How far a generation id may be ahead of this host's clock before it counts as "from the future". */
export const DEFAULT_FUTURE_SKEW_MS = 10 * 60_000;

/**
 * The newest of `gens` (oldest first, as listed) that is not ahead of `now` by more than
 * `skewMs`: ids from the future never stand for the newest backup.
 */
export function newestNotAhead<G extends { createdAt: Date }>(
  gens: readonly G[],
  now: Date,
  skewMs: number,
): G | undefined {
  for (let i = gens.length - 1; i >= 0; i--) {
    const g = gens[i];
    if (g && g.createdAt.getTime() - now.getTime() <= skewMs) return g;
  }
  return undefined;
}

/** What the sink knows about one source/stream when it asks "is this stream stale?". */
export interface StreamFreshness {
  source: string;
  stream: StreamName;
  /** id and creation time of the newest verified generation in the sink store, if there is one */
  newest: { id: string; createdAt: Date } | undefined;
  /**
   * Since when a generation has been expected (the first time this stream was checked). Only used
   * when there is no generation at all: without it an empty store is not judged stale.
   */
  watchedSince?: Date | undefined;
}

export interface StaleVerdict {
  source: string;
  stream: StreamName;
  stale: boolean;
  /** age of the newest generation (or of the watch, when there is none); undefined when unknown */
  ageMs: number | undefined;
  /** one line for mails, logs and `status`: `shop/data: no new verified generation for 2d 0h (staleAfter 30h)` */
  message: string;
}

/**
 * Given each stream's newest verified generation, says which streams are stale: the newest is
 * older than `staleAfterMs` (strictly), or there is none at all and the stream has been watched
 * for longer than that. Returns one verdict per stream, in the order given.
 */
export function judgeStale(
  streams: readonly StreamFreshness[],
  now: Date,
  staleAfterMs: number,
  futureSkewMs = DEFAULT_FUTURE_SKEW_MS,
): StaleVerdict[] {
  const limit = formatDuration(staleAfterMs);
  return streams.map((s) => {
    const who = `${s.source}/${s.stream}`;
    if (s.newest !== undefined) {
      const ageMs = now.getTime() - s.newest.createdAt.getTime();
      if (-ageMs > futureSkewMs) {
        // never "fresh, age 0": an id from the future proves nothing about the last good backup
        return {
          source: s.source,
          stream: s.stream,
          stale: true,
          ageMs: undefined,
          message: `${who}: newest generation ${s.newest.id} is dated ${formatAge(-ageMs)} ahead of this host's clock (a source clock problem or a planted id): not counted as fresh`,
        };
      }
      const stale = ageMs > staleAfterMs;
      return {
        source: s.source,
        stream: s.stream,
        stale,
        ageMs,
        message: stale
          ? `${who}: no new verified generation for ${formatAge(ageMs)} (newest ${s.newest.id}, staleAfter ${limit})`
          : `${who}: newest verified generation ${s.newest.id} is ${formatAge(ageMs)} old`,
      };
    }
    if (s.watchedSince === undefined) {
      return {
        source: s.source,
        stream: s.stream,
        stale: false,
        ageMs: undefined,
        message: `${who}: no verified generation yet`,
      };
    }
    const ageMs = now.getTime() - s.watchedSince.getTime();
    const stale = ageMs > staleAfterMs;
    return {
      source: s.source,
      stream: s.stream,
      stale,
      ageMs,
      message: stale
        ? `${who}: no verified generation at all in ${formatAge(ageMs)} (staleAfter ${limit})`
        : `${who}: no verified generation yet (watched for ${formatAge(ageMs)})`,
    };
  });
}

export interface PendingHandover {
  id: string;
  createdAt: Date;
}

/**
 * Given the generations waiting in a source's handover, returns those whose transport is overdue
 * (oldest first): older than `overdueMs` (strictly) when it is set; without it, those left from an
 * earlier run, i.e. created before the last backup started and not made by it.
 */
export function judgeOverdueHandovers(
  pending: readonly PendingHandover[],
  now: Date,
  overdueMs: number | undefined,
  lastRun: { startedAt: Date; id: string | undefined } | undefined,
): PendingHandover[] {
  const lastStartSecond =
    lastRun === undefined ? undefined : Math.floor(lastRun.startedAt.getTime() / 1000) * 1000;
  return pending
    .filter((p) =>
      overdueMs !== undefined
        ? now.getTime() - p.createdAt.getTime() > overdueMs
        : lastStartSecond !== undefined && p.createdAt.getTime() < lastStartSecond && p.id !== lastRun?.id,
    )
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

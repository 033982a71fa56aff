import type { StreamName } from './streams.js';
import { formatAge, formatDuration } from './duration.js';
import { parseGenerationId } from '../generation/names.js';

/** What the sink knows, without the network, about one source/stream's offsite copy. */
export interface OffsiteLagFacts {
  source: string;
  stream: StreamName;
  /** the sink store's verified generations (not marked bad, not from the future): oldest and newest */
  sinkOldest: { id: string; createdAt: Date } | undefined;
  sinkNewest: { id: string; createdAt: Date } | undefined;
  /** the newest committed generation offsite, as the last push recorded it (src/offsite/push-state.ts) */
  offsiteNewest: string | undefined;
}

export interface OffsiteLagVerdict {
  source: string;
  stream: StreamName;
  stale: boolean;
  /** how far the offsite copy is behind; undefined when the sink store holds nothing to copy */
  lagMs: number | undefined;
  /** one line for mails, logs and `status` */
  message: string;
}

/**
 * Is the offsite copy of a stream too far behind the sink store (`alerts.offsiteStaleAfter`)?
 * With a committed generation offsite: the sink's newest verified generation is newer than the newest
 * offsite commit by more than `limitMs` (strictly). With none: the sink has held a verified generation
 * for longer than `limitMs` (its oldest one's age) and none of it is offsite. An empty sink store never
 * is. Pure; ids that do not parse count as no commit.
 */
export function judgeOffsiteLag(f: OffsiteLagFacts, now: Date, limitMs: number): OffsiteLagVerdict {
  const who = `${f.source}/${f.stream}`;
  const limit = formatDuration(limitMs);
  const base = { source: f.source, stream: f.stream };
  if (f.sinkNewest === undefined)
    return { ...base, stale: false, lagMs: undefined, message: `${who}: nothing in the sink store to copy` };
  const offsiteAt = f.offsiteNewest === undefined ? undefined : parseGenerationId(f.offsiteNewest);
  if (offsiteAt === undefined) {
    const since = f.sinkOldest?.createdAt ?? f.sinkNewest.createdAt;
    const lagMs = Math.max(0, now.getTime() - since.getTime());
    return {
      ...base,
      stale: lagMs > limitMs,
      lagMs,
      message: `${who}: no generation offsite, the sink store has held one for ${formatAge(lagMs)} (offsiteStaleAfter ${limit})`,
    };
  }
  const lagMs = Math.max(0, f.sinkNewest.createdAt.getTime() - offsiteAt.getTime());
  return {
    ...base,
    stale: lagMs > limitMs,
    lagMs,
    message: `${who}: the offsite copy lags the sink store by ${formatAge(lagMs)} (newest offsite ${f.offsiteNewest ?? ''}, newest in the sink store ${f.sinkNewest.id}, offsiteStaleAfter ${limit})`,
  };
}

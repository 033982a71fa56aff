import type { StreamName } from './streams.js';
import { formatAge } from './duration.js';

export interface PendingGeneration {
  stream: StreamName;
  id: string;
  createdAt: Date;
}

export interface TransportJudgement {
  failed: boolean;
  /** the pending generations that prove the failure, oldest first */
  overdue: PendingGeneration[];
  summary: string;
}

/**
 * Given the complete generations still in the handovers at the start of a backup, says whether
 * the previous transport failed: any of them older than `overdueMs`, or — without a threshold —
 * any at all (each was left by an earlier run and should have been acked by now).
 */
export function judgePreviousTransport(
  pending: readonly PendingGeneration[],
  now: Date,
  overdueMs: number | undefined,
): TransportJudgement {
  const overdue = pending
    .filter((p) => overdueMs === undefined || now.getTime() - p.createdAt.getTime() > overdueMs)
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  if (overdue.length === 0) return { failed: false, overdue, summary: 'previous transport ok' };
  const streams = [...new Set(overdue.map((p) => p.stream))].join(' and ');
  const oldest = overdue[0];
  const age = oldest ? formatAge(now.getTime() - oldest.createdAt.getTime()) : '';
  return {
    failed: true,
    overdue,
    summary: `transport of ${streams} failed: ${overdue.length} generation(s) not acked by the sink, oldest ${age} old`,
  };
}

import type { StreamName } from '../config/schema.js';

/**
 * `baton status`: what each store holds, what waits, how the last runs went, what is stale, and how
 * far back a user can go. The JSON form of StatusReport is a documented interface: docs/status-json.md.
 * Change it only by adding fields; anything else needs a new `format`.
 */
export const STATUS_FORMAT = 'baton-status/1';

export type StoreKind = 'handover' | 'source store' | 'sink store';

export interface GenerationReport {
  id: string;
  createdAt: string;
  ageSeconds: number;
  files: number | null;
  bytes: number | null;
  bytesNew: number | null;
  downtimeMs: number | null;
  /** checked against its manifest by the sink before it was published (sink store) or acked (source store) */
  verified: boolean;
  /** sink store: a later `baton verify` found it damaged (`.bad/<id>`); then `verified` is false. Absent otherwise. */
  bad?: true;
}

export interface StoreReport {
  kind: StoreKind;
  dir: string;
  /** oldest first */
  generations: GenerationReport[];
}

export interface PendingReport {
  id: string;
  createdAt: string;
  ageSeconds: number;
  /** the transport should have taken it by now (alerts.transportOverdue, or left from an earlier run) */
  overdue: boolean;
}

export interface QuarantineReport {
  name: string;
  id: string | null;
  quarantinedAt: string | null;
}

export interface StaleReport {
  reason: 'no-new-generation' | 'transport-overdue';
  ageSeconds: number | null;
  limitSeconds: number | null;
  message: string;
}

export interface StreamReport {
  source: string;
  stream: StreamName;
  stores: StoreReport[];
  /** source host: the generations waiting in the handover, oldest first; always [] on a sink */
  pending: PendingReport[];
  /** sink host: generations that failed verification, in `.quarantine/`; always [] on a source */
  quarantined: QuarantineReport[];
  /** the newest generation in any of this host's stores */
  newest: { id: string; ageSeconds: number } | null;
  stale: StaleReport | null;
  /** how the last run for this stream ended (sink: its last pull; source: the last backup); null when none is recorded */
  lastRunOk: boolean | null;
  /** sink: set while the source is outside its `window:` (pulls skip it; not a problem) */
  waiting?: string;
  /** sink with `offsite:` configured: the offsite tier as the last push recorded it; null otherwise */
  offsite: OffsiteReport | null;
}

/**
 * The offsite copy of one source/stream, read from what the last `baton offsite push` recorded in the
 * sink's state dir (no network at status time).
 */
export interface OffsiteReport {
  /** the newest committed generation offsite; null when the last push saw none (or none ran yet) */
  newest: { id: string; createdAt: string; ageSeconds: number } | null;
  /** when a push last checked the bucket successfully; null when none did */
  checkedAt: string | null;
  /** the last push failed: its one-line error and when; null when the last push succeeded */
  lastError: string | null;
  lastErrorAt: string | null;
  /** how far the offsite copy is behind the sink store's newest verified generation; null when nothing to copy */
  lagSeconds: number | null;
  /** lagSeconds is over alerts.offsiteStaleAfter */
  stale: boolean;
}

export interface RunReport {
  job: string;
  source: string;
  /** null for the source backup (one run makes every stream's generation) */
  stream: StreamName | null;
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  error: string | null;
  /** the generation a successful source backup made */
  generation: string | null;
}

export interface RecoveryPoint {
  /** `offsite`: the newest offsite commit (oldest and count are unknown without the network: null) */
  kind: StoreKind | 'tier' | 'offsite';
  name: string;
  source: string | null;
  stream: StreamName | null;
  scope: string;
  count: number | null;
  oldest: string | null;
  newest: string | null;
  keepDays: number | null;
}

export interface Problem {
  kind:
    | 'stale'
    | 'transport-overdue'
    | 'run-failed'
    | 'run-record'
    | 'damaged'
    | 'store-unusable'
    | 'future'
    | 'gate-event'
    | 'offsite-stale'
    | 'offsite-push-failed';
  /** null for a problem of the sink store as a whole */
  source: string | null;
  stream: StreamName | null;
  message: string;
}

export interface StatusReport {
  format: typeof STATUS_FORMAT;
  host: 'source' | 'sink';
  /** the source's name on a source host; null on a sink */
  name: string | null;
  now: string;
  /** false when there is a problem: `baton status` then exits 1 */
  ok: boolean;
  checks: {
    staleAfterSeconds: number | null;
    transportOverdueSeconds: number | null;
    /** sink: alerts.offsiteStaleAfter; null when unset (or on a source) */
    offsiteStaleAfterSeconds: number | null;
  };
  problems: Problem[];
  streams: StreamReport[];
  lastRuns: RunReport[];
  /** the last runs per job and stream from the run history files (at most 30 each), oldest first per job */
  runHistory: RunReport[];
  recoveryPoints: RecoveryPoint[];
}

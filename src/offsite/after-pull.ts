import type { SinkConfig, StreamName } from '../config/schema.js';
import { oneLine } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { runOffsitePushJob, type PushOutcome } from './run-push.js';

/** What `pushAfterPull` needs of each pulled source and stream (a `sink pull` StreamOutcome). */
export interface PulledStream {
  source: string;
  stream: StreamName;
  ok: boolean;
}

export interface AfterPullPush {
  source: string;
  stream: StreamName;
  outcome: PushOutcome;
}

/**
 * `offsite.afterPull: true`: at the end of a `sink pull` (after its acks), push each source and
 * stream whose pull succeeded, one after the other (one push per bucket prefix at a time anyway).
 * A failed push is its own alert and log line (runOffsitePushJob); it never throws, so it can never
 * fail or undo the pull, and the pull's exit code does not depend on it.
 */
export async function pushAfterPull(
  config: SinkConfig,
  pulled: readonly PulledStream[],
  opts: { now: () => Date; log: Logger },
): Promise<AfterPullPush[]> {
  if (config.offsite === undefined || !config.offsite.afterPull) return [];
  const done: AfterPullPush[] = [];
  for (const p of pulled) {
    if (!p.ok) continue;
    let outcome: PushOutcome;
    try {
      outcome = await runOffsitePushJob(config, { source: p.source, stream: p.stream, ...opts });
    } catch (e) {
      // runOffsitePushJob alerts and never throws for a failed push; this is the last guard
      // (e.g. metrics that cannot be written) so the pull stays as it was.
      opts.log.error(
        { step: 'offsite', source: p.source, stream: p.stream },
        `offsite push after pull failed: ${oneLine(e)}`,
      );
      outcome = { ok: false, locked: false, error: oneLine(e) };
    }
    done.push({ source: p.source, stream: p.stream, outcome });
  }
  return done;
}

import type { SinkConfig, StreamName } from '../config/schema.js';
import { formatAge } from '../core/duration.js';
import { newestNotAhead } from '../core/stale.js';
import { judgeOffsiteLag, type OffsiteLagFacts, type OffsiteLagVerdict } from '../core/offsite-lag.js';
import { listGenerations } from '../generation/list.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import type { Logger } from '../adapters/log.js';
import { oneLine } from '../errors.js';
import { readPushState, type PushState } from '../offsite/push-state.js';
import { listBadMarks } from './bad-marks.js';
import { sinkPaths } from './state.js';

/**
 * The facts judgeOffsiteLag needs for one source/stream: the sink store's verified generations (not
 * marked bad by `baton verify`, not dated ahead of the clock) and the newest offsite commit the last
 * push recorded. No network.
 */
export async function offsiteLagFacts(
  config: SinkConfig,
  source: string,
  stream: StreamName,
  now: Date,
): Promise<OffsiteLagFacts & { pushed: PushState | undefined }> {
  const dir = sinkPaths(config, source, stream).streamDir;
  const bad = await listBadMarks(dir);
  const good = (await listGenerations(dir)).filter((g) => !bad.has(g.id));
  const newest = newestNotAhead(good, now, config.limits.futureSkew);
  const oldest = good[0];
  const pushed = await readPushState(config, source, stream);
  return {
    source,
    stream,
    sinkOldest: oldest && newest && { id: oldest.id, createdAt: oldest.createdAt },
    sinkNewest: newest && { id: newest.id, createdAt: newest.createdAt },
    offsiteNewest: pushed?.newest,
    pushed,
  };
}

/**
 * After `baton sink pull` (and its `afterPull` push): every source/stream of the run (not those another
 * run held locked) whose offsite copy lags the sink store by more than `alerts.offsiteStaleAfter` gets
 * an alert mail and an error log line. Its own alert, like a failed push: it never fails the pull.
 * Without `offsite` or `offsiteStaleAfter` it does nothing. Returns the stale verdicts.
 */
export async function checkOffsiteLag(
  config: SinkConfig,
  streams: ReadonlyArray<{ source: string; stream: StreamName; locked: boolean }>,
  opts: { now: () => Date; log: Logger },
): Promise<OffsiteLagVerdict[]> {
  const limit = config.alerts.offsiteStaleAfter;
  if (config.offsite === undefined || limit === undefined) return [];
  const now = opts.now();
  const stale: OffsiteLagVerdict[] = [];
  for (const s of streams) {
    if (s.locked) continue;
    let v: OffsiteLagVerdict;
    try {
      v = judgeOffsiteLag(await offsiteLagFacts(config, s.source, s.stream, now), now, limit);
    } catch (e) {
      opts.log.error(
        { step: 'offsite-stale', source: s.source, stream: s.stream },
        `cannot check the offsite copy: ${oneLine(e)}`,
      );
      continue;
    }
    if (!v.stale) continue;
    stale.push(v);
    opts.log.error({ step: 'offsite-stale', source: v.source, stream: v.stream }, v.message);
    await sendAlert(
      config.alerts,
      sinkPaths(config, v.source, v.stream).pendingAlerts,
      {
        subject: alertSubject(
          'sink',
          `${v.source}/${v.stream} OFFSITE STALE: the offsite copy is ${formatAge(v.lagMs ?? 0)} behind`,
        ),
        text:
          `${v.message}\n\n` +
          `The offsite copy of ${v.source}/${v.stream} is further behind the sink store than ` +
          `alerts.offsiteStaleAfter. Check that \`baton offsite push\` runs (cron, or offsite.afterPull) and ` +
          `succeeds: \`baton status\` shows the last push and its error, \`baton offsite push\` retries.\n` +
          alertFooter(),
      },
      opts.log,
    );
  }
  return stale;
}

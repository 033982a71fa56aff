import { join } from 'node:path';
import { z } from 'zod';
import type { SinkConfig, StreamName } from '../config/schema.js';
import { formatAge } from '../core/duration.js';
import { judgeStale, newestNotAhead, type StaleVerdict } from '../core/stale.js';
import { mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';
import { listGenerations } from '../generation/list.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import { ping } from '../adapters/ping.js';
import type { Logger } from '../adapters/log.js';
import { oneLine } from '../errors.js';
import { sinkPaths } from './state.js';

/**
 * `<stateDir>/watch/<source>-<stream>.json`: when the sink first looked for this stream. A stream that
 * never delivered a generation is stale once it has been watched for `staleAfter`.
 */
export function watchFile(config: SinkConfig, source: string, stream: StreamName): string {
  return join(config.stateDir, 'watch', `${source}-${stream}.json`);
}

const watchSchema = z.object({ watchedSince: z.iso.datetime() });

/** When the sink started watching this stream; undefined when it never did (or the record is bad). */
export async function readWatchedSince(file: string): Promise<Date | undefined> {
  const parsed = watchSchema.safeParse(await readJsonIfExists(file).catch(() => undefined));
  return parsed.success ? new Date(parsed.data.watchedSince) : undefined;
}

/** The facts judgeStale needs for one source/stream of the sink store. */
export async function streamFreshness(
  config: SinkConfig,
  source: string,
  stream: StreamName,
  now: Date = new Date(),
) {
  // an id from the future (planted, or a source clock far ahead) never counts as the newest backup
  const newest = newestNotAhead(
    await listGenerations(sinkPaths(config, source, stream).streamDir),
    now,
    config.limits.futureSkew,
  );
  return {
    source,
    stream,
    newest: newest && { id: newest.id, createdAt: newest.createdAt },
    watchedSince: await readWatchedSince(watchFile(config, source, stream)),
  };
}

/** The part of a pull's outcome this check reads and, for a stale stream, marks failed. */
export interface CheckedOutcome {
  source: string;
  stream: StreamName;
  ok: boolean;
  locked: boolean;
  error?: string;
}

/**
 * After the pulls of `baton sink pull STREAM`: every source/stream of this run (not those another
 * run holds locked) whose newest verified generation is older than `alerts.staleAfter` gets an alert
 * mail naming source, stream and age, and counts as failed (exit 1). Without `staleAfter` it does
 * nothing. Returns the stale verdicts.
 */
export async function checkStaleStreams(
  config: SinkConfig,
  outcomes: CheckedOutcome[],
  opts: { now: () => Date; log: Logger },
): Promise<StaleVerdict[]> {
  const staleAfter = config.alerts.staleAfter;
  if (staleAfter === undefined) return [];
  const now = opts.now();
  const checked = outcomes.filter((o) => !o.locked);
  const facts = [];
  for (const o of checked) {
    const f = await streamFreshness(config, o.source, o.stream, now);
    if (f.newest === undefined && f.watchedSince === undefined) {
      const file = watchFile(config, o.source, o.stream);
      await mkdirp(join(config.stateDir, 'watch'), 0o755);
      await writeFileAtomic(file, `${JSON.stringify({ watchedSince: now.toISOString() })}\n`).catch(
        (e: unknown) => opts.log.error({ step: 'stale' }, `could not record ${file}: ${oneLine(e)}`),
      );
      f.watchedSince = now;
    }
    facts.push(f);
  }
  const stale = judgeStale(facts, now, staleAfter, config.limits.futureSkew).filter((v) => v.stale);
  for (const v of stale) {
    const o = checked.find((c) => c.source === v.source && c.stream === v.stream);
    if (o?.ok) {
      o.ok = false;
      o.error = `stale: ${v.message}`;
    }
    opts.log.error({ step: 'stale', source: v.source, stream: v.stream }, v.message);
    const age = v.ageMs === undefined ? '' : ` for ${formatAge(v.ageMs)}`;
    await sendAlert(
      config.alerts,
      sinkPaths(config, v.source, v.stream).pendingAlerts,
      {
        subject: alertSubject('sink', `${v.source}/${v.stream} STALE: no new verified generation${age}`),
        text:
          `${v.message}\n\n` +
          `The sink has not received a new verified generation of ${v.source}/${v.stream} for longer than ` +
          `alerts.staleAfter. Check that \`baton source backup\` runs on ${v.source} and that this sink can ` +
          `pull from it (\`baton status\` on both hosts).\n` +
          alertFooter(),
      },
      opts.log,
    );
  }
  if (stale.length > 0) await ping(config.alerts.ping, 'fail', stale.map((v) => v.message).join('\n'));
  return stale;
}

import { join } from 'node:path';
import type { SinkConfig, StreamName } from '../config/schema.js';
import { LockedError, oneLine } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { alertFooter, alertSubject, sendAlert } from '../adapters/notify.js';
import { writeJobMetrics } from '../adapters/metrics.js';
import type { StreamRunFacts } from '../core/metrics.js';
import { runOffsitePush, selectStreams, type PushOptions, type PushResult } from './push.js';
import { readPushState, recordPushState } from './push-state.js';
import { parseGenerationId } from '../generation/names.js';

export interface PushOutcome {
  ok: boolean;
  locked: boolean;
  result?: PushResult;
  error?: string;
}

/**
 * A push as a job: runs it, and on failure records the error for `status`, mails one alert ("offsite
 * push FAILED", its own alert: a push after a pull never fails the pull) and writes the
 * `baton_offsite_push.prom` metrics either way. Never throws for a failed push; returns the outcome.
 */
export async function runOffsitePushJob(config: SinkConfig, opts: PushOptions): Promise<PushOutcome> {
  const started = opts.now();
  const streams = selectStreams(config, opts);
  let outcome: PushOutcome;
  try {
    const result = await runOffsitePush(config, opts);
    outcome = { ok: true, locked: false, result };
  } catch (e) {
    const locked = e instanceof LockedError;
    outcome = { ok: false, locked, error: oneLine(e) };
    opts.log.error({ step: 'offsite' }, `offsite push failed: ${oneLine(e)}`);
    if (!locked) {
      for (const s of streams)
        await recordPushState(config, s.source, s.stream, { error: oneLine(e), at: opts.now() }).catch(
          () => undefined,
        );
      await sendAlert(
        config.alerts,
        join(config.stateDir, 'pending-alerts'),
        {
          subject: alertSubject('sink', 'offsite push FAILED'),
          text:
            `baton offsite push failed:\n\n${oneLine(e)}\n\n` +
            `Nothing was committed for the generation being pushed; the sink store is untouched and the next push resumes.\n` +
            alertFooter(),
        },
        opts.log,
      );
    }
  }
  await recordPushMetrics(config, streams, outcome, started, opts.now(), opts.log);
  return outcome;
}

async function recordPushMetrics(
  config: SinkConfig,
  streams: ReadonlyArray<{ source: string; stream: StreamName }>,
  outcome: PushOutcome,
  started: Date,
  finished: Date,
  log: Logger,
): Promise<void> {
  const facts: StreamRunFacts[] = [];
  for (const s of streams) {
    const pushed = outcome.result?.pushed.filter((g) => g.source === s.source && g.stream === s.stream) ?? [];
    const newest = (await readPushState(config, s.source, s.stream))?.newest;
    facts.push({
      source: s.source,
      stream: s.stream,
      ran: !outcome.locked,
      ok: outcome.ok,
      durationSeconds: Math.max(0, finished.getTime() - started.getTime()) / 1000,
      finishedAt: finished,
      stores: [
        {
          store: 'offsite',
          generations: undefined,
          newestAt: newest === undefined ? undefined : parseGenerationId(newest),
        },
      ],
      newest: undefined,
      extra: [
        { name: 'baton_uploaded_bytes', value: pushed.reduce((n, g) => n + g.bytesUploaded, 0) },
        { name: 'baton_uploaded_objects', value: pushed.filter((g) => g.committed).length },
      ],
    });
  }
  await writeJobMetrics({
    stateDir: config.stateDir,
    textfileDir: config.metrics.textfileDir,
    job: 'offsite_push',
    streams: facts,
    appDowntime: false,
    log,
  });
}

import type { StreamName } from '../config/schema.js';
import type { StreamRunFacts } from '../core/metrics.js';
import type { Logger } from '../adapters/log.js';
import { writeJobMetrics } from '../adapters/metrics.js';
import type { GenerationCheck, VerifyTarget } from './verify-command.js';

/**
 * After `verify --all` (source or sink): `<stateDir>/metrics/baton_verify.prom` (and a copy in
 * `metrics.textfileDir`), per source/stream: the run's result, duration and last success, how many
 * generations it checked and how many failed, and whether it was `--deep`.
 */
export async function recordVerifyMetrics(
  config: { stateDir: string; metrics: { textfileDir?: string | undefined } },
  targets: readonly VerifyTarget[],
  checks: readonly GenerationCheck[],
  run: { deep: boolean; startedAt: Date; finishedAt: Date },
  log: Logger,
): Promise<void> {
  const byStream = new Map<string, { source: string; stream: StreamName; checked: number; failed: number }>();
  for (const c of checks) {
    const expect = targets.find((t) => t.dir === c.dir)?.expect;
    if (expect === undefined) continue;
    const key = `${expect.source}\0${expect.stream}`;
    const s = byStream.get(key) ?? { source: expect.source, stream: expect.stream, checked: 0, failed: 0 };
    s.checked += 1;
    if (!c.ok) s.failed += 1;
    byStream.set(key, s);
  }
  const streams: StreamRunFacts[] = [...byStream.values()].map((s) => ({
    source: s.source,
    stream: s.stream,
    ran: true,
    ok: s.failed === 0,
    durationSeconds: Math.max(0, run.finishedAt.getTime() - run.startedAt.getTime()) / 1000,
    finishedAt: run.finishedAt,
    stores: [],
    newest: undefined,
    extra: [
      { name: 'baton_verify_checked_generations', value: s.checked },
      { name: 'baton_verify_failed_generations', value: s.failed },
      { name: 'baton_verify_deep', value: run.deep ? 1 : 0 },
    ],
  }));
  await writeJobMetrics({
    stateDir: config.stateDir,
    textfileDir: config.metrics.textfileDir,
    job: 'verify',
    streams,
    appDowntime: false,
    log,
  });
}

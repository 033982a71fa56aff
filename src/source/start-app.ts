import type { SourceConfig } from '../config/schema.js';
import { JobError } from '../errors.js';
import { describeCommand, describeExit, runProcess } from '../adapters/run.js';
import type { Logger } from '../adapters/log.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Step 1.c: runs `app.start`, then polls `healthCheck` until it passes, all within
 * `startTimeout`. A failed start command is retried once while time remains. Returns when the
 * app is healthy; throws an "app down" JobError otherwise.
 */
export async function startApp(
  app: SourceConfig['app'],
  log: Logger,
  now: () => Date = () => new Date(),
  /** run right before the start command is spawned (backup.ts puts baton's own priority back) */
  beforeSpawn: () => void = () => undefined,
): Promise<Date> {
  const deadline = Date.now() + app.startTimeout;
  let lastProblem = '';
  for (let attempt = 1; attempt <= 2 && Date.now() < deadline; attempt++) {
    // the script itself (often many lines) at debug: it is config, not news
    log.debug({ step: 'start-app', command: describeCommand(app.start) }, 'start command');
    log.info({ step: 'start-app', attempt }, 'starting the app');
    beforeSpawn();
    const r = await runProcess(app.start, {
      timeoutMs: Math.max(1000, deadline - Date.now()),
      killGraceMs: 3000,
      // the app server it starts may stay in this process group: never ended by a later run
      untracked: true,
    });
    if (r.code !== 0 || r.timedOut) {
      lastProblem = `start command \`${describeCommand(app.start)}\` failed: ${describeExit(r)}`;
      log.warn({ step: 'start-app', attempt }, lastProblem);
      continue;
    }
    if (app.healthCheck === undefined) return now();
    const health = app.healthCheck;
    while (Date.now() < deadline) {
      const h = await runProcess(health, {
        timeoutMs: Math.max(1000, Math.min(30_000, deadline - Date.now())),
      });
      if (h.code === 0 && !h.timedOut) {
        log.info({ step: 'start-app' }, 'app is healthy');
        return now();
      }
      lastProblem = `health check \`${describeCommand(health)}\` did not pass: ${describeExit(h)}`;
      await sleep(Math.min(app.healthInterval, Math.max(0, deadline - Date.now())));
    }
    break;
  }
  throw new JobError(
    `APP DOWN: the app did not come back within ${Math.round(app.startTimeout / 1000)}s: ${lastProblem}`,
    {
      step: 'start-app',
    },
  );
}

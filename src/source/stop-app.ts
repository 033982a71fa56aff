import { unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { SourceConfig } from '../config/schema.js';
import { JobError, errnoCode } from '../errors.js';
import { describeCommand, describeExit, runProcess } from '../adapters/run.js';
import { mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';

export interface AppStoppedRecord {
  stoppedAt: string;
  pid: number;
  host: string;
}

/** Records durably that the app is about to be stopped: a killed run leaves this behind. */
export async function recordAppStopping(stateRoot: string, file: string, at: Date): Promise<void> {
  await mkdirp(stateRoot, 0o700);
  const rec: AppStoppedRecord = { stoppedAt: at.toISOString(), pid: process.pid, host: hostname() };
  await writeFileAtomic(file, `${JSON.stringify(rec)}\n`, 0o600);
}

export async function readAppStoppedRecord(file: string): Promise<AppStoppedRecord | undefined> {
  const raw = await readJsonIfExists(file).catch(() => ({ stoppedAt: 'unknown', pid: 0, host: '' }));
  if (raw === undefined) return undefined;
  const r = raw as Partial<AppStoppedRecord>;
  return { stoppedAt: String(r.stoppedAt), pid: Number(r.pid), host: String(r.host) };
}

export async function clearAppStoppedRecord(file: string): Promise<void> {
  await unlink(file).catch((e: unknown) => {
    if (errnoCode(e) !== 'ENOENT') throw e;
  });
}

/** Step 1.a: runs `app.stop`, bounded by `stopTimeout` (the whole process group is killed). */
export async function stopApp(
  app: SourceConfig['app'],
  log: Logger,
  /** told the stop command's pid as soon as it runs */
  onSpawn?: (pid: number) => void,
): Promise<number> {
  log.debug({ step: 'stop-app', command: describeCommand(app.stop) }, 'stop command');
  log.info({ step: 'stop-app' }, 'stopping the app');
  const r = await runProcess(app.stop, {
    timeoutMs: app.stopTimeout,
    killGraceMs: 3000,
    ...(onSpawn ? { onSpawn } : {}),
  });
  if (r.code !== 0 || r.timedOut) {
    throw new JobError(`stop command \`${describeCommand(app.stop)}\` failed: ${describeExit(r)}`, {
      step: 'stop-app',
    });
  }
  log.info({ step: 'stop-app', ms: r.durationMs }, 'app stopped');
  return r.durationMs;
}

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SourceConfig } from '../config/schema.js';
import { listWorkDirs } from '../generation/list.js';
import { exists } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { clearAppStoppedRecord, readAppStoppedRecord } from './stop-app.js';
import { startApp } from './start-app.js';
import { sourceState } from './state.js';

export interface RecoverResult {
  /** the app was found stopped by a killed run and started again */
  restartedApp: boolean;
  stoppedSince: string | undefined;
  removedWorkDirs: string[];
}

/**
 * Repairs what a killed run left (the caller holds the lock, so no run is live): starts the app
 * if a stop record says a run stopped it, and removes partial generations (`.<id>.partial`) and
 * half-deleted ones from the handovers and the source store.
 */
export async function recoverSource(config: SourceConfig, log: Logger): Promise<RecoverResult> {
  const state = sourceState(config);
  const rec = await readAppStoppedRecord(state.appStopped);
  let restartedApp = false;
  if (rec) {
    log.warn(
      { step: 'recover', stoppedAt: rec.stoppedAt, pid: rec.pid },
      'a killed run left the app stopped: starting it',
    );
    await startApp(config.app, log);
    await clearAppStoppedRecord(state.appStopped);
    restartedApp = true;
  }
  const removed: string[] = [];
  const dirs = [config.streams.data.handover, config.streams.data.store];
  if (config.streams.logs) dirs.push(config.streams.logs.handover);
  for (const d of dirs) {
    for (const name of await listWorkDirs(d)) {
      if (!/^\.[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z\.(partial|deleting)$/.test(name)) continue;
      await rm(join(d, name), { recursive: true, force: true });
      removed.push(join(d, name));
    }
  }
  // collect: reflink — a clone of a killed run (taken while the app was down) is never resumed
  if (await exists(state.reflinkRoot)) {
    await rm(state.reflinkRoot, { recursive: true, force: true });
    removed.push(state.reflinkRoot);
  }
  if (removed.length)
    log.warn({ step: 'recover', removed }, `removed ${removed.length} work dir(s) of an interrupted run`);
  return { restartedApp, stoppedSince: rec?.stoppedAt, removedWorkDirs: removed };
}

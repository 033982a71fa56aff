import { join } from 'node:path';
import type { SourceConfig, StreamName } from '../config/schema.js';

/** Where the source keeps its own state (never read by the sink). */
export function sourceState(config: SourceConfig) {
  const root = config.stateDir;
  return {
    root,
    lock: join(root, 'source.lock'),
    /** written durably before the app is stopped, removed once it is healthy again */
    appStopped: join(root, 'app-stopped.json'),
    mirror: (stream: StreamName) => join(root, 'mirror', stream),
    mirrorPaths: (stream: StreamName) => join(root, 'mirror', `${stream}.paths.json`),
    /** collect: reflink — the clone taken while the app is down, then the tree that replaces the mirror */
    reflinkRoot: join(root, 'reflink'),
    reflinkStage: (stream: StreamName) => join(root, 'reflink', stream),
    /** collect: snapshot — the read-only btrfs snapshots of a run, gone once the mirror is refreshed from them */
    snapshotRoot: join(root, 'snapshot'),
    /** collect: snapshot / command — written before a snapshot is made: what `source recover` removes */
    snapshots: join(root, 'snapshots.json'),
    lastRun: join(root, 'last-run.json'),
    /** the process groups a run started (children.ts): a later run ends them if it was killed */
    children: join(root, 'children.json'),
    pendingAlerts: join(root, 'pending-alerts'),
  };
}
export type SourceState = ReturnType<typeof sourceState>;

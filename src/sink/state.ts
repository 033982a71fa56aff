import { join } from 'node:path';
import type { SinkConfig, StreamName } from '../config/schema.js';

/** The sink store layout (docs/design.md §4) and the sink's own state. */
export function sinkPaths(config: SinkConfig, source: string, stream: StreamName) {
  const streamDir = join(config.store, source, stream);
  return {
    streamDir,
    incoming: join(streamDir, '.incoming'),
    quarantine: join(streamDir, '.quarantine'),
    lock: join(config.stateDir, 'locks', `${source}-${stream}.lock`),
    lastRun: join(config.stateDir, 'runs', `${source}-${stream}.json`),
    /** the process groups a run started (children.ts): a later run ends them if it was killed */
    children: join(config.stateDir, 'runs', `${source}-${stream}.children.json`),
    controlDir: join(config.stateDir, 'ssh'),
    pendingAlerts: join(config.stateDir, 'pending-alerts'),
  };
}
export type SinkPaths = ReturnType<typeof sinkPaths>;

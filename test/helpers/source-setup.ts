import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { createFakeApp, type FakeApp } from './fake-app.js';

export interface SourceSetup {
  dir: string;
  app: FakeApp;
  config: string;
  handoverData: string;
  handoverLogs: string;
  store: string;
  state: string;
}

export interface SourceSetupOptions {
  name: string;
  dataUser: string;
  logsUser: string;
  stop?: string;
  start?: string;
  stopTimeout?: string;
  startTimeout?: string;
  /** app.maxDowntime (the default, 1h, when unset) */
  maxDowntime?: string;
  /** a directory for handovers, store and state (e.g. a small tmpfs); default inside `dir` */
  storageRoot?: string;
  extraYaml?: string;
  mailUrl?: string;
  maxPending?: number;
  /** streams' `prepass` (baton's default, on, when unset) */
  prepass?: boolean;
}

/** A running fake app and a source.yaml for it under `root/<name>`. */
export async function makeSourceSetup(root: string, o: SourceSetupOptions): Promise<SourceSetup> {
  const dir = join(root, o.name);
  await mkdir(dir, { recursive: true });
  const app = createFakeApp(join(dir, 'app'));
  const start = await runProcess(['/bin/sh', '-c', app.startCmd], { timeoutMs: 20_000 });
  if (start.code !== 0) throw new Error(`fake app did not start: ${start.stderr}`);
  const storage = o.storageRoot ?? dir;
  const s: SourceSetup = {
    dir,
    app,
    config: join(dir, 'source.yaml'),
    handoverData: join(storage, 'handover', 'data'),
    handoverLogs: join(storage, 'handover', 'logs'),
    store: join(storage, 'store'),
    state: join(storage, 'state'),
  };
  const pp = o.prepass === undefined ? '' : `, prepass: ${o.prepass}`;
  await writeFile(
    s.config,
    `name: ${o.name}
stateDir: ${s.state}
app:
  stop: ${JSON.stringify(o.stop ?? app.stopCmd)}
  start: ${JSON.stringify(o.start ?? app.startCmd)}
  healthCheck: ${JSON.stringify(app.healthCmd)}
  stopTimeout: ${o.stopTimeout ?? '30s'}
  startTimeout: ${o.startTimeout ?? '30s'}
${o.maxDowntime ? `  maxDowntime: ${o.maxDowntime}\n` : ''}streams:
  data: { paths: [${app.dataDir}], handover: ${s.handoverData}, user: ${o.dataUser}, store: ${s.store}, generations: 2${pp} }
  logs: { paths: [${app.logDir}], handover: ${s.handoverLogs}, user: ${o.logsUser}${pp} }
limits: { maxPendingGenerations: ${o.maxPending ?? 10}, minFreeBytes: 0 }
${o.mailUrl ? `alerts:\n  mail: { to: [ops@example.com], from: baton@${o.name}, smtp: "${o.mailUrl}" }\n` : ''}${o.extraYaml ?? ''}`,
    { mode: 0o644 },
  );
  return s;
}

/** Complete generation ids in a directory (dot-names left out). */
export async function generationIds(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).filter((n) => !n.startsWith('.')).sort() : [];
}

/** Dot-named work dirs (partial generations and the like) in a directory. */
export async function workDirs(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).filter((n) => n.startsWith('.')).sort() : [];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

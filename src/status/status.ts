import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import type { SinkConfig, SourceConfig, StreamName } from '../config/schema.js';
import { formatAge } from '../config/duration.js';
import { generationMetaSchema } from '../core/meta.js';
import { readJsonIfExists } from '../adapters/fsx.js';
import { listGenerations } from '../adapters/generations.js';
import { sourceState } from '../source/state.js';
import { sinkPaths } from '../sink/state.js';

export interface GenerationStatus {
  id: string;
  ageSeconds: number;
  files: number | undefined;
  bytes: number | undefined;
  bytesNew: number | undefined;
  downtimeMs: number | undefined;
}

export interface StoreStatus {
  kind: 'handover' | 'source store' | 'sink store';
  source: string;
  stream: StreamName;
  dir: string;
  generations: GenerationStatus[];
  quarantined?: number;
}

export interface StatusReport {
  host: 'source' | 'sink';
  now: string;
  stores: StoreStatus[];
  lastRuns: unknown[];
  recoveryTiers: Array<{ name: string; keepDays: number; scope: string }>;
}

async function storeStatus(
  kind: StoreStatus['kind'],
  source: string,
  stream: StreamName,
  dir: string,
  now: Date,
): Promise<StoreStatus> {
  const gens = await listGenerations(dir);
  const generations: GenerationStatus[] = [];
  for (const g of gens) {
    const meta = generationMetaSchema.safeParse(
      await readJsonIfExists(join(g.dir, 'meta.json')).catch(() => undefined),
    );
    generations.push({
      id: g.id,
      ageSeconds: Math.round((now.getTime() - g.createdAt.getTime()) / 1000),
      files: meta.success ? meta.data.files : undefined,
      bytes: meta.success ? meta.data.bytes : undefined,
      bytesNew: meta.success ? meta.data.bytesCopied : undefined,
      downtimeMs: meta.success ? meta.data.downtimeMs : undefined,
    });
  }
  return { kind, source, stream, dir, generations };
}

/** Generations per store on the source: pending handovers and the source store, and the last run. */
export async function sourceStatus(config: SourceConfig, now: Date): Promise<StatusReport> {
  const stores: StoreStatus[] = [
    await storeStatus('handover', config.name, 'data', config.streams.data.handover, now),
    await storeStatus('source store', config.name, 'data', config.streams.data.store, now),
  ];
  if (config.streams.logs)
    stores.push(await storeStatus('handover', config.name, 'logs', config.streams.logs.handover, now));
  const last = await readJsonIfExists(sourceState(config).lastRun).catch(() => undefined);
  return {
    host: 'source',
    now: now.toISOString(),
    stores,
    lastRuns: last === undefined ? [] : [last],
    recoveryTiers: [],
  };
}

/** Generations per source and stream in the sink store, quarantined ones, and the last pulls. */
export async function sinkStatus(config: SinkConfig, now: Date): Promise<StatusReport> {
  const stores: StoreStatus[] = [];
  const lastRuns: unknown[] = [];
  for (const src of config.sources) {
    for (const stream of ['data', 'logs'] as const) {
      if (!src.streams[stream]) continue;
      const p = sinkPaths(config, src.name, stream);
      const st = await storeStatus('sink store', src.name, stream, p.streamDir, now);
      st.quarantined = (await readdir(p.quarantine).catch(() => [] as string[])).length;
      stores.push(st);
      const last = await readJsonIfExists(p.lastRun).catch(() => undefined);
      if (last !== undefined) lastRuns.push(last);
    }
  }
  return { host: 'sink', now: now.toISOString(), stores, lastRuns, recoveryTiers: config.recoveryTiers };
}

const mib = (b: number | undefined) => (b === undefined ? '?' : `${(b / 1024 / 1024).toFixed(1)} MiB`);

/** The readable table of a status report. */
export function renderStatus(r: StatusReport): string {
  const out: string[] = [];
  for (const s of r.stores) {
    out.push(
      `${s.kind} ${s.source}/${s.stream}  ${s.dir}  (${s.generations.length} generation(s)${s.quarantined ? `, ${s.quarantined} quarantined` : ''})`,
    );
    if (s.generations.length === 0) out.push('    (none)');
    for (const g of [...s.generations].reverse()) {
      out.push(
        `    ${g.id}  ${formatAge(g.ageSeconds * 1000).padStart(7)} old  ${String(g.files ?? '?').padStart(6)} files  ${mib(g.bytes).padStart(10)}  new ${mib(g.bytesNew).padStart(10)}` +
          (g.downtimeMs === undefined ? '' : `  downtime ${(g.downtimeMs / 1000).toFixed(2)}s`),
      );
    }
  }
  for (const run of r.lastRuns) {
    if (typeof run === 'object' && run !== null) {
      const o = run as Record<string, unknown>;
      const who = typeof o.source === 'string' ? ` ${o.source}` : '';
      const err = typeof o.error === 'string' ? `: ${o.error.split('\n')[0] ?? ''}` : '';
      out.push(
        `last run: ${String(o.job)}${who} ${o.ok === true ? 'ok' : 'FAILED'} at ${String(o.finishedAt)}${err}`,
      );
    }
  }
  if (r.recoveryTiers.length) {
    out.push('outer recovery tiers (not managed by baton):');
    for (const t of r.recoveryTiers) out.push(`    ${t.name}: ${t.keepDays} days, ${t.scope}`);
  }
  return `${out.join('\n')}\n`;
}

import type { OffsiteConfig, StreamName } from '../config/schema.js';
import type { Logger } from '../adapters/log.js';
import { calendarPolicy, hasCalendarRules, planRetention } from '../core/retention.js';
import {
  commitKey,
  genKey,
  GENS_PREFIX,
  INDEX_PREFIX,
  indexKey,
  PACK_PREFIX,
  packIdOfKey,
  packKey,
  type GenObject,
} from './layout.js';
import type { ObjectStore } from './object-store.js';
import type { Commit } from '../core/offsite-records.js';
import { listCommits, readCommit, type CommitRef } from './read.js';
import type { Repo } from './repo.js';

/** Packs no commit references are deleted only when older than this (a running or killed push's). */
export const ORPHAN_GRACE_MS = 24 * 3600_000;

export interface PrunePlanLine {
  source: string;
  stream: StreamName;
  id: string;
  reason: string;
}

export interface PruneResult {
  keep: PrunePlanLine[];
  remove: PrunePlanLine[];
  /** generations whose commit was deleted */
  removed: string[];
  packsDeleted: number;
  /** objects Object Lock still holds (deleted by a later prune) */
  retained: string[];
  dryRun: boolean;
}

/**
 * `baton offsite prune`: per source and stream, the retention plan over the committed generations
 * (`generations`, `keepWithin`, `keepDaily` … `keepYearly` in the sink's local time zone; never the newest); the commits of the removed ones go first (then
 * their objects), then every pack and index no remaining commit references. A delete that Object
 * Lock refuses is "retained": logged once in the summary and tried again by the next prune.
 */
export async function runOffsitePrune(opts: {
  store: ObjectStore;
  repo: Repo;
  cfg: OffsiteConfig;
  streams: ReadonlyArray<{ source: string; stream: StreamName }>;
  now: Date;
  dryRun: boolean;
  log: Logger;
}): Promise<PruneResult> {
  const { store, repo, cfg } = opts;
  const res: PruneResult = {
    keep: [],
    remove: [],
    removed: [],
    packsDeleted: 0,
    retained: [],
    dryRun: opts.dryRun,
  };
  const all = await listCommits(store);
  const removing: CommitRef[] = [];
  for (const { source, stream } of opts.streams) {
    const mine = all.filter((c) => c.source === source && c.stream === stream);
    if (mine.length === 0) continue;
    if (cfg.generations === undefined && !hasCalendarRules(cfg)) {
      for (const c of mine)
        res.keep.push({ source, stream, id: c.id, reason: 'kept: offsite.generations is not set' });
      continue;
    }
    const plan = planRetention(
      mine.map((c) => ({ id: c.id, verified: true })),
      {
        keep: cfg.generations ?? 1,
        ...calendarPolicy(cfg),
        ...(cfg.keepWithin === undefined ? {} : { keepWithin: cfg.keepWithin, now: opts.now }),
        protect: [mine.at(-1)?.id ?? ''].filter((x) => x !== ''),
      },
    );
    for (const k of plan.keep) res.keep.push({ source, stream, id: k.id, reason: k.reason });
    for (const r of plan.remove) {
      res.remove.push({ source, stream, id: r.id, reason: r.reason });
      const ref = mine.find((c) => c.id === r.id);
      if (ref) removing.push(ref);
    }
  }
  if (opts.dryRun) return res;

  const removingKeys = new Set(removing.map((c) => c.key));
  // The generation objects that remaining commits' deltas are stored against: kept with their packs.
  const bases = new Set<string>();
  for (const ref of all) {
    if (removingKeys.has(ref.key)) continue;
    for (const k of baseKeys(await readCommit(store, repo, ref))) bases.add(k);
  }
  // Packs the removed generations held: candidates at once; other unreferenced packs only after the grace.
  const freed = new Set<string>();
  const freedGens = new Set<string>();
  for (const ref of removing) {
    const c = await readCommit(store, repo, ref);
    for (const p of c.packs) freed.add(p);
    const key = commitKey(ref.source, ref.stream, ref.id);
    if ((await store.delete(key)) === 'retained') {
      res.retained.push(key);
      for (const k of baseKeys(c)) bases.add(k);
      continue;
    }
    res.removed.push(`${ref.source}/${ref.stream}/${ref.id}`);
    freedGens.add(`${ref.source}/${ref.stream}/${ref.id}`);
  }
  // What every remaining commit needs (the commits of this sink's other sources and streams too).
  const referenced = new Set<string>();
  const live = new Set<string>();
  for (const ref of all) {
    if (removingKeys.has(ref.key) && !res.retained.includes(ref.key)) continue;
    live.add(`${ref.source}/${ref.stream}/${ref.id}`);
    for (const p of (await readCommit(store, repo, ref)).packs) referenced.add(p);
  }
  // Generation objects of no remaining commit, unless a delta needs them: those of the removed
  // generations at once, others (a killed push's) after the grace.
  for await (const o of store.list(GENS_PREFIX)) {
    const m = /^gens\/([^/]+\/(?:data|logs)\/[^/]+)\/[^/]+$/.exec(o.key);
    const gen = m?.[1];
    if (gen === undefined || live.has(gen) || bases.has(o.key)) continue;
    if (!freedGens.has(gen) && opts.now.getTime() - o.lastModified.getTime() < ORPHAN_GRACE_MS) continue;
    if ((await store.delete(o.key)) === 'retained') res.retained.push(o.key);
  }
  const seen = new Map<string, Date>();
  for await (const o of store.list(INDEX_PREFIX)) {
    const p = packIdOfKey(o.key);
    if (p) seen.set(p.id, o.lastModified);
  }
  for await (const o of store.list(PACK_PREFIX)) {
    const p = packIdOfKey(o.key);
    if (p && !seen.has(p.id)) seen.set(p.id, o.lastModified);
  }
  for (const [id, modified] of seen) {
    if (referenced.has(id)) continue;
    if (!freed.has(id) && opts.now.getTime() - modified.getTime() < ORPHAN_GRACE_MS) continue;
    // the index first: a pack without its index is never reused by a push, an index without its pack would be
    const ix = await store.delete(indexKey(id));
    if (ix === 'retained') {
      res.retained.push(indexKey(id));
      continue;
    }
    if ((await store.delete(packKey(id))) === 'retained') res.retained.push(packKey(id));
    else res.packsDeleted++;
  }
  if (res.retained.length)
    opts.log.info(
      { step: 'offsite prune', retained: res.retained.length },
      `${res.retained.length} object(s) still under Object Lock retention were kept (first: ${res.retained[0] ?? ''}); a later prune deletes them`,
    );
  return res;
}

/** The keys of the whole objects a commit's deltas are stored against. */
export function baseKeys(c: Commit): string[] {
  const out: string[] = [];
  for (const [name, o] of Object.entries(c.objects))
    if (o.delta !== undefined) out.push(genKey(c.source, c.stream, o.delta.base, name as GenObject));
  return out;
}

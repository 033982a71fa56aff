import { readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { generationMetaSchema, type GenerationMeta } from '../core/meta.js';
import type { MetricsStore, StreamRunFacts } from '../core/metrics.js';
import { readJsonIfExists } from '../adapters/fsx.js';
import { isGenerationId, MANIFEST, META_JSON, parseGenerationId } from './names.js';
import { errnoCode } from '../errors.js';

export interface StoredGeneration {
  id: string;
  dir: string;
  createdAt: Date;
}

/**
 * The complete generations in a handover or store, oldest first: a directory (not a symlink)
 * named by a valid id, holding a regular `manifest` file. Dot-names are work areas and never count.
 */
export async function listGenerations(parent: string): Promise<StoredGeneration[]> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
  const out: StoredGeneration[] = [];
  for (const id of names.sort()) {
    const createdAt = parseGenerationId(id);
    if (!createdAt || !isGenerationId(id)) continue;
    const dir = join(parent, id);
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const m = await lstat(join(dir, MANIFEST)).catch(() => undefined);
    if (!m?.isFile()) continue;
    out.push({ id, dir, createdAt });
  }
  return out;
}

/** Names of work areas (dot-names) left in a handover or store by an interrupted run. */
export async function listWorkDirs(parent: string): Promise<string[]> {
  try {
    return (await readdir(parent)).filter((n) => n.startsWith('.') && n !== '.' && n !== '..');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
}

export interface StoreGeneration extends StoredGeneration {
  /** its meta.json, parsed; undefined when missing or not valid */
  meta: GenerationMeta | undefined;
}

/** The complete generations of a handover or store, oldest first, each with its meta.json. */
export async function readStoreContents(dir: string): Promise<StoreGeneration[]> {
  const out: StoreGeneration[] = [];
  for (const g of await listGenerations(dir)) {
    const raw = await readJsonIfExists(join(g.dir, META_JSON)).catch(() => undefined);
    const meta = generationMetaSchema.safeParse(raw);
    out.push({ ...g, meta: meta.success ? meta.data : undefined });
  }
  return out;
}

/**
 * Generation counts per store and the newest generation (by id, over all the given stores) with its
 * meta.json: the store part of a stream's metrics.
 */
export async function describeStores(
  stores: ReadonlyArray<{ store: MetricsStore; dir: string }>,
): Promise<Pick<StreamRunFacts, 'stores' | 'newest'>> {
  const counted: StreamRunFacts['stores'][number][] = [];
  let newest: { id: string; meta: StreamRunFacts['newest'] } | undefined;
  for (const s of stores) {
    const gens = await readStoreContents(s.dir);
    const last = gens.at(-1);
    counted.push({ store: s.store, generations: gens.length, newestAt: last?.createdAt });
    if (last && (newest === undefined || last.id > newest.id)) {
      newest = {
        id: last.id,
        meta: last.meta && {
          bytes: last.meta.bytes,
          bytesNew: last.meta.bytesCopied,
          downtimeMs: last.meta.downtimeMs,
        },
      };
    }
  }
  return { stores: counted, newest: newest?.meta };
}

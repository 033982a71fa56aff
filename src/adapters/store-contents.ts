import { join } from 'node:path';
import { generationMetaSchema, type GenerationMeta } from '../core/meta.js';
import { readJsonIfExists } from './fsx.js';
import { listGenerations, type StoredGeneration } from '../generation/list.js';

export interface StoreGeneration extends StoredGeneration {
  /** its meta.json, parsed; undefined when missing or not valid */
  meta: GenerationMeta | undefined;
}

/** The complete generations of a handover or store, oldest first, each with its meta.json. */
export async function readStoreContents(dir: string): Promise<StoreGeneration[]> {
  const out: StoreGeneration[] = [];
  for (const g of await listGenerations(dir)) {
    const raw = await readJsonIfExists(join(g.dir, 'meta.json')).catch(() => undefined);
    const meta = generationMetaSchema.safeParse(raw);
    out.push({ ...g, meta: meta.success ? meta.data : undefined });
  }
  return out;
}

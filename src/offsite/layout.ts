import type { StreamName } from '../config/schema.js';
import { parseIndexKey, parsePackKey } from '../core/offsite-records.js';

/**
 * Key names inside the repository (relative to `<prefix>/`; see docs/offsite-format.md). The names
 * themselves are core/offsite-records.ts's; this adds the listing prefixes the engine walks.
 * Every name is built from hex ids, validated source names and generation ids, never from file
 * names, so the listing of a bucket reveals no content.
 */
export {
  CONFIG_KEY,
  commitKey,
  GENERATION_OBJECTS as GEN_OBJECTS,
  generationObjectKey as genKey,
  indexKey,
  packKey,
  parseCommitKey,
  type GenerationObject as GenObject,
} from '../core/offsite-records.js';

export const INDEX_PREFIX = 'index/';
export const PACK_PREFIX = 'packs/';
export const GENS_PREFIX = 'gens/';
export const commitPrefix = (source?: string, stream?: StreamName): string =>
  source === undefined
    ? 'commits/'
    : stream === undefined
      ? `commits/${source}/`
      : `commits/${source}/${stream}/`;

/** `packs/<pp>/<packId>` or `index/<packId>` → the pack id, else undefined. */
export function packIdOfKey(key: string): { kind: 'pack' | 'index'; id: string } | undefined {
  const pack = parsePackKey(key);
  if (pack !== undefined) return { kind: 'pack', id: pack };
  const index = parseIndexKey(key);
  return index === undefined ? undefined : { kind: 'index', id: index };
}

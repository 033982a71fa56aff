import type { StreamName } from '../config/schema.js';

/**
 * Key names inside the repository (relative to `<prefix>/`; see docs/offsite.md). Pure: no I/O.
 * Every name is built from hex ids, validated source names and generation ids, never from file
 * names, so the listing of a bucket reveals no content.
 */
export const CONFIG_KEY = 'config';
export const packKey = (packId: string): string => `packs/${packId.slice(0, 2)}/${packId}`;
export const indexKey = (packId: string): string => `index/${packId}`;
export const INDEX_PREFIX = 'index/';
export const PACK_PREFIX = 'packs/';
export const GEN_OBJECTS = ['manifest', 'SHA256SUMS', 'meta.json', 'files'] as const;
export type GenObject = (typeof GEN_OBJECTS)[number];
export const genKey = (source: string, stream: StreamName, id: string, name: GenObject): string =>
  `gens/${source}/${stream}/${id}/${name}`;
export const commitPrefix = (source?: string, stream?: StreamName): string =>
  source === undefined
    ? 'commits/'
    : stream === undefined
      ? `commits/${source}/`
      : `commits/${source}/${stream}/`;
export const commitKey = (source: string, stream: StreamName, id: string): string =>
  `commits/${source}/${stream}/${id}`;

const HEX64 = /^[0-9a-f]{64}$/;
export const isHexId = (s: string): boolean => HEX64.test(s);

/** `commits/<source>/<stream>/<id>` → its parts, or undefined for any other key. */
export function parseCommitKey(key: string): { source: string; stream: StreamName; id: string } | undefined {
  const m =
    /^commits\/([A-Za-z0-9][A-Za-z0-9._-]{0,62})\/(data|logs)\/([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z)$/.exec(
      key,
    );
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  return { source: m[1], stream: m[2] as StreamName, id: m[3] };
}

/** `packs/<pp>/<packId>` or `index/<packId>` → the pack id, else undefined. */
export function packIdOfKey(key: string): { kind: 'pack' | 'index'; id: string } | undefined {
  const p = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  if (p?.[1] && p[2] && p[2].startsWith(p[1])) return { kind: 'pack', id: p[2] };
  const i = /^index\/([0-9a-f]{64})$/.exec(key);
  if (i?.[1]) return { kind: 'index', id: i[1] };
  return undefined;
}

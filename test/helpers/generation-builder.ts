/**
 * Generation directories built by hand for unit tests of verification: manifest entries, the
 * manifest, meta.json and SHA256SUMS written the way a sink keeps them, and an optional tree/.
 * (End-to-end tests that serve generations through the gate use gate-fixtures.ts' writeGeneration.)
 */
import { createHash } from 'node:crypto';
import { link, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  formatManifestLine,
  formatSha256SumsLine,
  MANIFEST_HEADER,
  type ManifestEntry,
} from '../../src/core/manifest.js';

export const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

/** A regular file entry, 0644 root:root, with the size and hash of `content`. */
export function fileEntry(path: string, content: string, extra: Partial<ManifestEntry> = {}): ManifestEntry {
  return {
    type: 'f',
    mode: 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    mtimeNs: 1_700_000_000_000_000_000n,
    size: Buffer.byteLength(content),
    sha256: sha(content),
    path: Buffer.from(path),
    target: undefined,
    ...extra,
  };
}

/** A directory entry, 0755 root:root. */
export const dirEntry = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  ...fileEntry(path, ''),
  type: 'd',
  mode: 0o755,
  size: 4096,
  sha256: undefined,
  ...extra,
});

/** SHA256SUMS for these entries: one line per entry with a hash (every name of a link group too). */
export const sumsOf = (es: readonly ManifestEntry[]): Buffer =>
  Buffer.concat(es.flatMap((e) => (e.sha256 === undefined ? [] : [formatSha256SumsLine(e.sha256, e.path)])));

/** A tree/ entry: content, or a hard link to an existing file (absolute path). */
export type TreeFile = string | Buffer | { linkTo: string };

export interface GenerationDir {
  id?: string;
  entries: readonly ManifestEntry[];
  /** manifest header (default MANIFEST_HEADER) */
  header?: string;
  /** files under tree/, by path relative to it, written in order (parents made) */
  tree?: Readonly<Record<string, TreeFile>>;
}

/**
 * Writes `dir` as a complete generation: tree/ (with `tree`'s files), meta.json (files and entries
 * counted from `entries`), the manifest and SHA256SUMS. Returns `dir`.
 */
export async function writeGenerationDir(dir: string, g: GenerationDir): Promise<string> {
  await mkdir(join(dir, 'tree'), { recursive: true });
  for (const [p, f] of Object.entries(g.tree ?? {})) {
    const to = join(dir, 'tree', p);
    await mkdir(dirname(to), { recursive: true });
    if (typeof f === 'object' && 'linkTo' in f) await link(f.linkTo, to);
    else await writeFile(to, f);
  }
  await writeFile(
    join(dir, 'meta.json'),
    JSON.stringify({
      id: g.id ?? '2026-01-01T000000Z',
      source: 's',
      stream: 'data',
      created: '2026-01-01T00:00:00.000Z',
      files: g.entries.filter((e) => e.type === 'f').length,
      entries: g.entries.length,
      bytes: 0,
      bytesCopied: 0,
      batonVersion: 'test',
    }),
  );
  await writeFile(
    join(dir, 'manifest'),
    `${[g.header ?? MANIFEST_HEADER, ...g.entries.map(formatManifestLine)].join('\n')}\n`,
  );
  await writeFile(join(dir, 'SHA256SUMS'), sumsOf(g.entries));
  return dir;
}

import {
  checkEntrySequence,
  MANIFEST_HEADER,
  parseManifestLine,
  pathKey,
  type ManifestEntry,
  type ManifestLimits,
  DEFAULT_MANIFEST_LIMITS,
} from '../core/manifest.js';
import { readLines } from './fsx.js';

export class ManifestError extends Error {}

/**
 * Streams a manifest file's entries, validating each line and the sequence (tree order, no
 * duplicates, parents first) as it goes. Throws ManifestError with the line number on the first
 * problem: a hostile or truncated manifest is rejected before anything is trusted.
 */
export async function* readManifest(
  file: string,
  limits: ManifestLimits & { maxEntries?: number } = DEFAULT_MANIFEST_LIMITS,
): AsyncGenerator<ManifestEntry> {
  let lineNo = 0;
  let prev: ManifestEntry | undefined;
  const dirs = new Set<string>();
  const maxEntries = limits.maxEntries ?? Number.MAX_SAFE_INTEGER;
  try {
    for await (const line of readLines(file, limits.maxPathBytes * 6 + 512)) {
      lineNo++;
      if (lineNo === 1) {
        if (line !== MANIFEST_HEADER)
          throw new ManifestError(`not a baton manifest (first line "${line.slice(0, 40)}")`);
        continue;
      }
      if (lineNo - 1 > maxEntries) throw new ManifestError(`more than ${maxEntries} entries`);
      const r = parseManifestLine(line, limits);
      if (!r.ok) throw new ManifestError(r.error);
      const seq = checkEntrySequence(prev, r.entry, dirs);
      if (seq) throw new ManifestError(seq);
      prev = r.entry;
      yield r.entry;
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ManifestError(`${file}${lineNo ? `:${lineNo}` : ''}: ${msg}`);
  }
  if (lineNo === 0) throw new ManifestError(`${file}: empty manifest`);
}

/** The regular-file entries of a manifest by path key, for hash reuse. */
export async function loadFileEntries(file: string): Promise<Map<string, ManifestEntry>> {
  const m = new Map<string, ManifestEntry>();
  for await (const e of readManifest(file)) if (e.type === 'f') m.set(pathKey(e.path), e);
  return m;
}

import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { isGenerationId } from '../generation/names.js';
import { errnoCode } from '../errors.js';
import { fsyncDir, mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';

/**
 * Bad marks: a sink store generation that failed a later `baton verify` (bit rot) is marked in
 * `<stream dir>/.bad/<id>`, outside the generation itself (its layout stays as docs/design.md §4 says).
 * A marked generation no longer counts as verified for retention; a later passing deep verify
 * removes the mark.
 */
export const badMarkSchema = z.object({
  id: z.string(),
  markedAt: z.string(),
  problems: z.array(z.string()),
});
export type BadMark = z.infer<typeof badMarkSchema>;

export function badMarkDir(streamDir: string): string {
  return join(streamDir, '.bad');
}

export async function markGenerationBad(
  streamDir: string,
  id: string,
  problems: readonly string[],
  now: Date,
): Promise<void> {
  if (!isGenerationId(id)) throw new RangeError(`not a generation id: ${JSON.stringify(id)}`);
  const dir = badMarkDir(streamDir);
  await mkdirp(dir, 0o755);
  const mark: BadMark = { id, markedAt: now.toISOString(), problems: problems.slice(0, 20) };
  await writeFileAtomic(join(dir, id), `${JSON.stringify(mark, null, 2)}\n`);
}

/** Removes a mark; returns whether there was one. */
export async function clearBadMark(streamDir: string, id: string): Promise<boolean> {
  if (!isGenerationId(id)) return false;
  const file = join(badMarkDir(streamDir), id);
  const had = (await readJsonIfExists(file).catch(() => true)) !== undefined;
  if (!had) return false;
  await rm(file, { force: true });
  await fsyncDir(badMarkDir(streamDir));
  return true;
}

/** The ids marked bad in a stream dir (only well-formed ids count). */
export async function listBadMarks(streamDir: string): Promise<Set<string>> {
  try {
    return new Set((await readdir(badMarkDir(streamDir))).filter(isGenerationId));
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return new Set();
    throw e;
  }
}

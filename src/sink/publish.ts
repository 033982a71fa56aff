import { existsSync } from 'node:fs';
import { chmod, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, mkdirp, syncFilesystem } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { TREE } from '../generation/names.js';

/** Mode of a generation directory and its tree/ in the sink store (root's; others cannot enter). */
export const GENERATION_DIR_MODE = 0o750;

/**
 * Step 2.b: makes a verified generation durable (syncfs) and visible in the sink store by one
 * rename from `.incoming/<id>` to `<id>`; fsyncs the store directory. The generation directory and
 * its tree/ get the sink's mode (0750), not the one the source sent.
 */
export async function publishGeneration(
  incoming: string,
  streamDir: string,
  id: string,
  log: Logger,
): Promise<string> {
  const from = join(incoming, id);
  const to = join(streamDir, id);
  await chmod(from, GENERATION_DIR_MODE);
  await chmod(join(from, TREE), GENERATION_DIR_MODE);
  await syncFilesystem(from);
  await rename(from, to);
  await fsyncDir(streamDir);
  log.info({ step: 'publish', id }, `published ${to}`);
  return to;
}

/** A generation that failed verification: moved aside (never published, never acked) for inspection. */
export async function quarantineGeneration(
  incoming: string,
  quarantine: string,
  id: string,
  at: Date,
): Promise<string> {
  await mkdirp(quarantine, 0o700);
  // A clock that jumped back can repeat a time already used for this id: never rename onto it
  // (an earlier quarantined copy would be replaced or the rename would fail).
  let when = at.getTime();
  const nameAt = (ms: number) => join(quarantine, `${id}.${new Date(ms).toISOString().replace(/[:.]/g, '')}`);
  while (existsSync(nameAt(when))) when += 1;
  const to = nameAt(when);
  await rename(join(incoming, id), to);
  await fsyncDir(quarantine);
  return to;
}

/** Drops what an earlier, failed attempt left in `.incoming` other than the generations still to pull. */
export async function cleanIncoming(
  incoming: string,
  keep: ReadonlySet<string>,
  names: readonly string[],
): Promise<void> {
  for (const n of names) if (!keep.has(n)) await rm(join(incoming, n), { recursive: true, force: true });
}

import { rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../adapters/fsx.js';
import { syncFilesystem } from '../adapters/syncfs.js';
import type { Logger } from '../adapters/log.js';
import type { BuiltGeneration } from './build-generation.js';

/**
 * Hands a built generation over: flush the filesystem (one syncfs rather than an fsync per file),
 * rename the dot-named work dir to its id, fsync the handover dir. Only now can the sink see it.
 */
export async function publishHandover(gen: BuiltGeneration, log: Logger): Promise<void> {
  await syncFilesystem(gen.work);
  await rename(gen.work, gen.dir);
  await fsyncDir(dirname(gen.dir));
  log.info({ step: 'publish-handover', stream: gen.meta.stream, id: gen.id }, `handed over ${gen.dir}`);
}

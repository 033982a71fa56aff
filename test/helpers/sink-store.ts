import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../../src/core/store-marker.js';

/**
 * Makes `store` a sink store the way `baton install sink` does: the directory and its marker file
 * (`baton sink pull` refuses a store root without it). Returns the store path.
 */
export async function makeSinkStore(store: string): Promise<string> {
  await mkdir(store, { recursive: true, mode: 0o750 });
  await writeFile(join(store, STORE_MARKER), STORE_MARKER_CONTENT, { mode: 0o644 });
  return store;
}

import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { STORE_MARKER } from '../core/store-marker.js';

/**
 * Why the sink store root must not be written to, or undefined when it is fine: it must exist and
 * hold the marker file. A store on a disk that is not mounted is an empty mountpoint directory;
 * writing there would fill the root filesystem and hide the real store, so baton never creates
 * the store root itself. Reads only.
 */
export async function checkStoreMarker(store: string): Promise<string | undefined> {
  const marker = join(store, STORE_MARKER);
  const howTo = `if ${store} is the right place, create the marker once: \`touch ${marker}\` (or run \`baton install sink\`)`;
  const root = await lstat(store).catch((e: unknown) => errnoCode(e) ?? 'error');
  if (typeof root === 'string') {
    return `sink store ${store} does not exist (${root}): is its filesystem mounted? baton never creates it here; ${howTo}`;
  }
  if (!root.isDirectory()) return `sink store ${store} is not a directory; ${howTo}`;
  const m = await lstat(marker).catch(() => undefined);
  if (m === undefined) {
    return `sink store ${store} has no marker file ${STORE_MARKER}: is its filesystem mounted? nothing was written there; ${howTo}`;
  }
  if (!m.isFile()) return `sink store marker ${marker} is not a regular file; ${howTo}`;
  return undefined;
}

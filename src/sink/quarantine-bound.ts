import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../adapters/log.js';

/**
 * Bytes a quarantined generation holds on its own: regular files with one link only (files
 * hard-linked with the store cost nothing extra), counted in allocated blocks. Never follows links.
 */
export async function ownBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, name);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) await walk(p);
      else if (st.isFile() && st.nlink === 1) total += Math.max(st.size, st.blocks * 512);
    }
  };
  const st = await lstat(dir).catch(() => undefined);
  if (st?.isDirectory()) await walk(dir);
  else if (st?.isFile()) total += st.size;
  return total;
}

/**
 * Keeps `.quarantine` bounded: at most `maxCount` entries and `maxBytes` bytes of their own; the
 * oldest are removed first (names start with the id and the quarantine time, so they sort by age),
 * each with a log line; the newest one is always kept. Returns the names removed.
 */
export async function boundQuarantine(
  quarantine: string,
  limits: { maxCount: number; maxBytes: number },
  log: Logger,
): Promise<string[]> {
  const names = (await readdir(quarantine).catch(() => [] as string[]))
    .filter((n) => !n.startsWith('.'))
    .sort(byQuarantineTime);
  const sizes = new Map<string, number>();
  for (const n of names) sizes.set(n, await ownBytes(join(quarantine, n)));
  let bytes = [...sizes.values()].reduce((a, b) => a + b, 0);
  const removed: string[] = [];
  while (names.length > 1 && (names.length > limits.maxCount || bytes > limits.maxBytes)) {
    const oldest = names.shift() as string;
    const size = sizes.get(oldest) ?? 0;
    await rm(join(quarantine, oldest), { recursive: true, force: true });
    bytes -= size;
    removed.push(oldest);
    log.warn(
      { step: 'quarantine', removed: oldest, bytes: size },
      `removed the oldest quarantined ${oldest} (${size} bytes): .quarantine keeps at most ${limits.maxCount} entries and ${limits.maxBytes} bytes`,
    );
  }
  return removed;
}

/** `<id>.<quarantine time>` sorts by quarantine time, then by name. */
function byQuarantineTime(a: string, b: string): number {
  const ta = a.slice(a.indexOf('.') + 1);
  const tb = b.slice(b.indexOf('.') + 1);
  return ta < tb ? -1 : ta > tb ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

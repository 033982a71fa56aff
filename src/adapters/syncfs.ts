import { runProcess } from './run.js';

/**
 * Flush a whole filesystem (syncfs) — one call instead of an fsync per file of a new tree.
 * Apart from fsx.ts because it starts a process: fsx.ts stays below run.ts (children records use its
 * sync atomic write), so the adapters have no import cycle.
 */
export async function syncFilesystem(path: string): Promise<void> {
  const r = await runProcess(['sync', '-f', path], { timeoutMs: 10 * 60_000 });
  if (r.code !== 0) throw new Error(`sync -f ${path} failed: ${r.stderr.trim()}`);
}

import { join } from 'node:path';
import { z } from 'zod';
import type { SinkConfig, StreamName } from '../config/schema.js';
import { mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';

/**
 * What the last offsite push knew per source and stream, in `<stateDir>/offsite/push-<source>-<stream>.json`:
 * the newest committed generation and when the push ran, and the last failure. `status` reads it
 * (no network).
 */
export const pushStateSchema = z.object({
  newest: z.string().optional(),
  checkedAt: z.iso.datetime(),
  lastError: z.string().optional(),
  lastErrorAt: z.iso.datetime().optional(),
});
export type PushState = z.infer<typeof pushStateSchema>;

export function pushStateFile(config: SinkConfig, source: string, stream: StreamName): string {
  return join(config.stateDir, 'offsite', `push-${source}-${stream}.json`);
}

export async function readPushState(
  config: SinkConfig,
  source: string,
  stream: StreamName,
): Promise<PushState | undefined> {
  const raw = await readJsonIfExists(pushStateFile(config, source, stream)).catch(() => undefined);
  const r = pushStateSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

export async function recordPushState(
  config: SinkConfig,
  source: string,
  stream: StreamName,
  s: { newest: string | undefined; at: Date } | { error: string; at: Date },
): Promise<void> {
  const prev = await readPushState(config, source, stream);
  const next: PushState =
    'error' in s
      ? {
          ...(prev ?? { checkedAt: s.at.toISOString() }),
          lastError: s.error,
          lastErrorAt: s.at.toISOString(),
        }
      : { ...(s.newest === undefined ? {} : { newest: s.newest }), checkedAt: s.at.toISOString() };
  await mkdirp(join(config.stateDir, 'offsite'), 0o700);
  await writeFileAtomic(pushStateFile(config, source, stream), JSON.stringify(next), 0o600);
}

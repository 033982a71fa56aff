import { z } from 'zod';
import { isGenerationId } from '../generation/names.js';

/** What `baton gate … list` prints. Parsed on the sink as hostile input. */
export const gateListingSchema = z.object({
  source: z.string().max(64),
  stream: z.enum(['data', 'logs']),
  generations: z
    .array(
      z.object({
        id: z.string().refine(isGenerationId, { error: 'not a generation id' }),
        manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
        manifestBytes: z.number().int().nonnegative(),
      }),
    )
    .max(10_000),
});
export type GateListingParsed = z.infer<typeof gateListingSchema>;

export const gateAckSchema = z.object({
  acked: z.string(),
  action: z.enum(['moved', 'deleted']),
  pruned: z.array(z.string()).optional(),
});

/** What the gate prints for `reject ID SHA256`. */
export const gateRejectSchema = z.object({
  rejected: z.string().max(32),
  keptIn: z.string().max(4096),
});

/** The most a `list` answer may be: the sink stops reading there. */
export const MAX_LISTING_BYTES = 4 * 1024 * 1024;

/** Parses the gate's list output; throws with a short reason when it is not what a gate prints. */
export function parseGateListing(
  text: string,
  expect: { source: string; stream: 'data' | 'logs' },
): GateListingParsed {
  if (text.length > MAX_LISTING_BYTES) throw new Error('list output larger than 4 MiB');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`list output is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  const r = gateListingSchema.safeParse(raw);
  if (!r.success) throw new Error(`list output rejected: ${r.error.issues[0]?.message ?? 'invalid'}`);
  if (r.data.source !== expect.source)
    throw new Error(`list came from source "${r.data.source}", expected "${expect.source}"`);
  if (r.data.stream !== expect.stream)
    throw new Error(`list is for stream ${r.data.stream}, expected ${expect.stream}`);
  const ids = r.data.generations.map((g) => g.id);
  if (new Set(ids).size !== ids.length) throw new Error('list names a generation twice');
  return {
    ...r.data,
    generations: [...r.data.generations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
  };
}

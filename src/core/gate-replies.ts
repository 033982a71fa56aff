import { z } from 'zod';
import { isGenerationId } from '../generation/names.js';

/*
 * The gate's replies (`baton gate data|logs` on the source, src/gate/gate.ts), declared once: the gate
 * builds them with these types, the sink parses them with these schemas as hostile input.
 */

const generationId = z.string().refine(isGenerationId, { error: 'not a generation id' });

/** A complete generation in a handover: a directory named by a valid id holding a regular `manifest`. */
export const handoverGenerationSchema = z.object({
  id: generationId,
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  manifestBytes: z.number().int().nonnegative(),
});
export type HandoverGeneration = z.infer<typeof handoverGenerationSchema>;

/** What the gate prints for `list`: the complete generations of the handover, oldest first. */
export const gateListingSchema = z.object({
  source: z.string().max(64),
  stream: z.enum(['data', 'logs']),
  generations: z
    .array(
      handoverGenerationSchema.extend({
        /** how old the generation is by the source's clock (for a reader; the sink does not use it) */
        ageSeconds: z.number().int().optional(),
      }),
    )
    .max(10_000),
});
export type GateListing = z.infer<typeof gateListingSchema>;

/** What the gate prints for `ack ID SHA256` once the sink proved receipt. */
export const gateAckSchema = z.object({
  acked: z.string().max(32),
  action: z.enum(['moved', 'deleted']),
  /** source store generations pruned by this ack (data only), newest first */
  pruned: z.array(z.string().max(32)).max(10_000).optional(),
});
export type GateAck = z.infer<typeof gateAckSchema>;

/** What the gate prints for `reject ID SHA256`. */
export const gateRejectSchema = z.object({
  rejected: z.string().max(32),
  /** where the source keeps it */
  keptIn: z.string().max(4096),
});
export type GateReject = z.infer<typeof gateRejectSchema>;

/** The most a `list` answer may be: the sink stops reading there. */
export const MAX_LISTING_BYTES = 4 * 1024 * 1024;

/** Parses the gate's list output; throws with a short reason when it is not what a gate prints. */
export function parseGateListing(
  text: string,
  expect: { source: string; stream: 'data' | 'logs' },
): GateListing {
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

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

/**
 * `list-head`: the listing, and with it the manifest of the oldest generation when it is at most this
 * large, so a pull of one generation needs no rsync session of its own for the manifest. A larger one
 * (about 60,000 files and up, where one more session costs nothing in comparison) is left out and
 * the sink fetches it with rsync as before.
 */
export const MAX_INLINE_MANIFEST_BYTES = 8 * 1024 * 1024;
/** The header line between the listing and the manifest bytes: `manifest <id> <bytes>`. */
const HEAD_LINE = /^manifest ([0-9TZ-]{1,32}) (0|[1-9][0-9]{0,9})$/;
const MAX_HEAD_LINE_BYTES = 64;
/** The most a `list-head` answer may be (a listing, a header, a manifest and room): the sink stops reading there. */
export const MAX_LIST_HEAD_BYTES = MAX_LISTING_BYTES + MAX_INLINE_MANIFEST_BYTES + 1024 * 1024;

/** The header line the gate writes before the inline manifest of `id`. */
export function formatHeadLine(id: string, bytes: number): string {
  return `manifest ${id} ${bytes}\n`;
}

/** A `list-head` answer: the listing, and the bytes of the oldest generation's manifest when they came along. */
export interface ListingWithHead {
  listing: GateListing;
  head?: { id: string; manifest: Buffer };
}

/**
 * Parses a `list-head` answer as hostile input: a listing line ({@link parseGateListing}), then nothing,
 * or one `manifest <id> <bytes>` line and exactly that many bytes. The id must be the listing's oldest
 * and the size the one it declares, at most {@link MAX_INLINE_MANIFEST_BYTES}; anything else, or
 * anything after, is refused. Whether the bytes hash to the listed sha256 is the precheck's to judge.
 */
export function parseListingWithHead(
  reply: Buffer,
  expect: { source: string; stream: 'data' | 'logs' },
): ListingWithHead {
  if (reply.length > MAX_LIST_HEAD_BYTES) throw new Error('list-head output larger than its cap');
  const nl = reply.indexOf(0x0a);
  if (nl < 0 || nl > MAX_LISTING_BYTES) throw new Error('list-head output has no listing line');
  const listing = parseGateListing(reply.subarray(0, nl).toString('utf8'), expect);
  const rest = reply.subarray(nl + 1);
  if (rest.length === 0) return { listing };
  const hl = rest.subarray(0, MAX_HEAD_LINE_BYTES + 1).indexOf(0x0a);
  if (hl < 0) throw new Error('list-head output: no manifest line after the listing');
  const m = HEAD_LINE.exec(rest.subarray(0, hl).toString('latin1'));
  if (!m?.[1] || m[2] === undefined) {
    throw new Error(
      `list-head output: bad manifest line ${JSON.stringify(rest.subarray(0, hl).toString('latin1'))}`,
    );
  }
  const [, id, size] = m;
  const oldest = listing.generations[0];
  if (oldest?.id !== id)
    throw new Error(`list-head output: manifest of ${id}, not of the oldest generation listed`);
  const bytes = Number(size);
  if (bytes !== oldest.manifestBytes || bytes > MAX_INLINE_MANIFEST_BYTES) {
    throw new Error(
      `list-head output: manifest of ${id} is ${bytes} bytes, the listing says ${oldest.manifestBytes}`,
    );
  }
  const manifest = rest.subarray(hl + 1);
  if (manifest.length !== bytes) {
    throw new Error(
      `list-head output: ${manifest.length} manifest bytes of ${id} where ${bytes} were announced`,
    );
  }
  return { listing, head: { id, manifest } };
}

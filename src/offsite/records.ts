import { z } from 'zod';

/**
 * PROVISIONAL record schemas of the offsite repository (the `format` helper owns
 * src/core/offsite-records.ts; the engine switches to it on merge). Everything read from a bucket
 * is hostile: parsed and bounded, never cast.
 */
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const genId = z.string().regex(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$/);

export const repoConfigSchema = z.strictObject({
  version: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{32}$/),
  chunker: z.strictObject({
    min: z.int().min(64),
    avg: z.int().min(64),
    max: z
      .int()
      .min(64)
      .max(64 * 2 ** 20),
  }),
  encrypted: z.boolean(),
  /** the master key, age-encrypted to the recipients, base64 */
  keys: z
    .string()
    .max(1 << 20)
    .optional(),
});
export type RepoConfig = z.infer<typeof repoConfigSchema>;

export const MAX_INDEX_ENTRIES = 1_000_000;
export const packIndexSchema = z.strictObject({
  version: z.literal(1),
  blobs: z
    .array(
      z.strictObject({
        id: hex64,
        offset: z.int().min(0),
        length: z
          .int()
          .min(1)
          .max(128 * 2 ** 20),
        plainLength: z
          .int()
          .min(0)
          .max(64 * 2 ** 20),
      }),
    )
    .max(MAX_INDEX_ENTRIES),
});
export type PackIndex = z.infer<typeof packIndexSchema>;

export const filesMapSchema = z.strictObject({
  version: z.literal(1),
  /** a regular file's manifest sha256 → its blob ids in order (none for an empty file) */
  files: z.record(hex64, z.array(hex64).max(2 ** 22)),
});
export type FilesMap = z.infer<typeof filesMapSchema>;

export const commitSchema = z.strictObject({
  version: z.literal(1),
  source: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/),
  stream: z.enum(['data', 'logs']),
  id: genId,
  created: z.iso.datetime(),
  /** sha256 of the plaintext of each generation object */
  objects: z.strictObject({ manifest: hex64, SHA256SUMS: hex64, 'meta.json': hex64, files: hex64 }),
  packs: z.array(hex64).max(10_000_000),
});
export type Commit = z.infer<typeof commitSchema>;

/** Parses JSON bytes with a schema; the reason as a string when they are not what they claim. */
export function parseRecord<T>(schema: z.ZodType<T>, bytes: Uint8Array): T | string {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'not valid JSON';
  }
  const r = schema.safeParse(raw);
  return r.success ? r.data : `not a valid record: ${r.error.issues[0]?.message ?? 'schema mismatch'}`;
}

import { z } from 'zod';

/** meta.json of a generation. Read from a source it is hostile input: parsed, never cast. */
export const generationMetaSchema = z.object({
  id: z.string(),
  source: z.string(),
  stream: z.enum(['data', 'logs']),
  created: z.string(),
  appStoppedAt: z.string().optional(),
  appStartedAt: z.string().optional(),
  downtimeMs: z.number().int().nonnegative().optional(),
  files: z.number().int().nonnegative(),
  entries: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  bytesCopied: z.number().int().nonnegative(),
  previous: z.string().optional(),
  batonVersion: z.string(),
});
export type GenerationMeta = z.infer<typeof generationMetaSchema>;

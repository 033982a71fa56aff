import type { OffsiteConfig } from '../config/schema.js';
import { readRecipientsFile } from './crypto.js';

/** The age recipients of the config: the `recipients` list plus the keys of `recipientsFile`. */
export async function configuredRecipients(enc: NonNullable<OffsiteConfig['encryption']>): Promise<string[]> {
  const out = [...(enc.recipients ?? [])];
  if (enc.recipientsFile !== undefined) out.push(...(await readRecipientsFile(enc.recipientsFile)));
  return out;
}

import { gateAckSchema } from '../core/listing.js';
import { JobError } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { describeSshFailure, type Transport } from './transport.js';

/**
 * Step 2.c: tells the source's gate that a generation is verified and durable here. The source
 * then moves it into its source store (data) or deletes it (logs). Repeating an ack is harmless.
 */
export async function ackGeneration(
  transport: Transport,
  id: string,
  manifestSha256: string,
  log: Logger,
): Promise<void> {
  const r = await transport.run(`ack ${id} ${manifestSha256}`, 5 * 60_000);
  // the reply is read up to GATE_REPLY_MAX_BYTES (one JSON line is far less)
  if (r.code !== 0 || r.exceeded) {
    const gateSaid = r.exceeded ? undefined : r.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(`ack of ${id} failed: ${gateSaid ?? describeSshFailure(r)}`, { step: 'ack' });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
  } catch {
    parsed = undefined;
  }
  const ack = gateAckSchema.safeParse(parsed);
  if (!ack.success || ack.data.acked !== id)
    throw new JobError(`ack of ${id}: unexpected answer from the gate`, { step: 'ack' });
  log.info(
    { step: 'ack', id, action: ack.data.action, prunedOnSource: ack.data.pruned ?? [] },
    `acked ${id}: source ${ack.data.action} it`,
  );
}

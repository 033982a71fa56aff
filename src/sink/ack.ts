import { gateAckSchema, gateRejectSchema } from '../core/listing.js';
import {
  formatAnswer,
  MAX_ACK_LINE_BYTES,
  MAX_ACK_RANGES,
  parseChallengeHeader,
  parseRangeLine,
  type ChallengeRange,
} from '../core/ack-challenge.js';
import { proveChallenge } from '../generation/ack-proof.js';
import { JobError, oneLine } from '../errors.js';
import type { Logger } from '../adapters/log.js';
import { describeSshFailure, type Transport } from './transport.js';

/** The longest line of the gate's final ack result (one JSON object). */
const MAX_RESULT_LINE_BYTES = 64 * 1024;

/**
 * Step 2.c: tells the source's gate that a generation is verified and durable here, and proves it: the
 * gate answers `ack ID SHA256` with a challenge (random byte ranges of the generation, a nonce) and the
 * sink answers with hashes read from its published copy `publishedDir` (src/core/ack-challenge.ts).
 * The source then moves it into its source store (data) or deletes it (logs). Repeating an ack is
 * harmless. Every reply is bounded while read and every wait lasts at most `timeoutMs`.
 */
export async function ackGeneration(
  transport: Transport,
  id: string,
  manifestSha256: string,
  publishedDir: string,
  timeoutMs: number,
  log: Logger,
): Promise<void> {
  const d = transport.dialogue(`ack ${id} ${manifestSha256}`, {
    timeoutMs,
    maxLines: MAX_ACK_RANGES + 2,
    maxLineBytes: MAX_RESULT_LINE_BYTES,
  });
  const failed = async (why: string): Promise<never> => {
    d.kill();
    const end = await d.finish();
    const gateSaid = end.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(`ack of ${id} failed: ${gateSaid ?? why}`, { step: 'ack' });
  };
  let resultLine: string | undefined;
  try {
    const head = await d.readLine();
    if (head === undefined) {
      const end = await d.finish();
      const gateSaid = end.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
      throw new JobError(
        `ack of ${id} failed: ${gateSaid ?? describeSshFailure({ argv: [], code: end.code, signal: null, timedOut: end.timedOut, durationMs: 0, stdout: '', stderr: end.stderr })}`,
        { step: 'ack' },
      );
    }
    if (head.length > MAX_ACK_LINE_BYTES) return await failed('the gate sent no ack challenge');
    const parsed = parseChallengeHeader(head);
    if (!parsed.ok) return await failed(`the gate sent no ack challenge (${parsed.error})`);
    const ranges: ChallengeRange[] = [];
    for (let i = 0; i < parsed.value.count; i++) {
      const line = await d.readLine();
      if (line === undefined) return await failed('the ack challenge ended early');
      const r = parseRangeLine(line);
      if (!r.ok) return await failed(`bad ack challenge: ${r.error}`);
      ranges.push(r.value);
    }
    let answers: string[];
    try {
      answers = await proveChallenge(publishedDir, { nonce: parsed.value.nonce, ranges });
    } catch (e) {
      // a challenge that does not fit the verified copy: answer nothing (never read outside it)
      return await failed(`the ack challenge does not fit the verified generation: ${oneLine(e)}`);
    }
    d.write(formatAnswer(answers));
    resultLine = await d.readLine();
  } catch (e) {
    if (e instanceof JobError) throw e;
    return await failed(oneLine(e));
  }
  const end = await d.finish();
  if (end.code !== 0 || resultLine === undefined) {
    const gateSaid = end.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(
      `ack of ${id} failed: ${gateSaid ?? (end.timedOut ? 'timed out' : `exit ${end.code}`)}`,
      { step: 'ack' },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(resultLine);
  } catch {
    json = undefined;
  }
  const ack = gateAckSchema.safeParse(json);
  if (!ack.success || ack.data.acked !== id)
    throw new JobError(`ack of ${id}: unexpected answer from the gate`, { step: 'ack' });
  log.info(
    { step: 'ack', id, action: ack.data.action, prunedOnSource: ack.data.pruned ?? [] },
    `acked ${id}: source ${ack.data.action} it`,
  );
}

/**
 * After a quarantine: asks the gate to set `id` aside (`reject ID SHA256`: moved to the handover's
 * `.rejected/`, out of the pending set), so the next runs reach the newer generations. Returns where the
 * source keeps it, or throws a one-line JobError.
 */
export async function rejectGeneration(
  transport: Transport,
  id: string,
  manifestSha256: string,
  timeoutMs: number,
  log: Logger,
): Promise<string> {
  const r = await transport.run(`reject ${id} ${manifestSha256}`, timeoutMs);
  if (r.code !== 0) {
    const gateSaid = r.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(`reject of ${id} failed: ${gateSaid ?? describeSshFailure(r)}`, { step: 'reject' });
  }
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.length > MAX_RESULT_LINE_BYTES ? '' : r.stdout.trim());
  } catch {
    json = undefined;
  }
  const rej = gateRejectSchema.safeParse(json);
  if (!rej.success || rej.data.rejected !== id)
    throw new JobError(`reject of ${id}: unexpected answer from the gate`, { step: 'reject' });
  log.warn(
    { step: 'reject', id, keptIn: rej.data.keptIn },
    `rejected ${id}: the source keeps it in ${rej.data.keptIn}`,
  );
  return rej.data.keptIn;
}

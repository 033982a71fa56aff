import { isGenerationId } from './generation-id.js';

/** What a remote caller asked the gate for, after the allow-list. */
export type GateRequest =
  | { kind: 'rsync' }
  | { kind: 'list' }
  | { kind: 'ack'; id: string; manifestSha256: string }
  | { kind: 'reject'; id: string; manifestSha256: string }
  | { kind: 'refused'; reason: string };

/** Longest SSH_ORIGINAL_COMMAND accepted, in UTF-8 bytes. */
export const MAX_GATE_REQUEST_BYTES = 4096;

/**
 * The prefix of a read-only rsync server. rsync itself (and rrsync after it) splits the command on single
 * spaces, so this exact spelling is what a pulling rsync client sends; a push lacks `--sender`.
 */
export const RSYNC_SENDER_PREFIX = 'rsync --server --sender ';

const ACK_PATTERN = /^ack ([^ ]+) ([0-9a-f]{64})$/;
const REJECT_PATTERN = /^reject ([^ ]+) ([0-9a-f]{64})$/;
// C0 controls (newline, CR, NUL, tab, ESC…), DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Given the command a remote caller asked for (`SSH_ORIGINAL_COMMAND`; undefined when it asked for a
 * shell), returns the one request the gate allows, or why it is refused. Allowed, exactly:
 *
 * - `list`
 * - `ack <generation id> <sha256 of its manifest, 64 lowercase hex>` (single spaces); the gate then
 *   challenges the sink to prove it holds the bytes (src/core/ack-challenge.ts)
 * - `reject <generation id> <sha256 of its manifest>`: the sink quarantined it; set it aside
 * - `rsync --server --sender …`: a pull. The rsync arguments are checked by `rrsync -ro`, which the
 *   gate runs on the stream's handover; this only makes sure it is never a push.
 *
 * Refused: nothing at all, more than {@link MAX_GATE_REQUEST_BYTES} bytes, any control character
 * (a second command on a new line), text that was not valid UTF-8, and everything else.
 */
export function parseGateRequest(original: string | undefined): GateRequest {
  if (original === undefined || original === '') return refuse('no command given (an interactive login?)');
  if (Buffer.byteLength(original, 'utf8') > MAX_GATE_REQUEST_BYTES) {
    return refuse(`command longer than ${MAX_GATE_REQUEST_BYTES} bytes`);
  }
  if (CONTROL_CHARS.test(original)) return refuse('command contains a control character');
  // U+FFFD is what invalid UTF-8 decodes to: what we checked would not be what rrsync reads.
  if (original.includes('\ufffd')) return refuse('command is not valid UTF-8');

  if (original === 'list') return { kind: 'list' };

  if (original.startsWith('ack ')) {
    const m = ACK_PATTERN.exec(original);
    const id = m?.[1];
    const manifestSha256 = m?.[2];
    if (id === undefined || manifestSha256 === undefined) {
      return refuse('expected "ack <generation id> <sha256 of the manifest, 64 lowercase hex digits>"');
    }
    if (!isGenerationId(id)) return refuse('ack names no valid generation id');
    return { kind: 'ack', id, manifestSha256 };
  }

  if (original.startsWith('reject ')) {
    const m = REJECT_PATTERN.exec(original);
    const id = m?.[1];
    const manifestSha256 = m?.[2];
    if (id === undefined || manifestSha256 === undefined) {
      return refuse('expected "reject <generation id> <sha256 of the manifest, 64 lowercase hex digits>"');
    }
    if (!isGenerationId(id)) return refuse('reject names no valid generation id');
    return { kind: 'reject', id, manifestSha256 };
  }

  if (original.startsWith(RSYNC_SENDER_PREFIX)) return { kind: 'rsync' };
  if (original.startsWith('rsync '))
    return refuse('only a read-only rsync (rsync --server --sender) is allowed');

  return refuse(
    'not an allowed command (allowed: list, ack ID SHA256, reject ID SHA256, a read-only rsync pull)',
  );
}

function refuse(reason: string): GateRequest {
  return { kind: 'refused', reason };
}

/**
 * Line deltas of generation objects (docs/offsite-format.md): a day changes about 1 % of the lines of a
 * manifest, SHA256SUMS or files map, so a push stores the edit script against an earlier generation's
 * object instead of the whole object again.
 *
 *   baton-offsite-delta 1
 *   c N          copy the next N lines of the base
 *   s N          skip the next N lines of the base
 *   a N          insert the N lines that follow
 *
 * "Lines" are the pieces of the text split at `\n` (so text and lines join back exactly); the ops must
 * consume every base line. Texts are handled as latin1 strings (one char a byte), so any bytes pass.
 *
 * Pure: no node:*.
 */
import { RecordError } from './offsite-records.js';

export const DELTA_HEADER = 'baton-offsite-delta 1';
/** How far ahead the encoder looks for a line it lost (objects are sorted, so changes stay local). */
const WINDOW = 256;

/**
 * The delta that turns `base` into `target`, or undefined when it would insert more than
 * `maxInserted` bytes (the caller stores the whole object then). Greedy and windowed: always
 * correct, small when the two texts share their order (sorted objects with few changes).
 */
export function makeDelta(base: string, target: string, maxInserted = target.length / 2): string | undefined {
  const b = base.split('\n');
  const t = target.split('\n');
  const out: string[] = [DELTA_HEADER];
  let kind = '';
  let n = 0;
  let added: string[] = [];
  let inserted = 0;
  const emit = (k: 'c' | 's' | 'a', count: number, line?: string) => {
    if (k !== kind) {
      if (n > 0) out.push(`${kind} ${n}`, ...added);
      kind = k;
      n = 0;
      added = [];
    }
    n += count;
    if (line !== undefined) added.push(line);
  };
  let i = 0;
  let j = 0;
  while (j < t.length) {
    const line = t[j] as string;
    if (i < b.length && b[i] === line) {
      emit('c', 1);
      i++;
      j++;
      continue;
    }
    let k = -1;
    for (let x = i + 1; x < Math.min(b.length, i + WINDOW); x++)
      if (b[x] === line) {
        k = x;
        break;
      }
    if (k >= 0) {
      emit('s', k - i);
      i = k;
      continue;
    }
    inserted += line.length + 1;
    if (inserted > maxInserted) return undefined;
    emit('a', 1, line);
    j++;
    if (i < b.length) {
      let later = false;
      for (let y = j; y < Math.min(t.length, j + WINDOW); y++)
        if (t[y] === b[i]) {
          later = true;
          break;
        }
      if (!later) {
        emit('s', 1);
        i++;
      }
    }
  }
  if (i < b.length) emit('s', b.length - i);
  if (n > 0) out.push(`${kind} ${n}`, ...added);
  return out.join('\n');
}

/**
 * Applies `delta` (hostile) to `base`; the result may be at most `maxLength` chars. Throws one
 * RecordError naming `what` for anything malformed.
 */
export function applyDelta(base: string, delta: string, maxLength: number, what: string): string {
  const fail = (lineNo: number, why: string): never => {
    throw new RecordError(`${what}: delta line ${lineNo}: ${why}`);
  };
  const b = base.split('\n');
  const d = delta.split('\n');
  if (d[0] !== DELTA_HEADER) throw new RecordError(`${what}: not a delta (expected "${DELTA_HEADER}")`);
  const out: string[] = [];
  let size = -1; // joined length: lines + separators
  let i = 0;
  let p = 1;
  while (p < d.length) {
    const m = /^([csa]) ([1-9][0-9]{0,9})$/.exec(d[p] ?? '');
    if (!m) fail(p + 1, 'expected "c N", "s N" or "a N"');
    const op = (m as RegExpExecArray)[1];
    const count = Number((m as RegExpExecArray)[2]);
    p++;
    const take = (from: readonly string[], at: number) => {
      for (let x = 0; x < count; x++) {
        const line = from[at + x] as string;
        size += line.length + 1;
        if (size > maxLength) fail(p, `the result is longer than ${maxLength} bytes`);
        out.push(line);
      }
    };
    if (op === 'a') {
      if (p + count > d.length) fail(p, `${count} lines announced, fewer follow`);
      take(d, p);
      p += count;
      continue;
    }
    if (i + count > b.length) fail(p, `reaches past the base's ${b.length} lines`);
    if (op === 'c') take(b, i);
    i += count;
  }
  if (i !== b.length) throw new RecordError(`${what}: the delta leaves ${b.length - i} base lines unused`);
  return out.join('\n');
}

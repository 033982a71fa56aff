/**
 * The ack challenge (docs/design.md §3): an `ack` proves that the sink holds the generation's bytes, not
 * only that it read `list`. Over the one ssh session of `ack ID SHA256`:
 *
 *   gate → sink   baton-ack-challenge 1 <nonce: 64 hex> <n>
 *                 file <manifest entry index> <offset> <length>     ┐ n lines
 *                 manifest <offset> <length>                        ┘ (manifest only when no file qualifies)
 *   sink → gate   baton-ack-answer 1 <n>
 *                 <sha256(nonce bytes ‖ range bytes), 64 hex>       n lines, in challenge order
 *   gate → sink   the ack result (one JSON line), or a refusal on stderr and exit 1
 *
 * A `file` range names a regular file of size > 0 by its index among the manifest's entries (0 = the
 * first entry after the header): both sides hold the same manifest (its sha256 is in the command), so
 * no path travels and the sink reads only files its own verified manifest names. Lines are `\n`-ended
 * ASCII, at most {@link MAX_ACK_LINE_BYTES}; every field is parsed, nothing is cast.
 * Pure: no I/O here; randomness comes in as a function; the proof of a range (sha256 of the nonce's 32
 * bytes then the range's bytes) is computed in src/generation/ack-proof.ts (`answerRange`).
 */

export const ACK_CHALLENGE_VERSION = 'baton-ack-challenge 1';
export const ACK_ANSWER_VERSION = 'baton-ack-answer 1';
/** Ranges per challenge. */
export const ACK_RANGES = 8;
/** The most ranges either side accepts in a challenge or an answer. */
export const MAX_ACK_RANGES = 64;
/** The longest range: a challenge reads little, the proof is in the randomness. */
export const MAX_RANGE_BYTES = 64 * 1024;
/** The longest line either side reads (the newline not counted). */
export const MAX_ACK_LINE_BYTES = 200;

export type RangeTarget = { kind: 'file'; entry: number } | { kind: 'manifest' };

export interface ChallengeRange {
  target: RangeTarget;
  offset: number;
  length: number;
}

export interface AckChallenge {
  /** 32 random bytes as 64 lowercase hex digits. */
  nonce: string;
  ranges: ChallengeRange[];
}

/** A random integer in [0, maxExclusive); maxExclusive ≥ 1. The gate passes crypto.randomInt. */
export type RandomInt = (maxExclusive: number) => number;

interface Candidate {
  entry: number;
  size: number;
}

/**
 * Picks up to `count` regular files of size > 0 uniformly from a manifest read once, in constant memory
 * (reservoir sampling): `offer` each file entry as it is read, then `challenge`.
 */
export class ChallengeSampler {
  private readonly picked: Candidate[] = [];
  private seen = 0;

  constructor(
    private readonly random: RandomInt,
    private readonly count = ACK_RANGES,
  ) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_ACK_RANGES) {
      throw new RangeError(`ranges per challenge must be 1..${MAX_ACK_RANGES}`);
    }
  }

  /** One manifest entry: `entry` is its index after the header; only regular files of size > 0 count. */
  offer(entry: number, type: string, size: number): void {
    if (type !== 'f' || !(size > 0) || !Number.isSafeInteger(size)) return;
    this.seen++;
    if (this.picked.length < this.count) {
      this.picked.push({ entry, size });
      return;
    }
    const j = this.random(this.seen);
    if (j < this.count) this.picked[j] = { entry, size };
  }

  /**
   * The challenge: `count` ranges over the picked files (a file picked again when fewer qualify, each
   * time with its own range); with no qualifying file, `count` ranges of the manifest itself
   * (`manifestBytes` > 0). Ranges are 1..{@link MAX_RANGE_BYTES} bytes at a random offset.
   */
  challenge(nonce: string, manifestBytes: number): AckChallenge {
    if (!NONCE.test(nonce)) throw new RangeError('nonce must be 64 lowercase hex digits');
    const ranges: ChallengeRange[] = [];
    for (let i = 0; i < this.count; i++) {
      const c = this.picked.length > 0 ? this.picked[i % this.picked.length] : undefined;
      const size = c ? c.size : manifestBytes;
      if (!(size > 0)) throw new RangeError('nothing to challenge: no file and an empty manifest');
      const length = 1 + this.random(Math.min(size, MAX_RANGE_BYTES));
      const offset = this.random(size - length + 1);
      ranges.push({ target: c ? { kind: 'file', entry: c.entry } : { kind: 'manifest' }, offset, length });
    }
    return { nonce, ranges };
  }
}

// ---------------------------------------------------------------------------------------------------------
// wire format

const NONCE = /^[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{64}$/;
/** A non-negative decimal without leading zeros, at most 16 digits (then checked as a safe integer). */
const UINT = /^(0|[1-9][0-9]{0,15})$/;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function fail<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

function uint(text: string | undefined): number | undefined {
  if (text === undefined || !UINT.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A line both sides may read at all: bounded, printable ASCII. */
function lineProblem(line: string): string | undefined {
  if (line.length > MAX_ACK_LINE_BYTES) return `line longer than ${MAX_ACK_LINE_BYTES} bytes`;
  if (!/^[\x20-\x7e]*$/.test(line)) return 'line is not printable ASCII';
  return undefined;
}

/** The challenge as the gate writes it, one `\n`-ended line each. */
export function formatChallenge(ch: AckChallenge): string {
  const lines = [`${ACK_CHALLENGE_VERSION} ${ch.nonce} ${ch.ranges.length}`];
  for (const r of ch.ranges) {
    lines.push(
      r.target.kind === 'file'
        ? `file ${r.target.entry} ${r.offset} ${r.length}`
        : `manifest ${r.offset} ${r.length}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The first line of a challenge: the nonce and how many range lines follow. */
export function parseChallengeHeader(line: string): Parsed<{ nonce: string; count: number }> {
  const bad = lineProblem(line);
  if (bad) return fail(bad);
  const prefix = `${ACK_CHALLENGE_VERSION} `;
  if (!line.startsWith(prefix)) return fail('not an ack challenge');
  const [nonce, countText, ...rest] = line.slice(prefix.length).split(' ');
  if (rest.length > 0 || nonce === undefined || !NONCE.test(nonce)) return fail('bad challenge header');
  const count = uint(countText);
  if (count === undefined || count < 1 || count > MAX_ACK_RANGES)
    return fail(`challenge must name 1..${MAX_ACK_RANGES} ranges`);
  return { ok: true, value: { nonce, count } };
}

/** One range line of a challenge. Its length is 1..{@link MAX_RANGE_BYTES}. */
export function parseRangeLine(line: string): Parsed<ChallengeRange> {
  const bad = lineProblem(line);
  if (bad) return fail(bad);
  const f = line.split(' ');
  let target: RangeTarget;
  let rest: string[];
  if (f[0] === 'file' && f.length === 4) {
    const entry = uint(f[1]);
    if (entry === undefined) return fail('bad entry index');
    target = { kind: 'file', entry };
    rest = f.slice(2);
  } else if (f[0] === 'manifest' && f.length === 3) {
    target = { kind: 'manifest' };
    rest = f.slice(1);
  } else {
    return fail('expected "file ENTRY OFFSET LENGTH" or "manifest OFFSET LENGTH"');
  }
  const offset = uint(rest[0]);
  const length = uint(rest[1]);
  if (offset === undefined || length === undefined) return fail('bad offset or length');
  if (length < 1 || length > MAX_RANGE_BYTES) return fail(`range length must be 1..${MAX_RANGE_BYTES}`);
  if (!Number.isSafeInteger(offset + length)) return fail('range out of bounds');
  return { ok: true, value: { target, offset, length } };
}

/** A whole challenge from its lines (header first, exactly as many range lines as it announces). */
export function parseChallenge(lines: readonly string[]): Parsed<AckChallenge> {
  const [first, ...rest] = lines;
  if (first === undefined) return fail('empty challenge');
  const head = parseChallengeHeader(first);
  if (!head.ok) return head;
  if (rest.length !== head.value.count)
    return fail(`challenge announced ${head.value.count} ranges, got ${rest.length}`);
  const ranges: ChallengeRange[] = [];
  for (const line of rest) {
    const r = parseRangeLine(line);
    if (!r.ok) return r;
    ranges.push(r.value);
  }
  return { ok: true, value: { nonce: head.value.nonce, ranges } };
}

/** The answer as the sink writes it. */
export function formatAnswer(hashes: readonly string[]): string {
  return `${[`${ACK_ANSWER_VERSION} ${hashes.length}`, ...hashes].join('\n')}\n`;
}

/** The first line of an answer: how many hash lines follow (must equal the challenge's ranges). */
export function parseAnswerHeader(line: string): Parsed<number> {
  const bad = lineProblem(line);
  if (bad) return fail(bad);
  const prefix = `${ACK_ANSWER_VERSION} `;
  if (!line.startsWith(prefix)) return fail('not an ack answer');
  const count = uint(line.slice(prefix.length));
  if (count === undefined || count < 1 || count > MAX_ACK_RANGES)
    return fail(`answer must hold 1..${MAX_ACK_RANGES} hashes`);
  return { ok: true, value: count };
}

/** One hash line of an answer. */
export function parseAnswerLine(line: string): Parsed<string> {
  const bad = lineProblem(line);
  if (bad) return fail(bad);
  return HEX64.test(line) ? { ok: true, value: line } : fail('expected a sha256 (64 lowercase hex digits)');
}

/**
 * Given the expected proofs (what the gate computed from its own copy) and the answer's lines, says
 * whether the answer proves possession; a wrong count, a malformed line or any wrong hash does not.
 */
export function checkAnswer(expected: readonly string[], lines: readonly string[]): Parsed<true> {
  const [first, ...rest] = lines;
  if (first === undefined) return fail('no answer');
  const head = parseAnswerHeader(first);
  if (!head.ok) return head;
  if (head.value !== expected.length || rest.length !== expected.length)
    return fail(`answer holds ${rest.length} hashes, the challenge asked for ${expected.length}`);
  let wrong = 0;
  for (const [i, line] of rest.entries()) {
    const h = parseAnswerLine(line);
    if (!h.ok) return h;
    if (h.value !== expected[i]) wrong++;
  }
  if (wrong > 0) return fail(`${wrong} of ${expected.length} range hashes are wrong`);
  return { ok: true, value: true };
}

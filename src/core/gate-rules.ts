import { isGenerationId } from '../generation/names.js';

/** What a remote caller asked the gate for, after the allow-list. */
export type GateRequest =
  | { kind: 'rsync'; pull: RsyncPullRequest }
  | { kind: 'list' }
  | { kind: 'list-head' }
  | { kind: 'session' }
  | { kind: 'ack'; id: string; manifestSha256: string }
  | { kind: 'reject'; id: string; manifestSha256: string }
  | { kind: 'refused'; reason: string };

/** Longest SSH_ORIGINAL_COMMAND accepted, in UTF-8 bytes. */
export const MAX_GATE_REQUEST_BYTES = 4096;

/**
 * The prefix of a read-only rsync server. An rsync client joins the server argv with single spaces, so
 * this exact spelling is what a pulling rsync client sends; a push lacks `--sender`.
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
 * - `list-head`: the same listing, followed by the manifest of the oldest generation when it is small
 *   (src/core/gate-replies.ts `parseListingWithHead`): the sink's pull then needs no rsync for it
 * - `session`: the gate then reads `list`, `list-head`, `ack` and `reject` requests one line at a time on
 *   the same channel and answers each (src/core/gate-session.ts): one gate start per pull, not one per request
 * - `ack <generation id> <sha256 of its manifest, 64 lowercase hex>` (single spaces); the gate then
 *   challenges the sink to prove it holds the bytes (src/core/ack-challenge.ts)
 * - `reject <generation id> <sha256 of its manifest>`: the sink quarantined it; set it aside
 * - `rsync --server --sender …`: a pull of one generation, exactly as baton's own pull asks for it
 *   (see {@link parseRsyncPull}); the gate runs rsync with an argv rebuilt from the parsed request.
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
  // U+FFFD is what invalid UTF-8 decodes to: what we checked would not be what the caller sent.
  if (original.includes('\ufffd')) return refuse('command is not valid UTF-8');

  if (original === 'list') return { kind: 'list' };
  if (original === 'list-head') return { kind: 'list-head' };
  if (original === 'session') return { kind: 'session' };

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

  if (original.startsWith(RSYNC_SENDER_PREFIX)) {
    const pull = parseRsyncPull(original.slice(RSYNC_SENDER_PREFIX.length));
    return typeof pull === 'string' ? refuse(pull) : { kind: 'rsync', pull };
  }
  if (original.startsWith('rsync '))
    return refuse('only a read-only rsync (rsync --server --sender) is allowed');

  return refuse(
    'not an allowed command (allowed: list, list-head, session, ack ID SHA256, reject ID SHA256, a read-only rsync pull)',
  );
}

function refuse(reason: string): GateRequest {
  return { kind: 'refused', reason };
}

// ---------------------------------------------------------------------------------------------------------
// The rsync pull: an allow-list of the server argv baton's own pull makes (src/sink/pull.ts `pullArgv`).
//
// Captured from rsync 3.2.7 and 3.5.0 clients running baton's pull (`-rlpt --delete --numeric-ids --partial
// --timeout=N`, plus `-H`, `--max-size=N`, `--chmod=…`, include/exclude filters, `--inplace
// --no-whole-file`, `--link-dest=…`, `--info=progress2 --no-inc-recursive --no-h`, `--out-format=…`), the
// server argv is, on both versions:
//
//   rsync --server --sender -l[H]tpre.[i]LsfxCIvu --timeout=N [--bwlimit=K] --numeric-ids [--inplace] . <id>/
//
// (`--bwlimit=K`, K KiB/s as a whole number, when the sink config sets the source's `bwlimit:`: the
// sender paces what it writes, nothing more.)
//
// Everything else (--delete, --partial, --max-size, --chmod, --link-dest, filters, progress, out-format) acts
// on the receiving side and never reaches the server argv; filter rules travel inside the protocol and
// only narrow what the sender sends. So the gate accepts exactly the words below and rebuilds the argv
// from them: an option that would make the sender follow or copy links (-L, -k, -K, --copy-links,
// --copy-unsafe-links, --copy-dirlinks), read lists or write files (--files-from, --include-from,
// --exclude-from, --log-file, --temp-dir, --remove-source-files), take its arguments from the protocol
// (-s, --protect-args), run a shell (-e with a command) or a daemon is refused because it is not listed,
// on every rsync version.

/** Short option letters a pull may carry before `e.`, and why each is safe on the sending side. */
export const RSYNC_PULL_SHORT_FLAGS: Readonly<Record<string, string>> = {
  r: 'recursive: the generation is a tree',
  l: 'symlinks are sent as symlinks (their target text), never followed',
  t: 'modification times are sent',
  p: 'permissions are sent (the sink normalises them)',
  H: 'hard links are sent as links between files of the same transfer (baton pulls with -H)',
};

/**
 * Letters after `-e.`: the client's protocol capabilities (rsync's compat flags: i incremental recursion,
 * L symlink times, s symlink iconv, f safe file list, x avoid xattr optimisation, C checksum seed fix,
 * I inplace partial dir, v varint file-list flags, u id0 names). They change the wire format, not what
 * is read.
 */
export const RSYNC_PULL_CAPABILITIES = 'iLsfxCIvu';

/** Longest `--timeout` accepted, in seconds (a week): 0 (none) and absurd values are refused. */
export const MAX_RSYNC_TIMEOUT_SECONDS = 7 * 24 * 3600;

/** Highest `--bwlimit` accepted, in KiB/s (about 1 TiB/s): 0 would mean none, absurd values are refused. */
export const MAX_RSYNC_BWLIMIT_KIB = 1024 ** 3;

/** A read-only rsync pull of one generation, as parsed from the server argv. */
export interface RsyncPullRequest {
  /** The allowed short option letters present, in the order of {@link RSYNC_PULL_SHORT_FLAGS}. */
  flags: string;
  /** The capability letters after `e.`, in the order of {@link RSYNC_PULL_CAPABILITIES}. */
  capabilities: string;
  /** `--timeout=N` (the sender's own I/O timeout), when sent. */
  timeoutSeconds: number | undefined;
  /** `--bwlimit=K` (the sender paces its output to K KiB/s), when sent. */
  bwlimitKiB?: number | undefined;
  /** `--numeric-ids`: uid/gid numbers only, no name lookups (baton always sends it). */
  numericIds: boolean;
  /** `--inplace` (storeMode reflink): changes how the receiver writes; the sender only learns of it. */
  inplace: boolean;
  /** The generation asked for: `<id>/` in the handover. */
  generation: string;
}

const TIMEOUT_OPTION = /^--timeout=([1-9][0-9]{0,9})$/;
const BWLIMIT_OPTION = /^--bwlimit=([1-9][0-9]{0,12})$/;
const SHORT_GROUP = /^-([A-Za-z]*)e\.([A-Za-z]*)$/;

/**
 * Given the words after `rsync --server --sender ` (single-space separated), returns the pull they ask
 * for, or why it is refused. Accepted, exactly:
 *
 * `-<flags>e.<capabilities> [--timeout=N] [--bwlimit=K] [--numeric-ids] [--inplace] . <generation id>/`
 *
 * with flags from {@link RSYNC_PULL_SHORT_FLAGS} and capabilities from {@link RSYNC_PULL_CAPABILITIES}
 * (each letter at most once), each long option at most once (any order), and one path: a valid
 * generation id with a trailing slash, nothing else (no `..`, no absolute path, no path inside it).
 */
export function parseRsyncPull(rest: string): RsyncPullRequest | string {
  const words = rest.split(' ');
  const [group, ...tail] = words;
  const short = SHORT_GROUP.exec(group ?? '');
  if (short === null) {
    return `rsync pull: expected the option group -<flags>e.<capabilities> first, got ${quoteWord(group ?? '')}`;
  }
  const flags = checkLetters(short[1] ?? '', Object.keys(RSYNC_PULL_SHORT_FLAGS).join(''), 'option');
  if (flags.error !== undefined) return flags.error;
  const capabilities = checkLetters(short[2] ?? '', RSYNC_PULL_CAPABILITIES, 'capability');
  if (capabilities.error !== undefined) return capabilities.error;

  let timeoutSeconds: number | undefined;
  let bwlimitKiB: number | undefined;
  let numericIds = false;
  let inplace = false;
  let i = 0;
  for (; i < tail.length; i++) {
    const word = tail[i] ?? '';
    if (!word.startsWith('-')) break;
    const timeout = TIMEOUT_OPTION.exec(word);
    if (timeout !== null && timeoutSeconds === undefined) {
      const n = Number(timeout[1]);
      if (n > MAX_RSYNC_TIMEOUT_SECONDS) return `rsync pull: --timeout above ${MAX_RSYNC_TIMEOUT_SECONDS} s`;
      timeoutSeconds = n;
    } else if (BWLIMIT_OPTION.test(word) && bwlimitKiB === undefined) {
      const n = Number(BWLIMIT_OPTION.exec(word)?.[1]);
      if (n > MAX_RSYNC_BWLIMIT_KIB) return `rsync pull: --bwlimit above ${MAX_RSYNC_BWLIMIT_KIB} KiB/s`;
      bwlimitKiB = n;
    } else if (word === '--numeric-ids' && !numericIds) {
      numericIds = true;
    } else if (word === '--inplace' && !inplace) {
      inplace = true;
    } else {
      return `rsync pull: option ${quoteWord(word)} is not allowed`;
    }
  }
  const paths = tail.slice(i);
  if (paths[0] !== '.') return 'rsync pull: expected "." after the options';
  if (paths.length !== 2) return 'rsync pull: expected exactly one path, "<generation id>/"';
  const path = paths[1] ?? '';
  const id = path.endsWith('/') ? path.slice(0, -1) : '';
  if (!isGenerationId(id)) {
    return `rsync pull: the path must be "<generation id>/" in the handover, got ${quoteWord(path)}`;
  }
  return {
    flags: flags.letters,
    capabilities: capabilities.letters,
    timeoutSeconds,
    ...(bwlimitKiB === undefined ? {} : { bwlimitKiB }),
    numericIds,
    inplace,
    generation: id,
  };
}

/**
 * The argv (after the program name) of the rsync server that serves `pull`, run with the handover (or
 * the generation's parent) as its working directory: rebuilt from the parsed request, never the caller's
 * text. Given a request from {@link parseRsyncPull}, `parseRsyncPull` of the joined argv returns it again.
 */
export function rsyncServerArgv(pull: RsyncPullRequest): string[] {
  return [
    '--server',
    '--sender',
    `-${pull.flags}e.${pull.capabilities}`,
    ...(pull.timeoutSeconds === undefined ? [] : [`--timeout=${pull.timeoutSeconds}`]),
    ...(pull.bwlimitKiB === undefined ? [] : [`--bwlimit=${pull.bwlimitKiB}`]),
    ...(pull.numericIds ? ['--numeric-ids'] : []),
    ...(pull.inplace ? ['--inplace'] : []),
    '.',
    `${pull.generation}/`,
  ];
}

function checkLetters(
  given: string,
  allowed: string,
  what: string,
): { letters: string; error?: undefined } | { error: string } {
  const seen = new Set<string>();
  for (const c of given) {
    if (!allowed.includes(c)) return { error: `rsync pull: ${what} -${c} is not allowed` };
    if (seen.has(c)) return { error: `rsync pull: ${what} -${c} given twice` };
    seen.add(c);
  }
  return {
    letters: Array.from(allowed)
      .filter((c) => seen.has(c))
      .join(''),
  };
}

/** A caller's word for a one-line reason: bounded and JSON-quoted (it may hold anything printable). */
function quoteWord(word: string): string {
  return JSON.stringify(word.length > 40 ? `${word.slice(0, 40)}…` : word);
}

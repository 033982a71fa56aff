/**
 * The manifest: one line per path of a generation, in tree order, with the original metadata.
 *
 *   # baton-manifest 1
 *   <type> <mode> <uid> <gid> <user> <group> <mtime> <size> <sha256> <path> [<target>]
 *
 * type   f file, d directory, l symlink, p fifo, s socket, c char device, b block device
 * mode   octal permission bits including setuid/setgid/sticky (`0644`, `4755`)
 * user, group  names at collection time, escaped; `-` when the id had no name
 * mtime  `<seconds>.<9 digits of nanoseconds>` since the epoch
 * size   bytes (files), else what lstat said
 * sha256 lowercase hex for files, `-` otherwise
 * path   relative to tree/, components joined by `/`, escaped
 * target symlinks: the link target; devices: `<major>:<minor>`; absent otherwise
 *
 * Escaping: every byte outside 0x21–0x7e, `%`, and a leading `-` become `%XX`, so any byte
 * sequence (newline, invalid UTF-8) round-trips and fields never contain spaces.
 *
 * Pure: no fs. Everything read from a manifest is hostile until `parseManifestLine` accepted it.
 */

export const MANIFEST_HEADER = '# baton-manifest 1';

export type EntryType = 'f' | 'd' | 'l' | 'p' | 's' | 'c' | 'b';
const TYPES: ReadonlySet<string> = new Set(['f', 'd', 'l', 'p', 's', 'c', 'b']);

export interface ManifestEntry {
  type: EntryType;
  /** permission bits incl. setuid/setgid/sticky (0o7777 at most) */
  mode: number;
  uid: number;
  gid: number;
  user: string | undefined;
  group: string | undefined;
  /** nanoseconds since the epoch */
  mtimeNs: bigint;
  size: number;
  sha256: string | undefined;
  /** raw bytes of the relative path, components separated by `/` */
  path: Buffer;
  /** symlink target bytes, or `major:minor` for devices */
  target: Buffer | undefined;
}

const HEX = '0123456789ABCDEF';

/** Escapes bytes for a manifest field (see the module comment). */
export function escapeField(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    const plain = b > 0x20 && b < 0x7f && b !== 0x25 && !(i === 0 && b === 0x2d);
    out += plain ? String.fromCharCode(b) : `%${HEX[b >> 4] ?? '0'}${HEX[b & 15] ?? '0'}`;
  }
  return out;
}

/** Inverse of escapeField; undefined when the text is not a valid escaped field. */
export function unescapeField(text: string): Buffer | undefined {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (c > 0x20 && c < 0x7f && !(i === 0 && c === 0x2d)) {
      out.push(c);
    } else {
      return undefined;
    }
  }
  return Buffer.from(out);
}

function nameField(name: string | undefined): string {
  return name === undefined || name === '' ? '-' : escapeField(Buffer.from(name, 'utf8'));
}

function formatMtime(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  return `${neg ? '-' : ''}${abs / 1_000_000_000n}.${(abs % 1_000_000_000n).toString().padStart(9, '0')}`;
}

function parseMtime(text: string): bigint | undefined {
  const m = /^(-?)([0-9]{1,12})\.([0-9]{9})$/.exec(text);
  if (!m?.[2] || !m[3]) return undefined;
  const v = BigInt(m[2]) * 1_000_000_000n + BigInt(m[3]);
  return m[1] === '-' ? -v : v;
}

/** One manifest line (without the newline). */
export function formatManifestLine(e: ManifestEntry): string {
  const fields = [
    e.type,
    e.mode.toString(8).padStart(4, '0'),
    String(e.uid),
    String(e.gid),
    nameField(e.user),
    nameField(e.group),
    formatMtime(e.mtimeNs),
    String(e.size),
    e.sha256 ?? '-',
    escapeField(e.path),
  ];
  if (e.target !== undefined) fields.push(escapeField(e.target));
  return fields.join(' ');
}

export interface ManifestLimits {
  maxPathBytes: number;
  maxComponentBytes: number;
  maxFileSize: number;
}

export const DEFAULT_MANIFEST_LIMITS: ManifestLimits = {
  maxPathBytes: 4096,
  maxComponentBytes: 255,
  maxFileSize: Number.MAX_SAFE_INTEGER,
};

/**
 * Given a relative path's bytes, returns why it is unsafe (absolute, empty component, `.`/`..`,
 * NUL, too long), or undefined when it stays inside tree/.
 */
export function checkRelativePath(
  path: Buffer,
  limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS,
): string | undefined {
  if (path.length === 0) return 'empty path';
  if (path.length > limits.maxPathBytes) return `path longer than ${limits.maxPathBytes} bytes`;
  if (path.includes(0)) return 'NUL byte in path';
  if (path[0] === 0x2f) return 'absolute path';
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      const len = i - start;
      if (len === 0) return 'empty path component';
      if (len > limits.maxComponentBytes)
        return `path component longer than ${limits.maxComponentBytes} bytes`;
      if (
        (len === 1 && path[start] === 0x2e) ||
        (len === 2 && path[start] === 0x2e && path[start + 1] === 0x2e)
      ) {
        return '"." or ".." in path';
      }
      start = i + 1;
    }
  }
  return undefined;
}

export type ParsedLine = { ok: true; entry: ManifestEntry } | { ok: false; error: string };

/** Parses and validates one manifest line from an untrusted source. */
export function parseManifestLine(
  line: string,
  limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS,
): ParsedLine {
  const f = line.split(' ');
  if (f.length !== 10 && f.length !== 11)
    return { ok: false, error: `expected 10 or 11 fields, got ${f.length}` };
  const [type, mode, uid, gid, user, group, mtime, size, sha, path, target] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (!TYPES.has(type)) return { ok: false, error: `unknown type "${type.slice(0, 10)}"` };
  const t = type as EntryType;
  if (!/^[0-7]{3,4}$/.test(mode)) return { ok: false, error: 'bad mode' };
  if (!/^[0-9]{1,10}$/.test(uid) || !/^[0-9]{1,10}$/.test(gid)) return { ok: false, error: 'bad uid/gid' };
  const mtimeNs = parseMtime(mtime);
  if (mtimeNs === undefined) return { ok: false, error: 'bad mtime' };
  if (!/^[0-9]{1,16}$/.test(size)) return { ok: false, error: 'bad size' };
  const sizeN = Number(size);
  if (!Number.isSafeInteger(sizeN) || sizeN > limits.maxFileSize)
    return { ok: false, error: 'size out of bounds' };
  let sha256: string | undefined;
  if (t === 'f') {
    if (!/^[0-9a-f]{64}$/.test(sha)) return { ok: false, error: 'bad sha256' };
    sha256 = sha;
  } else if (sha !== '-') {
    return { ok: false, error: 'sha256 on a non-file' };
  }
  const pathBytes = unescapeField(path);
  if (pathBytes === undefined) return { ok: false, error: 'bad path escaping' };
  const pathProblem = checkRelativePath(pathBytes, limits);
  if (pathProblem) return { ok: false, error: pathProblem };
  let targetBytes: Buffer | undefined;
  const needsTarget = t === 'l' || t === 'c' || t === 'b';
  if (needsTarget !== (target !== undefined)) {
    return { ok: false, error: needsTarget ? 'missing link target' : 'unexpected target field' };
  }
  if (target !== undefined) {
    targetBytes = unescapeField(target);
    if (targetBytes === undefined) return { ok: false, error: 'bad target escaping' };
    if (targetBytes.length === 0 || targetBytes.length > limits.maxPathBytes || targetBytes.includes(0)) {
      return { ok: false, error: 'bad link target' };
    }
    if ((t === 'c' || t === 'b') && !/^[0-9]{1,10}:[0-9]{1,10}$/.test(targetBytes.toString('latin1'))) {
      return { ok: false, error: 'bad device numbers' };
    }
  }
  // `-` is "no name"; anything else must be a non-empty, well-escaped field (an empty or garbled one
  // is a malformed line, not a missing name).
  const userBytes = user === '-' ? undefined : unescapeField(user);
  const groupBytes = group === '-' ? undefined : unescapeField(group);
  if (user !== '-' && (userBytes === undefined || userBytes.length === 0))
    return { ok: false, error: 'bad user field' };
  if (group !== '-' && (groupBytes === undefined || groupBytes.length === 0))
    return { ok: false, error: 'bad group field' };
  const userName = userBytes?.toString('utf8');
  const groupName = groupBytes?.toString('utf8');
  return {
    ok: true,
    entry: {
      type: t,
      mode: parseInt(mode, 8),
      uid: Number(uid),
      gid: Number(gid),
      user: userName,
      group: groupName,
      mtimeNs,
      size: sizeN,
      sha256,
      path: pathBytes,
      target: targetBytes,
    },
  };
}

/**
 * Tree order: paths compared component by component, bytewise (`/` sorts before every other byte).
 * This is the order a depth-first walk with sorted children produces; manifests are in it.
 */
export function compareTreeOrder(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] === 0x2f ? 0 : (a[i] ?? 0);
    const y = b[i] === 0x2f ? 0 : (b[i] ?? 0);
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

/** The parent path of a relative path, or undefined for a top-level name. */
export function parentPath(path: Buffer): Buffer | undefined {
  const i = path.lastIndexOf(0x2f);
  return i < 0 ? undefined : path.subarray(0, i);
}

/**
 * The directories above the current position of a manifest read in tree order: they are all
 * prefixes of the deepest one, so one copy of that path and the lengths of its ancestors suffice.
 * Its size is bounded by one path (`maxPathBytes`), whatever the manifest's length.
 */
export class DirChain {
  /** the deepest directory on the chain (a private copy), or empty */
  private path: Buffer = Buffer.alloc(0);
  /** lengths of the directories on the chain, outermost first: each is `path.subarray(0, len)` */
  private readonly ends: number[] = [];

  /** Drops the directories that are not ancestors of `p`; returns the length of the innermost left (or 0). */
  enter(p: Buffer): number {
    for (;;) {
      const len = this.ends.at(-1);
      if (len === undefined) return 0;
      if (p.length > len && p[len] === 0x2f && p.compare(this.path, 0, len, 0, len) === 0) return len;
      this.ends.pop();
    }
  }

  push(dir: Buffer): void {
    this.path = Buffer.from(dir);
    this.ends.push(dir.length);
  }
}

/**
 * Checks one entry against the one before it (streaming, constant memory): strictly increasing tree
 * order (so no duplicates) and every entry's parent listed before it as a directory. In tree order
 * everything between a directory and its last descendant lies inside it, so the directories still
 * open (`chain`, updated) are exactly the listed ancestors of the entry.
 */
export function checkEntrySequence(
  prev: ManifestEntry | undefined,
  e: ManifestEntry,
  chain: DirChain,
): string | undefined {
  if (prev && compareTreeOrder(prev.path, e.path) >= 0) {
    return compareTreeOrder(prev.path, e.path) === 0 ? 'duplicate path' : 'paths not in tree order';
  }
  const inner = chain.enter(e.path);
  const slash = e.path.lastIndexOf(0x2f);
  if (slash >= 0 && inner !== slash) return 'parent directory not listed before it';
  if (e.type === 'd') chain.push(e.path);
  return undefined;
}

/**
 * A `sha256sum -c` line for a file entry (GNU escaping of `\`, newline and CR). A top-level file named
 * `-` is written as `./-`: sha256sum reads `-` as its standard input.
 */
export function formatSha256SumsLine(sha256: string, rawPath: Buffer): Buffer {
  const path = rawPath.length === 1 && rawPath[0] === 0x2d ? Buffer.from('./-') : rawPath;
  const needsEscape = path.includes(0x5c) || path.includes(0x0a) || path.includes(0x0d);
  if (!needsEscape) return Buffer.concat([Buffer.from(`${sha256}  `), path, Buffer.from('\n')]);
  const parts: number[] = [];
  for (const b of path) {
    if (b === 0x5c) parts.push(0x5c, 0x5c);
    else if (b === 0x0a) parts.push(0x5c, 0x6e);
    else if (b === 0x0d) parts.push(0x5c, 0x72);
    else parts.push(b);
  }
  return Buffer.concat([Buffer.from(`\\${sha256}  `), Buffer.from(parts), Buffer.from('\n')]);
}

/** A key for maps of paths (Buffers are not value-comparable). */
export function pathKey(path: Buffer): string {
  return path.toString('latin1');
}

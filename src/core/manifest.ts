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
 *        format 2, files of a hard-link group (names that share one inode in the source data):
 *        `+<n>` on the group's first name in tree order (n names in all, n >= 2), `=<escaped path>`
 *        on each later name (the group's first name). Every name keeps its full line (hash, size,
 *        metadata), so `sha256sum -c` and readers that ignore links still see every file.
 *
 * Format 2 (`# baton-manifest 2`) is written only when the generation holds a hard-link group;
 * otherwise format 1, which earlier versions read. An earlier version refuses format 2 at its first
 * line ("not a baton manifest"); this version reads both.
 *
 * Escaping: every byte outside 0x21–0x7e, `%`, and a leading `-` become `%XX`, so any byte
 * sequence (newline, invalid UTF-8) round-trips and fields never contain spaces.
 *
 * Pure: no fs. Everything read from a manifest is hostile until `parseManifestLine` accepted it.
 */

export const MANIFEST_HEADER = '# baton-manifest 1';
/** Format 2: format 1 plus hard-link groups (see above). */
export const MANIFEST_HEADER_2 = '# baton-manifest 2';

/** The manifest format a first line announces, or undefined when it is not a baton manifest header. */
export function manifestFormat(header: string): number | undefined {
  const m = /^# baton-manifest ([0-9]{1,6})$/.exec(header);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Newest manifest format this version reads. */
export const MANIFEST_FORMAT_MAX = 2;

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
  /** format 2, a hard-link group's first name: how many names the group has (>= 2) */
  links?: number;
  /** format 2, a later name of a hard-link group: the group's first name */
  linkTo?: Buffer;
}

const HEX = '0123456789ABCDEF';

/** Escapes bytes for a manifest field (see the module comment). */
export function escapeField(bytes: Buffer): string {
  // most fields need no escape: one pass to check, one native copy
  let plain = bytes.length > 0 && bytes[0] !== 0x2d;
  for (let i = 0; plain && i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    plain = b > 0x20 && b < 0x7f && b !== 0x25;
  }
  if (plain) return bytes.toString('latin1');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    const plain = b > 0x20 && b < 0x7f && b !== 0x25 && !(i === 0 && b === 0x2d);
    out += plain ? String.fromCharCode(b) : `%${HEX[b >> 4] ?? '0'}${HEX[b & 15] ?? '0'}`;
  }
  return out;
}

/** A field with nothing escaped: every character 0x21–0x7e but `%`, and no leading `-`. */
const PLAIN_FIELD = /^[\x21-\x24\x26-\x2c\x2e-\x7e][\x21-\x24\x26-\x7e]*$/;

/** Inverse of escapeField; undefined when the text is not a valid escaped field. */
export function unescapeField(text: string): Buffer | undefined {
  // most fields escape nothing: one native match and one copy instead of a loop over the bytes
  if (PLAIN_FIELD.test(text)) return Buffer.from(text, 'latin1');
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
  // seconds and the nine digits of nanoseconds side by side are the nanoseconds: one BigInt, not three
  const v = BigInt(m[2] + m[3]);
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
  else if (e.links !== undefined) fields.push(`+${e.links}`);
  else if (e.linkTo !== undefined) fields.push(`=${escapeField(e.linkTo)}`);
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
  format = 1,
): ParsedLine {
  const f = line.split(' ');
  if (f.length !== 10 && f.length !== 11)
    return { ok: false, error: `expected 10 or 11 fields, got ${f.length}` };
  const [type, mode, uid, gid, user, group, mtime, size, sha, path, lastField] = f as [
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
  let target = lastField;
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
  let links: number | undefined;
  let linkTo: Buffer | undefined;
  if (t === 'f' && target !== undefined && format >= 2) {
    const link = parseLinkField(target, limits);
    if (typeof link === 'string') return { ok: false, error: link };
    if (link.links !== undefined) links = link.links;
    else linkTo = link.linkTo;
    if (linkTo?.equals(pathBytes)) return { ok: false, error: 'hard link to itself' };
    target = undefined;
  }
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
  const userName = nameOf(user);
  const groupName = nameOf(group);
  if (userName === null) return { ok: false, error: 'bad user field' };
  if (groupName === null) return { ok: false, error: 'bad group field' };
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
      ...(links !== undefined ? { links } : {}),
      ...(linkTo !== undefined ? { linkTo } : {}),
    },
  };
}

/** The last user/group fields decoded (a manifest repeats a few names on every line). */
const lastNames = new Map<string, string | undefined | null>();

/**
 * A user or group field: `-` is "no name" (undefined); anything else must be a non-empty,
 * well-escaped field (null when it is not: an empty or garbled one is a malformed line, not a
 * missing name).
 */
function nameOf(field: string): string | undefined | null {
  const known = lastNames.get(field);
  if (known !== undefined || lastNames.has(field)) return known;
  const bytes = field === '-' ? undefined : unescapeField(field);
  const name =
    field === '-' ? undefined : bytes === undefined || bytes.length === 0 ? null : bytes.toString('utf8');
  if (lastNames.size >= 64) lastNames.clear();
  lastNames.set(field, name);
  return name;
}

/** Largest hard-link group a manifest may declare (Linux allows 65,000 links on ext4; XFS more). */
export const MAX_LINK_GROUP_NAMES = 2 ** 31 - 1;

/** The link field of a format-2 file line: `+<n>` or `=<escaped path>`, or why it is bad. */
function parseLinkField(
  field: string,
  limits: ManifestLimits,
): { links: number; linkTo?: undefined } | { links?: undefined; linkTo: Buffer } | string {
  if (field.startsWith('+')) {
    if (!/^\+[0-9]{1,10}$/.test(field)) return 'bad hard-link count';
    const n = Number(field.slice(1));
    if (n < 2 || n > MAX_LINK_GROUP_NAMES) return 'bad hard-link count';
    return { links: n };
  }
  if (!field.startsWith('=')) return 'bad hard-link field';
  const to = unescapeField(field.slice(1));
  if (to === undefined) return 'bad hard-link escaping';
  const problem = checkRelativePath(to, limits);
  if (problem) return `hard link to a bad path: ${problem}`;
  return { linkTo: to };
}

/** Default bound on hard-link groups whose later names are still to come while a manifest is read. */
export const DEFAULT_MAX_OPEN_LINK_GROUPS = 1_000_000;

interface OpenLinkGroup {
  sha256: string | undefined;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  left: number;
}

/**
 * Checks hard-link groups while a manifest streams by (entries in tree order, each already parsed):
 * every later name points at a group's first name listed before it, still short of its declared
 * names, with the same hash, size, mode, owner and mtime (one inode has one of each); every group
 * gets all its names by the end (`finish`). Memory holds only the groups still open, bounded by
 * `maxOpen`. A link to a directory, a symlink, a path outside tree/ or of another stream, or to
 * nothing is refused, since only a listed file line opens a group.
 */
export class LinkGroupCheck {
  private readonly open = new Map<string, OpenLinkGroup>();
  /** groups declared so far */
  groups = 0;

  constructor(private readonly maxOpen = DEFAULT_MAX_OPEN_LINK_GROUPS) {}

  check(e: ManifestEntry): string | undefined {
    if (e.links !== undefined) {
      if (e.type !== 'f') return 'hard-link group on a non-file';
      if (this.open.size >= this.maxOpen) return `more than ${this.maxOpen} hard-link groups open at once`;
      this.groups++;
      this.open.set(pathKey(e.path), {
        sha256: e.sha256,
        size: e.size,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtimeNs: e.mtimeNs,
        left: e.links - 1,
      });
      return undefined;
    }
    if (e.linkTo === undefined) return undefined;
    if (e.type !== 'f') return 'hard link on a non-file';
    if (compareTreeOrder(e.linkTo, e.path) >= 0)
      return "hard link to a path not before it (not its group's first name)";
    const key = pathKey(e.linkTo);
    const g = this.open.get(key);
    if (!g)
      return "hard link to a path that is no open group's first name (not listed, not a file, or its group is full)";
    if (g.sha256 !== e.sha256 || g.size !== e.size)
      return 'hard link whose hash or size differs from its group';
    if (g.mode !== e.mode || g.uid !== e.uid || g.gid !== e.gid || g.mtimeNs !== e.mtimeNs)
      return 'hard link whose mode, owner or mtime differs from its group';
    if (--g.left === 0) this.open.delete(key);
    return undefined;
  }

  /** After the last entry: why some group is incomplete, or undefined. */
  finish(): string | undefined {
    for (const [key, g] of this.open) {
      const shown = JSON.stringify(Buffer.from(key, 'latin1').toString('utf8'));
      return `hard-link group of ${shown} is missing ${g.left} of its names`;
    }
    return undefined;
  }
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

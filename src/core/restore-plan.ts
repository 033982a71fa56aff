/**
 * Pure decisions of `baton restore` and `baton source restore`: which manifest entries a `--path`
 * selects, whose ids a restored entry gets, device numbers, and the undo commands of an in-place
 * restore. No fs, no processes.
 */
import { checkRelativePath, compareTreeOrder, type ManifestEntry } from './manifest.js';

export type ParsedTreePath = { ok: true; path: Buffer } | { ok: false; error: string };

/**
 * Given `--path` as typed (`srv/shop/data/uploads`, also `/srv/shop/data/uploads/`), returns the
 * path relative to tree/ as bytes, or why it cannot name anything inside tree/.
 */
export function parseTreePath(text: string): ParsedTreePath {
  const trimmed = text.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return { ok: false, error: 'names the whole tree (leave --path out for that)' };
  const path = Buffer.from(trimmed, 'utf8');
  const problem = checkRelativePath(path);
  return problem ? { ok: false, error: problem } : { ok: true, path };
}

/**
 * Where an entry stands relative to the selected subtree `sub` (tree order):
 * - `ancestor`: a parent directory of `sub` (created so `sub` has its place)
 * - `inside`:   `sub` itself or below it (restored)
 * - `before`:   sorts before the subtree and is not part of it (skipped)
 * - `after`:    sorts after the whole subtree: no later entry of a manifest can be inside it
 * Without `sub` everything is `inside`.
 */
export function classifyEntry(
  path: Buffer,
  sub: Buffer | undefined,
): 'ancestor' | 'inside' | 'before' | 'after' {
  if (sub === undefined) return 'inside';
  if (isSameOrBelow(path, sub)) return 'inside';
  if (isSameOrBelow(sub, path)) return 'ancestor';
  return compareTreeOrder(path, sub) < 0 ? 'before' : 'after';
}

/** True when `path` is `root` or lies below it (component-wise, bytes). */
export function isSameOrBelow(path: Buffer, root: Buffer): boolean {
  if (path.length < root.length) return false;
  if (!path.subarray(0, root.length).equals(root)) return false;
  return path.length === root.length || path[root.length] === 0x2f;
}

/** name → id, from the id → name maps of NSS (the first id of a name wins). */
export function invertNameMap(byId: ReadonlyMap<number, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [id, name] of byId) if (!out.has(name)) out.set(name, id);
  return out;
}

export interface OwnerIds {
  users: ReadonlyMap<string, number>;
  groups: ReadonlyMap<string, number>;
}

/**
 * The uid and gid a restored entry gets: by the recorded name where that name exists on this
 * host (ids differ between hosts), else the recorded numeric id.
 */
export function resolveOwner(
  entry: Pick<ManifestEntry, 'uid' | 'gid' | 'user' | 'group'>,
  ids: OwnerIds,
): { uid: number; gid: number } {
  const uid = entry.user === undefined ? undefined : ids.users.get(entry.user);
  const gid = entry.group === undefined ? undefined : ids.groups.get(entry.group);
  return { uid: uid ?? entry.uid, gid: gid ?? entry.gid };
}

/** `major:minor` of a device entry (already validated by the manifest parser). */
export function parseDeviceNumbers(target: Buffer | undefined): { major: number; minor: number } | undefined {
  const m = target === undefined ? null : /^([0-9]{1,10}):([0-9]{1,10})$/.exec(target.toString('latin1'));
  if (!m?.[1] || !m[2]) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

export interface ReplacedPath {
  /** the configured absolute data path, no trailing slash */
  path: string;
  /** what was there before the restore: a directory, something else, or nothing */
  before: 'dir' | 'other' | 'missing';
}

/**
 * The argv lists that undo an in-place restore from its safety copy (run with the app stopped):
 * directories are synced back with --delete, other paths copied back, paths that did not exist
 * before removed. `--modify-window=-1`: rsync's quick check compares whole seconds by default, so a
 * file of the same size changed within the same second as its restored version would be skipped
 * and keep the restored content.
 */
export function undoCommands(safetyDir: string, paths: readonly ReplacedPath[]): string[][] {
  const base = safetyDir.replace(/\/+$/, '');
  return paths.map((p) => {
    if (p.before === 'missing') return ['rm', '-rf', '--', p.path];
    if (p.before === 'dir')
      return [
        'rsync',
        '-aH',
        '--modify-window=-1',
        '--delete',
        '--numeric-ids',
        `${base}${p.path}/`,
        `${p.path}/`,
      ];
    return ['rsync', '-aH', '--modify-window=-1', '--numeric-ids', `${base}${p.path}`, p.path];
  });
}

/** A path for messages: valid UTF-8 as it is, other bytes as U+FFFD, control characters escaped. */
export function showPath(path: Buffer): string {
  return JSON.stringify(path.toString('utf8')).slice(1, -1);
}

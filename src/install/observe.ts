/**
 * Reads what `baton install` needs to know about the host: users (ids, home, whether the password
 * field locks key logins) and paths (type, mode, owner, content of small files). Reads only.
 */
import { lstat, readFile } from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { lookupUser } from '../adapters/accounts.js';
import { runProcess } from '../adapters/run.js';
import type { ObservedPath, ObservedUser } from './plan.js';

/** Files larger than this are never compared by content (install writes only small ones). */
const MAX_CONTENT_BYTES = 1024 * 1024;

async function passwordLocked(name: string): Promise<boolean | undefined> {
  // /etc/shadow is root's; without root the state stays unknown.
  const r = await runProcess(['getent', 'shadow', name], { timeoutMs: 10_000 });
  if (r.code !== 0) return undefined;
  const field = r.stdout.split('\n')[0]?.split(':')[1];
  return field === undefined ? undefined : field.startsWith('!');
}

export async function observeUsers(names: readonly string[]): Promise<Map<string, ObservedUser>> {
  const users = new Map<string, ObservedUser>();
  for (const name of names) {
    const account = await lookupUser(name);
    if (!account) continue;
    users.set(name, {
      uid: account.uid,
      gid: account.gid,
      home: account.home,
      locked: await passwordLocked(name),
    });
  }
  return users;
}

async function observePath(path: string, read: boolean): Promise<ObservedPath | undefined> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    // Missing, or behind a directory we may not enter (--print without root): not there as far as we know.
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR' || errnoCode(err) === 'EACCES')
      return undefined;
    throw err;
  }
  const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
  const out: ObservedPath = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (read && type === 'file' && st.size <= MAX_CONTENT_BYTES) {
    try {
      out.content = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'EACCES') throw err;
    }
  }
  return out;
}

export async function observePaths(targets: {
  stat: readonly string[];
  read: readonly string[];
}): Promise<Map<string, ObservedPath>> {
  const paths = new Map<string, ObservedPath>();
  for (const [list, read] of [
    [targets.stat, false],
    [targets.read, true],
  ] as const) {
    for (const p of list) {
      const o = await observePath(p, read);
      if (o) paths.set(p, o);
    }
  }
  return paths;
}

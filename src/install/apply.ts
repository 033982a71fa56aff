/**
 * Carries out the actions planInstall decided (only those that change something), in order: users
 * first, then directories parent before child, files written atomically with owner and mode set
 * before they appear, key pairs with ssh-keygen. Needs root.
 */
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { errnoCode, JobError } from '../errors.js';
import { lookupUser } from '../adapters/accounts.js';
import { writeFileAtomic } from '../adapters/fsx.js';
import { runProcess } from '../adapters/run.js';
import { ensureUser, makeKeyPair } from '../adapters/system-users.js';
import type { Action } from './plan.js';

const fail = (what: string, err: unknown) =>
  new JobError(`${what}: ${err instanceof Error ? err.message : String(err)}`, {
    step: 'install',
    cause: err,
  });

async function ownerIds(owner: string): Promise<{ uid: number; gid: number }> {
  if (owner === 'root') return { uid: 0, gid: 0 };
  const u = await lookupUser(owner);
  if (!u) throw new JobError(`user ${owner} does not exist`, { step: 'install' });
  return { uid: u.uid, gid: u.gid };
}

async function applyDir(a: Extract<Action, { type: 'dir' }>): Promise<void> {
  const ids = await ownerIds(a.owner);
  try {
    await mkdir(a.path, { mode: a.mode });
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  }
  // mkdir's mode passes through the umask; set it exactly.
  await chmod(a.path, a.mode);
  await chown(a.path, ids.uid, ids.gid);
}

async function applyFile(a: Extract<Action, { type: 'file' }>): Promise<void> {
  const ids = await ownerIds(a.owner);
  const dir = dirname(a.path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  // Owner and mode are right before the rename: authorized_keys is never briefly root's or 0644. The
  // directory may belong to the stream user (~/.ssh): a random temp name opened O_EXCL|O_NOFOLLOW and
  // fchmod/fchown on the open file, so no planted symlink is followed (was `.<name>.baton-install`).
  await writeFileAtomic(a.path, a.content, a.mode, { owner: ids, exactMode: true });
}

async function applyKeyPair(a: Extract<Action, { type: 'keypair' }>): Promise<void> {
  if (a.change === 'create') {
    await makeKeyPair(dirname(a.path), basename(a.path));
    return;
  }
  await chown(a.path, 0, 0);
  await chmod(a.path, 0o600);
  const pub = await runProcess(['ssh-keygen', '-y', '-f', a.path], { timeoutMs: 30_000 });
  if (pub.code !== 0) throw new Error(`ssh-keygen -y -f ${a.path}: ${pub.stderr.trim()}`);
  await writeFile(`${a.path}.pub`, pub.stdout.endsWith('\n') ? pub.stdout : `${pub.stdout}\n`, {
    mode: 0o644,
    flag: 'wx',
  }).catch((err: unknown) => {
    if (errnoCode(err) !== 'EEXIST') throw err;
  });
}

/** Runs one action; actions that change nothing (and notes) are skipped. */
export async function applyAction(a: Action): Promise<void> {
  if (a.type === 'print' || a.change === 'none') return;
  try {
    switch (a.type) {
      case 'user':
        await ensureUser(a.name, { home: a.home });
        return;
      case 'dir':
        await applyDir(a);
        return;
      case 'file':
        await applyFile(a);
        return;
      case 'keypair':
        await applyKeyPair(a);
        return;
    }
  } catch (err) {
    if (err instanceof JobError) throw err;
    const target = a.type === 'user' ? `user ${a.name}` : a.path;
    throw fail(`${a.change} ${a.type} ${target}`, err);
  }
}

/**
 * System users, ssh keys and OpenSSH user certificates: what `baton demo`, `baton install` and the
 * end-to-end tests set up. Creating users needs root.
 */
import { chmod, chown, lstat, mkdir, readFile } from 'node:fs/promises';
import { writeFileAtomic } from './fsx.js';
import { basename, dirname, join } from 'node:path';
import { runProcess, type RunResult } from './run.js';

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface KeyPair {
  /** Path of the private key (what `ssh -i` takes). */
  privateKey: string;
  /** Path of the public key (`<privateKey>.pub`). */
  publicKeyFile: string;
  /** The public key line, without the trailing newline. */
  publicKey: string;
}

export interface UserCertificate {
  /** Path of the certificate, `<key>-cert.pub`, where ssh picks it up next to `-i <key>`. */
  certificateFile: string;
  certificate: string;
}

async function mustRun(argv: readonly string[], what: string): Promise<RunResult> {
  const r = await runProcess(argv, { timeoutMs: 30_000 });
  if (r.code !== 0) {
    throw new Error(`${what} failed (${argv.join(' ')}): exit ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  }
  return r;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

async function lookupUser(name: string): Promise<PasswdEntry | undefined> {
  const r = await runProcess(['getent', 'passwd', name], { timeoutMs: 10_000 });
  if (r.code !== 0) return undefined;
  const fields = r.stdout.trim().split('\n')[0]?.split(':') ?? [];
  const [n, , uid, gid, , home] = fields;
  if (n === undefined || uid === undefined || gid === undefined || home === undefined) return undefined;
  return { name: n, uid: Number(uid), gid: Number(gid), home };
}

let badnameSupported: boolean | undefined;
async function useraddSupportsBadname(): Promise<boolean> {
  if (badnameSupported === undefined) {
    const r = await runProcess(['/usr/sbin/useradd', '--help'], { timeoutMs: 10_000 });
    badnameSupported = `${r.stdout}${r.stderr}`.includes('--badname');
  }
  return badnameSupported;
}

/**
 * Creates the system user `name` (shell /bin/sh, home created) unless it exists, and makes sure
 * sshd will let it log in with a key. Returns its ids and home.
 */
export async function ensureUser(name: string, opts: { home?: string } = {}): Promise<SystemUser> {
  let entry = await lookupUser(name);
  if (!entry) {
    // Debian's useradd refuses capitals (dataBackupSource) unless --badname; older ones lack the flag.
    const argv = ['/usr/sbin/useradd', '--system', '--create-home', '--shell', '/bin/sh'];
    if (await useraddSupportsBadname()) argv.push('--badname');
    if (opts.home !== undefined) argv.push('--home-dir', opts.home);
    argv.push(name);
    const r = await runProcess(argv, { timeoutMs: 30_000 });
    // Exit 9: created meanwhile by a concurrent test file.
    if (r.code !== 0 && r.code !== 9) {
      throw new Error(`useradd ${name} failed: exit ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    }
    entry = await lookupUser(name);
    if (!entry) throw new Error(`useradd ${name} succeeded but getent does not know the user`);
  }
  // useradd leaves the password field "!" (locked). Without PAM, sshd refuses locked accounts
  // even for key logins ("account is locked"); "*" means no password but not locked.
  await mustRun(['/usr/sbin/usermod', '-p', '*', name], `unlock ${name}`);
  await mkdir(entry.home, { recursive: true, mode: 0o755 });
  await chown(entry.home, entry.uid, entry.gid);
  return { name: entry.name, uid: entry.uid, gid: entry.gid, home: entry.home };
}

/** Writes `~/.ssh/authorized_keys` of `user` (replacing it), owned by the user, mode 0600 in a 0700 dir. */
export async function writeAuthorizedKeys(user: SystemUser, lines: readonly string[]): Promise<string> {
  const sshDir = join(user.home, '.ssh');
  await mkdir(sshDir, { recursive: true, mode: 0o700 });
  // The home is the user's: a ~/.ssh symlinked elsewhere must not get its mode and owner changed.
  if (!(await lstat(sshDir)).isDirectory()) throw new Error(`${sshDir} is not a directory (a symlink?)`);
  await chmod(sshDir, 0o700);
  await chown(sshDir, user.uid, user.gid);
  const file = join(sshDir, 'authorized_keys');
  // ~/.ssh belongs to the user: no predictable temp name a planted symlink could redirect.
  await writeFileAtomic(file, lines.map((l) => `${l.trimEnd()}\n`).join(''), 0o600, {
    owner: { uid: user.uid, gid: user.gid },
    exactMode: true,
  });
  return file;
}

/** `ssh-keygen -t ed25519 -N ''` into `<dir>/<name>` (and `.pub`). */
export async function makeKeyPair(dir: string, name: string): Promise<KeyPair> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKey = join(dir, name);
  await mustRun(
    ['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `baton-${name}`, '-f', privateKey],
    `ssh-keygen ${name}`,
  );
  const publicKeyFile = `${privateKey}.pub`;
  const publicKey = (await readFile(publicKeyFile, 'utf8')).trim();
  return { privateKey, publicKeyFile, publicKey };
}

/** A user certificate authority: a key pair whose public key goes into TrustedUserCAKeys or a cert-authority line. */
export function makeUserCA(dir: string, name = 'user_ca'): Promise<KeyPair> {
  return makeKeyPair(dir, name);
}

/**
 * Signs `pubKeyFile` (`KEY.pub`) with the CA, producing `KEY-cert.pub` next to it, valid for
 * `principals` (the user names it may log in as) and `validity` (ssh-keygen -V, default `-5m:+1h`).
 */
export async function signUserKey(
  ca: KeyPair,
  pubKeyFile: string,
  opts: { principals: readonly string[]; validity?: string; identity?: string },
): Promise<UserCertificate> {
  if (opts.principals.length === 0) throw new Error('signUserKey: at least one principal');
  await mustRun(
    [
      'ssh-keygen',
      '-q',
      '-s',
      ca.privateKey,
      '-I',
      opts.identity ?? `baton-${basename(pubKeyFile)}`,
      '-n',
      opts.principals.join(','),
      '-V',
      opts.validity ?? '-5m:+1h',
      pubKeyFile,
    ],
    `ssh-keygen -s (sign ${pubKeyFile})`,
  );
  const certificateFile = join(dirname(pubKeyFile), `${basename(pubKeyFile).replace(/\.pub$/, '')}-cert.pub`);
  const certificate = (await readFile(certificateFile, 'utf8')).trim();
  return { certificateFile, certificate };
}

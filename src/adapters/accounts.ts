import { runProcess } from './run.js';
import { ConfigError } from '../errors.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Looks a user up through NSS (`getent passwd`); undefined when there is none. */
export async function lookupUser(name: string): Promise<Account | undefined> {
  const r = await runProcess(['getent', 'passwd', name], { timeoutMs: 10_000 });
  if (r.code !== 0) return undefined;
  const f = r.stdout.trim().split(':');
  if (f.length < 7 || f[0] !== name) return undefined;
  return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' };
}

export async function requireUser(name: string, what: string): Promise<Account> {
  const u = await lookupUser(name);
  if (!u)
    throw new ConfigError(`${what}: user "${name}" does not exist (create it, e.g. with \`baton install\`)`, {
      step: 'preflight',
    });
  return u;
}

/** uid → name and gid → name maps from NSS, for the manifest's user/group columns. */
export interface NameMaps {
  users: Map<number, string>;
  groups: Map<number, string>;
}

async function readDb(db: 'passwd' | 'group'): Promise<Map<number, string>> {
  // a directory service may list many accounts; past 64 MiB ids stay numeric (names are cosmetic here)
  const r = await runProcess(['getent', db], {
    timeoutMs: 30_000,
    captureStdout: true,
    maxStdoutBytes: 64 * 2 ** 20,
  });
  const m = new Map<number, string>();
  if (r.code !== 0 || r.exceeded) return m;
  for (const line of r.stdout.split('\n')) {
    const f = line.split(':');
    const id = Number(f[2]);
    if (f[0] && Number.isInteger(id) && !m.has(id)) m.set(id, f[0]);
  }
  return m;
}

export async function loadNameMaps(): Promise<NameMaps> {
  const [users, groups] = await Promise.all([readDb('passwd'), readDb('group')]);
  return { users, groups };
}

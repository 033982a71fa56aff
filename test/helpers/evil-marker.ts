/**
 * A path nothing may ever create, for tests of hostile names and commands: hostile manifests, names
 * and ssh commands aim at it (`$(touch baton-evil-…)`), and the test then checks every place a shell
 * that ran such a name would have left it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './gate-fixtures.js';

export interface EvilMarker {
  /** `baton-evil-<random>` */
  name: string;
  /** `/tmp/<name>` */
  abs: string;
  /** the marker's places: /tmp, /, the cwd, the repo, $HOME, and `<dir>/<name>` for each of `dirs()` */
  places(): string[];
  /** none of the places exists */
  assertNone(): void;
  /** removes `/tmp/<name>` and `/tmp/<name>-dir` should a test have made them */
  cleanup(): Promise<void>;
}

/** `dirs` is called when the places are checked (the test's dirs exist by then). */
export function evilMarker(dirs: () => readonly string[]): EvilMarker {
  const name = `baton-evil-${randomBytes(6).toString('hex')}`;
  const abs = join('/tmp', name);
  const m: EvilMarker = {
    name,
    abs,
    places: () => [
      abs,
      join('/', name),
      join(process.cwd(), name),
      join(REPO_ROOT, name),
      join(homedir(), name),
      ...dirs().map((d) => join(d, name)),
    ],
    assertNone() {
      for (const p of m.places()) assert.equal(existsSync(p), false, `${p} was created`);
    },
    async cleanup() {
      for (const p of [abs, `${abs}-dir`]) await rm(p, { recursive: true, force: true });
    },
  };
  return m;
}

/**
 * The rsync binaries the gate's e2e tests run against: the installed one, and every other Debian version
 * that `scripts/setup.sh --test` unpacked side by side into `$BATON_TEST_CACHE/rsync-<version>/`
 * (default /var/cache/baton-test). baton's safety must not depend on the rsync version, so the stolen-key
 * attacks run against each. A wanted version that is missing is reported as SKIP on stderr, never an
 * error; the installed rsync always runs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface RsyncBinary {
  /** `3.2.7`, as `rsync --version` says. */
  version: string;
  /** Absolute path of the binary. */
  bin: string;
  /** Its directory: put first on PATH so the gate (and a client) use this version. */
  binDir: string;
  /** The system's own rsync (/usr/bin/rsync). */
  installed: boolean;
}

export const RSYNC_TEST_CACHE = process.env.BATON_TEST_CACHE ?? '/var/cache/baton-test';

/** Versions the issue asks to cover: Debian 12's own and the security update. */
export const WANTED_RSYNC_VERSIONS = ['3.2.7', '3.5.0'] as const;

function versionOf(bin: string): string | undefined {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    return /rsync\s+version\s+v?([0-9][0-9.]*)/.exec(out)?.[1];
  } catch {
    return undefined;
  }
}

let cached: RsyncBinary[] | undefined;

/** Every runnable rsync, the installed one first, one per version. Prints SKIP for wanted versions missing. */
export function availableRsyncs(): RsyncBinary[] {
  if (cached !== undefined) return cached;
  const found: RsyncBinary[] = [];
  const add = (bin: string, installed: boolean): void => {
    const version = versionOf(bin);
    if (version === undefined || found.some((r) => r.version === version)) return;
    found.push({ version, bin, binDir: dirname(bin), installed });
  };
  add('/usr/bin/rsync', true);
  if (found.length === 0) throw new Error('rsync is not installed (/usr/bin/rsync): the gate tests need it');
  const names = existsSync(RSYNC_TEST_CACHE) ? readdirSync(RSYNC_TEST_CACHE).sort() : [];
  for (const name of names) {
    const bin = join(RSYNC_TEST_CACHE, name, 'usr', 'bin', 'rsync');
    if (name.startsWith('rsync-') && existsSync(bin)) add(bin, false);
  }
  for (const wanted of WANTED_RSYNC_VERSIONS) {
    if (!found.some((r) => r.version === wanted)) {
      process.stderr.write(
        `SKIP rsync ${wanted}: not installed and not in ${RSYNC_TEST_CACHE}/rsync-*/ (run scripts/setup.sh --test as root)\n`,
      );
    }
  }
  cached = found;
  return found;
}

/** PATH with `binDir` first, for the gate side (sshd's forced command or a fake rsh) and the client. */
export function pathWith(binDir: string, path = process.env.PATH ?? '/usr/bin:/bin'): string {
  return `${binDir}:${path}`;
}

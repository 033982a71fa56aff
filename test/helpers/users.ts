/**
 * Real system users, ssh keys and OpenSSH user certificates for end-to-end tests (the code lives in
 * src/adapters/system-users.ts, shared with `baton demo`). Creating users needs root; use
 * `skipUnlessRoot(t)` first.
 */
import type { TestContext } from 'node:test';

export {
  ensureUser,
  writeAuthorizedKeys,
  makeKeyPair,
  makeUserCA,
  signUserKey,
  type SystemUser as TestUser,
  type KeyPair,
  type UserCertificate,
} from '../../src/adapters/system-users.js';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * For a whole e2e file that needs root: true when not root (its tests then skip), with the reason
 * printed to stderr so a skipped file is never silent; under CI (`CI=true` or `1`) it throws
 * instead, because CI must run them. `const NEEDS_ROOT = needsRootOrSkipFile('sink-pull', 'users, sshd');`
 */
export function needsRootOrSkipFile(file: string, why: string): boolean {
  if (isRoot()) return false;
  if (process.env.CI === 'true' || process.env.CI === '1')
    throw new Error(`${file} e2e tests need root and CI=true: they must run`);
  process.stderr.write(`SKIP ${file} e2e: needs root (${why})\n`);
  return true;
}

/**
 * For tests that need root (real users, sshd). Not root: skips the test with the reason, also
 * printed to stderr so a skipped e2e test is never silent; under CI (`CI=true`) it throws
 * instead, because CI must run them. Returns true when the test was skipped: `if (skipUnlessRoot(t)) return;`.
 */
export function skipUnlessRoot(t: TestContext, what = 'creates system users and runs sshd'): boolean {
  if (isRoot()) return false;
  const reason = `needs root: ${what}`;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${reason} (CI=true: root-only tests must run in CI, not skip)`);
  }
  process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return true;
}

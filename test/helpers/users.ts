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

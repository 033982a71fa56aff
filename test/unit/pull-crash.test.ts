import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { REPO_ROOT } from '../helpers/gate-fixtures.js';

// Issue 10, hole 4: an unexpected error thrown where no try/catch sees it (an event handler, as
// ERR_STRING_TOO_LONG was) must still release the lock and reach the failure alert. Run in a child
// process: the test runner has its own uncaught-exception handler.

test('an exception thrown from a timer during a pull -> one failed outcome, lock released, not a crash', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-crash-'));
  try {
    const script = join(dir, 'crash.mts');
    await writeFile(
      script,
      `import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sinkSchema } from '${join(REPO_ROOT, 'src/config/schema.ts')}';
import { runSinkPull } from '${join(REPO_ROOT, 'src/sink/run-pull.ts')}';
import { createLogger } from '${join(REPO_ROOT, 'src/adapters/log.ts')}';
import { makeSinkStore } from '${join(REPO_ROOT, 'test/helpers/sink-store.ts')}';
const dir = ${JSON.stringify(dir)};
await makeSinkStore(join(dir, 'store'));
const config = sinkSchema.parse({
  store: join(dir, 'store'),
  stateDir: join(dir, 'state'),
  sources: [{ name: 'src', host: 'h', knownHosts: '/dev/null', streams: { data: { user: 'u', identity: '/k', generations: 1 } } }],
});
const lock = join(dir, 'state', 'locks', 'src-data.lock');
const outcomes = await runSinkPull(config, {
  stream: 'data',
  now: () => new Date(),
  log: createLogger({ format: 'json', level: 'error' }),
  transportFor: () => {
    setTimeout(() => { throw new RangeError('Invalid string length'); }, 10);
    return new Promise(() => undefined);
  },
});
process.stdout.write(JSON.stringify({ outcomes, lockLeft: existsSync(lock) }));
process.exit(0);
`,
    );
    const r = await runProcess([process.execPath, '--import', 'tsx', script], {
      cwd: REPO_ROOT,
      captureStdout: true,
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      outcomes: Array<{ ok: boolean; locked: boolean; error?: string }>;
      lockLeft: boolean;
    };
    assert.equal(out.lockLeft, false, 'lock released');
    assert.equal(out.outcomes.length, 1);
    assert.equal(out.outcomes[0]?.ok, false);
    assert.equal(out.outcomes[0]?.locked, false);
    assert.match(
      out.outcomes[0]?.error ?? '',
      /^unexpected error: Invalid string length \(locks released\)$/,
    );
    // the failure went through the alert path (no mail configured: it is logged as not sent)
    assert.match(r.stderr, /pull of data FAILED|unexpected error/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, link, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess, describeExit } from '../../src/adapters/run.js';
import { watchReads } from '../../src/adapters/stall-watch.js';
import { boundQuarantine } from '../../src/sink/quarantine-bound.js';
import { createLogger } from '../../src/adapters/log.js';

// Issue 10, holes 4, 5 and 9: every captured reply is capped while it is read, and a transfer that
// reads more than declared or trickles is ended. Real processes and /proc; the e2e tests over a real
// sshd are in test/e2e/hostile-bounds.test.ts.

test('captured stdout over its cap -> the process group is ended, stdout cut, `exceeded` set', async () => {
  // `yes` never ends on its own: without the cap this runs until the timeout, filling memory
  const r = await runProcess(['yes', 'a long line of output'], {
    captureStdout: true,
    maxStdoutBytes: 256 * 1024,
    timeoutMs: 30_000,
  });
  assert.deepEqual(r.exceeded, { stream: 'stdout', limitBytes: 256 * 1024 });
  assert.equal(r.timedOut, false);
  assert.ok(r.stdout.length <= 256 * 1024, `kept ${r.stdout.length} bytes`);
  assert.ok(r.durationMs < 10_000, `took ${r.durationMs} ms`);
  assert.match(describeExit(r), /^output larger than 256 KiB, stopped reading/);
});

test('captured stdout under its cap -> kept whole, no `exceeded`', async () => {
  const r = await runProcess(['head', '-c', '100000', '/dev/zero'], {
    captureStdout: true,
    maxStdoutBytes: 100_000,
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0);
  assert.equal(r.exceeded, undefined);
  assert.equal(r.stdout.length, 100_000);
});

test('captureStdout without a cap -> the 16 MiB default applies', async () => {
  const r = await runProcess(['head', '-c', String(17 * 2 ** 20), '/dev/zero'], {
    captureStdout: true,
    timeoutMs: 30_000,
  });
  assert.deepEqual(r.exceeded, { stream: 'stdout', limitBytes: 16 * 2 ** 20 });
});

test('stderr is only ever kept as a tail', async () => {
  const r = await runProcess(['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x >&2'], {
    tailBytes: 4096,
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0);
  assert.ok(r.stderr.length <= 4096, `kept ${r.stderr.length}`);
});

const reader = (chunk: number, everyMs: number) =>
  "const fs=require('fs');const fd=fs.openSync('/dev/zero','r');" +
  `const b=Buffer.alloc(${chunk});setInterval(()=>fs.readSync(fd,b),${everyMs});setTimeout(()=>process.exit(0),20000);`;

test('a group reading more than maxReadBytes -> `too-much`, killed', async () => {
  const watch = watchReads('node', { quietMs: 60_000, maxReadBytes: 2 * 2 ** 20 }, 100);
  const r = await runProcess([process.execPath, '-e', reader(256 * 1024, 20)], {
    signal: watch.signal,
    onSpawn: (pid) => watch.attach(pid),
    killGraceMs: 1000,
    timeoutMs: 30_000,
  });
  watch.stop();
  assert.equal(watch.verdict, 'too-much');
  assert.equal(r.signal, 'SIGTERM');
  assert.ok(r.durationMs < 10_000, `took ${r.durationMs} ms`);
});

test('a group trickling below minThroughput -> `too-slow` after the window, not stalled', async () => {
  // 16 bytes every 100 ms: never quiet, far below 1 MiB per 1.5 s
  const watch = watchReads(
    'node',
    { quietMs: 60_000, minThroughput: { bytes: 2 ** 20, windowMs: 1500 } },
    100,
  );
  const r = await runProcess([process.execPath, '-e', reader(16, 100)], {
    signal: watch.signal,
    onSpawn: (pid) => watch.attach(pid),
    killGraceMs: 1000,
    timeoutMs: 30_000,
  });
  watch.stop();
  assert.equal(watch.verdict, 'too-slow');
  assert.equal(watch.stalled, false);
  assert.ok(r.durationMs >= 1500 && r.durationMs < 15_000, `took ${r.durationMs} ms`);
});

test('a group reading fast enough -> never `too-slow`', async () => {
  const watch = watchReads(
    'node',
    // 10 MiB/s read against a floor of 128 KiB per 2 s: a margin for a loaded machine (a second lane)
    { quietMs: 60_000, minThroughput: { bytes: 2 ** 17, windowMs: 2000 } },
    100,
  );
  const fast =
    "const fs=require('fs');const fd=fs.openSync('/dev/zero','r');const b=Buffer.alloc(1<<20);" +
    'const t=setInterval(()=>fs.readSync(fd,b),100);setTimeout(()=>{clearInterval(t);process.exit(0)},3000);';
  const r = await runProcess([process.execPath, '-e', fast], {
    signal: watch.signal,
    onSpawn: (pid) => watch.attach(pid),
    timeoutMs: 30_000,
  });
  watch.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(watch.verdict, undefined);
});

test('.quarantine over its count or bytes -> the oldest removed first, the newest always kept', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'baton-q-'));
  try {
    const q = join(dir, '.quarantine');
    await mkdir(q);
    const names = [
      '2026-01-03T000000Z.2026-02-01T000000000Z',
      '2026-01-01T000000Z.2026-02-02T000000000Z',
      '2026-01-02T000000Z.2026-02-03T000000000Z',
      '2026-01-04T000000Z.2026-02-04T000000000Z',
    ];
    for (const n of names) {
      await mkdir(join(q, n, 'tree'), { recursive: true });
      await writeFile(join(q, n, 'tree', 'big'), Buffer.alloc(100_000));
    }
    // a file hard-linked with the store costs nothing extra
    await writeFile(join(dir, 'store-file'), Buffer.alloc(5_000_000));
    await link(join(dir, 'store-file'), join(q, names[3] ?? '', 'tree', 'linked'));
    const log = createLogger({ format: 'json', level: 'error' });
    const byCount = await boundQuarantine(q, { maxCount: 3, maxBytes: 10 ** 9 }, log);
    assert.deepEqual(byCount, [names[0]], 'oldest by quarantine time, not by id');
    const byBytes = await boundQuarantine(q, { maxCount: 10, maxBytes: 250_000 }, log);
    assert.deepEqual(byBytes, [names[1]]);
    const all = await boundQuarantine(q, { maxCount: 1, maxBytes: 0 }, log);
    assert.deepEqual(all, [names[2]]);
    assert.deepEqual(await readdir(q), [names[3]], 'the newest is kept');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProcess } from '../../src/adapters/run.js';
import { watchForStall } from '../../src/adapters/stall-watch.js';
import { stallAfterMs } from '../../src/sink/pull.js';
import { sshArgv } from '../../src/adapters/ssh.js';
import type { SinkSourceConfig, SinkStreamConfig } from '../../src/config/schema.js';

// Issue "Faults", case 12 (stalled connection): every process of a pull is bounded, even when the
// remote rsync stops while ssh stays up (rsync's own --timeout counts its own keep-alives as I/O).
// Real processes and /proc here; the end-to-end stall is in test/e2e/faults-more.test.ts.

test('a process group that reads nothing -> the stall watch kills it after the quiet time', async () => {
  const watch = watchForStall('sleep', 1500, 200);
  const r = await runProcess(['sleep', '60'], {
    signal: watch.signal,
    onSpawn: (pid) => watch.attach(pid),
    killGraceMs: 1000,
    timeoutMs: 30_000,
  });
  watch.stop();
  assert.equal(watch.stalled, true);
  assert.equal(r.timedOut, false);
  assert.equal(r.signal, 'SIGTERM');
  assert.ok(r.durationMs >= 1500 && r.durationMs < 10_000, `took ${r.durationMs} ms`);
});

test('a process group that keeps reading -> never killed by the stall watch', async () => {
  const watch = watchForStall('node', 1000, 200);
  // reads 64 KiB of /dev/zero every 100 ms for 3 s, then exits 0
  const reader =
    "const fs=require('fs');const fd=fs.openSync('/dev/zero','r');const b=Buffer.alloc(65536);" +
    'const t=setInterval(()=>fs.readSync(fd,b),100);setTimeout(()=>{clearInterval(t);process.exit(0)},3000);';
  const r = await runProcess([process.execPath, '-e', reader], {
    signal: watch.signal,
    onSpawn: (pid) => watch.attach(pid),
    timeoutMs: 30_000,
  });
  watch.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(watch.stalled, false);
});

test('the stall limit: the I/O timeout plus as much again, at most 30 s more', () => {
  assert.equal(stallAfterMs(3000), 6000);
  assert.equal(stallAfterMs(600_000), 630_000);
});

test('ssh keep-alives follow the I/O timeout: a dead link fails after about the timeout', () => {
  const src = {
    name: 's',
    host: 'h',
    port: 22,
    knownHosts: '/k',
    streams: {},
  } as unknown as SinkSourceConfig;
  const stream = { user: 'u', identity: '/id', generations: 1, anomalyDropPercent: 50 } as SinkStreamConfig;
  const opt = (argv: string[], key: string) => argv.find((a) => a.startsWith(`${key}=`))?.split('=')[1];
  const short = sshArgv(src, stream, undefined, 3000);
  assert.equal(opt(short, 'ServerAliveInterval'), '1');
  assert.equal(opt(short, 'ServerAliveCountMax'), '3');
  const long = sshArgv(src, stream, undefined, 600_000);
  assert.equal(opt(long, 'ServerAliveInterval'), '15');
  assert.equal(opt(long, 'ServerAliveCountMax'), '40');
});

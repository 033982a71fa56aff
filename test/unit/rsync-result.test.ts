import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRsyncResult } from '../../src/adapters/rsync.js';
import type { RunResult } from '../../src/adapters/run.js';

// Issue 5 case 13: rsync exit 23/24 (partial transfer) are failures for a generation, never warnings.
const result = (over: Partial<RunResult>): RunResult => ({
  argv: ['rsync'],
  code: 0,
  signal: null,
  timedOut: false,
  durationMs: 1000,
  stdout: '',
  stderr: '',
  ...over,
});

test('rsync exit 0 -> no failure', () => {
  assert.equal(describeRsyncResult(result({})), undefined);
});

test('rsync exit 23 -> a failure naming the partial transfer and the last error line', () => {
  const r = result({
    code: 23,
    stderr:
      'rsync: [sender] send_files failed to open "/srv/data/x": Permission denied (13)\n' +
      'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338)\n',
  });
  assert.equal(
    describeRsyncResult(r),
    'rsync exit 23 (partial transfer due to error): rsync: [sender] send_files failed to open "/srv/data/x": Permission denied (13)',
  );
});

test('rsync exit 24 -> a failure naming the vanished files', () => {
  const r = result({
    code: 24,
    stderr:
      'file has vanished: "/srv/data/gone"\nrsync warning: some files vanished before they could be transferred (code 24)\n',
  });
  const d = describeRsyncResult(r);
  assert.ok(d?.startsWith('rsync exit 24 (partial transfer due to vanished source files)'), d);
  assert.match(d ?? '', /vanished/);
});

test('rsync exit 23 with no stderr -> still a failure', () => {
  assert.equal(describeRsyncResult(result({ code: 23 })), 'rsync exit 23 (partial transfer due to error)');
});

test('rsync timed out or killed -> failures', () => {
  assert.match(
    describeRsyncResult(result({ code: null, timedOut: true, durationMs: 61_000 })) ?? '',
    /timed out after 61s/,
  );
  assert.equal(describeRsyncResult(result({ code: null, signal: 'SIGKILL' })), 'rsync killed by SIGKILL');
});

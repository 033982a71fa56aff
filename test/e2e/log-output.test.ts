import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

test('an error is printed once on stderr: one baton: line, no log line saying the same', () => {
  const r = run(['status', '--config', '/nonexistent/baton-sink.yaml']);
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', /^baton: .*nonexistent\/baton-sink\.yaml/);
});

test('--log-format json: the error is one JSON record with a level name and an ISO time', () => {
  const r = run(['--log-format', 'json', 'status', '--config', '/nonexistent/baton-sink.yaml']);
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, r.stderr);
  const rec = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
  assert.equal(rec.level, 'error');
  assert.match(String(rec.time), /^\d{4}-\d\d-\d\dT/);
  assert.match(String(rec.msg), /nonexistent\/baton-sink\.yaml/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, errorLine, formatTextLine, stderrIsJournal } from '../../src/adapters/log.js';

const rec = (o: Record<string, unknown>) =>
  JSON.stringify({ level: 'info', time: '2026-11-28T06:19:22.123Z', pid: 1, ...o });

test('a text log line never splits: a newline in the message is escaped, fields stay on the line', () => {
  const line = formatTextLine(
    rec({
      level: 'error',
      step: 'pull',
      msg: 'generation X failed verification (not acked):\n  a/b: sha256 1 != 2',
      source: 'shop',
      stream: 'data',
    }),
  );
  assert.equal(line.split('\n').length, 2, JSON.stringify(line)); // the text and the final ''
  assert.match(
    line,
    /^2026-11-28T06:19:22\.123Z ERROR pull: .*not acked\):\\n {2}a\/b: sha256 1 != 2 {2}source=shop stream=data\n$/,
  );
});

test('field values with spaces, quotes or control characters are quoted and escaped', () => {
  const line = formatTextLine(rec({ msg: 'm', a: 'x y', b: 'q"x', c: 'l1\nl2', d: 'plain' }));
  assert.equal(line, '2026-11-28T06:19:22.123Z INFO  m  a="x y" b="q\\"x" c="l1\\nl2" d=plain\n');
});

test('under the journal: sd-daemon <N> priority prefixes and no timestamp', () => {
  assert.equal(formatTextLine(rec({ level: 'error', msg: 'x' }), true), '<3>ERROR x\n');
  assert.equal(formatTextLine(rec({ level: 'warn', msg: 'x' }), true), '<4>WARN  x\n');
  assert.equal(formatTextLine(rec({ level: 'info', msg: 'x' }), true), '<6>INFO  x\n');
  assert.equal(formatTextLine(rec({ level: 'debug', msg: 'x' }), true), '<7>DEBUG x\n');
});

test('the baton: error line is one whole line, the detail not cut', () => {
  assert.equal(
    errorLine(
      'pull: generation X failed verification (not acked):\n  a/b: sha256 1 != 2\n  c: missing',
      false,
    ),
    'baton: pull: generation X failed verification (not acked): a/b: sha256 1 != 2; c: missing\n',
  );
  // the same fold as status' problem lines (singleLine): CR LF and a lone CR end a line too
  assert.equal(errorLine('a:\r\n  b\r  c\n', false), 'baton: a: b; c\n');
  assert.equal(errorLine('one\ttab\u0007bell', false), 'baton: one\\ttab\\x07bell\n');
  assert.match(errorLine('x', true), /^<3>baton: x\n$/);
});

test('JOURNAL_STREAM counts only when it names the file stderr is', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-journal-'));
  const file = join(dir, 'err');
  const fd = openSync(file, 'w');
  try {
    const st = fstatSync(fd);
    const mod = new URL('../../src/adapters/log.ts', import.meta.url).href;
    const script = `import('${mod}').then((m) => process.stdout.write(String(m.stderrIsJournal(process.env.JOURNAL_STREAM))))`;
    const run = (journalStream: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
        env: { ...process.env, JOURNAL_STREAM: journalStream },
        stdio: ['ignore', 'pipe', fd],
        encoding: 'utf8',
      }).stdout;
    assert.equal(run(`${st.dev}:${st.ino}`), 'true');
    assert.equal(run(`${st.dev}:${st.ino + 1}`), 'false');
    assert.equal(stderrIsJournal(undefined), false);
    assert.equal(stderrIsJournal(''), false);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--log-format json: level names and ISO times', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-jsonlog-'));
  const fd = openSync(join(dir, 'log'), 'w+');
  try {
    const log = createLogger({ format: 'json', fd });
    log.warn({ step: 'x' }, 'hello');
    const line = JSON.parse(readFileSync(join(dir, 'log'), 'utf8').trim()) as Record<string, unknown>;
    assert.equal(line.level, 'warn');
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(line.msg, 'hello');
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

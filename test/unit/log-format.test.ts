import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLogger,
  errorLine,
  formatTextLine,
  stderrIsJournal,
  type LogRecord,
} from '../../src/adapters/log.js';

const rec = ({ level, msg, ...fields }: Record<string, unknown>): LogRecord => ({
  level: (level ?? 'info') as LogRecord['level'],
  time: '2026-11-28T06:19:22.123Z',
  msg: msg as string | undefined,
  fields,
});

/** What a logger on a file wrote, as lines. */
function capture(
  format: 'text' | 'json',
  body: (log: ReturnType<typeof createLogger>) => void,
  journal = false,
) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-log-'));
  const fd = openSync(join(dir, 'log'), 'w+');
  try {
    body(createLogger({ format, fd, journal }));
    return readFileSync(join(dir, 'log'), 'utf8').split('\n').slice(0, -1);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

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
  const [text, ...more] = capture('json', (log) => log.warn({ step: 'x' }, 'hello'));
  assert.deepEqual(more, []);
  const line = JSON.parse(text ?? '') as Record<string, unknown>;
  assert.equal(line.level, 'warn');
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(line.msg, 'hello');
  assert.equal(line.pid, process.pid);
  assert.deepEqual(Object.keys(line), ['level', 'time', 'pid', 'step', 'msg']);
});

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

test('the text logger: child bindings first, then the call fields; one line per event; levels below the least dropped', () => {
  const lines = capture('text', (log) => {
    const child = log.child({ source: 'shop', stream: 'data' });
    child.warn({ step: 'pull', id: 'g1', n: 3, ok: true, skip: undefined }, 'two\nlines');
    child.debug({ step: 'pull' }, 'not shown at info');
    log.info('bare message');
    log.error({ step: 'x', stream: 'logs' }, 'overridden binding');
  });
  assert.equal(lines.length, 3, lines.join('\n'));
  assert.match(lines[0] ?? '', TIME);
  assert.equal(
    (lines[0] ?? '').replace(TIME, ''),
    'WARN  pull: two\\nlines  source=shop stream=data id=g1 n=3 ok=true',
  );
  assert.equal((lines[1] ?? '').replace(TIME, ''), 'INFO  bare message');
  assert.equal((lines[2] ?? '').replace(TIME, ''), 'ERROR x: overridden binding  stream=logs');
});

test('secrets never reach a line: password, pass and auth at the top or one object down, in both formats', () => {
  for (const format of ['text', 'json'] as const) {
    const out = capture(format, (log) => {
      log
        .child({ password: 'hunter2' })
        .info({ smtp: { host: 'h', auth: { user: 'u', pass: 'p4ss' } } }, 'm');
      log.info({ cfg: { pass: 'p4ss', user: 'u' }, auth: 'tok3n' }, 'm');
    }).join('\n');
    for (const secret of ['hunter2', 'p4ss', 'tok3n']) assert.ok(!out.includes(secret), `${format}: ${out}`);
    assert.ok(out.includes('[secret]'), out);
    assert.ok(out.includes('"host":"h"') && out.includes('"user":"u"'), out);
  }
});

test('an err field shows type, message and stack on the same line; a cycle or a bigint does not throw', () => {
  const e = new TypeError('boom\nsecond line');
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const [line, other, ...more] = capture('text', (log) => {
    log.fatal({ err: e }, 'unexpected error');
    log.info({ big: 10n ** 20n, cyclic, when: new Date(Date.UTC(2026, 0, 2)) }, 'odd values');
  });
  assert.deepEqual(more, []);
  assert.match(
    line ?? '',
    /FATAL unexpected error {2}err=\{"type":"TypeError","message":"boom\\nsecond line","stack":"TypeError: boom\\n/,
  );
  assert.match(
    other ?? '',
    /odd values {2}big=(100000000000000000000|"100000000000000000000") cyclic=\{"a":1,"self":"\[Circular\]"\} when=2026-01-02T00:00:00\.000Z$/,
  );
});

test('under the journal the logger writes <N> prefixes and no timestamp; json stays json', () => {
  assert.deepEqual(
    capture('text', (log) => log.warn({ step: 's' }, 'm'), true),
    ['<4>WARN  s: m'],
  );
  const [json] = capture('json', (log) => log.warn('m'), true);
  assert.equal((JSON.parse(json ?? '') as { level: string }).level, 'warn');
});

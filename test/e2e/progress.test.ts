import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/adapters/run.js';
import { ensureUser, needsRootOrSkipFile } from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';

// Progress bars appear on a terminal and never under cron (no TTY).
const NEEDS_ROOT = needsRootOrSkipFile('progress', 'users');

let root: string;
let s: SourceSetup;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-progress-'));
  await chmod(root, 0o755);
  await ensureUser('batonPrgData');
  await ensureUser('batonPrgLogs');
  s = await makeSourceSetup(root, { name: 'prg', dataUser: 'batonPrgData', logsUser: 'batonPrgLogs' });
  await writeFile(join(s.app.dataDir, 'blob.bin'), Buffer.alloc(4 * 2 ** 20, 1));
});

after(async () => {
  if (NEEDS_ROOT) return;
  s.app.kill();
  await rm(root, { recursive: true, force: true });
});

test('under cron (no terminal) there is no progress bar', { skip: NEEDS_ROOT }, async () => {
  const r = await runBaton(['source', 'backup', '--config', s.config]);
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stderr, /collect data \[/);
  await sleep(1100);
});

test('on a terminal the collection shows a progress bar on stderr', { skip: NEEDS_ROOT }, async () => {
  await writeFile(join(s.app.dataDir, 'blob2.bin'), Buffer.alloc(4 * 2 ** 20, 2));
  // script(1) gives baton a pseudo-terminal, as an admin running it by hand would have
  const cmd = `${process.execPath} ${BATON_MAIN} source backup --config ${s.config}`;
  const r = await runProcess(['script', '-qefc', cmd, '/dev/null'], {
    timeoutMs: 120_000,
    captureStdout: true,
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /collect data \[[^\]]*\] 100% /, 'a bar that reached 100 %');
  // real figures: never a total below what was copied, and the last bar ends at its total
  const figures = [...r.stdout.matchAll(/collect data \[[^\]]*\] \d+% ([\d.]+)\/([\d.?]+) MiB/g)];
  assert.ok(figures.length > 0, r.stdout);
  for (const [, done, all] of figures)
    assert.ok(all === '?' || Number(all) >= Number(done), `${done}/${all}`);
  const [, lastDone, lastAll] = figures.at(-1) ?? [];
  assert.equal(lastAll, lastDone, r.stdout);
  assert.equal((await generationIds(s.handoverData)).length, 2);
});

test('on a terminal verify --deep shows a hashing progress bar', { skip: NEEDS_ROOT }, async () => {
  const [id] = await generationIds(s.handoverData);
  assert.ok(id);
  const cmd = `${process.execPath} ${BATON_MAIN} verify --deep ${join(s.handoverData, id)}`;
  const r = await runProcess(['script', '-qefc', cmd, '/dev/null'], {
    timeoutMs: 120_000,
    captureStdout: true,
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`verify ${id} \\[[^\\]]*\\] 100% `));
  const plain = await runBaton(['verify', '--deep', join(s.handoverData, id)]);
  assert.equal(plain.code, 0, show(plain));
  assert.doesNotMatch(plain.stderr + plain.stdout, /verify [0-9T-]+Z \[/);
});

/**
 * What a terminal shows of each line of `out`: `\r` and ESC[nG move the cursor, ESC[2K clears the
 * line, ESC[K / ESC[0K clear to its end, other escapes (colour, cursor, ESC 7 / 8) draw nothing.
 */
function screenLines(out: string): string[] {
  return out.split('\n').map((raw) => {
    let line: string[] = [];
    let x = 0;
    for (let i = 0; i < raw.length; i++) {
      const ch = raw[i] ?? '';
      if (ch === '\r') x = 0;
      else if (ch === '\x1b') {
        const m = /^.\[([?0-9;]*)([A-Za-z])/.exec(raw.slice(i)); // ESC [ args command
        if (!m) {
          i++; // ESC 7 / ESC 8: cursor save / restore
          continue;
        }
        i += m[0].length - 1;
        const [, arg = '', cmd] = m;
        if (cmd === 'G') x = Math.max(0, Number(arg || '1') - 1);
        else if (cmd === 'K' && arg === '2') line = [];
        else if (cmd === 'K') line = line.slice(0, x);
      } else {
        while (line.length < x) line.push(' ');
        line[x++] = ch;
      }
    }
    return line.join('');
  });
}

test('on a terminal a log line never lands on the progress bar’s line', { skip: NEEDS_ROOT }, async () => {
  // no pre-pass: the data bar runs while the app is down, and the logs stream, collected beside
  // it, logs "logs collected" meanwhile (retried when the small logs stream ended before the bar began)
  const s2 = await makeSourceSetup(root, {
    name: 'prg2',
    dataUser: 'batonPrgData',
    logsUser: 'batonPrgLogs',
    prepass: false,
  });
  try {
    const bar = /collect data \[/;
    let out = '';
    for (let attempt = 1; attempt <= 4; attempt++) {
      await writeFile(join(s2.app.dataDir, 'big.bin'), Buffer.alloc(192 * 2 ** 20, attempt));
      const cmd = `${process.execPath} ${BATON_MAIN} source backup --config ${s2.config}`;
      const r = await runProcess(['script', '-qefc', cmd, '/dev/null'], {
        timeoutMs: 180_000,
        captureStdout: true,
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const logged = r.stdout.lastIndexOf('logs collected');
      const firstBar = r.stdout.search(bar);
      if (firstBar >= 0 && logged > firstBar) {
        out = r.stdout;
        break;
      }
    }
    assert.notEqual(out, '', 'a log line came while the bar was shown');
    assert.match(
      out.slice(out.lastIndexOf('logs collected')),
      bar,
      'the bar is drawn again after the log line',
    );
    const lines = screenLines(out);
    assert.ok(lines.some((l) => l.includes('logs collected')));
    for (const l of lines) {
      assert.ok(!(bar.test(l) && /(INFO|WARN|collected)/.test(l)), JSON.stringify(l));
    }
  } finally {
    s2.app.kill();
  }
});

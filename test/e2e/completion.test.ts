/**
 * `baton completion bash|zsh` from the built CLI, loaded into real shells: bash completes through
 * `complete -F`, fed simulated COMP_WORDS; zsh (when installed) through its own words/CURRENT with
 * compadd and _files recorded instead of shown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runProcess } from '../../src/adapters/run.js';
import { BATON_MAIN } from '../helpers/cli.js';

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const LOAD_BASH = `source <(${q(process.execPath)} ${q(BATON_MAIN)} completion bash)`;

async function bash(script: string) {
  return runProcess(['bash', '--norc', '--noprofile', '-c', script], {
    timeoutMs: 30_000,
    captureStdout: true,
  });
}

/** What `_baton` offers for the command line `words` (the last one is the word being completed). */
async function bashComplete(words: readonly string[]): Promise<string[]> {
  const r = await bash(
    `${LOAD_BASH}\nCOMP_WORDS=(${words.map(q).join(' ')}); COMP_CWORD=${words.length - 1}\n_baton\nprintf '%s\\n' "\${COMPREPLY[@]}"`,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return r.stdout.split('\n').filter((l) => l !== '');
}

test('source <(baton completion bash) registers the completion for baton', async () => {
  const r = await bash(`${LOAD_BASH}; complete -p baton`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'complete -F _baton baton');
});

const rows: Array<[string, string[], string[]]> = [
  ['baton sink pull <TAB> -> the streams', ['baton', 'sink', 'pull', ''], ['data', 'logs']],
  ['baton sink pull l<TAB> -> logs', ['baton', 'sink', 'pull', 'l'], ['logs']],
  ['baton s<TAB> -> the commands starting with s', ['baton', 's'], ['source', 'sink', 'status']],
  ['baton install <TAB> -> the kinds', ['baton', 'install', ''], ['source', 'sink']],
  ['baton completion <TAB> -> the shells', ['baton', 'completion', ''], ['bash', 'zsh', 'fish']],
  [
    'options and their values before the stream are skipped',
    ['baton', '--log-format', 'json', 'sink', 'pull', '--config', '/etc/baton/sink.yaml', ''],
    ['data', 'logs'],
  ],
  [
    'baton --log-level <TAB> -> its choices',
    ['baton', '--log-level', ''],
    ['debug', 'info', 'warn', 'error'],
  ],
  ['a complete command line offers nothing more', ['baton', 'sink', 'pull', 'data', ''], []],
];
for (const [name, words, expected] of rows) {
  test(`bash: ${name}`, async () => {
    assert.deepEqual(await bashComplete(words), expected);
  });
}

test('bash: options of the command plus the global ones, never --version below baton', async () => {
  const offered = await bashComplete(['baton', 'sink', 'pull', '--']);
  assert.deepEqual(offered, ['--config', '--source', '--json', '--help', '--log-format', '--log-level']);
});

test('bash: --config completes file names', async () => {
  const offered = await bashComplete(['baton', 'status', '--config', '/etc/host']);
  assert.ok(offered.includes('/etc/hostname'), offered.join(' '));
});

test('zsh: the script loads and offers the same words', async (t) => {
  const which = await runProcess(['sh', '-c', 'command -v zsh'], { timeoutMs: 10_000 });
  if (which.code !== 0) {
    const reason = 'zsh not installed (Debian package "zsh")';
    process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
    t.skip(reason);
    return;
  }
  const script = `
compdef() { print -r -- "compdef $*"; }
compadd() { [[ $1 == -a ]] && print -r -- "\${(P)2}"; }
_files() { print -r -- "(files)"; }
source <(${q(process.execPath)} ${q(BATON_MAIN)} completion zsh)
t() { local -a words; words=("$@"); local CURRENT=\${#words}; _baton; }
t baton sink pull ''
t baton config check --config ''
t baton --log-format json install ''
`;
  const r = await runProcess(['zsh', '-f', '-c', script], { timeoutMs: 30_000, captureStdout: true });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'compdef _baton baton',
    'data logs',
    '(files)',
    'source sink',
  ]);
});

test('fish: the script loads and offers the same words', async (t) => {
  const which = await runProcess(['sh', '-c', 'command -v fish'], { timeoutMs: 10_000 });
  if (which.code !== 0) {
    if (process.env.CI === 'true') assert.fail('fish is not installed (scripts/setup.sh --test installs it)');
    const reason = 'fish not installed (Debian package "fish")';
    process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
    t.skip(reason);
    return;
  }
  const cases: Array<[string, string[]]> = [
    ['baton sink pull ', ['data', 'logs']],
    ['baton s', ['sink', 'source', 'status']],
    ['baton --log-format json install ', ['sink', 'source']],
    ['baton sink pull --config /etc/x ', ['data', 'logs']],
    ['baton sink pull data ', []],
    ['baton sink pull --', ['--config', '--help', '--json', '--log-format', '--log-level', '--source']],
    ['baton --log-level ', ['debug', 'error', 'info', 'warn']],
  ];
  const script = [
    `${q(process.execPath)} ${q(BATON_MAIN)} completion fish | source`,
    ...cases.map(([line]) => `complete -C ${q(line)}; echo '==='`),
  ].join('\n');
  const r = await runProcess(['fish', '--no-config', '-c', script], {
    timeoutMs: 30_000,
    captureStdout: true,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const answers = r.stdout.split('===\n').slice(0, cases.length);
  cases.forEach(([line, expected], i) => {
    const words = (answers[i] ?? '')
      .split('\n')
      .filter((w) => w !== '')
      .map((w) => w.split('\t')[0] ?? '');
    assert.deepEqual(words.sort(), expected, line);
  });
});

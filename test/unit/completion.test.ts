import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Argument, Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { createRoot } from '../../src/cli/app.js';
import { registerCommands } from '../../src/cli/commands/index.js';
import { bashCompletion, zshCompletion } from '../../src/cli/completion/scripts.js';
import { completionTree, type CompletionCommand } from '../../src/cli/completion/spec.js';

function smallTree(): Command {
  const root = new Command('baton').option('--log-format <format>', 'x').version('1.0.0', '-V, --version');
  root.addOption(new Option('--log-level <level>', 'x').choices(['info', 'debug'] as const));
  const sink = root.command('sink');
  sink
    .command('pull')
    .addArgument(new Argument('<stream>', 'x').choices(['data', 'logs'] as const))
    .option('--config <file>', 'x')
    .option('--json', 'x');
  root.command('verify').argument('[GENERATION_DIR...]', 'x').option('--deep', 'x');
  return root;
}

const byPath = (tree: readonly CompletionCommand[], path: string) =>
  tree.find((c) => c.path.join(' ') === path);

describe('completionTree', () => {
  test('a commander tree -> commands, options with their values, argument choices', () => {
    const tree = completionTree(smallTree());
    assert.deepEqual(
      tree.map((c) => c.path.join(' ')),
      ['', 'help', 'sink', 'sink pull', 'verify'],
    );
    assert.deepEqual(byPath(tree, '')?.subcommands, ['sink', 'verify', 'help']);
    assert.deepEqual(byPath(tree, 'help')?.args, [{ kind: 'choices', choices: ['sink', 'verify'] }]);
    const pull = byPath(tree, 'sink pull');
    assert.deepEqual(pull?.args, [{ kind: 'choices', choices: ['data', 'logs'] }]);
    assert.deepEqual(pull?.options, [
      { names: ['--config'], value: { kind: 'file' } },
      { names: ['--json'], value: undefined },
      { names: ['-h', '--help'], value: undefined },
    ]);
    assert.deepEqual(byPath(tree, '')?.options.find((o) => o.names.includes('--log-level'))?.value, {
      kind: 'choices',
      choices: ['info', 'debug'],
    });
    assert.deepEqual(byPath(tree, '')?.options.find((o) => o.names.includes('--log-format'))?.value, {
      kind: 'none',
    });
    assert.deepEqual(byPath(tree, 'verify')?.args, [{ kind: 'file' }], 'GENERATION_DIR completes files');
  });

  test('the bash script carries the tables; global options leave out --help and --version', () => {
    const script = bashCompletion(completionTree(smallTree()));
    assert.match(script, /^ {4}'sink pull\|0'\) echo 'choices data logs' ;;$/m);
    assert.match(script, /^ {4}'sink pull\|--config'\) echo 'file' ;;$/m);
    assert.match(script, /^ {4}''\) echo 'sink verify help' ;;$/m);
    assert.match(script, /^_baton_global_options\(\) \{\n {2}echo '--log-format --log-level'\n\}$/m);
    assert.match(script, /^complete -F _baton baton$/m);
    const zsh = zshCompletion(completionTree(smallTree()));
    assert.match(zsh, /^#compdef baton$/m);
    assert.match(zsh, /^ {2}compdef _baton baton$/m);
  });

  test('the real command tree: streams, kinds and shells are offered', () => {
    const root = createRoot();
    registerCommands(root);
    const tree = completionTree(root);
    for (const [path, choices] of [
      ['sink pull', ['data', 'logs']],
      ['gate', ['data', 'logs']],
      ['install', ['source', 'sink']],
      ['config check', ['source', 'sink']],
      ['completion', ['bash', 'zsh', 'fish']],
    ] as const) {
      assert.deepEqual(byPath(tree, path)?.args[0], { kind: 'choices', choices }, path);
    }
  });
});

describe('--help of every command', () => {
  const root = createRoot();
  registerCommands(root);
  const all: Array<[string, CommandUnknownOpts]> = [];
  const walk = (cmd: CommandUnknownOpts, path: string[]) => {
    for (const c of cmd.commands) {
      all.push([[...path, c.name()].join(' '), c]);
      walk(c, [...path, c.name()]);
    }
  };
  walk(root, []);

  for (const [path, cmd] of all) {
    test(`baton ${path} --help has an Examples: section with a baton command line`, () => {
      let out = '';
      cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
      cmd.outputHelp();
      const examples = out.split(/^Examples:$/m)[1];
      assert.ok(examples !== undefined, `no "Examples:" line in:\n${out}`);
      assert.match(examples, /\bbaton /);
    });
  }
});

/** baton(1) from the command tree (src/cli/man.ts): every command, option and example of --help is in it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { createRoot } from '../../src/cli/app.js';
import { registerCommands } from '../../src/cli/commands/index.js';
import { manPage, roffText } from '../../src/cli/man.js';

function commands(cmd: CommandUnknownOpts): CommandUnknownOpts[] {
  return [cmd, ...cmd.commands.flatMap(commands)];
}

/** The page with roff's escapes undone (in one pass, left to right), as a reader sees the words. */
const plain = (roff: string) =>
  roff.replace(/\\([-e&])/g, (_m, c: string) => (c === 'e' ? '\\' : c === '-' ? '-' : ''));

describe('manPage', () => {
  const root = createRoot();
  registerCommands(root);
  const page = manPage(root, '9.8.7');
  const text = plain(page);

  test('a man(7) page of section 1 with the version, name and synopsis', () => {
    assert.match(page, /^\.TH BATON 1 "" "baton 9\.8\.7" "User Commands"$/m);
    assert.match(text, /^\.SH NAME\nbaton - App-consistent backups/m);
    assert.match(text, /^baton sink pull \[options\] <stream>$/m);
  });

  test("every command's usage, description, options and arguments are on it", () => {
    for (const cmd of commands(root)) {
      const help = cmd.createHelp();
      if (cmd !== root) assert.ok(text.includes(help.commandUsage(cmd)), help.commandUsage(cmd));
      for (const o of help.visibleOptions(cmd)) {
        assert.ok(text.includes(help.optionTerm(o)), `${help.commandUsage(cmd)}: ${help.optionTerm(o)}`);
      }
      for (const a of help.visibleArguments(cmd)) assert.ok(text.includes(help.argumentTerm(a)));
    }
  });

  test("the examples of --help (addHelpText 'after') are on it, line by line", () => {
    let help = '';
    const sinkPull = commands(root).find((c) => c.name() === 'pull');
    assert.ok(sinkPull);
    sinkPull.configureOutput({ writeOut: (s) => (help += s) });
    sinkPull.outputHelp();
    const examples = help.slice(help.indexOf('Examples:'));
    assert.ok(examples.length > 20);
    for (const line of examples.split('\n').filter((l) => l.trim() !== ''))
      assert.ok(text.includes(line), line);
  });

  test('no line starts with a roff control character from the text itself', () => {
    for (const line of page.split('\n')) {
      if (/^[.']/.test(line))
        assert.match(line, /^(\.(TH|SH|SS|TP|B|BR|PP|RS|RE|nf|fi|nh|ad)\b|\.\\")/, line);
    }
  });
});

test('roffText: any text reads back unchanged and never starts a control line', () => {
  fc.assert(
    fc.property(fc.string(), (s) => {
      const r = roffText(s);
      assert.equal(plain(r), s);
      for (const line of r.split('\n')) assert.doesNotMatch(line, /^[.']/);
    }),
  );
});

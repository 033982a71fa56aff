/**
 * The command tree as completion sees it: walked once from commander's registered commands, options
 * and argument choices, so the completion scripts never drift from the CLI.
 */
import type { CommandUnknownOpts } from '@commander-js/extra-typings';

/** How a value is completed: from fixed choices, as a file name, or not at all (free text). */
export type ValueCompletion = { kind: 'choices'; choices: string[] } | { kind: 'file' } | { kind: 'none' };

export interface CompletionOption {
  /** `-h`, `--help`, … */
  names: string[];
  /** undefined: a flag without a value */
  value: ValueCompletion | undefined;
}

export interface CompletionCommand {
  /** words after `baton`, e.g. ['sink', 'pull']; [] for baton itself */
  path: string[];
  subcommands: string[];
  options: CompletionOption[];
  /** positional arguments in order */
  args: ValueCompletion[];
}

// `<file>`, `<dir>`, `[GENERATION_DIR...]`, `<html-file>`: a path is wanted.
const FILE_VALUE = /[<[][^>\]]*(file|dir|path)[^>\]]*[>\]]/i;

function valueOf(choices: readonly string[] | undefined, placeholder: string): ValueCompletion {
  if (choices && choices.length > 0) return { kind: 'choices', choices: [...choices] };
  return FILE_VALUE.test(placeholder) ? { kind: 'file' } : { kind: 'none' };
}

/** Every command from `root` down, parents before children. */
export function completionTree(root: CommandUnknownOpts): CompletionCommand[] {
  const out: CompletionCommand[] = [];
  const visit = (cmd: CommandUnknownOpts, path: string[]) => {
    const subs = cmd.commands.map((c) => c.name());
    const options: CompletionOption[] = cmd.options
      .filter((o) => !o.hidden)
      .map((o) => ({
        names: [o.short, o.long].filter((n): n is string => n !== undefined),
        value: o.required || o.optional ? valueOf(o.argChoices, o.flags) : undefined,
      }));
    options.push({ names: ['-h', '--help'], value: undefined });
    const args = cmd.registeredArguments.map((a) => valueOf(a.argChoices, `<${a.name()}>`));
    if (path.length === 0 && subs.length > 0) {
      // commander's implicit `help [command]`
      subs.push('help');
      out.push({ path, subcommands: subs, options, args });
      out.push({
        path: ['help'],
        subcommands: [],
        options: [],
        args: [{ kind: 'choices', choices: subs.filter((s) => s !== 'help') }],
      });
    } else {
      out.push({ path, subcommands: subs, options, args });
    }
    for (const c of cmd.commands) visit(c, [...path, c.name()]);
  };
  visit(root, []);
  return out;
}

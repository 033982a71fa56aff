/**
 * The man page baton(1), generated from the registered commander commands: the same usage lines,
 * options, arguments, descriptions and examples that `--help` prints, laid out as roff. Pure; run at
 * package time (scripts/package.mjs), so the page never drifts from the CLI.
 */
import type { CommandUnknownOpts, HelpContext } from '@commander-js/extra-typings';

/** roff text: backslashes and hyphens escaped, a line starting with `.` or `'` protected. */
export function roffText(s: string): string {
  return s
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** What `addHelpText('after', …)` adds to a command's --help (examples, exit codes), as printed. */
function afterHelpText(cmd: CommandUnknownOpts): string {
  let out = '';
  const context: HelpContext & { command: CommandUnknownOpts; write: (s: string) => void } = {
    error: false,
    command: cmd,
    write: (s: string) => {
      out += s;
    },
  };
  // commander's addHelpText listens for this event (the Command is an EventEmitter)
  (cmd as unknown as { emit: (event: string, ctx: typeof context) => boolean }).emit('afterHelp', context);
  return out.replace(/^\n+/, '').trimEnd();
}

/** Preformatted text (examples), kept as it is. */
const literal = (text: string): string => (text === '' ? '' : `.PP\n.nf\n${roffText(text)}\n.fi\n`);

const item = (term: string, description: string): string =>
  `.TP\n.B ${roffText(term)}\n${roffText(description.replace(/\s*\n\s*/g, ' '))}\n`;

function commandSection(cmd: CommandUnknownOpts, heading: 'SH' | 'SS'): string {
  const help = cmd.createHelp();
  const parts: string[] = [];
  if (heading === 'SS') parts.push(`.SS "${roffText(help.commandUsage(cmd)).replaceAll('"', '\\(dq')}"\n`);
  const description = help.commandDescription(cmd);
  if (description !== '') parts.push(`${roffText(description)}\n`);
  const args = help.visibleArguments(cmd);
  if (args.length > 0) {
    parts.push('.PP\nArguments:\n.RS\n');
    for (const a of args) parts.push(item(help.argumentTerm(a), help.argumentDescription(a)));
    parts.push('.RE\n');
  }
  const options = help.visibleOptions(cmd);
  if (options.length > 0) {
    parts.push('.PP\nOptions:\n.RS\n');
    for (const o of options) parts.push(item(help.optionTerm(o), help.optionDescription(o)));
    parts.push('.RE\n');
  }
  parts.push(literal(afterHelpText(cmd)));
  return parts.join('');
}

function leafCommands(cmd: CommandUnknownOpts): CommandUnknownOpts[] {
  return cmd.commands.flatMap((c) => [c, ...leafCommands(c)]);
}

/** The whole of baton(1) for the command tree under `root`. */
export function manPage(root: CommandUnknownOpts, version: string): string {
  const help = root.createHelp();
  const summary = (help.commandDescription(root).split('\n')[0] ?? '').replace(/[.,]\s*$/, '');
  const commands = leafCommands(root);
  return [
    // the coding line lets man-db's preconv read the UTF-8 (…, →); .nh: no hyphenation, so every
    // option stays one searchable word
    `.\\" -*- coding: UTF-8 -*-\n.TH BATON 1 "" "baton ${roffText(version)}" "User Commands"\n.nh\n.ad l\n`,
    `.SH NAME\nbaton \\- ${roffText(summary)}\n`,
    `.SH SYNOPSIS\n.nf\n${commands
      .filter((c) => c.commands.length === 0)
      .map((c) => roffText(help.commandUsage(c)))
      .join('\n')}\n.fi\n`,
    `.SH DESCRIPTION\n${commandSection(root, 'SH')}`,
    `.SH COMMANDS\n${commands.map((c) => commandSection(c, 'SS')).join('')}`,
    `.SH FILES
.TP
.B /etc/baton/source.yaml, /etc/baton/sink.yaml
The default config files (\\fBbaton config example source|sink\\fR prints a commented one).
.TP
.B /usr/share/doc/baton
README, design notes, upgrade notes and the example configs.
.SH SEE ALSO
.BR rsync (1),
.BR ssh (1),
.BR systemd.timer (5)
`,
  ].join('');
}

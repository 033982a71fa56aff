import { Argument } from '@commander-js/extra-typings';
import { bashCompletion, fishCompletion, zshCompletion } from '../completion/scripts.js';
import { completionTree } from '../completion/spec.js';
import { ExitCode } from '../../errors.js';
import { runAction, type Root } from '../app.js';

const HELP_AFTER = `
Examples:
  source <(baton completion bash)                          # this bash session
  baton completion bash > /etc/bash_completion.d/baton     # every new bash
  baton completion zsh > "\${fpath[1]}/_baton"               # zsh (a directory in $fpath), then restart it
  baton completion fish > ~/.config/fish/completions/baton.fish   # fish
(The Debian package installs all three.)`;

/** `baton completion bash|zsh|fish`: a static completion script generated from the command tree. */
export function registerCompletionCommand(root: Root): void {
  root
    .command('completion')
    .description('print a shell completion script (commands, options, choices such as data|logs)')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish'] as const))
    .addHelpText('after', HELP_AFTER)
    .action(async (shell) =>
      runAction(root, () => {
        const tree = completionTree(root);
        const script = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion }[shell];
        process.stdout.write(script(tree));
        return Promise.resolve(ExitCode.ok);
      }),
    );
}

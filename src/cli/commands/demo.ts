import { cliArgv, runAction, type Root } from '../app.js';
import { runDemo } from '../../demo/demo.js';

export function registerDemoCommand(root: Root): void {
  root
    .command('demo')
    .description(
      'a full source → sink cycle on this machine in a temp dir: sample app, backup, pull of both\n' +
        'streams (real sshd on 127.0.0.1 when run as root), verify, ack, then status',
    )
    .option('--keep', 'keep the temp dir (configs, stores) afterwards', false)
    .addHelpText(
      'after',
      `
Examples:
  sudo baton demo          # over a real sshd on loopback, with demo users baton-demo-data/-logs
  baton demo --keep        # without root: a local transport runs the same gate`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        await runDemo({ keep: opts.keep, log: ctx.log, batonArgv: cliArgv() });
      }),
    );
}

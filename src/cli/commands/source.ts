import { Option } from '@commander-js/extra-typings';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { loadSourceConfig } from '../../config/load.js';
import { runSourceBackup } from '../../source/backup.js';
import { recoverSource } from '../../source/recover.js';
import { acquireLock } from '../../adapters/lock.js';
import { withChildRecords } from '../../adapters/children.js';
import { mkdirp } from '../../adapters/fsx.js';
import { sourceState } from '../../source/state.js';
import { findRestoreCandidate, restoreInPlace } from '../../source/restore-in-place.js';
import { confirmByTyping } from '../../adapters/confirm.js';
import { describeCommand } from '../../adapters/run.js';

const configOption = () => new Option('--config <file>', 'source config file').default(DEFAULT_CONFIG.source);

/** SIGTERM / SIGINT abort the running step; the app is still started again before exiting. */
function abortOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`baton: ${sig} received: stopping, the app will be started again\n`);
    ac.abort(new Error(sig));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.off('SIGHUP', onSignal);
    },
  };
}

export function registerSourceCommands(root: Root): void {
  const source = root
    .command('source')
    .description('jobs of the source host (the app server)')
    .addHelpText(
      'after',
      `
Examples:
  baton source backup --dry-run              # what the nightly job would stop, collect and write
  baton source recover                       # start the app if a killed run left it stopped`,
    );

  source
    .command('backup')
    .summary('stop the app, copy what changed, start it, hand the new generations over')
    .description(
      'stop the app, copy what changed in its data and logs, start the app again, then build the new ' +
        'generations and leave them in the handover for the sink to pull; send an alert when an ' +
        'earlier generation is still waiting there (the sink has not taken it)',
    )
    .addOption(configOption())
    .option('--dry-run', 'print what would be stopped, collected and written; change nothing', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  baton source backup                           # the nightly cron job
  baton source backup --dry-run                 # show the plan, change nothing
  baton source backup --config /etc/baton/source.yaml --log-format json

Exit codes: 0 ok, 1 the backup failed (alert sent), 2 config error, 75 another run holds the lock.`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        const config = await loadSourceConfig(opts.config);
        const sig = abortOnSignals();
        try {
          const r = await runSourceBackup(config, {
            dryRun: opts.dryRun,
            now: ctx.now,
            log: ctx.log,
            signal: sig.signal,
            progress: ctx.interactive,
          });
          if (r && opts.json) {
            process.stdout.write(
              `${JSON.stringify({ id: r.id, downtimeMs: r.downtimeMs, transportFailed: r.transportFailed, generations: r.generations.map((g) => ({ dir: g.dir, ...g.meta })) }, null, 2)}\n`,
            );
          } else if (r) {
            for (const g of r.generations) {
              process.stdout.write(
                `${g.meta.stream}: ${g.dir}  ${g.meta.files} files, ${g.meta.bytes} bytes, ${g.meta.bytesCopied} new\n`,
              );
            }
            process.stdout.write(`app downtime: ${(r.downtimeMs / 1000).toFixed(2)}s\n`);
          }
        } finally {
          sig.dispose();
        }
      }),
    );

  source
    .command('recover')
    .description(
      'start the app if a killed run left it stopped, and remove partial generations\n' +
        '(for boot or systemd ExecStopPost=; does nothing when all is well)',
    )
    .addOption(configOption())
    .addHelpText(
      'after',
      `
Examples:
  baton source recover
  # in baton-source-backup.service:
  ExecStopPost=/usr/bin/baton source recover --config /etc/baton/source.yaml`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        const config = await loadSourceConfig(opts.config);
        const state = sourceState(config);
        await mkdirp(state.root, 0o700);
        const lock = await acquireLock(state.lock, 'baton source recover');
        try {
          const r = await withChildRecords(state.children, ctx.log, () => recoverSource(config, ctx.log));
          process.stdout.write(
            r.restartedApp
              ? `started the app again (stopped since ${r.stoppedSince ?? '?'} by a killed run)\n`
              : 'app not left stopped by baton: nothing to start\n',
          );
          if (r.removedWorkDirs.length) process.stdout.write(`removed: ${r.removedWorkDirs.join(', ')}\n`);
        } finally {
          await lock.release();
        }
      }),
    );

  source
    .command('restore')
    .description('put the data paths back as a generation has them (app stopped, safety copy kept)')
    .argument('<generation>', 'a generation id (source store, then data handover) or a generation directory')
    .addOption(configOption())
    .option('--yes', 'do not ask (without it, type the id on a terminal to confirm)', false)
    .addHelpText(
      'after',
      `
Examples:
  baton source restore 2026-11-28T061922Z                # asks: type the id to go on
  baton source restore 2026-11-28T061922Z --yes --config /etc/baton/source.yaml

Files in the data paths that are not in the generation are removed (they stay in the safety copy
under <stateDir>/restore-safety/); the command to undo is printed at the end.
Exit codes: 0 restored, 1 failed (the app is started again), 2 usage/config error or not confirmed,
75 a backup holds the lock.`,
    )
    .action(async (generation, opts) =>
      runAction(root, async (ctx) => {
        const config = await loadSourceConfig(opts.config);
        const candidate = await findRestoreCandidate(config, generation);
        const sig = abortOnSignals();
        try {
          const r = await restoreInPlace(config, candidate, {
            now: ctx.now,
            log: ctx.log,
            signal: sig.signal,
            ...(opts.yes
              ? {}
              : {
                  confirm: (w) =>
                    confirmByTyping(
                      `This stops the app and replaces ${w.paths.join(', ')} with generation ${w.id} (${w.dir}).`,
                      w.id,
                      'source restore',
                    ),
                }),
          });
          process.stdout.write(
            `restored ${r.paths.join(', ')} from ${r.id} (${r.files} files, ${r.bytes} bytes); app downtime ${(r.downtimeMs / 1000).toFixed(2)}s\n` +
              (r.setIdRestored
                ? `${r.setIdRestored} setuid/setgid entr${r.setIdRestored === 1 ? 'y' : 'ies'} given back their bits from the manifest (stores keep none)\n`
                : '') +
              `safety copy of the data before the restore: ${r.safetyDir}\n` +
              `to undo: stop the app (${describeCommand(config.app.stop)}), run\n` +
              r.undo.map((argv) => `  ${describeCommand(argv)}\n`).join('') +
              `and start it again (${describeCommand(config.app.start)})\n`,
          );
        } finally {
          sig.dispose();
        }
      }),
    );
}

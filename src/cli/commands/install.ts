import { resolve } from 'node:path';
import { Argument, Option } from '@commander-js/extra-typings';
import { loadConfig } from '../../config/load.js';
import { CONFIG_KINDS } from '../../config/schema.js';
import { ExitCode } from '../../errors.js';
import { readPublicKeyFile, runInstall } from '../../install/install.js';
import { cliArgv, DEFAULT_CONFIG, runAction, type Root } from '../app.js';

const HELP_AFTER = `
Examples:
  baton install source --print                       # show users, dirs, key lines, units; change nothing
  baton install source --sink-key-data /root/sink-data.pub --sink-key-logs /root/sink-logs.pub \\
                       --from 203.0.113.7              # install the sink's keys, fixed sink address
  baton install source --ca-key /etc/baton/user_ca.pub  # certificate logins (cert-authority lines)
  baton install source --cron --on-calendar 03:30     # /etc/cron.d/baton-source instead of systemd
  baton install sink                                 # key pairs, dirs, pull timers; prints keys to copy
  baton install sink --on-calendar '*-*-* 05:00' --on-calendar-logs '*-*-* 05:30'
  baton install sink --verify-calendar 'Sat 13:00'    # the weekly deep verify (default Sun 06:00)

Running it again changes only what differs (and says "nothing to do" when all is in place).
Exit codes: 0 ok, 1 installing failed, 2 bad options or config (nothing was changed).`;

/** `baton install source|sink`: users, directories, authorized_keys, key pairs and timers for one host. */
export function registerInstallCommand(root: Root): void {
  root
    .command('install')
    .description(
      'set up this host: users, directories and authorized_keys lines (source),\n' +
        'ssh key pairs (sink), systemd timers or a cron file; safe to run again',
    )
    .addArgument(new Argument('<kind>', 'which host this is').choices(CONFIG_KINDS))
    .option('--print', 'print the plan and the contents of every file; change nothing', false)
    .option(
      '--config <file>',
      `config file (default ${DEFAULT_CONFIG.source} or ${DEFAULT_CONFIG.sink} by kind)`,
    )
    .option('--baton <path>', 'the baton executable the units and forced commands run (default: this one)')
    .option('--from <addr>', 'source: sink address(es) for `from=` in authorized_keys (e.g. 203.0.113.7)')
    .option('--ca-key <file>', 'source: your user CA public key: certificate logins (cert-authority line)')
    .option('--sink-key-data <file>', "source: the sink's public key for the data stream")
    .option('--sink-key-logs <file>', "source: the sink's public key for the logs stream")
    .option('--on-calendar <spec>', 'OnCalendar= of the source backup (02:15) or the sink data pull (04:00)')
    .option('--on-calendar-logs <spec>', 'sink: OnCalendar= of the logs pull (04:30)')
    .option('--verify-calendar <spec>', "OnCalendar= of the weekly verify --all --deep ('Sun 06:00')")
    .option('--cron', 'write /etc/cron.d/baton-<kind> instead of systemd units', false)
    .addOption(new Option('--unit-dir <dir>', 'where systemd units go').default('/etc/systemd/system'))
    .addOption(new Option('--cron-dir <dir>', 'where the cron file goes').default('/etc/cron.d'))
    .addHelpText('after', HELP_AFTER)
    .action(async (kind, opts) =>
      runAction(root, async () => {
        const configFile = resolve(opts.config ?? DEFAULT_CONFIG[kind]);
        const target = await loadConfig(configFile, kind);
        const sinkKeys = {
          ...(opts.sinkKeyData === undefined
            ? {}
            : { data: await readPublicKeyFile('--sink-key-data', opts.sinkKeyData) }),
          ...(opts.sinkKeyLogs === undefined
            ? {}
            : { logs: await readPublicKeyFile('--sink-key-logs', opts.sinkKeyLogs) }),
        };
        await runInstall({
          target,
          print: opts.print,
          write: (text) => process.stdout.write(text),
          options: {
            baton: opts.baton === undefined ? cliArgv() : [resolve(opts.baton)],
            configFile,
            scheduler: opts.cron ? 'cron' : 'systemd',
            unitDir: resolve(opts.unitDir),
            cronDir: resolve(opts.cronDir),
            sinkKeys,
            ...(opts.onCalendar === undefined ? {} : { onCalendar: opts.onCalendar }),
            ...(opts.onCalendarLogs === undefined ? {} : { onCalendarLogs: opts.onCalendarLogs }),
            ...(opts.verifyCalendar === undefined ? {} : { verifyCalendar: opts.verifyCalendar }),
            ...(opts.from === undefined ? {} : { from: opts.from }),
            ...(opts.caKey === undefined ? {} : { caKey: await readPublicKeyFile('--ca-key', opts.caKey) }),
          },
        });
        return ExitCode.ok;
      }),
    );
}

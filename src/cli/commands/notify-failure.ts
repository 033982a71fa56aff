import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/load.js';
import { ConfigError, ExitCode, oneLine } from '../../errors.js';
import { isUnitName, JOURNAL_LINES, lastJournalLines } from '../../adapters/journal.js';
import { alertFooter, alertsOfRun, parseInvocationId, sendAlert } from '../../adapters/notify.js';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';

/**
 * `baton notify-failure UNIT`: what the `baton-<kind>-failure@.service` template runs when a baton
 * unit fails (`OnFailure=`). Alerts through every channel of the config with the unit's last journal
 * lines. Exits 0 whatever the channels do (the handler must not fail itself); only a malformed UNIT
 * is a usage error. Sends nothing when the failed run itself already alerted (its record, found by
 * the `MONITOR_INVOCATION_ID` systemd gives an `OnFailure=` unit): one failure, one alert.
 */
export function registerNotifyFailureCommand(root: Root): void {
  root
    .command('notify-failure')
    .description('alert that a systemd unit failed, with its last journal lines (run by OnFailure= units)')
    .argument('<unit>', 'the failed unit, e.g. baton-sink-pull-data.service')
    .option('--config <file>', `source or sink config whose alerts to use (default ${DEFAULT_CONFIG.source})`)
    .addHelpText(
      'after',
      `
Examples:
  baton notify-failure baton-sink-pull-data.service --config /etc/baton/sink.yaml

Under systemd it sends nothing when the failed run already alerted (found by $MONITOR_INVOCATION_ID).
Exit codes: 0 (also when no alert channel is configured or sending fails: logged), 2 bad unit name.`,
    )
    .action(async (unit, opts) =>
      runAction(root, async (ctx) => {
        if (!isUnitName(unit))
          throw new ConfigError(`${JSON.stringify(unit.slice(0, 300))} is not a systemd unit name`, {
            step: 'notify-failure',
          });
        try {
          const loaded = await loadConfig(opts.config ?? DEFAULT_CONFIG.source);
          const { config } = loaded;
          const failedRun = parseInvocationId(process.env.MONITOR_INVOCATION_ID);
          const monitored = process.env.MONITOR_UNIT;
          if (failedRun !== undefined && (monitored === undefined || monitored === unit)) {
            const already = await alertsOfRun(config.stateDir, failedRun);
            if (already.length > 0) {
              ctx.log.info(
                { step: 'notify-failure' },
                `not alerting again: the failed run of ${unit} already alerted: ${already.join('; ')}`,
              );
              return ExitCode.ok;
            }
          }
          const journal = await lastJournalLines(unit);
          const who = loaded.kind === 'source' ? `source "${loaded.config.name}"` : 'sink';
          await sendAlert(
            config.alerts,
            join(config.stateDir, 'pending-alerts'),
            {
              subject: `[baton] ${unit} failed`,
              text:
                `The systemd unit ${unit} failed on ${hostname()} (${who}).\n\n` +
                `Its last ${JOURNAL_LINES} journal lines (journalctl -u ${unit} -n ${JOURNAL_LINES}):\n\n` +
                `${journal}\n${alertFooter()}`,
            },
            ctx.log,
          );
        } catch (e) {
          ctx.log.error({ step: 'notify-failure' }, `could not alert that ${unit} failed: ${oneLine(e)}`);
        }
        return ExitCode.ok;
      }),
    );
}

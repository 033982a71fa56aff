import { colorEnabled } from '../../core/color.js';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { loadConfig } from '../../config/load.js';
import { ConfigError, ExitCode, JobError, oneLine } from '../../errors.js';
import { isDirectory, writeFileAtomic } from '../../adapters/fsx.js';
import { sinkStatus, sourceStatus } from '../../status/status.js';
import { renderStatus } from '../../status/render-text.js';
import { renderStatusHtml } from '../../status/render-html.js';

export function registerStatusCommand(root: Root): void {
  root
    .command('status')
    .description(
      'generations per store, pending handovers, last runs, stale streams, quarantined generations\n' +
        'and recovery points (stores and recovery tiers)',
    )
    .option(
      '--config <file>',
      `source or sink config (default ${DEFAULT_CONFIG.source}, else ${DEFAULT_CONFIG.sink})`,
    )
    .option('--json', 'print the report as JSON (format baton-status/1, see docs/status-json.md)', false)
    .option('--html <file>', 'also write a one-page HTML report (timeline, charts, tables) to FILE')
    .addHelpText(
      'after',
      `
Examples:
  baton status                                 # on the source or the sink, with its default config
  baton status --config /etc/baton/sink.yaml --json
  baton status --html /var/www/baton/status.html

Exit codes: 0 all ok, 1 a problem: a stale stream (sink: newest generation older than
alerts.staleAfter), an overdue handover (source: older than alerts.transportOverdue, or left from an
earlier run when that is unset), a failed or unreadable last run; 2 config or usage error.`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        const file =
          opts.config ??
          (existsSync(DEFAULT_CONFIG.source)
            ? DEFAULT_CONFIG.source
            : existsSync(DEFAULT_CONFIG.sink)
              ? DEFAULT_CONFIG.sink
              : undefined);
        if (file === undefined)
          throw new ConfigError(`no ${DEFAULT_CONFIG.source} or ${DEFAULT_CONFIG.sink}: pass --config FILE`);
        const html = opts.html === undefined ? undefined : resolve(opts.html);
        if (html !== undefined && !(await isDirectory(dirname(html))))
          throw new ConfigError(`--html ${opts.html}: directory ${dirname(html)} does not exist`, {
            step: 'status',
          });
        const loaded = await loadConfig(file);
        const report =
          loaded.kind === 'source'
            ? await sourceStatus(loaded.config, ctx.now())
            : await sinkStatus(loaded.config, ctx.now());
        if (html !== undefined) {
          try {
            await writeFileAtomic(html, renderStatusHtml(report), 0o644);
          } catch (e) {
            throw new JobError(`cannot write ${html}: ${oneLine(e)}`, { step: 'status', cause: e });
          }
        }
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(report, null, 2)}\n`
            : renderStatus(report, { color: colorEnabled(process.env, process.stdout.isTTY) }),
        );
        if (report.ok) return ExitCode.ok;
        const [first] = report.problems;
        process.stderr.write(
          `baton: status: ${report.problems.length} problem(s): ${first?.message ?? ''}${report.problems.length > 1 ? ' (and more)' : ''}\n`,
        );
        return ExitCode.failed;
      }),
    );
}

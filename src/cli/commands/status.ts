import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../errors.js';
import { renderStatus, sinkStatus, sourceStatus } from '../../status/status.js';

export function registerStatusCommand(root: Root): void {
  root
    .command('status')
    .description('generations per store, pending handovers, last runs, recovery tiers')
    .option(
      '--config <file>',
      `source or sink config (default ${DEFAULT_CONFIG.source}, else ${DEFAULT_CONFIG.sink})`,
    )
    .option('--json', 'print the report as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  baton status                                 # on the source or the sink, with its default config
  baton status --config /etc/baton/sink.yaml --json`,
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
        const loaded = await loadConfig(file);
        const report =
          loaded.kind === 'source'
            ? await sourceStatus(loaded.config, ctx.now())
            : await sinkStatus(loaded.config, ctx.now());
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
      }),
    );
}

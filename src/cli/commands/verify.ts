import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { loadConfig } from '../../config/load.js';
import { ConfigError, JobError } from '../../errors.js';
import {
  listSourceTargets,
  renderCheck,
  summarizeFailures,
  verifyGenerations,
  type VerifyTarget,
} from '../../generation/verify-command.js';
import { listSinkStoreTargets, recordSinkVerdicts } from '../../sink/verify-verdicts.js';
import { recordVerifyMetrics } from '../../generation/verify-metrics.js';

function defaultConfigFile(): string {
  if (existsSync(DEFAULT_CONFIG.source)) return DEFAULT_CONFIG.source;
  if (existsSync(DEFAULT_CONFIG.sink)) return DEFAULT_CONFIG.sink;
  throw new ConfigError(`no ${DEFAULT_CONFIG.source} or ${DEFAULT_CONFIG.sink}: pass --config FILE`, {
    step: 'verify',
  });
}

export function registerVerifyCommand(root: Root): void {
  root
    .command('verify')
    .description('re-check generations against their manifests (--deep: every byte); report every mismatch')
    .argument('[generation-dir...]', 'generation directories (holding tree/ and manifest)')
    .option(
      '--all',
      'every generation in the stores of the config (source: handovers + source store; sink: sink store)',
      false,
    )
    .option('--deep', 'hash every file and compare with the manifest (reads all data)', false)
    .option(
      '--config <file>',
      `source or sink config for --all (default ${DEFAULT_CONFIG.source}, else ${DEFAULT_CONFIG.sink})`,
    )
    .option('--json', 'print the results as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  baton verify /var/backups/baton/source-store/2026-11-28T061922Z
  baton verify --deep /srv/backups/baton/shop-prod/data/2026-11-28T061922Z
  baton verify --all --config /etc/baton/sink.yaml --deep    # every generation in the sink store

Exit codes: 0 all generations ok, 1 a mismatch was found, 2 usage or config error.`,
    )
    .action(async (dirs, opts) =>
      runAction(root, async (ctx) => {
        if (dirs.length === 0 && !opts.all)
          throw new ConfigError('name generation directories or pass --all', { step: 'verify' });
        const targets: VerifyTarget[] = dirs.map((dir) => ({ dir }));
        const loaded = opts.all ? await loadConfig(opts.config ?? defaultConfigFile()) : undefined;
        // on a source: the handovers and the source store; on a sink: every directory of the sink store
        if (loaded?.kind === 'source') targets.push(...(await listSourceTargets(loaded.config)));
        if (loaded?.kind === 'sink') targets.push(...(await listSinkStoreTargets(loaded.config)));
        const startedAt = ctx.now();
        const checks = await verifyGenerations(targets, {
          deep: opts.deep,
          progress: ctx.interactive,
          onResult: (c) => {
            if (!opts.json) process.stdout.write(renderCheck(c, opts.deep));
          },
        });
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({ ok: checks.every((c) => c.ok), deep: opts.deep, generations: checks }, null, 2)}\n`,
          );
        } else if (checks.length === 0) {
          process.stdout.write('no generations found\n');
        }
        if (loaded !== undefined)
          await recordVerifyMetrics(
            loaded.config,
            targets,
            checks,
            { deep: opts.deep, startedAt, finishedAt: ctx.now() },
            ctx.log,
          );
        if (loaded?.kind === 'sink')
          await recordSinkVerdicts(loaded.config, checks, { deep: opts.deep, now: ctx.now(), log: ctx.log });
        const failed = summarizeFailures(checks);
        if (failed) throw new JobError(failed, { step: 'verify' });
      }),
    );
}

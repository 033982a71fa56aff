import { errorLine } from '../../adapters/log.js';
import { Argument, Option } from '@commander-js/extra-typings';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { loadSinkConfig } from '../../config/load.js';
import { runSinkPull, type StreamOutcome } from '../../sink/run-pull.js';
import { ExitCode } from '../../errors.js';
import { checkOffsiteLag } from '../../sink/check-offsite-lag.js';
import { formatPruneResults, runSinkPrune } from '../../sink/prune.js';

/** 0 when every source went well, 75 when the only problem was a held lock, else 1. */
export function pullExitCode(outcomes: readonly StreamOutcome[]): number {
  if (outcomes.every((o) => o.ok)) return ExitCode.ok;
  if (outcomes.every((o) => o.ok || o.locked)) return ExitCode.locked;
  return ExitCode.failed;
}

export function registerSinkCommands(root: Root): void {
  const sink = root
    .command('sink')
    .description('jobs of the sink host (the backup server)')
    .addHelpText(
      'after',
      `
Examples:
  baton sink pull data                       # pull, verify, publish, ack every source's data
  baton sink pull logs --source shop-prod
  baton sink prune --dry-run                 # which retention rule keeps which generation`,
    );
  sink
    .command('prune')
    .summary('apply the retention settings to the sink store now (or show the plan with --dry-run)')
    .description(
      "apply each source and stream's retention (generations, keepWithin, keepDaily, keepWeekly, " +
        "keepMonthly, keepYearly; calendar rules in this host's local time zone) to the sink store, as " +
        'a pull does after publishing; never the newest verified generation, never a stream whose last ' +
        'pull failed or froze retention, never while a pull of it runs',
    )
    .addOption(new Option('--config <file>', 'sink config file').default(DEFAULT_CONFIG.sink))
    .option('--source <name>', 'only this source')
    .addOption(new Option('--stream <stream>', 'only this stream').choices(['data', 'logs'] as const))
    .option(
      '--dry-run',
      'print which rule keeps each generation and what would be dropped; remove nothing',
      false,
    )
    .option('--json', 'print the plan per source and stream as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  baton sink prune --dry-run                 # keep  2026-12-07T061922Z  last(1) daily(1) monthly(1)
  baton sink prune --source shop-prod --stream data
  baton sink prune --dry-run --json

Exit codes: 0 pruned (or planned), 1 a stream was skipped (its last pull failed, or a run holds
its lock) or removing failed, 2 config error or unusable store.`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        const config = await loadSinkConfig(opts.config);
        const results = await runSinkPrune(config, {
          only: opts.source,
          stream: opts.stream,
          dryRun: opts.dryRun,
          now: ctx.now,
          log: ctx.log,
        });
        process.stdout.write(
          opts.json ? `${JSON.stringify(results, null, 2)}\n` : formatPruneResults(results),
        );
        const skipped = results.filter((r) => r.skipped !== undefined);
        for (const r of skipped)
          process.stderr.write(`baton: sink prune: ${r.source}/${r.stream}: skipped: ${r.skipped ?? ''}\n`);
        return skipped.length ? ExitCode.failed : ExitCode.ok;
      }),
    );
  sink
    .command('pull')
    .summary('pull, check and publish new generations of a stream, then tell the source')
    .description(
      'pull every new generation of a stream from each configured source over ssh + rsync, check ' +
        'every file against its manifest, publish it into the sink store, remove generations the ' +
        'retention settings no longer keep, then tell the source the generation is safe (data: it ' +
        'moves into the source store; logs: it is deleted there)',
    )
    .addArgument(new Argument('<stream>', 'which stream').choices(['data', 'logs'] as const))
    .addOption(new Option('--config <file>', 'sink config file').default(DEFAULT_CONFIG.sink))
    .option('--source <name>', 'only this source')
    .option('--json', 'print the outcome per source as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  baton sink pull data                       # cron: every source's data stream
  baton sink pull logs --source shop-prod    # one source only
  baton sink pull data --json

Exit codes: 0 all sources ok, 1 a source failed (alert sent; nothing acked or pruned for it),
2 config error, 75 every failing source was locked by another run.`,
    )
    .action(async (stream, opts) =>
      runAction(root, async (ctx) => {
        const config = await loadSinkConfig(opts.config);
        const outcomes = await runSinkPull(config, {
          stream,
          ...(opts.source === undefined ? {} : { only: opts.source }),
          now: ctx.now,
          log: ctx.log,
          progress: ctx.interactive,
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(outcomes, null, 2)}\n`);
        } else {
          for (const o of outcomes) {
            const what = o.waiting
              ? `waiting: ${o.waiting}`
              : o.ok
                ? `ok: pulled ${o.pulled.length ? o.pulled.join(', ') : 'nothing new'}${o.pruned.length ? `; pruned ${o.pruned.join(', ')}` : ''}`
                : o.locked
                  ? 'skipped: another run holds the lock'
                  : `FAILED: ${o.error ?? ''}`;
            process.stdout.write(`${o.source}/${o.stream}: ${what}\n`);
          }
        }
        // offsite.afterPull: after the acks; a failed push alerts on its own and never changes the exit code
        // the offsite engine is loaded only when a push follows (offsite-engine.ts)
        const pushes = config.offsite?.afterPull
          ? await (
              await import('./offsite-engine.js')
            ).pushAfterPull(config, outcomes, {
              now: ctx.now,
              log: ctx.log,
            })
          : [];
        for (const p of pushes)
          if (!p.outcome.ok)
            process.stderr.write(
              `baton: offsite push after pull ${p.source}/${p.stream}: ${p.outcome.locked ? 'skipped: another push holds the lock' : (p.outcome.error ?? 'failed')}\n`,
            );
        // alerts.offsiteStaleAfter: its own alert after the push, never part of the pull's exit code
        await checkOffsiteLag(config, outcomes, { now: ctx.now, log: ctx.log });
        const failed = outcomes.filter((o) => !o.ok);
        if (failed.length) {
          process.stderr.write(
            errorLine(
              `sink pull ${stream}: ${failed.length} of ${outcomes.length} source(s) failed: ${failed.map((o) => `${o.source}: ${o.error ?? ''}`).join('; ')}`,
              ctx.journal ?? false,
            ),
          );
        }
        return pullExitCode(outcomes);
      }),
    );
}

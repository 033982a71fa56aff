import { Argument, Option } from '@commander-js/extra-typings';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { loadSinkConfig } from '../../config/load.js';
import { ConfigError, ExitCode, JobError } from '../../errors.js';
import { offsiteConfig, selectStreams } from '../../offsite/push.js';
import { runOffsitePushJob } from '../../offsite/run-push.js';
import { openOffsiteStore } from '../../offsite/open-store.js';
import { openRepoForRead } from '../../offsite/repo.js';
import { readIdentityFile } from '../../offsite/crypto.js';
import { listCommits, readCommit } from '../../offsite/read.js';
import { verifyOffsite } from '../../offsite/verify.js';
import { runOffsitePrune } from '../../offsite/prune.js';
import { runOffsiteRestore } from '../../offsite/restore.js';
import { acquireLock } from '../../adapters/lock.js';
import { offsiteStateDir } from '../../offsite/local-index.js';
import { join } from 'node:path';
import { favourMemoryOverSpeed } from '../node-flags.js';

const configOption = () => new Option('--config <file>', 'sink config file').default(DEFAULT_CONFIG.sink);
const streamOption = () =>
  new Option('--stream <stream>', 'only this stream').choices(['data', 'logs'] as const);

async function loadOffsite(file: string) {
  const config = await loadSinkConfig(file);
  const cfg = offsiteConfig(config);
  return { config, cfg };
}

export function registerOffsiteCommands(root: Root): void {
  const offsite = root
    .command('offsite')
    .hook('preAction', () => favourMemoryOverSpeed())
    .description('copies of verified sink generations in S3-compatible object storage (docs/offsite.md)')
    .addHelpText(
      'after',
      `
Examples:
  baton offsite push                                   # every verified generation not yet offsite
  baton offsite list
  baton offsite verify --deep --identity /root/offsite-identity.txt
  baton offsite prune --dry-run
  baton offsite restore shop-prod/data latest --to /srv/restore/gen --identity key.txt`,
    );

  offsite
    .command('push')
    .description('upload every verified sink generation not yet committed offsite, oldest first')
    .addOption(configOption())
    .option('--source <name>', 'only this source')
    .addOption(streamOption())
    .option('--identity <file>', 'age identity: only when the sink lost its copy of the repository key')
    .option('--json', 'print the outcome as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  baton offsite push                                  # cron, or afterPull: true in the config
  baton offsite push --source shop-prod --stream data --json

Exit codes: 0 pushed (or nothing new), 1 the push failed (alert sent; nothing half-committed),
2 config error, 75 another push to the same bucket prefix is running.`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        const { config } = await loadOffsite(opts.config);
        const identities = opts.identity === undefined ? undefined : await readIdentityFile(opts.identity);
        const o = await runOffsitePushJob(config, {
          source: opts.source,
          stream: opts.stream,
          now: ctx.now,
          log: ctx.log,
          identities,
        });
        if (opts.json) process.stdout.write(`${JSON.stringify(o, null, 2)}\n`);
        else if (o.result) {
          for (const p of o.result.pushed)
            process.stdout.write(
              `${p.source}/${p.stream}/${p.id}: ${p.committed ? 'committed' : 'already committed by another push'}: ${p.files} files (${p.filesReused} already offsite), ${p.blobsNew} new blobs (${p.bytesNew} bytes), ${p.bytesUploaded} bytes sent\n`,
            );
          if (o.result.pushed.length === 0)
            process.stdout.write(`nothing new: ${o.result.alreadyOffsite} generation(s) already offsite\n`);
        }
        if (!o.ok) process.stderr.write(`baton: offsite push: ${o.error ?? 'failed'}\n`);
        return o.ok ? ExitCode.ok : o.locked ? ExitCode.locked : ExitCode.failed;
      }),
    );

  offsite
    .command('list')
    .description('committed generations in the bucket, per source and stream')
    .addOption(configOption())
    .option('--source <name>', 'only this source')
    .addOption(streamOption())
    .option('--json', 'print as JSON', false)
    .addHelpText(
      'after',
      `\nExamples:\n  baton offsite list\n  baton offsite list --source shop-prod --stream data --json`,
    )
    .action(async (opts) =>
      runAction(root, async () => {
        const { config, cfg } = await loadOffsite(opts.config);
        const store = await openOffsiteStore(cfg);
        const repo = await openRepoForRead(
          store,
          undefined,
          undefined,
          offsiteStateDir(config.stateDir, cfg),
        );
        const commits = await listCommits(store, opts.source, opts.stream);
        const rows = [];
        for (const c of commits) {
          const commit = await readCommit(store, repo, c);
          rows.push({
            source: c.source,
            stream: c.stream,
            id: c.id,
            committed: commit.created,
            packs: commit.packs.length,
          });
        }
        if (opts.json)
          process.stdout.write(
            `${JSON.stringify({ repository: store.describe, generations: rows }, null, 2)}\n`,
          );
        else {
          for (const r of rows)
            process.stdout.write(
              `${r.source}/${r.stream}/${r.id}  committed ${r.committed}  ${r.packs} pack(s)\n`,
            );
          if (rows.length === 0) process.stdout.write(`no committed generations in ${store.describe}\n`);
        }
      }),
    );

  offsite
    .command('verify')
    .description('check every commit against its objects (--deep: download, decrypt and re-hash every file)')
    .addOption(configOption())
    .option('--source <name>', 'only this source')
    .addOption(streamOption())
    .option(
      '--deep',
      'read every file back and compare with its manifest hash (needs --identity when encrypted)',
      false,
    )
    .option('--identity <file>', 'age identity (to check the files objects and for --deep)')
    .option('--json', 'print the results as JSON', false)
    .addHelpText(
      'after',
      `\nExamples:\n  baton offsite verify\n  baton offsite verify --deep --identity /root/offsite-identity.txt\n\nExit codes: 0 all generations ok, 1 a problem was found (each names the object or file), 2 usage error.`,
    )
    .action(async (opts) =>
      runAction(root, async () => {
        const { config, cfg } = await loadOffsite(opts.config);
        // a usage error (exit 2), before the bucket is contacted when the config says it is encrypted
        const deepNeedsIdentity = () =>
          new ConfigError('--deep on an encrypted repository needs --identity FILE', {
            step: 'offsite verify',
          });
        if (opts.deep && opts.identity === undefined && cfg.encryption) throw deepNeedsIdentity();
        const identities = opts.identity === undefined ? undefined : await readIdentityFile(opts.identity);
        const store = await openOffsiteStore(cfg);
        const repo = await openRepoForRead(
          store,
          identities,
          opts.identity,
          offsiteStateDir(config.stateDir, cfg),
        );
        if (opts.deep && !repo.canOpen) throw deepNeedsIdentity();
        const checks = await verifyOffsite({
          store,
          repo,
          source: opts.source,
          stream: opts.stream,
          deep: opts.deep,
          onResult: (c) => {
            if (opts.json) return;
            process.stdout.write(`${c.source}/${c.stream}/${c.id}: ${c.ok ? 'ok' : 'DAMAGED'}\n`);
            for (const p of c.problems) process.stdout.write(`  ${p}\n`);
          },
        });
        if (opts.json)
          process.stdout.write(
            `${JSON.stringify({ ok: checks.every((c) => c.ok), deep: opts.deep, generations: checks }, null, 2)}\n`,
          );
        const bad = checks.filter((c) => !c.ok);
        if (bad.length)
          throw new JobError(
            `${bad.length} of ${checks.length} offsite generation(s) damaged: ${bad[0]?.source ?? ''}/${bad[0]?.stream ?? ''}/${bad[0]?.id ?? ''}: ${bad[0]?.problems[0] ?? ''}`,
            { step: 'offsite verify' },
          );
      }),
    );

  offsite
    .command('prune')
    .description(
      'apply offsite retention (generations, keepWithin); delete only objects no remaining commit references',
    )
    .addOption(configOption())
    .option('--dry-run', 'print the plan, delete nothing', false)
    .option('--json', 'print the plan and result as JSON', false)
    .addHelpText(
      'after',
      `\nExamples:\n  baton offsite prune --dry-run\n  baton offsite prune\n\nObjects under Object Lock retention are kept and counted once ("retained"); a later prune deletes them.`,
    )
    .action(async (opts) =>
      runAction(root, async (ctx) => {
        const { config, cfg } = await loadOffsite(opts.config);
        const lock = await acquireLock(
          join(offsiteStateDir(config.stateDir, cfg), 'push.lock'),
          'baton offsite prune',
        );
        try {
          const store = await openOffsiteStore(cfg);
          const repo = await openRepoForRead(
            store,
            undefined,
            undefined,
            offsiteStateDir(config.stateDir, cfg),
          );
          const res = await runOffsitePrune({
            store,
            repo,
            cfg,
            streams: selectStreams(config, {}),
            now: ctx.now(),
            dryRun: opts.dryRun,
            log: ctx.log,
          });
          if (opts.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
          else {
            for (const k of res.keep)
              process.stdout.write(`keep   ${k.source}/${k.stream}/${k.id}  (${k.reason})\n`);
            for (const r of res.remove)
              process.stdout.write(
                `${opts.dryRun ? 'would remove' : 'remove'} ${r.source}/${r.stream}/${r.id}  (${r.reason})\n`,
              );
            if (!opts.dryRun) {
              process.stdout.write(
                `removed ${res.removed.length} generation(s), deleted ${res.packsDeleted} pack(s)\n`,
              );
              if (res.retained.length)
                process.stdout.write(
                  `${res.retained.length} object(s) still under Object Lock retention were kept; a later prune deletes them\n`,
                );
            }
          }
        } finally {
          await lock.release();
        }
      }),
    );

  offsite
    .command('restore')
    .description('rebuild a generation directory from the bucket and the age identity alone')
    .addArgument(new Argument('<source/stream>', 'e.g. shop-prod/data'))
    .addArgument(new Argument('<id>', 'a generation id, or latest'))
    .requiredOption(
      '--to <dir>',
      'the generation directory to write (new or empty); with --path: where to copy out',
    )
    .option('--identity <file>', 'age identity file (AGE-SECRET-KEY-1…); needed for an encrypted repository')
    .option(
      '--path <path>',
      'only this path relative to tree/, copied out with owners and modes like `baton restore --path`',
    )
    .addOption(configOption())
    .addHelpText(
      'after',
      `
Examples:
  baton offsite restore shop-prod/data latest --to /srv/restore/gen --identity /root/offsite-identity.txt
  baton verify /srv/restore/gen && baton restore /srv/restore/gen --to /srv/restore/files

Needs only a config with the offsite: block (and its credentials) and the identity: no sink store.
Exit codes: 0 restored, 1 an object is missing or damaged (named) or the identity is wrong, 2 usage error.`,
    )
    .action(async (what, id, opts) =>
      runAction(root, async (ctx) => {
        const { cfg } = await loadOffsite(opts.config);
        const identities = opts.identity === undefined ? undefined : await readIdentityFile(opts.identity);
        const store = await openOffsiteStore(cfg);
        const repo = await openRepoForRead(store, identities, opts.identity);
        const r = await runOffsiteRestore({
          store,
          repo,
          what,
          id,
          to: opts.to,
          subPath: opts.path,
          log: ctx.log,
          concurrency: cfg.parallel,
        });
        if (r.generation !== undefined)
          process.stdout.write(
            `restored ${r.source}/${r.stream}/${r.id} from ${store.describe} to ${r.generation}\n`,
          );
        else if (r.copyOut)
          process.stdout.write(
            `restored ${r.copyOut.entries} entries (${r.copyOut.files} files, ${r.copyOut.bytes} bytes) of ${r.source}/${r.stream}/${r.id} to ${r.copyOut.to}\n`,
          );
      }),
    );
}

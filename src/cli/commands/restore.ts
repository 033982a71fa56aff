import { basename, join } from 'node:path';
import { Option } from '@commander-js/extra-typings';
import { DEFAULT_CONFIG, runAction, type Root } from '../app.js';
import { restoreGeneration } from '../../generation/restore.js';
import { loadConfig } from '../../config/load.js';
import { BatonError, ExitCode } from '../../errors.js';
import { findStoredGeneration, parseSourceStream, type FoundGeneration } from '../../sink/find-generation.js';

/**
 * `SOURCE/STREAM ID|latest` against the store of the config: the sink store
 * (`<store>/<source>/<stream>/<id>`), or on the source host its store (`<name>/data` only).
 */
async function resolveByName(
  configFile: string,
  what: string,
  id: string,
  now: Date,
): Promise<FoundGeneration> {
  const where = parseSourceStream(what);
  const loaded = await loadConfig(configFile);
  if (loaded.kind === 'sink') {
    const { config } = loaded;
    if (!config.sources.some((s) => s.name === where.source))
      throw new BatonError(`no source "${where.source}" in ${configFile}`, {
        exitCode: ExitCode.usage,
        step: 'restore',
      });
    const futureAfter = new Date(now.getTime() + config.limits.futureSkew);
    return findStoredGeneration(join(config.store, where.source, where.stream), where, id, futureAfter);
  }
  const { config } = loaded;
  if (where.source !== config.name || where.stream !== 'data')
    throw new BatonError(
      `${configFile} is the source config of "${config.name}": its store holds ${config.name}/data only`,
      { exitCode: ExitCode.usage, step: 'restore' },
    );
  return findStoredGeneration(config.streams.data.store, where, id, new Date(now.getTime() + 10 * 60_000));
}

export function registerRestoreCommand(root: Root): void {
  root
    .command('restore')
    .description('faithful copy-out of a generation: content, modes, owners, mtimes, links, FIFOs, devices')
    .argument('<generation>', 'a generation directory (holding tree/ and manifest), or SOURCE/STREAM with ID')
    .argument('[id]', 'with SOURCE/STREAM: a generation id, or latest (the newest not marked bad)')
    .requiredOption(
      '--to <dir>',
      'where to recreate the tree (created when missing; must be empty without --force)',
    )
    .option('--path <path>', 'only this path relative to tree/, e.g. srv/shop/data/uploads')
    .option('--force', 'write into a non-empty directory, replacing what is in the way', false)
    .addOption(
      new Option(
        '--config <file>',
        'with SOURCE/STREAM: the sink config (or the source config: its store)',
      ).default(DEFAULT_CONFIG.sink),
    )
    .option('--json', 'print the result as JSON (generation id, files, bytes, target)', false)
    .addHelpText(
      'after',
      `
Examples:
  baton restore shop-prod/data latest --to /root/restore            # from the sink store (sink.yaml)
  baton restore shop-prod/data 2026-11-28T061922Z --to /root/r --config /etc/baton/sink.yaml
  baton restore shop-prod/data latest --to /root/r --config /etc/baton/source.yaml   # source store
  baton restore /var/backups/baton/source-store/2026-11-28T061922Z --to /root/restore
  baton restore /srv/backups/baton/shop-prod/data/2026-11-28T061922Z --to /tmp/r --path srv/shop/data/uploads

The files land under DIR with their full source path (DIR/srv/shop/data/...). Owners are applied
by name where the name exists on this host, else by numeric id (only when run as root).

Exit codes: 0 restored, 1 the generation is damaged (the file is named) or writing failed,
2 usage error (not a generation, DIR not empty without --force, --path not in the generation).`,
    )
    .action(async (generation, id, opts) =>
      runAction(root, async (ctx) => {
        const found =
          id === undefined ? undefined : await resolveByName(opts.config, generation, id, ctx.now());
        const r = await restoreGeneration({
          generation: found?.dir ?? generation,
          to: opts.to,
          force: opts.force,
          log: ctx.log,
          ...(opts.path === undefined ? {} : { subPath: opts.path }),
        });
        if (opts.json) {
          const json = {
            id: basename(r.generation),
            ...(found === undefined ? {} : { source: found.source, stream: found.stream }),
            generation: r.generation,
            target: r.to,
            ...(opts.path === undefined ? {} : { path: opts.path }),
            entries: r.entries,
            files: r.files,
            bytes: r.bytes,
            linkGroups: r.linkGroups,
            splitLinkGroups: r.splitLinkGroups,
            setIdRestored: r.setIdRestored,
            ownersRestored: r.ownersRestored,
            mtimePrecision: r.mtimePrecision,
            skippedSockets: r.skippedSockets,
            skippedDevices: r.skippedDevices,
          };
          process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
        } else
          process.stdout.write(
            `restored ${r.entries} entries (${r.files} files, ${r.bytes} bytes) from ${r.generation} to ${r.to}\n`,
          );
        if (r.setIdRestored && !opts.json)
          process.stdout.write(
            `${r.setIdRestored} setuid/setgid entr${r.setIdRestored === 1 ? 'y' : 'ies'} given back their bits from the manifest (stores keep none)\n`,
          );
        if (!r.ownersRestored)
          process.stderr.write('baton: restore: not run as root: owners and groups were not restored\n');
        if (r.mtimePrecision === 'us')
          process.stderr.write(
            'baton: restore: python3 not found: mtimes restored to the microsecond only\n',
          );
        if (r.linkGroups && !opts.json)
          process.stdout.write(`${r.linkGroups} hard-link group(s) re-created\n`);
        if (r.splitLinkGroups)
          process.stderr.write(
            `baton: restore: ${r.splitLinkGroups} hard-link group(s) split by --path: the names inside it were restored and linked together, the others not\n`,
          );
        if (r.skippedSockets) process.stderr.write(`baton: restore: ${r.skippedSockets} socket(s) skipped\n`);
        if (r.skippedDevices)
          process.stderr.write(`baton: restore: ${r.skippedDevices} device(s) skipped (needs root)\n`);
      }),
    );
}

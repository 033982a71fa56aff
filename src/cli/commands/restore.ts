import { runAction, type Root } from '../app.js';
import { restoreGeneration } from '../../generation/restore.js';

export function registerRestoreCommand(root: Root): void {
  root
    .command('restore')
    .description('faithful copy-out of a generation: content, modes, owners, mtimes, links, FIFOs, devices')
    .argument('<generation-dir>', 'a generation directory (holding tree/ and manifest)')
    .requiredOption(
      '--to <dir>',
      'where to recreate the tree (created when missing; must be empty without --force)',
    )
    .option('--path <path>', 'only this path relative to tree/, e.g. srv/shop/data/uploads')
    .option('--force', 'write into a non-empty directory, replacing what is in the way', false)
    .addHelpText(
      'after',
      `
Examples:
  baton restore /var/backups/baton/source-store/2026-11-28T061922Z --to /root/restore
  baton restore /srv/backups/baton/shop-prod/data/2026-11-28T061922Z --to /tmp/r --path srv/shop/data/uploads

The files land under DIR with their full source path (DIR/srv/shop/data/...). Owners are applied
by name where the name exists on this host, else by numeric id (only when run as root).

Exit codes: 0 restored, 1 the generation is damaged (the file is named) or writing failed,
2 usage error (not a generation, DIR not empty without --force, --path not in the generation).`,
    )
    .action(async (generation, opts) =>
      runAction(root, async (ctx) => {
        const r = await restoreGeneration({
          generation,
          to: opts.to,
          force: opts.force,
          log: ctx.log,
          ...(opts.path === undefined ? {} : { subPath: opts.path }),
        });
        process.stdout.write(
          `restored ${r.entries} entries (${r.files} files, ${r.bytes} bytes) from ${r.generation} to ${r.to}\n`,
        );
        if (r.setIdRestored)
          process.stdout.write(
            `${r.setIdRestored} setuid/setgid entr${r.setIdRestored === 1 ? 'y' : 'ies'} given back their bits from the manifest (stores keep none)\n`,
          );
        if (!r.ownersRestored)
          process.stderr.write('baton: restore: not run as root: owners and groups were not restored\n');
        if (r.mtimePrecision === 'us')
          process.stderr.write(
            'baton: restore: python3 not found: mtimes restored to the microsecond only\n',
          );
        if (r.linkGroups) process.stdout.write(`${r.linkGroups} hard-link group(s) re-created\n`);
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

import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SinkConfig } from '../config/schema.js';
import { JobError } from '../errors.js';
import { exists, walkTree } from '../adapters/fsx.js';
import { cloneInto, reflinkProblem } from '../adapters/reflink.js';
import type { Logger } from '../adapters/log.js';
import { TREE } from '../generation/names.js';

/**
 * Whether new generations in `streamDir` are built as reflink clones of the previous one
 * (`storeMode`): reflink refuses a store that cannot clone, auto falls back to hard links there.
 */
export async function useReflinkStore(
  mode: SinkConfig['storeMode'],
  streamDir: string,
  log: Logger,
): Promise<boolean> {
  if (mode === 'hardlink') return false;
  const problem = await reflinkProblem(streamDir);
  if (problem === undefined) return true;
  if (mode === 'reflink') {
    throw new JobError(
      `storeMode: reflink, but the sink store at ${streamDir} cannot clone files (${problem}); use storeMode: auto or hardlink, or put the store on XFS (mkfs.xfs -m reflink=1) or btrfs`,
      { step: 'pull' },
    );
  }
  log.info({ step: 'pull', storeMode: 'auto' }, `the sink store cannot clone files: hard links are used`);
  return false;
}

/**
 * True when some regular file below `tree` has a hard link outside it (e.g. to a published
 * generation). Links between names inside the tree are the data's own hard links (rsync -H), not
 * shared with anything: all of an inode's names must be found in the tree.
 */
async function hasSharedInodes(tree: string): Promise<boolean> {
  const names = new Map<string, { seen: bigint; nlink: bigint }>();
  for await (const { st } of walkTree(tree)) {
    if (!st.isFile() || st.nlink < 2n) continue;
    const key = `${st.dev}:${st.ino}`;
    const n = names.get(key) ?? { seen: 0n, nlink: st.nlink };
    n.seen++;
    names.set(key, n);
  }
  for (const n of names.values()) if (n.seen < n.nlink) return true;
  return false;
}

/**
 * storeMode reflink: makes `<pulled>/tree` a reflink clone of the previous verified generation's
 * tree (own inodes, shared extents) for rsync --inplace to update. The clone is taken under
 * `tree.cloning` and renamed, so an interrupted clone is never mistaken for one to resume; a
 * tree left by an interrupted pull is resumed, unless it shares inodes with anything (a
 * hard-link pull's leftover: writing into it in place would change a published generation).
 */
export async function prepareClonedTree(pulled: string, baseDir: string, log: Logger): Promise<void> {
  const tree = join(pulled, TREE);
  const cloning = join(pulled, 'tree.cloning');
  await rm(cloning, { recursive: true, force: true });
  if (await exists(tree)) {
    if (!(await hasSharedInodes(tree))) {
      log.info({ step: 'pull' }, `resuming into the clone left by an interrupted pull`);
      return;
    }
    log.warn({ step: 'pull' }, `the tree left by an interrupted pull shares inodes: removed, cloning afresh`);
    await rm(tree, { recursive: true, force: true });
  }
  await mkdir(cloning, { recursive: true, mode: 0o700 });
  try {
    // `<tree>/.` copies its contents (path.join would drop the `.` and nest a second tree/)
    const r = await cloneInto([`${join(baseDir, TREE)}/.`], cloning);
    if (r.problem)
      throw new JobError(`cloning the previous generation's tree: ${r.problem}`, { step: 'pull' });
    await rename(cloning, tree);
    log.info({ step: 'pull', base: baseDir, ms: r.ms }, `cloned the previous generation's tree (reflink)`);
  } catch (e) {
    await rm(cloning, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

import { chmod, lchown, lstat, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import type { SourceStreamConfig, StreamName } from '../config/schema.js';
import { JobError, errnoCode } from '../errors.js';
import { describeCommand, describeExit, runProcess } from '../adapters/run.js';
import { exists, mkdirp, readJsonIfExists, writeFileAtomic } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';
import { armSnapshots, type SnapshotJob } from '../adapters/btrfs-snapshot.js';

/**
 * `collect: snapshot` (btrfs) and `collect: command` (any snapshot the operator's hooks make):
 * while the app is down only a frozen view of the paths is made; once it runs again the kept
 * mirror is refreshed from that view (collect.ts) and the view is removed.
 *
 * Every snapshot is recorded in `<stateDir>/snapshots.json` BEFORE it is made, so that a run
 * killed at any point leaves a record: `source recover` (and the next run, which recovers first)
 * removes what the record names.
 */

export const BTRFS_SUPER_MAGIC = 0x9123683e;
/** the inode number of every btrfs subvolume's root directory */
const SUBVOLUME_ROOT_INO = 256;
const BTRFS_TIMEOUT_MS = 5 * 60_000;

const streamName = z.enum(['data', 'logs']);
const commandSchema = z.union([z.string().min(1).max(8192), z.array(z.string().max(8192)).min(1).max(256)]);
const entrySchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('btrfs'), stream: streamName, path: z.string().min(2).max(4096) }),
  z.strictObject({
    kind: z.literal('command'),
    stream: streamName,
    remove: commandSchema,
    timeoutMs: z
      .int()
      .min(1)
      .max(2 ** 31),
  }),
]);
const ledgerSchema = z.strictObject({ snapshots: z.array(entrySchema).max(1000) });
export type SnapshotEntry = z.output<typeof entrySchema>;

/** The record of the snapshots a run made and has not removed yet; written durably on each change. */
export class SnapshotLedger {
  private entries: SnapshotEntry[] = [];
  private chain: Promise<void> = Promise.resolve();
  constructor(
    readonly file: string,
    readonly stateRoot: string,
  ) {}

  add(...e: SnapshotEntry[]): Promise<void> {
    this.entries.push(...e);
    return this.flush();
  }

  /** what this run recorded for a stream and has not removed yet */
  of(stream: StreamName): SnapshotEntry[] {
    return this.entries.filter((e) => e.stream === stream);
  }

  forget(e: SnapshotEntry): Promise<void> {
    this.entries = this.entries.filter((x) => x !== e);
    return this.flush();
  }

  private flush(): Promise<void> {
    const text = `${JSON.stringify({ snapshots: this.entries })}\n`;
    const empty = this.entries.length === 0;
    const next = this.chain.then(async () => {
      if (empty) await rm(this.file, { force: true });
      else {
        await mkdirp(this.stateRoot, 0o700);
        await writeFileAtomic(this.file, text, 0o600);
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** Where the frozen view of a stream's paths is: `sources[i]` is path i for rsync --relative (`<root>/./<path>`). */
export interface FrozenView {
  stream: StreamName;
  sources: string[];
  /** btrfs: the dirs made above each snapshot, whose attributes are copied from the live ones */
  ancestors: Array<{ view: string; live: string }>;
}

const rel = (p: string) => p.replace(/^\/+/, '');

/** The subvolume root of a path on btrfs: the top of the chain of its parents on the same device. */
export async function btrfsSubvolumeOf(path: string): Promise<string> {
  const fs = await statfs(path);
  if (fs.type !== BTRFS_SUPER_MAGIC)
    throw new Error(`${path} is not on btrfs (filesystem type 0x${fs.type.toString(16)})`);
  const dev = (await lstat(path)).dev;
  let p = path;
  for (;;) {
    const up = dirname(p);
    if (up === p) break;
    const st = await stat(up);
    if (st.dev !== dev) break;
    p = up;
  }
  const top = await stat(p);
  if (top.ino !== SUBVOLUME_ROOT_INO || !top.isDirectory())
    throw new Error(`${path} is not inside a btrfs subvolume (its top ${p} is not a subvolume root)`);
  return p;
}

/** The filesystem a path is on, as findmnt sees it: its UUID, else its device. */
async function filesystemId(path: string): Promise<string> {
  const r = await runProcess(['findmnt', '-n', '-o', 'UUID,SOURCE', '--target', path], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`findmnt --target ${path} failed: ${describeExit(r)}`);
  const [uuid, source] = r.stdout.trim().split(/\s+/);
  // a btrfs subvolume mount shows as /dev/sdX[/subvol]: the device is the filesystem
  return uuid && uuid.length > 8 ? `uuid:${uuid}` : `dev:${(source ?? '').replace(/\[.*$/, '')}`;
}

/** Subvolumes directly below `subvolume`, as paths relative to it (`btrfs subvolume list -o`). */
async function childSubvolumes(subvolume: string): Promise<string[]> {
  const show = await runProcess(['btrfs', 'subvolume', 'show', subvolume], { timeoutMs: 30_000 });
  if (show.code !== 0) throw new Error(`btrfs subvolume show ${subvolume}: ${describeExit(show)}`);
  const own = show.stdout.split('\n')[0]?.trim() ?? '';
  const list = await runProcess(['btrfs', 'subvolume', 'list', '-o', subvolume], {
    timeoutMs: 30_000,
    captureStdout: true,
  });
  if (list.code !== 0) throw new Error(`btrfs subvolume list -o ${subvolume}: ${describeExit(list)}`);
  const prefix = own === '/' ? '' : `${own}/`;
  const out: string[] = [];
  for (const line of list.stdout.split('\n')) {
    const at = line.indexOf(' path ');
    if (at < 0) continue;
    let p = line.slice(at + 6);
    if (p.startsWith('<FS_TREE>/')) p = p.slice('<FS_TREE>/'.length);
    if (p.startsWith(prefix)) out.push(p.slice(prefix.length));
  }
  return out;
}

const within = (inner: string, outer: string) =>
  inner === outer || inner.startsWith(outer === '/' ? '/' : `${outer}/`);

/**
 * `collect: snapshot` is refused before the app stops unless btrfs-progs is there, every path is
 * inside a btrfs subvolume with no other subvolume below it (a snapshot does not include nested
 * subvolumes: their data would be missing), and the stateDir (where the snapshots are made) is on
 * the same btrfs filesystem.
 */
export async function checkBtrfsSnapshot(
  name: StreamName,
  paths: readonly string[],
  stateDir: string,
  stateAt: string,
): Promise<void> {
  const fail = (msg: string) =>
    new JobError(`${name}: collect: snapshot refused: ${msg}`, { step: 'preflight' });
  const v = await runProcess(['btrfs', '--version'], { timeoutMs: 10_000 }).catch(() => undefined);
  if (!v || v.code !== 0) throw fail('the btrfs command is missing (apt-get install btrfs-progs)');
  const py = await runProcess(['python3', '--version'], { timeoutMs: 10_000 }).catch(() => undefined);
  if (!py || py.code !== 0)
    throw fail('python3 is missing (it takes the snapshot while the app is down; apt-get install python3)');
  const subvolumes = new Set<string>();
  for (const p of paths) {
    let sv: string;
    try {
      sv = await btrfsSubvolumeOf(p);
    } catch (e) {
      throw fail(`${e instanceof Error ? e.message : String(e)}; use collect: rsync or reflink`);
    }
    subvolumes.add(sv);
    for (const child of await childSubvolumes(sv).catch((e: unknown) => {
      throw fail(e instanceof Error ? e.message : String(e));
    })) {
      const abs = join(sv, child);
      if (within(abs, p))
        throw fail(
          `${p} holds another btrfs subvolume, ${abs}: a snapshot of ${sv} would not include its data; configure it as a path of its own`,
        );
    }
  }
  for (const a of subvolumes)
    for (const b of subvolumes)
      if (a !== b && within(b, a))
        throw fail(`the subvolumes ${a} and ${b} of the paths are nested; configure paths of one of them`);
  const stateFs = await filesystemId(stateAt).catch((e: unknown) => {
    throw fail(e instanceof Error ? e.message : String(e));
  });
  if ((await statfs(stateAt)).type !== BTRFS_SUPER_MAGIC)
    throw fail(
      `the stateDir ${stateDir} is not on btrfs (the snapshots are made there); move it onto the data's filesystem`,
    );
  for (const sv of subvolumes)
    if ((await filesystemId(sv)) !== stateFs)
      throw fail(
        `${sv} and the stateDir ${stateDir} are on different filesystems (a snapshot cannot cross filesystems); move the stateDir onto the data's btrfs filesystem`,
      );
}

/** `collect: snapshot`, armed while the app runs: only `take` (one message to a waiting helper) is left for the down window. */
export interface ArmedBtrfsSnapshots {
  view: FrozenView;
  /** the app's stop command started as `pid`: the snapshots follow its end at once */
  afterStop(pid: number): void;
  /** while the app is down: makes every snapshot (no process is started) */
  take(signal?: AbortSignal): Promise<void>;
  /** ends the helper; after it no snapshot can appear any more (also when `take` was never called) */
  disarm(): Promise<void>;
}

/**
 * Before the stop, while the app still runs: plans a read-only snapshot of each path's subvolume S
 * at `<base>/<i>/<S>` (path P is frozen at `<base>/<i>/<P>`), records each durably in the ledger,
 * and starts the helper that will take them (adapters/btrfs-snapshot.ts), which flushes the
 * filesystem first. A failure here stops the run before the app is stopped.
 */
export async function armBtrfsSnapshots(
  name: StreamName,
  stream: SourceStreamConfig,
  base: string,
  ledger: SnapshotLedger,
  log: Logger,
): Promise<ArmedBtrfsSnapshots> {
  const view: FrozenView = { stream: name, sources: [], ancestors: [] };
  const roots = new Map<string, string>();
  const jobs: SnapshotJob[] = [];
  const entries: SnapshotEntry[] = [];
  for (const p of stream.paths) {
    const sv = await btrfsSubvolumeOf(p);
    let root = roots.get(sv);
    if (root === undefined) {
      root = join(base, String(roots.size));
      const target = join(root, rel(sv));
      await mkdirp(dirname(target), 0o700);
      entries.push({ kind: 'btrfs', stream: name, path: target });
      jobs.push({ source: sv, parent: dirname(target), name: basename(target) });
      roots.set(sv, root);
      // the dirs above the subvolume (the view's root itself stands for "/", which rsync never copies)
      for (let a = dirname(sv); a !== '/' && a !== '.'; a = dirname(a))
        view.ancestors.push({ view: join(root, rel(a)), live: a });
    }
    view.sources.push(`${root}/./${rel(p)}`);
  }
  // recorded before the helper can make anything: a killed run leaves the record for recover
  await ledger.add(...entries);
  const armed = await armSnapshots(jobs, BTRFS_TIMEOUT_MS).catch((e: unknown) => {
    throw new JobError(`${name}: collect: snapshot: ${e instanceof Error ? e.message : String(e)}`, {
      step: 'collect',
    });
  });
  return {
    view,
    afterStop: (pid) => armed.afterStop(pid),
    take: async (signal) => {
      const onAbort = () => void armed.disarm();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const ms = await armed.take();
        log.info(
          { step: 'collect', stream: name, subvolumes: jobs.map((j) => j.source), ms },
          `${name}: snapshot of ${jobs.map((j) => j.source).join(', ')} taken`,
        );
      } catch (e) {
        throw new JobError(`${name}: btrfs subvolume ${e instanceof Error ? e.message : String(e)}`, {
          step: 'collect',
        });
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },
    disarm: () => armed.disarm(),
  };
}

/**
 * The dirs made above each snapshot get the attributes of the live dirs they stand for (mode,
 * owner, times), deepest first: rsync --relative copies them as the mirror's parent dirs, as it
 * would from the live paths.
 */
export async function copyAncestorAttributes(view: FrozenView): Promise<void> {
  for (const { view: v, live } of view.ancestors) {
    if (v === live) continue;
    const st = await stat(live);
    await lchown(v, st.uid, st.gid);
    await chmod(v, st.mode & 0o7777);
    // to the nanosecond, as rsync copies them (utimes() would round to the microsecond)
    const r = await runProcess(['touch', '-h', '-r', live, v], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`touch -r ${live} ${v}: ${describeExit(r)}`);
  }
}

/** `collect: command`: runs snapshot.create (recorded first, so its remove runs whatever happens). */
export async function runSnapshotCreate(
  name: StreamName,
  stream: SourceStreamConfig,
  ledger: SnapshotLedger,
  log: Logger,
  signal?: AbortSignal,
): Promise<FrozenView> {
  const snap = stream.snapshot;
  if (snap === undefined)
    throw new JobError(`${name}: collect: command needs snapshot:`, { step: 'collect' });
  const entry: SnapshotEntry = {
    kind: 'command',
    stream: name,
    remove: typeof snap.remove === 'string' ? snap.remove : [...snap.remove],
    timeoutMs: snap.removeTimeout,
  };
  await ledger.add(entry);
  const view: FrozenView = { stream: name, sources: [], ancestors: [] };
  log.info(
    { step: 'collect', stream: name, command: describeCommand(snap.create) },
    `${name}: snapshot.create`,
  );
  const r = await runProcess(snap.create, {
    timeoutMs: snap.createTimeout,
    killGraceMs: 3000,
    signal,
    env: hookEnv(name, snap.path),
    tailBytes: 4096,
  });
  if (r.code !== 0 || r.timedOut)
    throw new JobError(
      `${name}: snapshot.create \`${describeCommand(snap.create)}\` failed: ${describeExit(r)}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').at(-1)}` : ''}`,
      { step: 'collect' },
    );
  log.info({ step: 'collect', stream: name, ms: r.durationMs }, `${name}: snapshot created`);
  for (const p of stream.paths) {
    const src = join(snap.path, rel(p));
    if (!(await exists(src)))
      throw new JobError(
        `${name}: snapshot.create succeeded but ${p} is not in the view at ${src} (snapshot.path)`,
        { step: 'collect' },
      );
    view.sources.push(`${snap.path}/./${rel(p)}`);
  }
  return view;
}

function hookEnv(name: StreamName, path: string): NodeJS.ProcessEnv {
  return { ...process.env, BATON_STREAM: name, BATON_SNAPSHOT_PATH: path };
}

/** Removes one recorded snapshot; throws a one-line error when it cannot. */
async function removeEntry(e: SnapshotEntry, snapshotRoot: string, log: Logger): Promise<void> {
  if (e.kind === 'btrfs') {
    // a record is only trusted to name something under our own snapshot dir
    if (!within(e.path, snapshotRoot) || e.path === snapshotRoot) {
      log.warn({ step: 'snapshot', path: e.path }, `ignoring a snapshot record outside ${snapshotRoot}`);
      return;
    }
    // never made (a failed or killed create), or not a subvolume: the snapshot dir's rm takes it
    const st = await lstat(e.path).catch(() => undefined);
    if (st === undefined || !st.isDirectory() || st.ino !== SUBVOLUME_ROOT_INO) return;
    const r = await runProcess(['btrfs', 'subvolume', 'delete', e.path], {
      timeoutMs: BTRFS_TIMEOUT_MS,
      tailBytes: 4096,
    });
    if (r.code !== 0 || r.timedOut)
      throw new JobError(
        `btrfs subvolume delete ${e.path} failed: ${describeExit(r)}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').at(-1)}` : ''}`,
        { step: 'snapshot' },
      );
    return;
  }
  const r = await runProcess(e.remove, {
    timeoutMs: e.timeoutMs,
    killGraceMs: 3000,
    env: { ...process.env, BATON_STREAM: e.stream },
    tailBytes: 4096,
  });
  if (r.code !== 0 || r.timedOut)
    throw new JobError(
      `${e.stream}: snapshot.remove \`${describeCommand(e.remove)}\` failed: ${describeExit(r)}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').at(-1)}` : ''}; remove the snapshot by hand and run \`baton source recover\``,
      { step: 'snapshot' },
    );
}

/** Removes what this run recorded for a stream (its snapshot, or the hook's); each record is forgotten once removed. */
export async function removeStreamSnapshots(
  stream: StreamName,
  ledger: SnapshotLedger,
  snapshotRoot: string,
  log: Logger,
): Promise<void> {
  const entries = ledger.of(stream);
  for (const e of entries.reverse()) {
    await removeEntry(e, snapshotRoot, log);
    await ledger.forget(e);
  }
  await rm(join(snapshotRoot, stream), { recursive: true, force: true });
  if (entries.length) log.info({ step: 'snapshot', stream }, `${stream}: snapshot removed`);
}

/**
 * At the end of a run, once every stream's snapshot is removed: the snapshot dir itself, so the
 * next run finds nothing to clean up. Only an empty dir is removed: what a failed removal left is
 * for `source recover` / the next run, which know its record.
 */
export async function removeSnapshotRoot(snapshotRoot: string): Promise<void> {
  await rmdir(snapshotRoot).catch((e: unknown) => {
    const code = errnoCode(e);
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw e;
  });
}

/**
 * `source recover` and the start of every run: removes every snapshot a killed run recorded, then
 * the snapshot dir. Returns what was removed; throws when one cannot be removed.
 */
export async function removeLeftoverSnapshots(
  file: string,
  stateRoot: string,
  snapshotRoot: string,
  log: Logger,
): Promise<string[]> {
  const raw = await readJsonIfExists(file).catch(() => ({ unreadable: true }));
  const removed: string[] = [];
  if (raw !== undefined) {
    const parsed = ledgerSchema.safeParse(raw);
    if (!parsed.success)
      log.warn({ step: 'snapshot', file }, `ignoring an unreadable snapshot record: ${file}`);
    for (const e of parsed.success ? parsed.data.snapshots : []) {
      log.warn({ step: 'recover', snapshot: e }, 'removing a snapshot a killed run left behind');
      await removeEntry(e, snapshotRoot, log);
      removed.push(e.kind === 'btrfs' ? e.path : `${e.stream}: snapshot.remove`);
    }
    await rm(file, { force: true });
  }
  if (await exists(snapshotRoot)) {
    await rm(snapshotRoot, { recursive: true, force: true });
    if (removed.length === 0) removed.push(snapshotRoot);
  }
  return removed;
}

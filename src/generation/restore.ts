import { SET_ID_BITS } from '../core/tree-mode.js';
import { constants } from 'node:fs';
import {
  chmod,
  lchown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  realpath,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pathKey, parentPath, type ManifestEntry } from '../core/manifest.js';
import {
  classifyEntry,
  invertNameMap,
  parseDeviceNumbers,
  parseTreePath,
  resolveOwner,
  showPath,
  type OwnerIds,
} from '../core/restore-plan.js';
import { ConfigError, JobError, BatonError, errnoCode } from '../errors.js';
import { readManifest, ManifestError } from './manifest-file.js';
import { loadNameMaps } from '../adapters/accounts.js';
import { createTimeSetter, type TimeSetter } from '../adapters/set-times.js';
import { describeExit, runProcess } from '../adapters/run.js';
import { syncFilesystem } from '../adapters/fsx.js';
import type { Logger } from '../adapters/log.js';

export interface RestoreOptions {
  /** a generation directory (tree/, manifest) */
  generation: string;
  /** where the tree is recreated; created when missing */
  to: string;
  /** only this path relative to tree/ (and the directories leading to it) */
  subPath?: string;
  /** write into a non-empty `to`, replacing entries of the generation's paths */
  force: boolean;
  log: Logger;
  /** files copied at once */
  concurrency?: number;
  /**
   * hard-link groups shared by several restores of one generation (in-place restore, one per data
   * path): a later name restored by one links to the first name restored by another
   */
  links?: LinkRestore;
}

/**
 * The data's hard-link groups while a generation is restored: each group's first restored name and
 * how many of its names were restored, to re-create the others as links to it and to say which
 * groups a `--path` split.
 */
export class LinkRestore {
  private readonly groups = new Map<
    string,
    { total: number; restored: number; dest?: Buffer; placed?: Promise<void> }
  >();
  /** later names put back as a copy: the first name was on another filesystem (EXDEV) */
  copiedAcrossDevices = 0;

  /** Notes a group's first name (restored or not) and its size. */
  declare(first: Buffer, total: number): void {
    if (!this.groups.has(pathKey(first))) this.groups.set(pathKey(first), { total, restored: 0 });
  }

  /** The group a file belongs to (its own path for a first name), or undefined for a file in none. */
  groupOf(
    e: ManifestEntry,
  ):
    | { key: string; state: { total: number; restored: number; dest?: Buffer; placed?: Promise<void> } }
    | undefined {
    const first = e.links !== undefined ? e.path : e.linkTo;
    if (first === undefined) return undefined;
    const key = pathKey(first);
    let state = this.groups.get(key);
    if (!state) {
      state = { total: e.links ?? 2, restored: 0 };
      this.groups.set(key, state);
    }
    return { key, state };
  }

  /** Groups with two or more names restored (re-created as links). */
  get recreated(): number {
    let n = 0;
    for (const g of this.groups.values()) if (g.restored >= 2) n++;
    return n;
  }

  /** Groups of which some names were restored and others were not (outside `--path`). */
  get split(): Array<{ first: Buffer; restored: number; total: number }> {
    const out: Array<{ first: Buffer; restored: number; total: number }> = [];
    for (const [key, g] of this.groups)
      if (g.restored > 0 && g.restored < g.total)
        out.push({ first: Buffer.from(key, 'latin1'), restored: g.restored, total: g.total });
    return out;
  }
}

export interface RestoreResult {
  generation: string;
  to: string;
  entries: number;
  files: number;
  bytes: number;
  skippedSockets: number;
  skippedDevices: number;
  /** false when not run as root: owners and groups were left as the restoring user */
  ownersRestored: boolean;
  /** hard-link groups of the data re-created (two or more names linked) */
  linkGroups: number;
  /** hard-link groups only partly restored (some names outside `--path`): the restored names are linked together */
  splitLinkGroups: number;
  mtimePrecision: 'ns' | 'us';
  /**
   * entries whose setuid/setgid bits were set again from the manifest (every store keeps its trees
   * without them; only the manifest has them)
   */
  setIdRestored: number;
}

export interface GenerationFiles {
  dir: string;
  manifest: string;
  tree: string;
}

const STEP = 'restore';
const O_NOFOLLOW = constants.O_NOFOLLOW;
const SLASH = Buffer.from('/');

/** Checks that `dir` looks like a generation (a tree/ directory and a manifest file); ConfigError otherwise. */
export async function openGeneration(dir: string): Promise<GenerationFiles> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new ConfigError(`${dir} is not a directory`, { step: STEP });
  const manifest = join(dir, 'manifest');
  const tree = join(dir, 'tree');
  const m = await lstat(manifest).catch(() => undefined);
  const t = await lstat(tree).catch(() => undefined);
  if (!m?.isFile() || !t?.isDirectory()) {
    throw new ConfigError(`${dir} is not a generation (expected tree/ and manifest in it)`, { step: STEP });
  }
  return { dir, manifest, tree };
}

export interface ManifestScan {
  /** entries, files and file bytes in the selection */
  entries: number;
  files: number;
  bytes: number;
  /** the `wanted` paths found, by path key, with their entry */
  found: Map<string, ManifestEntry>;
}

/**
 * Reads the whole manifest once, validating it (a hostile or truncated manifest fails here, before
 * anything is written), counting what `sub` selects and finding the `wanted` paths.
 */
export async function scanManifest(
  file: string,
  opts: { sub?: Buffer; wanted?: readonly Buffer[] } = {},
): Promise<ManifestScan> {
  const wanted = new Set((opts.wanted ?? []).map(pathKey));
  const res: ManifestScan = { entries: 0, files: 0, bytes: 0, found: new Map() };
  try {
    for await (const e of readManifest(file)) {
      const key = pathKey(e.path);
      if (wanted.has(key)) res.found.set(key, e);
      if (classifyEntry(e.path, opts.sub) !== 'inside') continue;
      res.entries++;
      if (e.type === 'f') {
        res.files++;
        res.bytes += e.size;
      }
    }
  } catch (e) {
    if (e instanceof ManifestError)
      throw new JobError(`the manifest is damaged or hostile, nothing was restored: ${e.message}`, {
        step: STEP,
        cause: e,
      });
    throw e;
  }
  return res;
}

/** Refuses a `to` that is not a directory, or a non-empty one without `force`. Returns whether it exists. */
async function checkTarget(to: string, force: boolean): Promise<boolean> {
  const st = await stat(to).catch((e: unknown) => {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return false;
  if (!st.isDirectory()) throw new ConfigError(`${to} exists and is not a directory`, { step: STEP });
  if (!force && (await readdir(to)).length > 0) {
    throw new ConfigError(
      `${to} is not empty: restore into a new or empty directory, or pass --force to write over it`,
      { step: STEP },
    );
  }
  return true;
}

function fsMessage(e: unknown): string {
  const code = errnoCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg.replace(/, \w+ '.*'$/s, '');
}

/**
 * Recreates a generation's tree (or the subtree `subPath`) in `to`, faithfully: content (each
 * file's sha256 checked while it is copied, in the same read), modes with setuid/setgid/sticky,
 * owners (by name where the name exists here, else by id; only as root), mtimes of files,
 * directories and symlinks, symlinks as symlinks, empty directories, FIFOs and devices from the
 * manifest, any bytes in names. Never writes outside `to`: every parent is a directory this run
 * created or checked with lstat, files are created with O_EXCL|O_NOFOLLOW, metadata is set
 * through file descriptors or on paths that are not followed. Directory modes and mtimes are set
 * last, deepest first. The manifest is validated in full before anything is written.
 */
export async function restoreGeneration(opts: RestoreOptions): Promise<RestoreResult> {
  const { log } = opts;
  const gen = await openGeneration(opts.generation);
  let sub: Buffer | undefined;
  if (opts.subPath !== undefined) {
    const p = parseTreePath(opts.subPath);
    if (!p.ok) throw new ConfigError(`--path ${JSON.stringify(opts.subPath)}: ${p.error}`, { step: STEP });
    sub = p.path;
  }
  const targetExists = await checkTarget(opts.to, opts.force);
  const scan = await scanManifest(gen.manifest, sub ? { sub, wanted: [sub] } : {});
  if (sub && !scan.found.has(pathKey(sub)))
    throw new ConfigError(`--path ${showPath(sub)} is not in the generation ${gen.dir}`, { step: STEP });
  // Nothing was written before this point.
  if (!targetExists) await mkdir(opts.to, { recursive: true, mode: 0o755 });
  const to = await realpath(opts.to);

  const asRoot = process.getuid?.() === 0;
  const names = asRoot ? await loadNameMaps() : undefined;
  const ids: OwnerIds | undefined = names
    ? { users: invertNameMap(names.users), groups: invertNameMap(names.groups) }
    : undefined;
  const times = await createTimeSetter();
  log.info(
    { step: STEP, generation: gen.dir, to, entries: scan.entries, bytes: scan.bytes },
    `restoring ${scan.entries} entries (${scan.files} files, ${scan.bytes} bytes)`,
  );
  const links = opts.links ?? new LinkRestore();
  const run = new RestoreRun(gen, to, opts.force, ids, times, opts.concurrency ?? 4, links);
  try {
    await run.restoreEntries(sub);
  } finally {
    await run.removeStaging();
  }
  await syncFilesystem(to);
  const result: RestoreResult = {
    generation: gen.dir,
    to,
    entries: run.entries,
    files: run.files,
    bytes: run.bytes,
    skippedSockets: run.skippedSockets,
    skippedDevices: run.skippedDevices,
    ownersRestored: asRoot,
    mtimePrecision: times.precision,
    setIdRestored: run.setIdRestored,
    linkGroups: links.recreated,
    splitLinkGroups: links.split.length,
  };
  if (!opts.links) {
    // a shared registry is reported by its owner, once every restore of the generation is done
    for (const s of links.split.slice(0, 10))
      log.warn(
        { step: STEP, group: showPath(s.first), restored: s.restored, names: s.total },
        `hard-link group of ${showPath(s.first)} split by --path: ${s.restored} of its ${s.total} names restored, linked together`,
      );
  }
  log.info({ step: STEP, ...result }, 'restore complete');
  return result;
}

interface PendingDir {
  dest: Buffer;
  rel: Buffer;
  entry: ManifestEntry;
}

class RestoreRun {
  entries = 0;
  files = 0;
  bytes = 0;
  skippedSockets = 0;
  skippedDevices = 0;
  setIdRestored = 0;
  private readonly toBuf: Buffer;
  private readonly treeBuf: Buffer;
  /** directories of this run's tree that are real directories (created, or lstat-checked) */
  private readonly dirs = new Set<string>();
  /** directories whose owner, mode and mtime are applied at the end, in tree order */
  private readonly pendingDirs: PendingDir[] = [];
  private staging: string | undefined;
  private stagingSeq = 0;

  constructor(
    private readonly gen: GenerationFiles,
    private readonly to: string,
    private readonly force: boolean,
    private readonly ids: OwnerIds | undefined,
    private readonly times: TimeSetter,
    private readonly concurrency: number,
    private readonly links: LinkRestore,
  ) {
    this.toBuf = Buffer.from(to);
    this.treeBuf = Buffer.from(gen.tree);
  }

  async restoreEntries(sub: Buffer | undefined): Promise<void> {
    const inflight = new Set<Promise<void>>();
    let failure: Error | undefined;
    const schedule = async (p: Promise<void>) => {
      const tracked: Promise<void> = p
        .catch((e: unknown) => {
          failure ??= e instanceof Error ? e : new Error(String(e));
        })
        .finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      if (inflight.size >= this.concurrency) await Promise.race(inflight);
    };
    try {
      for await (const e of readManifest(this.gen.manifest)) {
        if (failure !== undefined) break;
        const where = classifyEntry(e.path, sub);
        if (where === 'after') break;
        if (where === 'before') {
          if (e.links !== undefined) this.links.declare(e.path, e.links);
          continue;
        }
        const parent = parentPath(e.path);
        if (parent !== undefined && !this.dirs.has(pathKey(parent))) {
          throw new JobError(`${showPath(e.path)}: its parent is not a directory of this restore`, {
            step: STEP,
          });
        }
        const dest = Buffer.concat([this.toBuf, SLASH, e.path]);
        if (where === 'ancestor') {
          await this.at(e.path, () => this.restoreDir(e, dest, false));
          continue;
        }
        this.entries++;
        const group = e.type === 'f' ? this.links.groupOf(e) : undefined;
        if (group) {
          group.state.restored++;
          const first = group.state.dest;
          const firstPlaced = group.state.placed;
          if (first !== undefined && firstPlaced !== undefined) {
            // a later name of a data hard link: linked to the name restored first, once that is complete
            await schedule(this.at(e.path, () => this.restoreLink(e, dest, first, firstPlaced)));
          } else {
            // the group's first restored name (its first name may be outside --path): copied
            const placed = this.at(e.path, () => this.restoreFile(e, dest));
            group.state.dest = dest;
            group.state.placed = placed;
            await schedule(placed);
          }
        } else if (e.type === 'f') {
          await schedule(this.at(e.path, () => this.restoreFile(e, dest)));
        } else {
          await this.at(e.path, () => this.restoreOther(e, dest));
        }
        if (this.times.due) await this.times.flush();
      }
    } catch (e) {
      await Promise.allSettled(inflight);
      if (e instanceof ManifestError) throw new JobError(e.message, { step: STEP, cause: e });
      throw e;
    }
    await Promise.all(inflight);
    if (failure !== undefined) throw failure;
    // Directories last, deepest first: adding their children changed their mtimes.
    for (const d of this.pendingDirs.reverse()) await this.at(d.rel, () => this.applyDirMeta(d));
    await this.times.flush();
  }

  async removeStaging(): Promise<void> {
    if (this.staging) await rm(this.staging, { recursive: true, force: true });
  }

  /** Runs one entry's work, turning fs errors into one line naming the path. */
  private async at(rel: Buffer, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      if (e instanceof BatonError) throw e;
      throw new JobError(`${showPath(rel)}: ${fsMessage(e)}`, { step: STEP, cause: e });
    }
  }

  private source(rel: Buffer): Buffer {
    return Buffer.concat([this.treeBuf, SLASH, rel]);
  }

  private owner(e: ManifestEntry): { uid: number; gid: number } | undefined {
    return this.ids ? resolveOwner(e, this.ids) : undefined;
  }

  /** Makes `dest` a real directory (replacing anything else there under --force). */
  private async restoreDir(e: ManifestEntry, dest: Buffer, inside: boolean): Promise<void> {
    if (e.type !== 'd') throw new JobError(`${showPath(e.path)}: expected a directory`, { step: STEP });
    const src = await lstat(this.source(e.path)).catch(() => undefined);
    if (!src?.isDirectory()) {
      throw new JobError(`the generation is damaged: ${showPath(e.path)} is not a directory in tree/`, {
        step: STEP,
      });
    }
    const st = await lstatOrUndefined(dest);
    let created = false;
    if (!st?.isDirectory()) {
      if (st) await this.clear(e.path, dest, st.isDirectory());
      await mkdir(dest, { mode: 0o700 });
      created = true;
    }
    this.dirs.add(pathKey(e.path));
    // An existing parent of --path keeps its metadata; everything restored gets the manifest's.
    if (inside || created) this.pendingDirs.push({ dest, rel: e.path, entry: e });
  }

  /** Removes what is in the way at `dest` (only with --force). */
  private async clear(rel: Buffer, dest: Buffer, isDir: boolean): Promise<void> {
    if (!this.force) throw new JobError(`${showPath(rel)} exists already in the target`, { step: STEP });
    if (isDir) await rm(dest, { recursive: true, force: true });
    else await unlink(dest);
  }

  /**
   * Runs `create` (which fails with EEXIST when anything, a symlink included, is at `dest`); under
   * --force clears what is there and tries once more.
   */
  private async createExclusive<T>(rel: Buffer, dest: Buffer, create: () => Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
    await this.clearForNonDir(rel, dest);
    return create();
  }

  private async clearForNonDir(rel: Buffer, dest: Buffer): Promise<void> {
    const st = await lstatOrUndefined(dest);
    if (st) await this.clear(rel, dest, st.isDirectory());
  }

  private async restoreOther(e: ManifestEntry, dest: Buffer): Promise<void> {
    switch (e.type) {
      case 'd':
        await this.restoreDir(e, dest, true);
        return;
      case 'l': {
        if (!e.target) throw new JobError(`${showPath(e.path)}: symlink without a target`, { step: STEP });
        const target = e.target;
        await this.createExclusive(e.path, dest, () => symlink(target, dest));
        const o = this.owner(e);
        if (o) await lchown(dest, o.uid, o.gid);
        this.times.add(dest, e.mtimeNs);
        return;
      }
      case 'p':
      case 'c':
      case 'b':
        await this.restoreSpecial(e, dest);
        return;
      case 's':
        // A socket belongs to the server that listens on it; it is recreated when that starts.
        this.skippedSockets++;
        return;
      case 'f':
        return;
    }
  }

  /** FIFOs and devices: made under an ASCII name in a staging dir inside `to`, then renamed into place. */
  private async restoreSpecial(e: ManifestEntry, dest: Buffer): Promise<void> {
    let argv: (name: string) => string[];
    if (e.type === 'p') {
      argv = (name) => ['mkfifo', '-m', '600', '--', name];
    } else {
      const dev = parseDeviceNumbers(e.target);
      if (!dev) throw new JobError(`${showPath(e.path)}: bad device numbers`, { step: STEP });
      if (!this.ids) {
        this.skippedDevices++;
        return;
      }
      argv = (name) => ['mknod', '-m', '600', '--', name, e.type, String(dev.major), String(dev.minor)];
    }
    this.staging ??= await mkdtemp(join(this.to, '.baton-restore-'));
    const tmp = join(this.staging, String(this.stagingSeq++));
    const r = await runProcess(argv(tmp), { timeoutMs: 30_000 });
    if (r.code !== 0) throw new JobError(`${showPath(e.path)}: ${describeExit(r)}`, { step: STEP });
    await this.clearForNonDir(e.path, dest);
    await rename(tmp, dest);
    const st = await lstat(dest);
    if (st.isSymbolicLink() || st.isDirectory())
      throw new JobError(`${showPath(e.path)}: replaced while restoring`, { step: STEP });
    const o = this.owner(e);
    if (o) await lchown(dest, o.uid, o.gid);
    await chmod(dest, e.mode);
    if (e.mode & SET_ID_BITS) this.setIdRestored++;
    this.times.add(dest, e.mtimeNs);
  }

  /** Copies one file, hashing it in the same read; a hash or size mismatch stops the restore. */
  private async restoreFile(e: ManifestEntry, dest: Buffer): Promise<void> {
    let src: FileHandle;
    try {
      // O_NONBLOCK: a FIFO put where the manifest says file must not block the open (it is
      // refused by the fstat below); reads of a regular file are not affected.
      src = await open(this.source(e.path), constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ELOOP' || code === 'ENOENT' || code === 'ENOTDIR')
        throw new JobError(`the generation is damaged: ${showPath(e.path)} is not a file in tree/`, {
          step: STEP,
        });
      throw err;
    }
    try {
      const st = await src.stat();
      if (!st.isFile())
        throw new JobError(`the generation is damaged: ${showPath(e.path)} is not a file in tree/`, {
          step: STEP,
        });
      if (st.size !== e.size)
        throw new JobError(
          `the generation is damaged: ${showPath(e.path)} has ${st.size} bytes, the manifest says ${e.size}`,
          { step: STEP },
        );
      const out = await this.createExclusive(e.path, dest, () =>
        open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, 0o600),
      );
      let ok = false;
      try {
        const { sha256, size } = await copyHashing(src, out, e.size);
        if (sha256 !== e.sha256 || size !== e.size) {
          throw new JobError(
            `the generation is damaged: ${showPath(e.path)} has sha256 ${sha256}, the manifest says ${e.sha256 ?? '-'}`,
            { step: STEP },
          );
        }
        const o = this.owner(e);
        if (o) await out.chown(o.uid, o.gid);
        // after chown, which clears setuid/setgid
        await out.chmod(e.mode);
        if (e.mode & SET_ID_BITS) this.setIdRestored++;
        ok = true;
      } finally {
        await out.close();
        if (!ok) await unlink(dest).catch(() => undefined);
      }
    } finally {
      await src.close();
    }
    this.times.add(dest, e.mtimeNs);
    this.files++;
    this.bytes += e.size;
  }

  /** A later name of a hard-link group: one more link to the inode restored for `first`. */
  private async restoreLink(
    e: ManifestEntry,
    dest: Buffer,
    first: Buffer,
    placed: Promise<void>,
  ): Promise<void> {
    await placed;
    try {
      await this.createExclusive(e.path, dest, () => link(first, dest));
    } catch (err) {
      // a group spread over data paths on two filesystems (in-place restore): a copy keeps the content
      if (errnoCode(err) !== 'EXDEV') throw err;
      this.links.copiedAcrossDevices++;
      await this.restoreFile(e, dest);
      return;
    }
    this.files++;
  }

  private async applyDirMeta(d: PendingDir): Promise<void> {
    const fh = await open(d.dest, constants.O_RDONLY | constants.O_DIRECTORY | O_NOFOLLOW);
    try {
      const o = this.owner(d.entry);
      if (o) await fh.chown(o.uid, o.gid);
      await fh.chmod(d.entry.mode);
      if (d.entry.mode & SET_ID_BITS) this.setIdRestored++;
    } finally {
      await fh.close();
    }
    this.times.add(d.dest, d.entry.mtimeNs);
  }
}

async function lstatOrUndefined(p: Buffer) {
  try {
    return await lstat(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

async function copyHashing(
  src: FileHandle,
  out: FileHandle,
  expectedSize: number,
): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(expectedSize, 1) + 1));
  let size = 0;
  for (;;) {
    const { bytesRead } = await src.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    const chunk = buf.subarray(0, bytesRead);
    h.update(chunk);
    let off = 0;
    while (off < bytesRead) {
      const { bytesWritten } = await out.write(chunk, off, bytesRead - off);
      off += bytesWritten;
    }
    size += bytesRead;
  }
  return { sha256: h.digest('hex'), size };
}

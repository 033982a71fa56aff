import { chmod, lchown, lutimes, mkdir, readlink, rename, rm, symlink, utimes } from 'node:fs/promises';
import {
  storedDirMode as normalisedDirMode,
  storedFileMode as normalisedFileMode,
} from '../core/tree-mode.js';
import { join } from 'node:path';
import { linkSync, lstatSync, type BigIntStats } from 'node:fs';
import {
  formatManifestLine,
  formatSha256SumsLine,
  MANIFEST_HEADER,
  MANIFEST_HEADER_2,
  type EntryType,
  type ManifestEntry,
} from '../core/manifest.js';
import type { GenerationMeta } from '../core/meta.js';
import type { StreamName } from '../config/schema.js';
import type { Account, NameMaps } from '../adapters/accounts.js';
import {
  BufferedFileWriter,
  copyFileHashed,
  walkTree,
  writeFileSynced,
  type WalkDecision,
} from '../adapters/fsx.js';
import { ManifestCursor } from '../generation/manifest-file.js';
import type { Logger } from '../adapters/log.js';
import { JobError } from '../errors.js';
import { crashPoint } from '../adapters/crash-point.js';
import { batonVersion } from '../version.js';

export interface BuildInput {
  source: string;
  stream: StreamName;
  id: string;
  /** the refreshed mirror, holding the configured paths under their full path (rsync -R) */
  mirror: string;
  /** configured absolute paths of the stream */
  paths: readonly string[];
  /** where the generation is written: `<parent>/.<id>.partial`, then renamed to `<parent>/<id>` */
  parent: string;
  owner: Account;
  names: NameMaps;
  /** newest complete generation on this host (handover or source store), for hard links and hash reuse */
  previous: { id: string; dir: string } | undefined;
  appStoppedAt: Date;
  appStartedAt: Date;
  log: Logger;
}

export interface BuiltGeneration {
  id: string;
  /** the dot-named work directory holding the complete generation */
  work: string;
  /** its final name, once published */
  dir: string;
  meta: GenerationMeta;
}

/** Which mirror entries belong to the stream: the configured paths, everything below them, and their parents. */
export function pathSelector(paths: readonly string[]): (rel: Buffer) => WalkDecision {
  const roots = paths.map((p) => Buffer.from(p.replace(/^\/+/, '')));
  return (rel) => {
    for (const root of roots) {
      if (rel.equals(root)) return 'include';
      if (
        rel.length > root.length &&
        rel[root.length] === 0x2f &&
        rel.subarray(0, root.length).equals(root)
      ) {
        return 'include';
      }
      if (root.length > rel.length && root[rel.length] === 0x2f && root.subarray(0, rel.length).equals(rel)) {
        return 'include';
      }
    }
    return 'skip';
  };
}

function entryType(st: BigIntStats): EntryType {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isFIFO()) return 'p';
  if (st.isSocket()) return 's';
  if (st.isCharacterDevice()) return 'c';
  return 'b';
}

// Tree files and dirs are owned by the stream user, readable by it, never setuid or writable by others.

/**
 * Files copied or hard-linked at once. Their reads, writes, hashing and metadata calls overlap on
 * the thread pool (both cores busy); the manifest is still written in tree order.
 */
const FILES_IN_FLIGHT = 32;
/** Entries waiting to be written to the manifest (a bound on memory between slow and fast files). */
const MAX_QUEUED = 512;

const secondsOf = (ns: bigint): number => Number(ns / 1000n) / 1e6;

const inodeKey = (st: BigIntStats): string => `${st.dev}:${st.ino}`;

/**
 * The data's hard links: for every inode of a regular file with more than one name among the
 * stream's paths in the mirror, how many names it has there. The mirror is refreshed with
 * `rsync -H` (or cloned with `cp -a`) and never hard-linked to anything else, so its shared inodes
 * are exactly the links of the source data. Memory grows with linked files only.
 */
export async function findLinkGroups(mirror: string, paths: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for await (const { st } of walkTree(mirror, pathSelector(paths))) {
    if (st.isFile() && st.nlink > 1n) {
      const k = inodeKey(st);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  for (const [k, n] of counts) if (n < 2) counts.delete(k);
  return counts;
}

/**
 * Builds a complete generation from the mirror after the app is back: `tree/` (unchanged files
 * hard-linked to the previous generation, whose hashes are reused; changed ones copied and hashed
 * in one read), then meta.json, SHA256SUMS and the manifest last, all under a dot-name.
 * `publishHandover` makes it visible. A failure removes the partial directory.
 */
export async function buildGeneration(input: BuildInput): Promise<BuiltGeneration> {
  const { log, owner } = input;
  const work = join(input.parent, `.${input.id}.partial`);
  const final = join(input.parent, input.id);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { mode: 0o700 });
  try {
    const tree = join(work, 'tree');
    await mkdir(tree, { mode: 0o700 });
    // The previous manifest is read alongside the walk (both in tree order): memory stays flat at
    // any file count, where a map of every previous entry grew by ~0.5 KiB per file.
    const prevManifest = input.previous ? join(input.previous.dir, 'manifest') : undefined;
    const prevCursor = prevManifest ? ManifestCursor.open(prevManifest) : undefined;
    const prevTree = input.previous ? Buffer.from(join(input.previous.dir, 'tree')) : undefined;
    // Hard-link groups of the data: the manifest is format 2 only when there is one (older readers
    // keep reading the generations without).
    const linkCounts = await findLinkGroups(input.mirror, input.paths);
    /** open groups: the first name's path, where it is placed in tree/, and how many names are still to come */
    const groupLeads = new Map<
      string,
      { rel: Buffer; dest: Buffer; placed: Promise<{ sha256: string; copied: boolean }>; left: number }
    >();
    let linkGroups = 0;
    const manifest = await BufferedFileWriter.create(join(work, 'manifest.partial'), 0o640);
    await manifest.write(`${linkCounts.size > 0 ? MANIFEST_HEADER_2 : MANIFEST_HEADER}\n`);
    const sums = await BufferedFileWriter.create(join(work, 'SHA256SUMS'), 0o640);
    // Kept until the end, so held as strings: a small Buffer is a slice of an 8 KiB pool slab and
    // keeps the whole slab alive (20,000 directories held 160 MiB that way).
    const dirs: Array<{ path: string; mode: number; mtimeNs: bigint }> = [];
    let files = 0;
    let entries = 0;
    let bytes = 0;
    let bytesCopied = 0;
    let linked = 0;
    const treeBuf = Buffer.from(tree);
    const slash = Buffer.from('/');

    /** Hard link to the previous generation when it has the same file (size, mtime), else copy and hash. */
    const placeFile = async (
      rel: Buffer,
      abs: Buffer,
      dest: Buffer,
      st: BigIntStats,
      prev: ManifestEntry | undefined,
      leads: boolean,
    ): Promise<{ sha256: string; copied: boolean }> => {
      const size = Number(st.size);
      // The tree's own links to the previous generation must never join names the data keeps apart:
      // a group's first name links only to a previous first name, any other file only to a file
      // that was in no group (else two names of this tree could end up on one inode).
      const sameRole = leads
        ? prev?.links !== undefined
        : prev?.links === undefined && prev?.linkTo === undefined;
      if (
        sameRole &&
        prev?.type === 'f' &&
        prevTree &&
        prev.size === size &&
        prev.mtimeNs === st.mtimeNs &&
        prev.sha256
      ) {
        // synchronous, like the walk: two cached metadata calls cost less than two thread-pool round trips
        const prevFile = Buffer.concat([prevTree, slash, rel]);
        let pst;
        try {
          pst = lstatSync(prevFile);
        } catch {
          pst = undefined; // gone or unreadable: copy instead
        }
        if (pst?.isFile() && pst.size === size) {
          linkSync(prevFile, dest);
          return { sha256: prev.sha256, copied: false };
        }
      }
      const { sha256 } = await copyFileHashed(abs, dest, 0o600, size);
      await lchown(dest, owner.uid, owner.gid);
      await chmod(dest, normalisedFileMode(Number(st.mode & 0o7777n)));
      await utimes(dest, secondsOf(st.atimeNs), secondsOf(st.mtimeNs));
      return { sha256, copied: true };
    };

    // Entries in tree order; a file's entry waits for its copy or link before it is written out.
    const queue: Array<{ entry: ManifestEntry; file?: Promise<{ sha256: string; copied: boolean }> }> = [];
    let queuedFiles = 0;
    const writeHead = async (): Promise<void> => {
      const head = queue.shift();
      if (!head) return;
      if (head.file) {
        queuedFiles--;
        const placed = await head.file;
        head.entry.sha256 = placed.sha256;
        files++;
        bytes += head.entry.size;
        if (placed.copied) bytesCopied += head.entry.size;
        else linked++;
        if (files === 2) await crashPoint('mid-build');
        await sums.write(formatSha256SumsLine(placed.sha256, head.entry.path));
      }
      await manifest.write(`${formatManifestLine(head.entry)}\n`);
      entries++;
    };
    try {
      for await (const { rel, abs, st } of walkTree(input.mirror, pathSelector(input.paths))) {
        const type = entryType(st);
        const mode = Number(st.mode & 0o7777n);
        const dest = Buffer.concat([treeBuf, slash, rel]);
        let target: Buffer | undefined;
        let file: Promise<{ sha256: string; copied: boolean }> | undefined;
        let links: number | undefined;
        let linkTo: Buffer | undefined;
        if (type === 'd') {
          // created now, in walk order, before any of its children is placed
          await mkdir(dest, { mode: 0o700 });
          dirs.push({ path: dest.toString('latin1'), mode, mtimeNs: st.mtimeNs });
        } else if (type === 'f') {
          const prev = await prevCursor?.seek(rel);
          const k = st.nlink > 1n ? inodeKey(st) : undefined;
          const names = k === undefined ? undefined : linkCounts.get(k);
          const lead = k === undefined ? undefined : groupLeads.get(k);
          if (k !== undefined && lead) {
            // a later name of a data hard link: one more link to the inode placed for the first name
            linkTo = lead.rel;
            file = lead.placed.then((placed) => {
              linkSync(lead.dest, dest);
              return { sha256: placed.sha256, copied: false };
            });
            if (--lead.left === 0) groupLeads.delete(k);
          } else if (k !== undefined && names !== undefined) {
            links = names;
            linkGroups++;
            file = placeFile(rel, abs, dest, st, prev, true);
            groupLeads.set(k, { rel, dest, placed: file, left: names - 1 });
          } else {
            file = placeFile(rel, abs, dest, st, prev, false);
          }
          // awaited in order by writeHead; this only keeps an early failure from counting as unhandled
          file.catch(() => undefined);
          queuedFiles++;
        } else if (type === 'l') {
          target = await readlink(abs, { encoding: 'buffer' });
          await symlink(target, dest);
          await lchown(dest, owner.uid, owner.gid);
          await lutimes(dest, secondsOf(st.atimeNs), secondsOf(st.mtimeNs));
        } else if (type === 'c' || type === 'b') {
          // devices are recorded, not copied: restore recreates them from the manifest
          const major = ((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn);
          const minor = (st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn);
          target = Buffer.from(`${major}:${minor}`);
        }
        queue.push({
          entry: {
            type,
            mode,
            uid: Number(st.uid),
            gid: Number(st.gid),
            user: input.names.users.get(Number(st.uid)),
            group: input.names.groups.get(Number(st.gid)),
            mtimeNs: st.mtimeNs,
            size: Number(st.size),
            sha256: undefined,
            path: rel,
            target,
            ...(links !== undefined ? { links } : {}),
            ...(linkTo !== undefined ? { linkTo } : {}),
          },
          ...(file ? { file } : {}),
        });
        while (queuedFiles >= FILES_IN_FLIGHT || queue.length >= MAX_QUEUED) await writeHead();
      }
      while (queue.length > 0) await writeHead();
      if (groupLeads.size > 0) {
        // the data changed under the walk (a name added or removed): a manifest with an incomplete group
        // would be refused by every reader, so the generation is not made
        throw new JobError(
          `the hard links in the ${input.stream} mirror changed while the generation was built; run the backup again`,
          { step: 'build' },
        );
      }
      if (prevCursor?.failure) {
        log.warn(
          { step: 'build', previous: input.previous?.id },
          `previous manifest unusable part-way, copied the files after that point: ${prevCursor.failure.message}`,
        );
      }
      // Directories last, deepest first: their mtimes would change while children were added.
      for (const d of dirs.reverse()) {
        const path = Buffer.from(d.path, 'latin1');
        await lchown(path, owner.uid, owner.gid);
        await chmod(path, normalisedDirMode(d.mode));
        await utimes(path, secondsOf(d.mtimeNs), secondsOf(d.mtimeNs));
      }
    } catch (e) {
      // let copies in flight finish before the partial directory is removed
      await Promise.allSettled(queue.flatMap((q) => (q.file ? [q.file] : [])));
      await manifest.abort();
      await sums.abort();
      throw e;
    } finally {
      await prevCursor?.close().catch(() => undefined);
    }
    if (files === 0) {
      throw new JobError(
        `collected no files for ${input.stream} from ${input.paths.join(', ')}: refusing an empty generation`,
        {
          step: 'build',
        },
      );
    }
    await sums.close();
    const meta: GenerationMeta = {
      id: input.id,
      source: input.source,
      stream: input.stream,
      created: new Date().toISOString(),
      appStoppedAt: input.appStoppedAt.toISOString(),
      appStartedAt: input.appStartedAt.toISOString(),
      downtimeMs: input.appStartedAt.getTime() - input.appStoppedAt.getTime(),
      files,
      entries,
      bytes,
      bytesCopied,
      ...(input.previous ? { previous: input.previous.id } : {}),
      batonVersion,
    };
    await writeFileSynced(join(work, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o640);
    // The manifest is the last file written (a reader treats a generation without one as partial).
    await manifest.close();
    await rename(join(work, 'manifest.partial'), join(work, 'manifest'));
    for (const f of ['manifest', 'SHA256SUMS', 'meta.json'])
      await lchown(join(work, f), owner.uid, owner.gid);
    await lchown(tree, owner.uid, owner.gid);
    await chmod(tree, 0o750);
    await lchown(work, owner.uid, owner.gid);
    await chmod(work, 0o750);
    log.info(
      { step: 'build', stream: input.stream, id: input.id, files, bytes, bytesCopied, linked, linkGroups },
      `generation ${input.id} of ${input.stream} built`,
    );
    return { id: input.id, work, dir: final, meta };
  } catch (e) {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

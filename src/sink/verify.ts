import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { compareTreeOrder, DEFAULT_MANIFEST_LIMITS, pathKey, type ManifestEntry } from '../core/manifest.js';
import { generationMetaSchema } from '../core/meta.js';
import { readJsonIfExists, sha256File, walkTree, type WalkEntry } from '../adapters/fsx.js';
import { readManifest, ManifestError } from '../adapters/manifest-file.js';

export type ProblemKind =
  'manifest' | 'meta' | 'missing' | 'extra' | 'type' | 'size' | 'hash' | 'target' | 'limit';

export interface VerifyProblem {
  kind: ProblemKind;
  /** the path inside tree/, shown escaped-safe (JSON string) */
  path: string;
  detail: string;
}

export interface VerifyOptions {
  dir: string;
  /** what the generation must claim to be (meta.json) */
  expect?: { id: string; source: string; stream: 'data' | 'logs' };
  /** hash file contents (else presence, types, sizes, link targets only) */
  hashes: boolean;
  /** a verified generation: files hard-linked to it with the same manifest hash need no re-read */
  linkBase?: { tree: string; files: ReadonlyMap<string, ManifestEntry> };
  maxFiles?: number;
  maxBytes?: number;
  /** files hashed at once (reads overlap; both cores busy) */
  concurrency?: number;
}

export interface VerifyResult {
  ok: boolean;
  problems: VerifyProblem[];
  entries: number;
  files: number;
  bytes: number;
  hashed: number;
  reused: number;
}

const MAX_PROBLEMS = 200;
const inTree = (e: ManifestEntry) => e.type === 'f' || e.type === 'd' || e.type === 'l';
const show = (p: Buffer) => JSON.stringify(p.toString('utf8')).slice(1, -1);

/**
 * Checks a generation directory against its manifest, streaming both in tree order (memory does
 * not grow with the file count, beyond the optional link base): every listed file, directory and
 * symlink present with its type, size, link target and (with `hashes`) sha256; nothing unlisted
 * in tree/. The manifest itself is parsed as hostile input first.
 */
export async function verifyGeneration(opts: VerifyOptions): Promise<VerifyResult> {
  const problems: VerifyProblem[] = [];
  const add = (kind: ProblemKind, path: string, detail: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push({ kind, path, detail });
  };
  const res: VerifyResult = { ok: false, problems, entries: 0, files: 0, bytes: 0, hashed: 0, reused: 0 };

  const metaRaw = await readJsonIfExists(join(opts.dir, 'meta.json')).catch(() => 'unreadable');
  const meta = generationMetaSchema.safeParse(metaRaw);
  if (!meta.success) add('meta', 'meta.json', metaRaw === undefined ? 'missing' : 'not a valid meta.json');
  else if (opts.expect) {
    const m = meta.data;
    if (m.id !== opts.expect.id || m.source !== opts.expect.source || m.stream !== opts.expect.stream) {
      add(
        'meta',
        'meta.json',
        `claims ${m.source}/${m.stream}/${m.id}, expected ${opts.expect.source}/${opts.expect.stream}/${opts.expect.id}`,
      );
    }
  }

  const tree = join(opts.dir, 'tree');
  const treeSt = await lstat(tree).catch(() => undefined);
  if (!treeSt?.isDirectory()) {
    add('missing', 'tree', 'tree/ is not a directory');
    return res;
  }
  const manifest = readManifest(join(opts.dir, 'manifest'), {
    ...DEFAULT_MANIFEST_LIMITS,
    maxEntries: opts.maxFiles ?? Number.MAX_SAFE_INTEGER,
  });
  const walk = walkTree(tree);
  const inflight = new Set<Promise<void>>();
  const limit = opts.concurrency ?? 4;

  const hashCheck = async (w: WalkEntry, m: ManifestEntry) => {
    const got = await sha256File(w.abs);
    res.hashed++;
    if (got !== m.sha256) add('hash', show(m.path), `sha256 ${got} != manifest ${m.sha256 ?? '-'}`);
  };
  const schedule = async (p: Promise<void>) => {
    const tracked = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
    if (inflight.size >= limit) await Promise.race(inflight);
  };

  const compare = async (w: WalkEntry, m: ManifestEntry) => {
    const st = w.st;
    const actual = st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'other';
    if (actual !== m.type) {
      add('type', show(m.path), `is ${actual}, manifest says ${m.type}`);
      return;
    }
    if (m.type === 'l') {
      const t = await readlink(w.abs, { encoding: 'buffer' });
      if (!m.target || !t.equals(m.target))
        add('target', show(m.path), 'symlink target differs from the manifest');
      return;
    }
    if (m.type !== 'f') return;
    res.files++;
    res.bytes += m.size;
    if (opts.maxBytes !== undefined && res.bytes > opts.maxBytes) {
      add('limit', show(m.path), `generation larger than the limit of ${opts.maxBytes} bytes`);
      throw new LimitReached();
    }
    if (Number(st.size) !== m.size) {
      add('size', show(m.path), `size ${st.size} != manifest ${m.size}`);
      return;
    }
    if (!opts.hashes) return;
    if (opts.linkBase) {
      const base = opts.linkBase.files.get(pathKey(m.path));
      if (base?.sha256 === m.sha256) {
        const bst = await lstat(Buffer.concat([Buffer.from(`${opts.linkBase.tree}/`), m.path])).catch(
          () => undefined,
        );
        if (bst && BigInt(bst.ino) === st.ino && BigInt(bst.dev) === st.dev) {
          res.reused++;
          return;
        }
      }
    }
    await schedule(hashCheck(w, m));
  };

  try {
    let m = await nextInTree(manifest, res);
    let w = await walk.next();
    while (m !== undefined || !w.done) {
      const order = m === undefined ? 1 : w.done ? -1 : compareTreeOrder(m.path, w.value.rel);
      if (order < 0 && m) {
        add('missing', show(m.path), `listed in the manifest (${m.type}) but not in tree/`);
        m = await nextInTree(manifest, res);
      } else if (order > 0 && !w.done) {
        add('extra', show(w.value.rel), 'in tree/ but not in the manifest');
        w = await walk.next();
      } else if (m && !w.done) {
        await compare(w.value, m);
        m = await nextInTree(manifest, res);
        w = await walk.next();
      }
    }
    await Promise.all(inflight);
  } catch (e) {
    await Promise.allSettled(inflight);
    if (e instanceof ManifestError) add('manifest', 'manifest', e.message);
    else if (!(e instanceof LimitReached)) throw e;
  }
  res.ok = problems.length === 0;
  return res;
}

class LimitReached extends Error {}

async function nextInTree(
  it: AsyncGenerator<ManifestEntry>,
  res: VerifyResult,
): Promise<ManifestEntry | undefined> {
  for (;;) {
    const n = await it.next();
    if (n.done) return undefined;
    res.entries++;
    if (inTree(n.value)) return n.value;
  }
}

/** One line per problem, for messages and mails. */
export function describeProblems(problems: readonly VerifyProblem[], max = 10): string {
  const lines = problems.slice(0, max).map((p) => `${p.kind}: ${p.path}: ${p.detail}`);
  if (problems.length > max) lines.push(`… and ${problems.length - max} more`);
  return lines.join('\n');
}

import { access, constants, lstat, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SourceConfig, SourceStreamConfig, StreamName } from '../config/schema.js';
import { JobError, errnoCode } from '../errors.js';
import { nextGenerationId } from '../core/next-generation-id.js';
import { formatAge } from '../core/duration.js';
import { generationMetaSchema } from '../core/meta.js';
import { requireUser, type Account } from '../adapters/accounts.js';
import { exists, readJsonIfExists } from '../adapters/fsx.js';
import { listGenerations, type StoredGeneration } from '../generation/list.js';
import { runProcess } from '../adapters/run.js';
import { reflinkProblem } from '../adapters/reflink.js';
import { sourceState } from './state.js';

export interface StreamPlan {
  name: StreamName;
  config: SourceStreamConfig;
  owner: Account;
  handover: string;
  /** data only: the Source-Store */
  store: string | undefined;
  mirror: string;
  mirrorPathsFile: string;
  /** collect: reflink — where the clone is taken */
  reflinkStage: string;
  /** un-acked generations waiting in the handover */
  pending: StoredGeneration[];
  /** newest complete generation on this host: hard-link base for the new one */
  previous: StoredGeneration | undefined;
  /** bytes the new generation is expected to need in the handover */
  expectedBytes: number;
}

export interface BackupPlan {
  id: string;
  streams: StreamPlan[];
}

const ONE_MIB = 1024 * 1024;

async function nearestExisting(path: string): Promise<string> {
  let p = path;
  while (!(await exists(p))) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

async function deviceOf(path: string): Promise<number> {
  return (await stat(await nearestExisting(path))).dev;
}

async function freeBytes(path: string): Promise<number> {
  const s = await statfs(await nearestExisting(path));
  return s.bavail * s.bsize;
}

async function duBytes(paths: readonly string[]): Promise<number> {
  const r = await runProcess(['du', '-sb', '--', ...paths], { timeoutMs: 10 * 60_000 });
  return r.stdout
    .split('\n')
    .map((l) => Number(l.split('\t')[0]))
    .filter((n) => Number.isFinite(n))
    .reduce((a, b) => a + b, 0);
}

async function previousBytes(
  gen: StoredGeneration | undefined,
): Promise<{ bytes: number; copied: number } | undefined> {
  if (!gen) return undefined;
  const parsed = generationMetaSchema.safeParse(
    await readJsonIfExists(join(gen.dir, 'meta.json')).catch(() => undefined),
  );
  return parsed.success ? { bytes: parsed.data.bytes, copied: parsed.data.bytesCopied } : undefined;
}

/** rsync 3.2.5 fixed the remote-arg handling baton relies on (and CVE-2022-29154); older ones are refused. */
export const MIN_RSYNC: readonly [number, number, number] = [3, 2, 5];

/** Parses `rsync --version` output; undefined when it is not rsync's. */
export function parseRsyncVersion(text: string): [number, number, number] | undefined {
  const m = /rsync\s+version\s+v?([0-9]+)\.([0-9]+)\.([0-9]+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** The tools collection needs, present and recent enough: checked before the app is stopped. */
export async function checkTools(): Promise<void> {
  const r = await runProcess(['rsync', '--version'], { timeoutMs: 10_000 });
  if (r.code !== 0) {
    throw new JobError('rsync is not installed (apt-get install rsync)', { step: 'preflight' });
  }
  const v = parseRsyncVersion(r.stdout);
  const [a, b, c] = MIN_RSYNC;
  if (!v || v[0] < a || (v[0] === a && (v[1] < b || (v[1] === b && v[2] < c)))) {
    throw new JobError(
      `rsync ${v ? v.join('.') : '(unknown version)'} is too old: baton needs ${MIN_RSYNC.join('.')} or newer`,
      {
        step: 'preflight',
      },
    );
  }
}

/**
 * `collect: reflink` is refused before the app stops unless every path and the stateDir (where
 * the clone is taken) are on one filesystem that can clone files.
 */
export async function checkReflink(
  name: StreamName,
  paths: readonly string[],
  stateDir: string,
): Promise<void> {
  const fail = (msg: string) =>
    new JobError(`${name}: collect: reflink refused: ${msg}`, { step: 'preflight' });
  const stateAt = await nearestExisting(stateDir);
  const stateDev = (await stat(stateAt)).dev;
  for (const p of paths) {
    // the path itself (a file or directory; not followed if it is a symlink, as cp -a copies the link)
    const dev = (await lstat(p)).dev;
    if (dev !== stateDev) {
      throw fail(
        `${p} and the stateDir ${stateDir} are on different filesystems (a clone cannot cross filesystems); use collect: rsync or move the stateDir onto the data's filesystem`,
      );
    }
  }
  const problem = await reflinkProblem(stateAt);
  if (problem !== undefined) {
    throw fail(
      `the filesystem of ${stateDir} cannot clone files (${problem}); use collect: rsync, or keep the data on XFS (mkfs.xfs -m reflink=1) or btrfs`,
    );
  }
}

/**
 * Everything that can fail before the app is stopped: users, paths, directories, filesystems,
 * free space, the pending cap, the new generation's id. Touches nothing.
 */
export async function planBackup(config: SourceConfig, now: Date): Promise<BackupPlan> {
  const state = sourceState(config);
  await checkTools();
  const streams: StreamPlan[] = [];
  const entries: Array<[StreamName, SourceStreamConfig, string | undefined]> = [
    ['data', config.streams.data, config.streams.data.store],
  ];
  if (config.streams.logs) entries.push(['logs', config.streams.logs, undefined]);
  /** every id on this host, with where it lies */
  const taken = new Map<string, string>();
  for (const [name, cfg, store] of entries) {
    const fail = (msg: string) => new JobError(`${name}: ${msg}`, { step: 'preflight' });
    const owner = await requireUser(cfg.user, `streams.${name}.user`);
    for (const p of cfg.paths) {
      try {
        await lstat(p);
        await access(p, constants.R_OK);
      } catch (e) {
        throw fail(`path ${p} is not readable (${errnoCode(e) ?? String(e)})`);
      }
    }
    if (store !== undefined && (await deviceOf(cfg.handover)) !== (await deviceOf(store))) {
      throw fail(
        `handover ${cfg.handover} and store ${store} must be on the same filesystem (generations move by rename and share files by hard links)`,
      );
    }
    if (cfg.collect === 'reflink') await checkReflink(name, cfg.paths, state.root);
    const pending = await listGenerations(cfg.handover);
    if (pending.length >= config.limits.maxPendingGenerations) {
      throw fail(
        `${pending.length} un-acked generations wait in ${cfg.handover} (limit limits.maxPendingGenerations = ${config.limits.maxPendingGenerations}); the transport has been failing — fix it, or remove old generations by hand`,
      );
    }
    const stored = store === undefined ? [] : await listGenerations(store);
    const all = [...pending, ...stored].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const previous = all.at(-1);
    for (const g of all) taken.set(g.id, g.dir);
    const prevSize = await previousBytes(previous);
    const mirror = state.mirror(name);
    const mirrorExists = await exists(mirror);
    const total = prevSize && mirrorExists ? prevSize.bytes : await duBytes(cfg.paths);
    // A new generation needs room for what changed; the first one (no previous tree to link to) for everything.
    const expectedBytes = previous && prevSize ? Math.max(prevSize.copied * 2, ONE_MIB) : total;
    const needHandover = expectedBytes + config.limits.minFreeBytes;
    // a reflink clone shares the data's extents: it costs metadata only when taken
    const needMirror =
      (cfg.collect === 'reflink' ? 0 : mirrorExists ? expectedBytes : total) + config.limits.minFreeBytes;
    const sameFs = (await deviceOf(cfg.handover)) === (await deviceOf(state.root));
    const freeHandover = await freeBytes(cfg.handover);
    if (sameFs ? freeHandover < needHandover + needMirror : freeHandover < needHandover) {
      throw fail(
        `not enough free space for ${cfg.handover}: ${Math.round(freeHandover / ONE_MIB)} MiB free, need ${Math.round((sameFs ? needHandover + needMirror : needHandover) / ONE_MIB)} MiB`,
      );
    }
    if (!sameFs && (await freeBytes(state.root)) < needMirror) {
      throw fail(
        `not enough free space for the mirror in ${state.root}: need ${Math.round(needMirror / ONE_MIB)} MiB`,
      );
    }
    streams.push({
      name,
      config: cfg,
      owner,
      handover: cfg.handover,
      store,
      mirror,
      mirrorPathsFile: state.mirrorPaths(name),
      reflinkStage: state.reflinkStage(name),
      pending,
      previous,
      expectedBytes,
    });
  }
  // The id: this second, or one after the newest taken one (constant time, see nextGenerationId).
  const next = nextGenerationId(now, taken.keys());
  if (!next.ok) {
    throw new JobError(
      `generation ${taken.get(next.latest) ?? next.latest} is ${formatAge(next.aheadMs)} ahead of this host's clock (${now.toISOString()}): fix the clock (NTP), or move that generation out of the handover/store if it is not a real one; no backup is made until then`,
      { step: 'preflight' },
    );
  }
  const id = next.id;
  return { id, streams };
}

/**
 * The benchmark's command-line options (see bench/run.ts for what they do) and what follows from
 * them alone: the scale set's size and the disk space a run needs.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FULL_SPEC, QUICK_SPEC, SCALE_SPEC, type DatasetSpec } from './dataset.js';
import { BENCH_USERS, type BenchUsers } from './env.js';

const DEFAULT_OUT = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
export const MiB = 1024 * 1024;

export interface Options {
  quick: boolean;
  scale: boolean;
  only: 'all' | 'main' | 'scale';
  runs: number;
  scaleRuns: number;
  scaleFiles: number | undefined;
  seed: number;
  out: string;
  dir: string;
  keep: boolean;
  users: BenchUsers;
  /** also write the raw results here (JSON), for --merge */
  json: string | undefined;
  /** figures of an earlier run (its --json) fill the ones this run does not measure */
  merge: string | undefined;
}

export class UsageError extends Error {}

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      only: { type: 'string', default: 'all' },
      runs: { type: 'string' },
      'scale-runs': { type: 'string' },
      'scale-files': { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string', default: DEFAULT_OUT },
      dir: { type: 'string', default: '/var/tmp' },
      keep: { type: 'boolean', default: false },
      users: { type: 'string' },
      json: { type: 'string' },
      merge: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new UsageError(`--${name} wants an integer ≥ ${min}, got "${v}"`);
    return n;
  };
  const only = values.only;
  if (only !== 'all' && only !== 'main' && only !== 'scale')
    throw new UsageError(`--only wants main or scale, got "${only}"`);
  const quick = values.quick;
  let users = BENCH_USERS;
  if (values.users !== undefined) {
    const [data, logs, ...rest] = values.users.split(',');
    const ok = (n: string | undefined): n is string =>
      n !== undefined && /^[A-Za-z_][A-Za-z0-9_-]{0,31}$/.test(n);
    if (!ok(data) || !ok(logs) || rest.length > 0 || data === logs)
      throw new UsageError(`--users wants two user names, DATA,LOGS, got "${values.users}"`);
    users = { data, logs };
  }
  return {
    users,
    json: values.json,
    merge: values.merge,
    quick,
    // the quick variant runs a small scale set too, so that path is exercised in CI
    scale: values.scale || quick || only === 'scale',
    only,
    runs: int('runs', values.runs, 1) ?? (quick ? 1 : 3),
    scaleRuns: int('scale-runs', values['scale-runs'], 1) ?? 1,
    scaleFiles: int('scale-files', values['scale-files'], 100) ?? (quick ? 3000 : undefined),
    seed: int('seed', values.seed, 0) ?? 1,
    out: values.out,
    dir: values.dir,
    keep: values.keep,
  };
}

export function scaleSpecFor(o: Options): DatasetSpec {
  const base = { ...SCALE_SPEC, seed: o.seed };
  if (o.scaleFiles === undefined) return base;
  return {
    ...base,
    smallFiles: o.scaleFiles,
    logBytes: Math.min(base.logBytes, Math.max(MiB, o.scaleFiles * 16)),
  };
}

/** Bytes the run needs on disk: about six copies of the data (app, mirror, handover/store, sink, bare mirror, bare sink). */
export function diskNeed(o: Options): number {
  const main = o.quick ? QUICK_SPEC : FULL_SPEC;
  const mainBytes =
    main.smallFiles *
      Math.max(4096, (main.smallMax - main.smallMin) / Math.log(main.smallMax / main.smallMin)) +
    (main.largeFiles * (main.largeMin + main.largeMax)) / 2 +
    main.logBytes;
  const s = scaleSpecFor(o);
  const scaleBytes = s.smallFiles * 4096 + s.logBytes;
  return 7 * Math.max(o.only === 'scale' ? 0 : mainBytes, o.scale ? scaleBytes : 0);
}

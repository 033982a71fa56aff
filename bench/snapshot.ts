/**
 * Issue #14 benchmark: the app's downtime with `collect: snapshot` (btrfs) against `collect: rsync`
 * with and without the live pre-pass, on one btrfs loop image, in the same run. The app's own stop
 * and start (here `true`, timed in the same run) are taken off; every figure is also given as a
 * ratio against a bare `rsync -a --delete` mirror refresh of the same change.
 *
 *   npm run build && node --import tsx bench/snapshot.ts [--dir DIR] [--files N] [--out FILE]
 *     [--modes snapshot,rsync,...] [--large-mib 200]
 *
 * Needs root (a loop mount, the stream user). Scenarios: 1 % of the 20,000 small files rewritten
 * just before the run and 5 s before it, and one 200 MiB file rewritten whole (same size).
 */
import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runProcess } from '../src/adapters/run.js';
import { ensureUser } from '../src/adapters/system-users.js';
import { FULL_SPEC, generateDataset, smallPath, type DatasetSpec } from './dataset.js';
import { BATON_MAIN } from './env.js';

const MiB = 1024 * 1024;
const USER = 'bzVBenchSnap';
const ALL_MODES = [
  { name: 'snapshot', yaml: 'collect: snapshot' },
  { name: 'rsync', yaml: 'collect: rsync, prepass: false' },
  { name: 'rsync+prepass', yaml: 'collect: rsync, prepass: true' },
  { name: 'reflink', yaml: 'collect: reflink, prepass: false' },
  { name: 'reflink+prepass', yaml: 'collect: reflink, prepass: true' },
] as const;
/** how long before the run the "a while before" scenarios change their files */
const A_WHILE_MS = 5000;

async function sh(cmd: string, timeoutMs = 30 * 60_000): Promise<string> {
  const r = await runProcess(['/bin/sh', '-c', cmd], { timeoutMs, captureStdout: true });
  if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr.trim()}`);
  return r.stdout;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

interface Row {
  scenario: string;
  mode: string;
  downtimeMs: number;
  /** the app's own stop and start commands, timed by baton in the same run (last-run.json) */
  ownMs: number;
  /** downtime minus the app's own stop and start */
  netMs: number;
  bareMs: number;
}

export async function benchSnapshot(
  opts: { dir?: string; files?: number; out?: string; modes?: string[]; largeMiB?: number } = {},
) {
  const MODES = ALL_MODES.filter((m) => !opts.modes || opts.modes.includes(m.name));
  const largeMiB = opts.largeMiB ?? 200;
  const spec: DatasetSpec = {
    ...FULL_SPEC,
    smallFiles: opts.files ?? 20_000,
    largeFiles: 1,
    largeMin: largeMiB * MiB,
    largeMax: largeMiB * MiB,
    logFiles: 1,
    logBytes: MiB,
  };
  const base = await mkdtemp(join(opts.dir ?? '/var/tmp', 'baton-bench-snapshot-'));
  await chmod(base, 0o755);
  const img = join(base, 'btrfs.img');
  const mnt = join(base, 'mnt');
  await mkdir(mnt);
  await sh(`truncate -s 8G ${img} && mkfs.btrfs -q ${img} && mount -o loop ${img} ${mnt}`);
  const rows: Row[] = [];
  try {
    await ensureUser(USER);
    const vol = join(mnt, 'vol');
    await sh(`btrfs subvolume create ${vol}`);
    const data = join(vol, 'app', 'data');
    await generateDataset(spec, data, join(base, 'logs'));
    const large = join(data, 'large', 'large-00.db');
    // a clone cannot leave the data's subvolume (baton's preflight compares devices): reflink's state is inside it
    const modeDir = (mode: string) => (mode.startsWith('reflink') ? join(vol, mode) : join(mnt, mode));
    const configs = new Map<string, string>();
    for (const m of MODES) {
      const dir = modeDir(m.name);
      const file = join(base, `${m.name}.yaml`);
      await writeFile(
        file,
        `name: bench
stateDir: ${join(dir, 'state')}
app: { stop: "true", start: "true" }
streams:
  data: { paths: [${data}], handover: ${join(dir, 'handover')}, user: ${USER}, store: ${join(dir, 'store')}, generations: 2, ${m.yaml} }
limits: { maxPendingGenerations: 1000, minFreeBytes: 0 }
`,
      );
      configs.set(m.name, file);
    }
    const bare = join(mnt, 'bare-mirror');
    const bareRefresh = async (): Promise<number> => {
      const t = Date.now();
      await sh(`rsync -a --delete ${data}/ ${bare}/`);
      return Date.now() - t;
    };
    const backup = async (mode: string): Promise<{ downtimeMs: number; ownMs: number }> => {
      const r = await runProcess(
        [process.execPath, BATON_MAIN, 'source', 'backup', '--config', configs.get(mode) ?? ''],
        { timeoutMs: 60 * 60_000 },
      );
      if (r.code !== 0) throw new Error(`${mode} backup: ${r.stderr.trim().split('\n').at(-1)}`);
      const rec = JSON.parse(await readFile(join(modeDir(mode), 'state', 'last-run.json'), 'utf8')) as {
        downtimeMs: number;
        appStopMs: number;
        appStartMs: number;
      };
      // acked at once, as a sink would: the handover does not fill up
      await sh(`rm -rf ${join(modeDir(mode), 'handover')}/*`);
      await new Promise((r2) => setTimeout(r2, 1100));
      return { downtimeMs: rec.downtimeMs, ownMs: rec.appStopMs + rec.appStartMs };
    };
    // the app's own stop and start outside baton (a process each), for comparison with baton's own timing
    const own: number[] = [];
    for (let i = 0; i < 7; i++) {
      const a = await runProcess(['/bin/sh', '-c', 'true']);
      const b = await runProcess(['/bin/sh', '-c', 'true']);
      own.push(a.durationMs + b.durationMs);
    }
    const bareOwnMs = median(own);
    // first backups (full copies) and the bare mirror's first copy
    await bareRefresh();
    for (const m of MODES) await backup(m.name);
    const rewriteSmall = async (): Promise<void> => {
      for (let i = 0; i < spec.smallFiles; i += 100)
        await writeFile(join(data, smallPath(spec, i)), randomBytes(4096));
    };
    const scenarios: Array<{ name: string; change: () => Promise<void>; waitMs: number }> = [
      {
        name: `1 % of ${spec.smallFiles} files rewritten just before the run`,
        change: rewriteSmall,
        waitMs: 0,
      },
      {
        name: `1 % of ${spec.smallFiles} files rewritten ${A_WHILE_MS / 1000} s before the run`,
        change: rewriteSmall,
        waitMs: A_WHILE_MS,
      },
      {
        name: `a ${largeMiB} MiB file rewritten (same size) just before the run`,
        waitMs: 0,
        change: async () => {
          const fh = await open(large, 'r+');
          try {
            for (let off = 0; off < largeMiB * MiB; off += 8 * MiB)
              await fh.write(randomBytes(8 * MiB), 0, 8 * MiB, off);
            await fh.sync();
          } finally {
            await fh.close();
          }
        },
      },
    ];
    for (const sc of scenarios) {
      // the same files are changed before each mode: each mirror (and the bare one) refreshes the
      // same change; "just before": the run starts as soon as the change is written (the backup's
      // own start-up, ~0.3 s, is all that separates them), the bare refresh follows the run
      const bare: number[] = [];
      for (const m of MODES) {
        await sc.change();
        if (sc.waitMs > 0) await new Promise((r2) => setTimeout(r2, sc.waitMs));
        const b = await backup(m.name);
        bare.push(await bareRefresh());
        rows.push({
          scenario: sc.name,
          mode: m.name,
          downtimeMs: b.downtimeMs,
          ownMs: b.ownMs,
          netMs: b.downtimeMs - b.ownMs,
          bareMs: median(bare),
        });
      }
    }
    const lines = [
      '# collect: snapshot vs rsync vs reflink, with and without the pre-pass (issue 14)',
      '',
      `Run ${new Date().toISOString()} on a btrfs loop image (8 GiB, ${base}); ${spec.smallFiles} small files + one ${largeMiB} MiB file; ` +
        `app stop/start = \`true\`. Downtime runs from the stop command's start to the start command's end; ` +
        `"own" is the stop and start commands' own run time as baton timed them in that run (last-run.json appStopMs + appStartMs; ` +
        `the same two commands spawned outside baton: ${bareOwnMs} ms, median of 7); net = downtime − own.`,
      'Ratio = net downtime / a bare `rsync -a --delete` refresh of the same change in the same run (each mode sees the same change; the bare refresh follows each run and the median is used).',
      '',
      '| change | collect | downtime ms | own ms | net ms | bare refresh ms | net / bare |',
      '|---|---|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.scenario} | ${r.mode} | ${r.downtimeMs} | ${r.ownMs} | ${r.netMs} | ${r.bareMs} | ${(r.netMs / r.bareMs).toFixed(3)} |`,
      ),
      '',
    ];
    const text = lines.join('\n');
    process.stdout.write(text);
    if (opts.out) await writeFile(opts.out, text);
    return rows;
  } finally {
    await sh(`umount ${mnt} || umount -l ${mnt}`).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(k);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const files = arg('--files');
  const large = arg('--large-mib');
  await benchSnapshot({
    dir: arg('--dir'),
    files: files ? Number(files) : undefined,
    out: arg('--out'),
    modes: arg('--modes')?.split(','),
    largeMiB: large ? Number(large) : undefined,
  });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess } from '../../src/adapters/run.js';
import { skipUnlessRoot } from '../helpers/users.js';
import { BATON_MAIN, show } from '../helpers/cli.js';
import { FIGURE_IDS } from '../../bench/report.js';

// The benchmark's quick variant end to end (`npm run bench:quick`): real users (batonSmokeData,
// batonSmokeLogs: not the benchmark's own), sshd, baton and the bare tools on ~50 MiB. A smoke test, not a timed one: it
// checks that every figure was measured and reported, never how fast.
const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

test('the quick benchmark measures and reports every figure', async (t) => {
  if (skipUnlessRoot(t, 'creates the users batonSmokeData/batonSmokeLogs and runs sshd')) return;
  assert.ok(existsSync(BATON_MAIN), 'run `npm run build` first');
  const dir = await mkdtemp(join(tmpdir(), 'baton-bench-smoke-'));
  // the stream users (the gate runs as them) must reach the configs and stores inside
  await chmod(dir, 0o755);
  try {
    const out = join(dir, 'RESULTS.md');
    const r = await runProcess(
      [
        process.execPath,
        '--import',
        'tsx',
        RUN,
        '--quick',
        '--out',
        out,
        '--dir',
        dir,
        '--users',
        'batonSmokeData,batonSmokeLogs',
      ],
      {
        cwd: REPO,
        timeoutMs: 400_000, // a smoke, not a timing: room for a loaded machine and a parallel lane
        captureStdout: true,
      },
    );
    assert.equal(r.code, 0, show(r));
    const md = await readFile(out, 'utf8');
    assert.equal(r.stdout, md, 'the report is printed as written');
    for (const heading of ['## Machine', '## Dataset', '## Figures', '## Every measurement'])
      assert.ok(md.includes(`\n${heading}\n`), `missing section ${heading}`);
    assert.match(md, /CPU: \d+ × .+; RAM: [\d.]+ GiB; filesystem: \S+/);
    assert.match(md, /rsync version \d+\.\d+/);
    assert.match(md, /OpenSSH_\d+\.\d+/);
    for (const id of FIGURE_IDS) {
      const row = md.split('\n').find((l) => l.startsWith(`| ${id} |`));
      assert.ok(row, `figure ${id} has a row`);
      const cells = row.split(' | ');
      assert.equal(cells.length, 7, `figure ${id}: 7 columns: ${row}`);
      assert.doesNotMatch(row, /not measured/, `figure ${id} was measured: ${row}`);
      // baton's figure and the plain tool's, each a number with its unit, and the ratio
      assert.match(cells[2] ?? '', /\*\*[\d.]+ (s|MiB\/s|MiB|µs\/file)\*\*/, `figure ${id}: baton value`);
      assert.match(
        cells[3] ?? '',
        /\*\*[\d.]+ (s|MiB\/s|MiB|µs\/file)\*\*/,
        `figure ${id}: plain tool value`,
      );
      assert.match(cells[4] ?? '', /^[\d.]+×$/, `figure ${id}: ratio`);
      assert.match(cells[6] ?? '', /^(met|\*\*missed\*\* by \d+ %) \|$/, `figure ${id}: verdict`);
    }
    // the full pull hashed files while rsync transferred them (src/sink/early-hash.ts), not all after it
    const hashedEarly = /full pull, run 1: .*?(\d+) files hashed \((\d+) of them during the transfer\)/.exec(
      md,
    );
    assert.ok(hashedEarly, 'the full pull reports how many files it hashed during the transfer');
    assert.ok(Number(hashedEarly[2]) > 0, `files hashed during the transfer: ${hashedEarly[0]}`);
    // the run cleaned up after itself: no work dir left beside the report
    assert.deepEqual((await readdir(dir)).sort(), ['RESULTS.md']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// `npm run bench:offsite` at its smallest (--tiny: ~3 MiB and 300 tiny files): baton offsite and
// restic against one moto_server. Checks that every figure was measured and judged, never how fast.
const OFFSITE = fileURLToPath(new URL('../../bench/offsite.ts', import.meta.url));

test('the offsite benchmark measures baton and restic on every figure', async (t) => {
  if (skipUnlessRoot(t, 'the generation builder writes owners')) return;
  assert.ok(existsSync(BATON_MAIN), 'run `npm run build` first');
  const dir = await mkdtemp(join(tmpdir(), 'baton-offsite-smoke-'));
  try {
    const out = join(dir, 'RESULTS-offsite.md');
    const r = await runProcess(
      [process.execPath, '--import', 'tsx', OFFSITE, '--tiny', '--out', out, '--dir', dir],
      { cwd: REPO, timeoutMs: 170_000, captureStdout: true },
    );
    assert.equal(r.code, 0, show(r));
    const md = await readFile(out, 'utf8');
    assert.equal(r.stdout, md, 'the report is printed as written');
    assert.match(md, /restic \d+\.\d+\.\d+/);
    assert.match(md, /1-min load average/);
    for (const id of ['P1', 'P2', 'B1', 'B2', 'R1', 'M1', 'M2', 'S1', 'S2', 'S3', 'S4']) {
      const row = md.split('\n').find((l) => l.startsWith(`| ${id} |`));
      assert.ok(row, `figure ${id} has a row`);
      const cells = row.split(' | ');
      assert.equal(cells.length, 6, `figure ${id}: 6 columns: ${row}`);
      assert.match(cells[2] ?? '', /^\*\*[\d,.]+ (s|MiB|B)/, `figure ${id}: baton value`);
      assert.match(cells[3] ?? '', /^[\d,.]+ (s|MiB|B)/, `figure ${id}: restic value`);
      assert.match(cells[4] ?? '', /^[\d.]+×$/, `figure ${id}: ratio`);
      assert.match(
        cells[5] ?? '',
        /^(met \(.+\)|\*\*missed\*\* by \d+ (%|MiB)|\(not a target\)) \|$/,
        `figure ${id}: verdict`,
      );
    }
    // the day stored something, and the restore was checked (baton verify --deep ran in the bench)
    const growth = /\| B2 \| [^|]+ \| \*\*([\d,]+) B/.exec(md);
    assert.ok(growth && Number(growth[1]?.replaceAll(',', '')) > 0, 'the 1 % day grew the bucket');
    // the run cleaned up after itself
    assert.deepEqual((await readdir(dir)).sort(), ['RESULTS-offsite.md']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

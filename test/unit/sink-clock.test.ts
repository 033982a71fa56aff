import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '../../src/adapters/lock.js';
import { createLogger } from '../../src/adapters/log.js';
import { pruneSinkStream } from '../../src/sink/prune.js';
import { quarantineGeneration } from '../../src/sink/publish.js';
import { LockedError } from '../../src/errors.js';

// Issue "Faults", case 23 (sink half): a sink clock that is wrong or jumps during a run changes
// neither retention, nor quarantine names, nor lock decisions. Real files in a temp dir.

const log = createLogger({ format: 'json', level: 'error' });

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baton-clock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function storeWith(dir: string, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    await mkdir(join(dir, id, 'tree'), { recursive: true });
    await writeFile(join(dir, id, 'manifest'), 'baton-manifest 1\n');
  }
}

const DAYS = ['2026-12-01T000000Z', '2026-12-02T000000Z', '2026-12-03T000000Z', '2026-12-04T000000Z'];

test('keepWithin counts back from the newest generation id: the sink clock is never read', async (t) => {
  const dir = await tempDir(t);
  await storeWith(dir, DAYS);
  // keep 2, keepWithin 36h: 12-04 and 12-03 by count; 12-02 is 48h before the newest -> removed.
  // Against a clock years behind every id would look "in the future", i.e. young, and nothing would go.
  const plan = await pruneSinkStream(dir, { keep: 2, keepWithin: 36 * 3600_000 }, [], log);
  assert.deepEqual(
    plan.remove.map((r) => r.id),
    ['2026-12-02T000000Z', '2026-12-01T000000Z'],
  );
  assert.deepEqual((await readdir(dir)).sort(), ['2026-12-03T000000Z', '2026-12-04T000000Z']);
});

test('keepWithin still protects a burst: everything within it of the newest stays', async (t) => {
  const dir = await tempDir(t);
  const burst = ['2026-12-04T000000Z', '2026-12-04T000100Z', '2026-12-04T000200Z'];
  await storeWith(dir, [...DAYS.slice(0, 3), ...burst]);
  const plan = await pruneSinkStream(dir, { keep: 1, keepWithin: 36 * 3600_000 }, [], log);
  // 12-03 is 24h before the newest: kept by keepWithin; older ones go by count.
  assert.deepEqual(
    plan.remove.map((r) => r.id),
    ['2026-12-02T000000Z', '2026-12-01T000000Z'],
  );
});

test('quarantine of the same id at a repeated instant (clock jumped back) -> a second name, both kept', async (t) => {
  const dir = await tempDir(t);
  const incoming = join(dir, '.incoming');
  const quarantine = join(dir, '.quarantine');
  const id = '2026-12-01T000000Z';
  const at = new Date('2026-12-01T00:05:00.000Z');
  const names: string[] = [];
  for (const content of ['first', 'second']) {
    await mkdir(join(incoming, id), { recursive: true });
    await writeFile(join(incoming, id, 'manifest'), content);
    names.push(await quarantineGeneration(incoming, quarantine, id, at));
  }
  assert.notEqual(names[0], names[1]);
  assert.deepEqual((await readdir(quarantine)).sort(), [
    `${id}.2026-12-01T000500000Z`,
    `${id}.2026-12-01T000500001Z`,
  ]);
});

test('a torn lock stamped in the future (written before the clock jumped back) is taken over', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'x.lock');
  await writeFile(path, '{"pid":');
  const inTwoHours = new Date(Date.now() + 2 * 3600_000);
  await utimes(path, inTwoHours, inTwoHours);
  const lock = await acquireLock(path, 'test');
  assert.equal(lock.tookOverStale, true);
  await lock.release();
  assert.equal(existsSync(path), false);
});

test('a torn lock written just now is still respected (exit 75)', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'x.lock');
  await writeFile(path, '{"pid":');
  await assert.rejects(acquireLock(path, 'test'), LockedError);
});

test('a live lock is never taken over because of its age, past or future', async (t) => {
  const dir = await tempDir(t);
  for (const startedAt of ['1990-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z']) {
    const path = join(dir, `live-${startedAt.slice(0, 4)}.lock`);
    await writeFile(path, JSON.stringify({ pid: process.pid, host: hostname(), startedAt, command: 'test' }));
    const old = new Date(startedAt);
    await utimes(path, old, old);
    await assert.rejects(acquireLock(path, 'test'), LockedError);
  }
});

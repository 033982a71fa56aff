// Which alerts make the systemd failure handler stay quiet: only one that reports the run's own
// failure. A warning on the side (stale stream, offsite push) must not silence the unit's failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alertsOfRun, sendAlert } from '../../src/adapters/notify.js';
import { createLogger } from '../../src/adapters/log.js';
import type { AlertChannels } from '../../src/config/schema.js';

const log = createLogger({ format: 'json', level: 'silent' });
const RUN = '0123456789abcdef0123456789abcdef';

test('under systemd, a warning alert is not recorded as the run alerting its failure; a failure alert is', async () => {
  const state = await mkdtemp(join(tmpdir(), 'baton-alerted-'));
  const saved = process.env.INVOCATION_ID;
  process.env.INVOCATION_ID = RUN;
  try {
    const channels: AlertChannels = { command: { run: 'cat >/dev/null', timeout: 10_000 } };
    const pending = join(state, 'pending-alerts');
    await sendAlert(channels, pending, { subject: '[baton] sink: shop/data STALE', text: 'stale' }, log);
    assert.deepEqual(await alertsOfRun(state, RUN), [], 'a warning leaves the failure handler free to alert');
    await sendAlert(
      channels,
      pending,
      { subject: '[baton] sink: pull of data FAILED for shop', text: 'failed', reportsFailure: true },
      log,
    );
    assert.deepEqual(await alertsOfRun(state, RUN), ['[baton] sink: pull of data FAILED for shop']);
  } finally {
    if (saved === undefined) delete process.env.INVOCATION_ID;
    else process.env.INVOCATION_ID = saved;
    await rm(state, { recursive: true, force: true });
  }
});

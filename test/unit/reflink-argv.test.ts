import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pullArgv } from '../../src/sink/pull.js';
import type { Transport } from '../../src/sink/transport.js';
import { sinkSchema, sourceSchema } from '../../src/config/schema.js';

const transport: Transport = {
  rsh: ['ssh', '-p', '2222'],
  remote: 'u@host',
  describe: 'ssh u@host',
  run: () => Promise.reject(new Error('not used')),
  dialogue: () => {
    throw new Error('not used');
  },
  close: () => Promise.resolve(),
};
const base = { transport, id: '2026-01-01T000000Z', incoming: '/s/.incoming', ioTimeoutMs: 60_000 };

test('storeMode reflink: the tree pull writes in place, delta on, no --link-dest', () => {
  const argv = pullArgv({ ...base, linkDest: '/s/prev', inplace: true });
  assert.ok(argv.includes('--inplace'));
  assert.ok(argv.includes('--no-whole-file'));
  assert.ok(!argv.some((a) => a.startsWith('--link-dest')));
  assert.ok(argv.includes('--delete'));
});

test('storeMode reflink: the head pull (manifest, meta.json) is unchanged', () => {
  const argv = pullArgv({ ...base, linkDest: '/s/prev', inplace: true }, true);
  assert.ok(!argv.includes('--inplace'));
  assert.ok(!argv.some((a) => a.startsWith('--link-dest')));
});

test('hard links (the default): --link-dest, never --inplace', () => {
  const argv = pullArgv({ ...base, linkDest: '/s/prev' });
  assert.ok(argv.includes('--link-dest=/s/prev'));
  assert.ok(!argv.includes('--inplace'));
});

test('defaults: collect rsync, storeMode hardlink; other values refused', () => {
  const src = sourceSchema.parse({
    name: 'a',
    app: { stop: 'true', start: 'true' },
    streams: { data: { paths: ['/srv/d'], handover: '/h/d', user: 'u', store: '/st' } },
  });
  assert.equal(src.streams.data.collect, 'rsync');
  const sink = sinkSchema.parse({
    store: '/b',
    sources: [
      {
        name: 'a',
        host: 'h',
        knownHosts: '/k',
        streams: { data: { user: 'u', identity: '/i', generations: 3 } },
      },
    ],
  });
  assert.equal(sink.storeMode, 'hardlink');
  assert.equal(sinkSchema.safeParse({ ...sink, storeMode: 'copy' }).success, false);
});

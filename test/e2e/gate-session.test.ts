/**
 * The gate session (src/core/gate-session.ts) end to end: the built gate behind a fake remote shell that
 * counts its starts, driven by the sink's own code (openGateSession, the list, ackGeneration,
 * rejectGeneration). An older gate (no `session`) and a hostile one are played by scripts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runProcess, spawnDialogue } from '../../src/adapters/run.js';
import { createLogger } from '../../src/adapters/log.js';
import { MAX_LIST_HEAD_BYTES, parseListingWithHead } from '../../src/core/gate-replies.js';
import { openGateSession } from '../../src/sink/gate-session.js';
import { ackGeneration, rejectGeneration } from '../../src/sink/ack.js';
import type { Transport } from '../../src/sink/transport.js';
import { BATON_MAIN } from '../helpers/cli.js';
import {
  copyGeneration,
  writeFakeRsh,
  writeGeneration,
  writeSourceFixture,
} from '../helpers/gate-fixtures.js';

const G1 = '2026-11-25T061922Z';
const G2 = '2026-11-26T061922Z';
const G3 = '2026-11-27T061922Z';
const log = createLogger({ format: 'text', level: 'silent' });
const expectData = { source: 'test-source', stream: 'data' as const };

let tmp: string;
let counter = 0;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'baton-gate-session-e2e-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A transport over `rsh` as sshTransport builds it (without ssh), with or without `spawn`. */
function transportOver(rsh: string, withSpawn = true): Transport {
  return {
    rsh: [rsh],
    remote: 'x',
    describe: `fake rsh ${rsh}`,
    run: (command, timeoutMs, maxStdoutBytes = 64 * 1024, asBytes = false) =>
      runProcess([rsh, 'x', command], {
        timeoutMs,
        captureStdout: true,
        maxStdoutBytes,
        stdoutAsBytes: asBytes,
      }),
    dialogue: (command, limits) => spawnDialogue([rsh, 'x', command], limits),
    ...(withSpawn
      ? {
          spawn: (command: string) =>
            spawn(rsh, ['x', command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] }),
        }
      : {}),
    close: () => Promise.resolve(),
  };
}

/** A source fixture, its gate behind a fake rsh that logs each start (its command) to `starts`. */
async function setup(wrap?: (gateRsh: string) => string) {
  const root = join(tmp, `case-${++counter}`);
  const fx = await writeSourceFixture(root);
  const gateRsh = await writeFakeRsh(join(root, 'bin'), 'rsh-data', [
    process.execPath,
    BATON_MAIN,
    'gate',
    'data',
    '--config',
    fx.configFile,
  ]);
  const starts = join(root, 'starts.log');
  const rsh = join(root, 'bin', 'counting-rsh');
  await writeFile(
    rsh,
    ['#!/bin/sh', `printf '%s\\n' "$2" >> ${starts}`, wrap ? wrap(gateRsh) : `exec ${gateRsh} "$@"`, ''].join(
      '\n',
    ),
  );
  await chmod(rsh, 0o755);
  const started = async () => (existsSync(starts) ? (await readFile(starts, 'utf8')).trim().split('\n') : []);
  return { fx, root, rsh, started };
}

async function listHead(t: Transport) {
  const r = await t.run('list-head', 60_000, MAX_LIST_HEAD_BYTES, true);
  assert.equal(r.code, 0, r.stderr);
  return parseListingWithHead(r.stdoutBytes ?? Buffer.alloc(0), expectData);
}

describe('gate session', () => {
  test('list-head, two acks and a reject of one pull -> one gate start; the source moved and set aside the right ones', async () => {
    const { fx, root, rsh, started } = await setup();
    const g1 = await writeGeneration(fx.dataHandover, G1, { files: { 'a.txt': 'a\n' } });
    const g2 = await writeGeneration(fx.dataHandover, G2, { files: { 'b.txt': 'b\n' } });
    const g3 = await writeGeneration(fx.dataHandover, G3);
    const held1 = await copyGeneration(g1.dir, join(root, 'sink'));
    const held2 = await copyGeneration(g2.dir, join(root, 'sink'));
    const t = await openGateSession(transportOver(rsh), 60_000, log);
    const listed = await listHead(t);
    assert.deepEqual(
      listed.listing.generations.map((g) => g.id),
      [G1, G2, G3],
    );
    assert.deepEqual(listed.head?.manifest, await readFile(join(g1.dir, 'manifest')));
    await ackGeneration(t, G1, g1.manifestSha256, held1, 60_000, log);
    await ackGeneration(t, G2, g2.manifestSha256, held2, 60_000, log);
    const keptIn = await rejectGeneration(t, G3, g3.manifestSha256, 60_000, log);
    assert.equal(keptIn, join(fx.dataHandover, '.rejected', G3));
    const again = await listHead(t);
    assert.deepEqual(again.listing.generations, []);
    await t.close();
    assert.deepEqual(await started(), ['session']);
    assert.ok(existsSync(join(fx.store, G1, 'manifest')) && existsSync(join(fx.store, G2, 'manifest')));
    assert.ok(existsSync(join(fx.dataHandover, '.rejected', G3, 'manifest')));
  });

  test('an ack with a wrong manifest hash -> refused in the session with the gate line; nothing moved, later requests go one per session', async () => {
    const { fx, root, rsh, started } = await setup();
    const g1 = await writeGeneration(fx.dataHandover, G1);
    const held = await copyGeneration(g1.dir, join(root, 'sink'));
    const t = await openGateSession(transportOver(rsh), 60_000, log);
    await assert.rejects(
      ackGeneration(t, G1, 'b'.repeat(64), held, 60_000, log),
      /ack of 2026-11-25T061922Z failed: baton gate: refused: manifest sha256 of .* does not match/,
    );
    assert.ok(existsSync(join(fx.dataHandover, G1, 'manifest')), 'still pending');
    // the session ended with the refusal: the right ack still works, in a session of its own
    await ackGeneration(t, G1, g1.manifestSha256, held, 60_000, log);
    await t.close();
    assert.deepEqual(await started(), ['session', `ack ${G1} ${g1.manifestSha256}`]);
    assert.ok(existsSync(join(fx.store, G1, 'manifest')));
  });

  test('an ack answered with a wrong proof in the session -> refused, nothing moved', async () => {
    const { fx, root, rsh } = await setup();
    const g1 = await writeGeneration(fx.dataHandover, G1, { files: { 'a.txt': 'a'.repeat(10_000) } });
    const held = await copyGeneration(g1.dir, join(root, 'sink'));
    // the sink's copy differs from what the source holds: its proof is wrong
    await writeFile(join(held, 'tree', 'a.txt'), 'b'.repeat(10_000));
    const t = await openGateSession(transportOver(rsh), 60_000, log);
    await assert.rejects(
      ackGeneration(t, G1, g1.manifestSha256, held, 60_000, log),
      /baton gate: refused: ack of .* refused: wrong proof of receipt/,
    );
    await t.close();
    assert.ok(existsSync(join(fx.dataHandover, G1, 'manifest')), 'still pending');
    assert.ok(!existsSync(join(fx.store, G1)));
  });

  test('an older gate (refuses `session`) -> every request in a session of its own, and the pull still works', async () => {
    // what a gate of an older baton does with `session`: its allow-list refuses it, one line, exit 1
    const { fx, root, rsh, started } = await setup(
      (gateRsh) =>
        `if [ "$2" = session ]; then echo 'baton gate: refused: not an allowed command (allowed: list, list-head, ack ID SHA256, reject ID SHA256, a read-only rsync pull)' >&2; exit 1; fi\nexec ${gateRsh} "$@"`,
    );
    const g1 = await writeGeneration(fx.dataHandover, G1);
    const held = await copyGeneration(g1.dir, join(root, 'sink'));
    const t = await openGateSession(transportOver(rsh), 60_000, log);
    const listed = await listHead(t);
    assert.equal(listed.head?.id, G1);
    await ackGeneration(t, G1, g1.manifestSha256, held, 60_000, log);
    await t.close();
    assert.deepEqual(await started(), ['session', 'list-head', `ack ${G1} ${g1.manifestSha256}`]);
    assert.ok(existsSync(join(fx.store, G1, 'manifest')));
  });

  test('a transport without spawn (the demo, tests) -> used as it is', async () => {
    const { rsh } = await setup();
    const plain = transportOver(rsh, false);
    assert.equal(await openGateSession(plain, 60_000, log), plain);
  });
});

describe('hostile gate session', () => {
  /** A "gate" that says hello, reads one request, then runs `reply` (shell) as its answer. */
  async function hostile(reply: string): Promise<Transport> {
    const root = join(tmp, `hostile-${++counter}`);
    await writeFakeRsh(join(root, 'bin'), 'unused', ['true']);
    const rsh = join(root, 'bin', 'evil-rsh');
    await writeFile(
      rsh,
      ['#!/bin/sh', "echo 'baton-gate-session 1'", 'read -r line', reply, 'sleep 30', ''].join('\n'),
    );
    await chmod(rsh, 0o755);
    return openGateSession(transportOver(rsh), 5_000, log);
  }

  test('a reply header that is no header -> one-line error, session not used again', async () => {
    const t = await hostile(`printf 'reply 0 1e9\\n'`);
    const r = await t.run('list-head', 5_000, MAX_LIST_HEAD_BYTES, true);
    assert.equal(r.code, null);
    assert.match(r.stderr, /the gate session sent a bad reply: not a reply header/);
    await t.close();
  });

  test('a reply announced over the cap -> exceeded, its bytes never read', async () => {
    const t = await hostile(`printf 'reply 0 ${MAX_LIST_HEAD_BYTES + 1}\\n'; head -c 20000000 /dev/zero`);
    const r = await t.run('list-head', 5_000, MAX_LIST_HEAD_BYTES, true);
    assert.deepEqual(r.exceeded, { stream: 'stdout', limitBytes: MAX_LIST_HEAD_BYTES });
    assert.equal(r.stdoutBytes, undefined);
    await t.close();
  });

  test('a reply shorter than announced -> an error, not a truncated listing', async () => {
    const t = await hostile(`printf 'reply 0 100\\n{"source":'; exit 0`);
    const r = await t.run('list-head', 5_000, MAX_LIST_HEAD_BYTES, true);
    assert.equal(r.code, null);
    assert.match(r.stderr, /ended in the middle of a reply/);
    await t.close();
  });

  test('an endless line instead of a header -> bounded error', async () => {
    const t = await hostile(`head -c 10000000 /dev/zero | tr '\\0' x`);
    const r = await t.run('list-head', 5_000, MAX_LIST_HEAD_BYTES, true);
    assert.equal(r.code, null);
    assert.match(r.stderr, /a line longer than/);
    await t.close();
  });

  test('an ack answered with more lines than a challenge has -> the ack fails, nothing trusted', async () => {
    const t = await hostile(`yes 'not a challenge' | head -n 1000`);
    await assert.rejects(
      ackGeneration(t, G1, 'a'.repeat(64), '/nonexistent', 5_000, log),
      /ack of 2026-11-25T061922Z failed: .*(no ack challenge|more than)/,
    );
    await t.close();
  });

  test('no hello and no gate refusal (a dead link) -> the list fails at once, no second try', async () => {
    const root = join(tmp, `dead-${++counter}`);
    await writeFakeRsh(join(root, 'bin'), 'unused', ['true']);
    const rsh = join(root, 'bin', 'dead-rsh');
    await writeFile(
      rsh,
      '#!/bin/sh\necho "ssh: connect to host x port 22: Connection refused" >&2\nexit 255\n',
    );
    await chmod(rsh, 0o755);
    await assert.rejects(
      openGateSession(transportOver(rsh), 5_000, log),
      /list over .* failed: source unreachable/,
    );
  });
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import {
  ensureUser,
  makeKeyPair,
  writeAuthorizedKeys,
  type KeyPair,
  needsRootOrSkipFile,
} from '../helpers/users.js';
import { BATON_MAIN, runBaton, show } from '../helpers/cli.js';
import { generationIds, makeSourceSetup, sleep, type SourceSetup } from '../helpers/source-setup.js';
import { makeSinkStore } from '../helpers/sink-store.js';

// Issue "Faults and hostile input", cases 24 (bit rot found by verify --deep) and 22 (retention under
// attack: a sudden drop in size) with the built CLI over a real sshd and a real SMTP server.
// Own users: batonRetData / batonRetLogs.
const NEEDS_ROOT = needsRootOrSkipFile('faults-retention', 'users batonRetData/batonRetLogs, sshd');

const USERS = { data: 'batonRetData', logs: 'batonRetLogs' };
let root: string;
let smtp: SmtpSink;
let sshd: Sshd;
let src: SourceSetup;
let dataKey: KeyPair;
let logKey: KeyPair;

before(async () => {
  if (NEEDS_ROOT) return;
  root = await mkdtemp(join(tmpdir(), 'baton-retention-'));
  await chmod(root, 0o755);
  smtp = await startSmtp();
  const dataUser = await ensureUser(USERS.data);
  const logUser = await ensureUser(USERS.logs);
  const keys = join(root, 'keys');
  dataKey = await makeKeyPair(keys, 'data');
  logKey = await makeKeyPair(keys, 'logs');
  sshd = await startSshd();
  // the logs stream is never pulled here: room for every backup of this file in its handover
  src = await makeSourceSetup(root, {
    name: 'shop',
    dataUser: USERS.data,
    logsUser: USERS.logs,
    maxPending: 50,
  });
  const gate = (stream: string) =>
    `restrict,command="${process.execPath} ${BATON_MAIN} gate ${stream} --config ${src.config}"`;
  await writeAuthorizedKeys(dataUser, [`${gate('data')} ${dataKey.publicKey}`]);
  await writeAuthorizedKeys(logUser, [`${gate('logs')} ${logKey.publicKey}`]);
  // enough files that a shrink is visible in both files and bytes
  for (let i = 0; i < 40; i++) await writeFile(join(src.app.dataDir, `doc-${i}.txt`), `${i}\n`.repeat(2000));
});

after(async () => {
  if (NEEDS_ROOT) return;
  src.app.kill();
  await sshd.stop();
  await smtp.stop();
  await rm(root, { recursive: true, force: true });
});

async function sinkConfig(
  name: string,
  keep: number,
  streamExtra = '',
): Promise<{ file: string; store: string; state: string }> {
  const store = await makeSinkStore(join(root, `store-${name}`));
  const state = join(root, `state-${name}`);
  const file = join(root, `sink-${name}.yaml`);
  await writeFile(
    file,
    `store: ${store}
stateDir: ${state}
sources:
  - name: shop
    host: 127.0.0.1
    port: ${sshd.port}
    knownHosts: ${sshd.knownHostsFile}
    streams:
      data: { user: ${USERS.data}, identity: ${dataKey.privateKey}, generations: ${keep}${streamExtra} }
      logs: { user: ${USERS.logs}, identity: ${logKey.privateKey}, generations: 2 }
alerts:
  mail: { to: [ops@example.com], from: baton@sink, smtp: "${smtp.url}" }
`,
  );
  return { file, store, state };
}

let lastBackup = 0;

/** One source backup (generation ids are seconds: never two in the same second). */
async function backup(): Promise<void> {
  const wait = 1000 - (Date.now() % 1000) + (Date.now() - lastBackup < 1000 ? 1000 : 0);
  await sleep(wait);
  const b = await runBaton(['source', 'backup', '--config', src.config]);
  assert.equal(b.code, 0, show(b));
  lastBackup = Date.now();
}

/** A sink pull of the data stream: every pending generation, oldest first, each published then pruned. */
async function pull(file: string): Promise<{ stdout: string; stderr: string }> {
  const p = await runBaton(['sink', 'pull', 'data', '--config', file]);
  assert.equal(p.code, 0, show(p));
  return p;
}

async function cycle(file: string): Promise<{ stdout: string; stderr: string }> {
  await backup();
  return pull(file);
}

test(
  'case 24: bit rot in the newest sink generation -> verify --deep exits 1, marks it bad, alert; prune keeps the older verified ones; a passing deep verify clears the mark',
  { skip: NEEDS_ROOT },
  async () => {
    const { file, store } = await sinkConfig('rot', 3);
    const streamDir = join(store, 'shop', 'data');
    for (let i = 0; i < 3; i++) await backup();
    await pull(file);
    const ids = await generationIds(streamDir);
    assert.equal(ids.length, 3, ids.join(' '));
    const newest = ids.at(-1)!;

    // Flip one byte in the newest generation only: its files are hard-linked to the older ones, so
    // write a changed copy and rename it over (same size, different content: what rot looks like).
    const victim = join(streamDir, newest, 'tree', src.app.dataDir.slice(1), 'doc-7.txt');
    const good = await readFile(victim);
    const rotten = Buffer.from(good);
    rotten[10] = (rotten[10] ?? 0) ^ 0x01;
    await writeFile(`${victim}.rot`, rotten);
    await rename(`${victim}.rot`, victim);

    const n = smtp.messages.length;
    const v = await runBaton(['verify', '--deep', '--all', '--config', file]);
    assert.equal(v.code, 1, show(v));
    assert.match(v.stderr, /^baton: verify: 1 of [0-9]+ generation\(s\) failed: .*doc-7\.txt/m);
    assert.equal(
      v.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('baton: ')).length,
      1,
    );
    const markFile = join(streamDir, '.bad', newest);
    const mark = JSON.parse(await readFile(markFile, 'utf8')) as { id: string; problems: string[] };
    assert.equal(mark.id, newest);
    assert.ok(
      mark.problems.some((p) => p.includes('doc-7.txt')),
      mark.problems.join('\n'),
    );
    const mails = await smtp.waitFor(n + 1);
    assert.match(mails.at(-1)!.subject, /verify found 1 damaged generation/);
    assert.match(mails.at(-1)!.text, new RegExp(newest));
    assert.deepEqual(await generationIds(streamDir), ids, 'the generation layout itself is unchanged');

    const st = await runBaton(['status', '--json', '--config', file]);
    const report = JSON.parse(st.stdout) as {
      streams: Array<{
        stream: string;
        stores: Array<{ generations: Array<{ id: string; bad?: boolean; verified: boolean }> }>;
      }>;
    };
    const gens = report.streams.find((s) => s.stream === 'data')!.stores[0]!.generations;
    assert.deepEqual(
      gens.map((g) => [g.id, g.bad === true, g.verified]),
      ids.map((id) => [id, id === newest, id !== newest]),
    );
    const text = await runBaton(['status', '--config', file]);
    assert.match(text.stdout, new RegExp(`${newest}.*BAD`));
    // a damaged generation is a problem to act on: status says so and exits 1 (cron / monitoring see it)
    assert.equal(text.code, 1, show(text));
    assert.match(text.stdout + text.stderr, new RegExp(`failed \`baton verify\`.*${newest}`));

    // A new pull: 3 verified wanted (new + the two older), the bad one is newer than the oldest kept
    // verified: nothing is pruned. Before this change the oldest verified one was removed here.
    const p = await cycle(file);
    assert.doesNotMatch(p.stdout, /pruned/);
    const after4 = await generationIds(streamDir);
    assert.equal(after4.length, 4, after4.join(' '));
    for (const id of ids) assert.ok(after4.includes(id), `${id} kept`);

    // Repair the file: a deep verify passes and removes the mark.
    await writeFile(`${victim}.fix`, good);
    await rename(`${victim}.fix`, victim);
    const ok = await runBaton(['verify', '--deep', '--all', '--config', file]);
    assert.equal(ok.code, 0, show(ok));
    assert.equal(existsSync(markFile), false, 'mark removed');
    const healed = JSON.parse((await runBaton(['status', '--json', '--config', file])).stdout) as {
      problems: Array<{ kind: string }>;
    };
    assert.ok(!healed.problems.some((p) => p.kind === 'damaged'), JSON.stringify(healed.problems));
  },
);

test(
  'case 22: the data shrinks by 80 % -> "possible data loss or attack" mail, published and acked, nothing pruned, warning in the run record',
  { skip: NEEDS_ROOT },
  async () => {
    const { file, store, state } = await sinkConfig('shrink', 1);
    const streamDir = join(store, 'shop', 'data');
    await cycle(file);
    const before2 = await generationIds(streamDir);
    assert.equal(before2.length, 1);
    const kept = before2[0]!;

    const removed: string[] = [];
    for (let i = 0; i < 40; i++) {
      if (i % 5 === 0) continue;
      const f = join(src.app.dataDir, `doc-${i}.txt`);
      await rename(f, join(root, `moved-doc-${i}.txt`));
      removed.push(f);
    }
    try {
      const n = smtp.messages.length;
      const p = await cycle(file);
      assert.doesNotMatch(p.stdout, /pruned/);
      const now = await generationIds(streamDir);
      assert.equal(now.length, 2, now.join(' '));
      assert.equal(now[0], kept, 'the older verified generation survives');
      assert.deepEqual(await generationIds(src.handoverData), [], 'the new generation was acked');
      const mails = await smtp.waitFor(n + 1);
      const alert = mails.slice(n).find((m) => /possible data loss or attack/.test(m.subject));
      assert.ok(
        alert,
        mails
          .slice(n)
          .map((m) => m.subject)
          .join('\n'),
      );
      assert.match(alert.text, /files dropped [0-9]+ %/);
      const run = JSON.parse(await readFile(join(state, 'runs', 'shop-data.json'), 'utf8')) as {
        ok: boolean;
        warnings: string[];
        pruned: string[];
      };
      assert.equal(run.ok, true);
      assert.deepEqual(run.pruned, []);
      assert.match(run.warnings[0] ?? '', /possible data loss or attack/);
    } finally {
      for (const f of removed) await rename(join(root, `moved-${f.split('/').at(-1)!}`), f);
    }
    // The next normal-size run prunes again (the freeze lasts one run).
    const p = await cycle(file);
    assert.match(p.stdout, /pruned/);
    assert.equal((await generationIds(streamDir)).length, 1);
  },
);

test(
  'case 22: keepWithin 7d -> a burst of generations prunes nothing by count',
  { skip: NEEDS_ROOT },
  async () => {
    const { file, store } = await sinkConfig('within', 1, ', keepWithin: 7d');
    for (let i = 0; i < 3; i++) await backup();
    const p = await pull(file);
    assert.doesNotMatch(p.stdout, /pruned/);
    assert.equal((await generationIds(join(store, 'shop', 'data'))).length, 3);
    assert.deepEqual(
      (await readdir(join(store, 'shop', 'data'))).filter((n) => n.startsWith('.') && n !== '.incoming'),
      [],
    );
  },
);

import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadSinkConfig, loadSourceConfig } from '../config/load.js';
import { JobError } from '../errors.js';
import { runProcess, spawnDialogue } from '../adapters/run.js';
import { ensureUser, makeKeyPair, writeAuthorizedKeys } from '../adapters/system-users.js';
import type { Logger } from '../adapters/log.js';
import { runSourceBackup } from '../source/backup.js';
import { runSinkPull, type TransportFactory } from '../sink/run-pull.js';
import { GATE_REPLY_MAX_BYTES, type Transport } from '../sink/transport.js';
import { sinkStatus, sourceStatus } from '../status/status.js';
import { renderStatus } from '../status/render-text.js';
import { STORE_MARKER, STORE_MARKER_CONTENT } from '../core/store-marker.js';
import { createFakeApp } from './sample-app.js';
import { SSHD_BINARY, startSshd, type Sshd } from './sshd.js';

const DEMO_USERS = { data: 'baton-demo-data', logs: 'baton-demo-logs' } as const;

export interface DemoOptions {
  keep: boolean;
  log: Logger;
  /** the command that runs this baton (`node /path/dist/cli/main.js`), for the gate's forced command */
  batonArgv: readonly string[];
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** A remote shell that runs the gate locally, as sshd's forced command would (no root needed). */
async function localTransportFactory(
  dir: string,
  batonArgv: readonly string[],
  sourceConfig: string,
): Promise<TransportFactory> {
  const scripts: Record<string, string> = {};
  for (const stream of ['data', 'logs'] as const) {
    const file = join(dir, `gate-${stream}.sh`);
    await writeFile(
      file,
      `#!/bin/sh\n# demo transport: <this> host command… → baton gate ${stream}, like an ssh forced command\nshift\nSSH_ORIGINAL_COMMAND="$*" exec ${batonArgv.map(q).join(' ')} gate ${stream} --config ${q(sourceConfig)}\n`,
      { mode: 0o755 },
    );
    scripts[stream] = file;
  }
  return async (_src, stream) => {
    const script =
      stream.user === DEMO_USERS.logs || stream.identity.endsWith('logs') ? scripts.logs : scripts.data;
    if (!script) throw new Error('demo transport missing');
    const t: Transport = {
      rsh: [script],
      remote: 'localhost',
      describe: `local gate (${script})`,
      run: (command, timeoutMs, maxStdoutBytes = GATE_REPLY_MAX_BYTES, asBytes = false) =>
        runProcess([script, 'localhost', command], {
          timeoutMs,
          captureStdout: true,
          maxStdoutBytes,
          stdoutAsBytes: asBytes,
        }),
      dialogue: (command, limits) => spawnDialogue([script, 'localhost', command], limits),
      close: () => Promise.resolve(),
    };
    return Promise.resolve(t);
  };
}

/**
 * A complete source → sink cycle on this machine in a temp dir: a sample app server, two
 * source backups, sink pulls of both streams (over a real sshd on 127.0.0.1 as root, else through
 * a local transport that runs the same gate), then `status` of both sides.
 */
export async function runDemo(opts: DemoOptions): Promise<void> {
  const { log } = opts;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'baton-demo-'));
  await chmod(dir, 0o755);
  const asRoot = process.getuid?.() === 0;
  const useSsh = asRoot && existsSync(SSHD_BINARY);
  out(
    `baton demo in ${dir} (${useSsh ? 'real sshd on 127.0.0.1' : 'local transport through the same gate: run as root for ssh'})`,
  );
  const app = createFakeApp(join(dir, 'app'));
  let sshd: Sshd | undefined;
  try {
    const start = await runProcess(['/bin/sh', '-c', app.startCmd], { timeoutMs: 30_000 });
    if (start.code !== 0)
      throw new JobError(`sample app did not start: ${start.stderr.trim()}`, { step: 'demo' });
    const me = userInfo().username;
    const users = useSsh ? DEMO_USERS : { data: me, logs: me };
    if (useSsh) {
      await ensureUser(DEMO_USERS.data);
      await ensureUser(DEMO_USERS.logs);
    }
    const sourceFile = join(dir, 'source.yaml');
    await writeFile(
      sourceFile,
      stringify({
        name: 'demo-app',
        stateDir: join(dir, 'source-state'),
        app: {
          stop: app.stopCmd,
          start: app.startCmd,
          healthCheck: app.healthCmd,
          stopTimeout: '30s',
          startTimeout: '30s',
        },
        streams: {
          data: {
            paths: [app.dataDir],
            handover: join(dir, 'handover', 'data'),
            user: users.data,
            store: join(dir, 'source-store'),
            generations: 2,
          },
          logs: { paths: [app.logDir], handover: join(dir, 'handover', 'logs'), user: users.logs },
        },
      }),
      { mode: 0o644 },
    );
    const source = await loadSourceConfig(sourceFile);
    const keys = join(dir, 'keys');
    const sinkRaw: Record<string, unknown> = {
      store: join(dir, 'sink-store'),
      stateDir: join(dir, 'sink-state'),
      sources: [
        {
          name: 'demo-app',
          host: '127.0.0.1',
          port: 22,
          knownHosts: join(dir, 'known_hosts'),
          streams: {
            data: { user: users.data, identity: join(keys, 'data'), generations: 3 },
            logs: { user: users.logs, identity: join(keys, 'logs'), generations: 3 },
          },
        },
      ],
      recoveryTiers: [{ name: 'provider daily snapshot', keepDays: 14, scope: 'whole source filesystem' }],
    };
    let transportFor: TransportFactory | undefined;
    if (useSsh) {
      const dataKey = await makeKeyPair(keys, 'data');
      const logKey = await makeKeyPair(keys, 'logs');
      sshd = await startSshd({ dir });
      const gate = (stream: 'data' | 'logs') =>
        `restrict,command="${opts.batonArgv.join(' ')} gate ${stream} --config ${sourceFile}"`;
      for (const [stream, key] of [
        ['data', dataKey],
        ['logs', logKey],
      ] as const) {
        const u = await ensureUser(DEMO_USERS[stream]);
        await writeAuthorizedKeys(u, [`${gate(stream)} ${key.publicKey}`]);
      }
      const src = (sinkRaw.sources as Array<Record<string, unknown>>)[0];
      if (src) {
        src.port = sshd.port;
        src.knownHosts = sshd.knownHostsFile;
      }
    } else {
      transportFor = await localTransportFactory(dir, opts.batonArgv, sourceFile);
    }
    const sinkFile = join(dir, 'sink.yaml');
    await writeFile(sinkFile, stringify(sinkRaw), { mode: 0o644 });
    const sink = await loadSinkConfig(sinkFile);
    // what `baton install sink` does once: the store root and its marker (pulls refuse a store without it)
    await mkdir(sink.store, { recursive: true, mode: 0o750 });
    await writeFile(join(sink.store, STORE_MARKER), STORE_MARKER_CONTENT, { mode: 0o644 });

    for (let cycle = 1; cycle <= 2; cycle++) {
      out(`\n== cycle ${cycle}: baton source backup`);
      const b = await runSourceBackup(source, { dryRun: false, now: () => new Date(), log });
      for (const g of b?.generations ?? [])
        out(
          `   ${g.meta.stream}: ${g.id}  ${g.meta.files} files, ${g.meta.bytesCopied} of ${g.meta.bytes} bytes new`,
        );
      out(
        `   app downtime ${((b?.downtimeMs ?? 0) / 1000).toFixed(2)}s; the sample app is ${app.isRunning() ? 'running' : 'NOT running'}`,
      );
      for (const stream of ['data', 'logs'] as const) {
        out(`== cycle ${cycle}: baton sink pull ${stream}`);
        const res = await runSinkPull(sink, {
          stream,
          now: () => new Date(),
          log,
          ...(transportFor ? { transportFor } : {}),
        });
        for (const o of res) {
          if (!o.ok) throw new JobError(`demo pull of ${stream} failed: ${o.error ?? ''}`, { step: 'demo' });
          out(`   ${o.source}/${o.stream}: pulled, verified and acked ${o.acked.join(', ') || 'nothing'}`);
        }
      }
      // generation ids are per second
      await new Promise((r) => setTimeout(r, 1100));
    }
    out('\n== baton status (source)');
    process.stdout.write(renderStatus(await sourceStatus(source, new Date())));
    out('\n== baton status (sink)');
    process.stdout.write(renderStatus(await sinkStatus(sink, new Date())));
    const check = await runProcess(
      [
        'sh',
        '-c',
        'for g in */*/20*; do (cd "$g/tree" && sha256sum --quiet -c ../SHA256SUMS) || exit 1; done',
      ],
      {
        cwd: join(dir, 'sink-store'),
      },
    );
    out(
      `\nsha256sum -c over every sink generation: ${check.code === 0 ? 'all files OK' : `FAILED\n${check.stdout}${check.stderr}`}`,
    );
    if (check.code !== 0) throw new JobError('sha256sum -c failed in the sink store', { step: 'demo' });
    out(
      opts.keep
        ? `\nkept ${dir} (source.yaml, sink.yaml, stores) for a look around`
        : '\ndemo done; temp dir removed (use --keep to look around)',
    );
  } finally {
    await runProcess(['/bin/sh', '-c', app.stopCmd], { timeoutMs: 30_000 });
    app.kill();
    await sshd?.stop();
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
}

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import { formatGenerationId } from '../../src/generation/names.js';
import { writeGeneration } from './gate-fixtures.js';
import { makeSinkStore } from './sink-store.js';

/**
 * A sink at fleet size on disk (issue 15): 12 sources × 2 streams, each with generations spread over
 * three days (two of them 6 s apart), run records and a run history; `fleet03/data`'s last pull failed
 * verification (file and hashes in its error), `fleet07/data`'s last pull failed to connect. With
 * `offsite`, an offsite block and push records: fleet01 current, fleet02/data 2 days behind,
 * fleet05/logs's last push failed.
 */
export const FLEET_SOURCES = 12;
export const VERIFY_ERROR =
  'verify: generation 2026-11-28T040000Z failed verification (quarantined in /srv/sink/fleet03/data/.quarantine/2026-11-28T040000Z.2026-11-28T040012345Z, not acked):\n' +
  'content: db/orders.db: sha256 expected 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, got 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752\n' +
  '  rejected on the source: kept in .rejected/2026-11-28T040000Z, no longer pending';
/** The source outside its pull window at `now` (a window two to three hours later, local time). */
export const WAITING_SOURCE = 'fleet10';
/** `WAITING_SOURCE`'s `window:` for `now`. */
export function waitingWindow(now: Date): string {
  const hh = (h: number) => `${String(h % 24).padStart(2, '0')}:00`;
  return `${hh(now.getHours() + 2)}-${hh(now.getHours() + 3)}`;
}
export const CONNECT_ERROR = 'list: ssh: connect to host 10.0.0.7 port 22: Connection refused';

const H = 3_600_000;

export interface Fleet {
  config: SinkConfig;
  /** the config as a file for the CLI */
  configFile: string;
  now: Date;
}

export async function buildFleet(
  root: string,
  opts: { now: Date; offsite?: boolean; smtpUrl?: string },
): Promise<Fleet> {
  const { now } = opts;
  const idAt = (msAgo: number) => formatGenerationId(new Date(now.getTime() - msAgo));
  const names = Array.from({ length: FLEET_SOURCES }, (_, i) => `fleet${String(i + 1).padStart(2, '0')}`);
  const raw = {
    store: join(root, 'store'),
    stateDir: join(root, 'state'),
    sources: names.map((name) => ({
      name,
      host: '127.0.0.1',
      knownHosts: '/dev/null',
      ...(name === WAITING_SOURCE ? { window: waitingWindow(now) } : {}),
      streams: {
        data: { user: 'u', identity: '/k', generations: 10 },
        logs: { user: 'u', identity: '/k', generations: 10 },
      },
    })),
    alerts: {
      staleAfter: '30h',
      ...(opts.offsite ? { offsiteStaleAfter: '1d' } : {}),
      ...(opts.smtpUrl ? { mail: { to: ['ops@example.com'], from: 'baton@sink', smtp: opts.smtpUrl } } : {}),
    },
    ...(opts.offsite
      ? {
          offsite: {
            endpoint: 'http://127.0.0.1:9',
            bucket: 'baton-fleet',
            prefix: 'sink1',
            provider: 'minio',
          },
        }
      : {}),
  };
  const config = sinkSchema.parse(raw);
  await makeSinkStore(config.store);
  const runs = join(config.stateDir, 'runs');
  await mkdir(runs, { recursive: true });
  const ages = [70 * H, 46 * H, 22 * H, 2 * H + 6000, 2 * H];
  for (const name of names) {
    for (const stream of ['data', 'logs'] as const) {
      const dir = join(config.store, name, stream);
      for (const [k, age] of ages.entries()) {
        const g = await writeGeneration(dir, idAt(age), {
          source: name,
          stream,
          files: { 'f.txt': `${name} ${stream} ${k}\n` },
        });
        const metaFile = join(g.dir, 'meta.json');
        const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, unknown>;
        await writeFile(
          metaFile,
          JSON.stringify({ ...meta, downtimeMs: 1500 + k * 100, bytesCopied: 1000 * (k + 1) }),
        );
      }
      const failed =
        stream === 'data' && name === 'fleet03'
          ? VERIFY_ERROR
          : stream === 'data' && name === 'fleet07'
            ? CONNECT_ERROR
            : undefined;
      const history = Array.from({ length: 35 }, (_, i) => {
        const finished = new Date(now.getTime() - (35 - i) * H);
        const last = i === 34;
        const ok = !(last && failed !== undefined) && !(i === 20 && name === 'fleet05');
        return {
          job: `sink pull ${stream}`,
          source: name,
          ok,
          startedAt: new Date(finished.getTime() - 12_000).toISOString(),
          finishedAt: finished.toISOString(),
          pulled: [],
          ...(ok ? {} : { error: last && failed !== undefined ? failed : 'list: ssh: timeout' }),
        };
      });
      const last = history.at(-1);
      await writeFile(join(runs, `${name}-${stream}.json`), JSON.stringify(last));
      // a history longer than the cap, as an older writer might have left: the reader keeps the last 30
      await writeFile(join(runs, `${name}-${stream}.history.json`), JSON.stringify({ runs: history }));
    }
  }
  if (opts.offsite) {
    const push = join(config.stateDir, 'offsite');
    await mkdir(push, { recursive: true });
    const checkedAt = new Date(now.getTime() - H).toISOString();
    const write = (name: string, stream: string, state: object) =>
      writeFile(join(push, `push-${name}-${stream}.json`), JSON.stringify(state));
    for (const name of names)
      for (const stream of ['data', 'logs']) await write(name, stream, { newest: idAt(2 * H), checkedAt });
    await write('fleet02', 'data', { newest: idAt(46 * H), checkedAt });
    await write('fleet05', 'logs', {
      newest: idAt(2 * H),
      checkedAt,
      lastError: 'offsite: PUT sink1/commit/x: 403 AccessDenied',
      lastErrorAt: new Date(now.getTime() - 600_000).toISOString(),
    });
  }
  const configFile = join(root, 'sink.yaml');
  await writeFile(configFile, `${JSON.stringify(raw, null, 2)}\n`);
  return { config, configFile, now };
}

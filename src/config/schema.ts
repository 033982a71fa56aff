import { z } from 'zod';
import { DURATION_PATTERN, parseDuration } from '../core/duration.js';
import { PULL_WINDOW_PATTERN } from '../core/pull-order.js';

/**
 * The one schema of both config files. Validation, the JSON Schema for editors
 * (`baton config schema`), the commented examples and the docs all derive from it;
 * test/unit/config-drift.test.ts fails when a committed copy drifts.
 */

const duration = (what: string) =>
  z
    .string()
    .regex(DURATION_PATTERN, { error: 'expected a duration like 90s, 15m, 26h or 14d' })
    .transform((s) => parseDuration(s) ?? 0)
    .describe(`${what} (a duration: 90s, 15m, 26h, 14d)`);

const absPath = (what: string) =>
  z
    .string()
    .refine((p) => p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\0'), {
      error: 'expected an absolute path without ".."',
    })
    // `/srv/x/` → `/srv/x`, `//` → `/` (never the empty string)
    .transform((p) => p.replace(/(.)\/+$/, '$1'))
    .describe(what);

export const command = z
  .union([z.string().min(1), z.array(z.string()).min(1)])
  .describe('a shell line (run by /bin/sh -c) or an argv list (run as is)');

const within = (inner: string, outer: string) =>
  inner === outer || inner.startsWith(outer === '/' ? '/' : `${outer}/`);

/**
 * Handovers and the store must be separate directories, not inside each other, and not inside
 * the paths being backed up (a backup would collect its own earlier generations).
 */
function overlappingDirs(streams: {
  data: { handover: string; store: string; paths: string[] };
  logs?: { handover: string; paths: string[] } | undefined;
}): Array<{ path: (string | number)[]; message: string }> {
  const dirs: Array<[string[], string]> = [
    [['data', 'handover'], streams.data.handover],
    [['data', 'store'], streams.data.store],
  ];
  if (streams.logs) dirs.push([['logs', 'handover'], streams.logs.handover]);
  const out: Array<{ path: (string | number)[]; message: string }> = [];
  for (let i = 0; i < dirs.length; i++) {
    for (let j = 0; j < dirs.length; j++) {
      const [pa, a] = dirs[i] ?? [[], ''];
      const [pb, b] = dirs[j] ?? [[], ''];
      if (i < j && (within(a, b) || within(b, a))) {
        out.push({
          path: pb,
          message: `must not be the same as or nested with streams.${pa.join('.')} (${a})`,
        });
      }
    }
  }
  const paths = [...streams.data.paths, ...(streams.logs?.paths ?? [])];
  for (const [p, d] of dirs) {
    const inside = paths.find((src) => within(d, src) || within(src, d));
    if (inside !== undefined) out.push({ path: p, message: `must not overlap the backed-up path ${inside}` });
  }
  return out;
}

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const name = (what: string) =>
  z.string().regex(NAME_PATTERN, { error: 'letters, digits, ".", "_" and "-", at most 63' }).describe(what);

const userName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, { error: 'expected a system user name' })
  .describe('system user');

export const mailSchema = z
  .strictObject({
    to: z.array(z.string().min(3)).min(1).describe('recipients'),
    from: z.string().min(1).describe('sender address'),
    smtp: z
      .string()
      .regex(/^smtps?:\/\//, { error: 'expected smtp://host:port or smtps://host:port' })
      .optional()
      .describe('SMTP server URL, e.g. smtp://127.0.0.1:25 (user may be given as smtp://user@host:587)'),
    passwordFile: absPath(
      'file holding the SMTP password (else the environment variable BATON_SMTP_PASSWORD)',
    ).optional(),
    sendmail: absPath('sendmail binary to use instead of SMTP, e.g. /usr/sbin/sendmail').optional(),
  })
  .refine((m) => (m.smtp === undefined) !== (m.sendmail === undefined), {
    error: 'set exactly one of smtp and sendmail',
  })
  .describe('alert mail');

export const pingSchema = z
  .strictObject({
    url: z.url().describe('healthchecks-style URL: GET url/start, url on success, url/fail on failure'),
    timeout: duration('timeout of each ping').prefault('10s'),
  })
  .describe('monitoring pings');

export const webhookSchema = z
  .strictObject({
    url: z
      .url({ protocol: /^https?$/ })
      .describe('where the event is POSTed (for ntfy: the topic URL, e.g. https://ntfy.sh/my-topic)'),
    preset: z
      .enum(['generic', 'ntfy', 'slack'])
      .default('generic')
      .describe(
        'body format: generic (the event as JSON), ntfy (JSON publishing), slack (Slack-compatible {text})',
      ),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9-]+$/), z.string().regex(/^[^\r\n]*$/))
      .default({})
      .describe('extra HTTP headers (their values are never logged)'),
    tokenFile: absPath('file holding a token sent as "Authorization: Bearer <token>"').optional(),
    timeout: duration('timeout of each POST').prefault('10s'),
  })
  .refine((w) => w.preset !== 'ntfy' || new URL(w.url).pathname.replace(/\/+$/, '') !== '', {
    error: 'an ntfy URL names its topic: https://ntfy.sh/TOPIC',
    path: ['url'],
  })
  .describe('alert webhook: each alert is POSTed as JSON');

export const alertCommandSchema = z
  .strictObject({
    run: command.describe(
      'run for each alert with the event as JSON on stdin and BATON_EVENT_SUBJECT, BATON_EVENT_TEXT, BATON_EVENT_HOST, BATON_EVENT_TIME set (e.g. apprise)',
    ),
    timeout: duration('the command is killed after this long').prefault('30s'),
  })
  .describe('alert command: each alert is handed to a program');

export const metricsSchema = z
  .strictObject({
    textfileDir: absPath(
      "a second directory for the .prom files, e.g. node-exporter's textfile collector /var/lib/prometheus/node-exporter",
    ).optional(),
  })
  .prefault({})
  .describe(
    'Prometheus textfile metrics: always written to <stateDir>/metrics/baton_<job>.prom after each run',
  );

/**
 * Calendar retention beside `generations` and `keepWithin` (restic/borg style, counted in the host's
 * local time zone): the newest generation of each of the last N days / ISO weeks / months / years that
 * have one is kept too. All rules are a union.
 */
const calendarRetention = {
  keepDaily: z
    .int()
    .min(0)
    .max(10000)
    .optional()
    .describe('also keep the newest generation of each of the last N days that have one (local time)'),
  keepWeekly: z
    .int()
    .min(0)
    .max(10000)
    .optional()
    .describe('also keep the newest generation of each of the last N ISO weeks (Monday first) that have one'),
  keepMonthly: z
    .int()
    .min(0)
    .max(10000)
    .optional()
    .describe('also keep the newest generation of each of the last N months that have one'),
  keepYearly: z
    .int()
    .min(0)
    .max(10000)
    .optional()
    .describe('also keep the newest generation of each of the last N years that have one'),
};

const streamBase = {
  paths: z.array(absPath('a directory or file to back up')).min(1).describe('what to collect'),
  exclude: z.array(z.string().min(1)).default([]).describe('rsync exclude patterns, e.g. "*.tmp", "cache/"'),
  handover: absPath('the Transport Handover Point of this stream'),
  user: userName.describe(
    'owns the handover and source store files; the sink logs in as this user through `baton gate`',
  ),
  collect: z
    .enum(['rsync', 'reflink', 'snapshot', 'command'])
    .default('rsync')
    .describe(
      "how the paths are collected while the app is down: rsync refreshes a kept mirror (downtime grows with what changed); reflink clones them with cp --reflink=always into stateDir (downtime grows with the file count only; the paths and stateDir must be on one XFS/btrfs filesystem); snapshot takes a read-only btrfs snapshot of each path's subvolume into stateDir (milliseconds; the paths and stateDir on one btrfs filesystem) and refreshes the mirror from it once the app runs again; command runs snapshot.create while the app is down (LVM thin, ZFS, ...) and reads snapshot.path once it runs again",
    ),
  prepass: z
    .boolean()
    .default(true)
    .describe(
      'collect: rsync and reflink: refresh the mirror (or take the clone) while the app still runs, so the pass while it is down copies only what changed since; files changed within the filesystem timestamp granularity of the pre-pass start (20 ms, or 2 s on coarse timestamps) are copied again while it is down',
    ),
  snapshot: z
    .strictObject({
      create: command.describe(
        'run while the app is down: makes a frozen view of the paths at snapshot.path (e.g. lvcreate -s + mount, zfs snapshot + mount)',
      ),
      path: absPath(
        'where `create` shows the frozen view: each configured path P is read at <path>/<P> (mount the snapshot of /srv at <path>/srv)',
      ),
      remove: command.describe(
        'run once the app is up again (and by `source recover` after a killed run): removes the view; must succeed when it is already gone',
      ),
      createTimeout: duration('how long create may take (the app is down meanwhile)').prefault('1m'),
      removeTimeout: duration('how long remove may take').prefault('5m'),
    })
    .optional()
    .describe('collect: command — the hooks that make and remove a snapshot'),
};

export const sourceSchema = z
  .strictObject({
    name: name('this source: used in generation ids, mails and the sink layout'),
    stateDir: absPath('baton state: kept mirrors, run records, locks').prefault('/var/lib/baton/state'),
    app: z
      .strictObject({
        stop: command.describe('stops the app server'),
        start: command.describe('starts the app server'),
        healthCheck: command
          .optional()
          .describe('exits 0 when the app is healthy; retried until startTimeout'),
        stopTimeout: duration('how long stop may take before its process group is killed').prefault('2m'),
        startTimeout: duration('how long start + healthy may take').prefault('2m'),
        healthInterval: duration('pause between health checks').prefault('1s'),
        maxDowntime: duration(
          'how long the collection may keep the app down: past it the collection is aborted, the app started and the run fails (raise it for a first backup of a large data set)',
        ).prefault('1h'),
      })
      .describe('the app server that is stopped while its data is collected'),
    streams: z
      .strictObject({
        data: z
          .strictObject({
            ...streamBase,
            store: absPath('the Source-Store: acked data generations are moved here'),
            generations: z
              .int()
              .min(1)
              .max(10000)
              .default(3)
              .describe('data generations kept in the source store'),
            ...calendarRetention,
          })
          .describe('the app data stream'),
        logs: z
          .strictObject(streamBase)
          .optional()
          .describe('the log stream (deleted from the source once acked)'),
      })
      .superRefine((streams, ctx) => {
        for (const problem of overlappingDirs(streams)) ctx.addIssue({ code: 'custom', ...problem });
        for (const [n, st] of [
          ['data', streams.data],
          ['logs', streams.logs],
        ] as const) {
          if (st === undefined) continue;
          if (st.collect === 'command' && st.snapshot === undefined)
            ctx.addIssue({
              code: 'custom',
              path: [n, 'snapshot'],
              message: 'collect: command needs snapshot:',
            });
          if (st.collect !== 'command' && st.snapshot !== undefined)
            ctx.addIssue({
              code: 'custom',
              path: [n, 'snapshot'],
              message: 'only used with collect: command',
            });
        }
      })
      .describe('what is collected while the app is stopped'),
    limits: z
      .strictObject({
        maxPendingGenerations: z
          .int()
          .min(1)
          .default(10)
          .describe('refuse a new generation when this many un-acked ones wait in a handover'),
        minFreeBytes: z
          .int()
          .min(0)
          .default(100 * 1024 * 1024)
          .describe('free space kept beyond the expected change'),
      })
      .prefault({})
      .describe('safety limits'),
    alerts: z
      .strictObject({
        transportOverdue: duration(
          'an un-acked generation older than this means the transport failed; unset: any generation left from an earlier run',
        ).optional(),
        mail: mailSchema.optional(),
        webhook: webhookSchema.optional(),
        command: alertCommandSchema.optional(),
        ping: pingSchema.optional(),
      })
      .default({})
      .describe('how failures reach people'),
    metrics: metricsSchema,
  })
  .describe('baton source configuration (/etc/baton/source.yaml)');

const sinkStream = z.strictObject({
  user: userName.describe('the stream user on the source'),
  identity: absPath('private key; an OpenSSH certificate next to it (KEY-cert.pub) is used too'),
  generations: z.int().min(1).max(10000).describe('generations kept in the sink store'),
  keepWithin: duration(
    'generations within this of the newest one (by generation id, not the sink clock) are never pruned by count (a burst of tiny generations cannot push out older ones)',
  ).optional(),
  ...calendarRetention,
  anomalyDropPercent: z
    .number()
    .min(0)
    .max(100)
    .default(50)
    .describe(
      'files or bytes dropping by more than this percent against the previous verified generation → alert, no prune this run (0 disables)',
    ),
});

/** Byte rates and sizes: a number of bytes, or with a K, M or G suffix (powers of 1024). */
const byteSize = (what: string) =>
  z
    .union([
      z.int().min(1),
      z
        .string()
        .regex(/^[0-9]{1,12}[KMG]?$/, { error: 'expected bytes like 1048576, 512K, 10M or 2G' })
        .transform((s) => {
          const unit = s.at(-1);
          const mult = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
          return Number(mult === 1 ? s : s.slice(0, -1)) * mult;
        }),
    ])
    .describe(`${what} (bytes, or with K, M, G: 512K, 10M)`);

/** An age X25519 recipient (public key). */
export const AGE_RECIPIENT_PATTERN = /^age1[02-9ac-hj-np-z]{58}$/;

export const offsiteSchema = z
  .strictObject({
    endpoint: z
      .url()
      .optional()
      .describe(
        'S3 endpoint URL, e.g. https://s3.eu-central-1.amazonaws.com or http://minio:9000 (unset: AWS)',
      ),
    region: z.string().min(1).default('us-east-1').describe('S3 region (any value for most S3-compatibles)'),
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'expected an S3 bucket name' })
      .describe('the bucket (create it with Object Lock when objectLock is set)'),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, {
        error: 'expected a key prefix like baton or sinks/sink1',
      })
      .default('baton')
      .describe('every key of this repository is under <prefix>/ (one push at a time per prefix)'),
    provider: z
      .enum(['aws', 'minio', 'ceph', 'b2', 'r2', 'generic'])
      .default('aws')
      .describe('provider profile: which checksum headers the store accepts'),
    forcePathStyle: z
      .boolean()
      .optional()
      .describe('path-style URLs (http://host/bucket/key); default: true for minio, ceph and generic'),
    credentials: z
      .strictObject({
        file: absPath(
          'an AWS shared-credentials file ([profile] aws_access_key_id = …, aws_secret_access_key = …)',
        ).optional(),
        profile: z.string().min(1).optional().describe('the profile in that file (default: default)'),
      })
      .optional()
      .describe(
        'where the access key comes from; unset: the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), then the AWS default chain. Never logged',
      ),
    encryption: z
      .strictObject({
        recipients: z
          .array(z.string().regex(AGE_RECIPIENT_PATTERN, { error: 'expected an age public key age1…' }))
          .optional()
          .describe('age X25519 public keys (age1…); the identities stay offline until a restore'),
        recipientsFile: absPath('a file of age public keys, one a line (# comments allowed)').optional(),
      })
      .refine((e) => (e.recipients?.length ?? 0) > 0 || e.recipientsFile !== undefined, {
        error: 'set recipients or recipientsFile',
      })
      .optional()
      .describe('age encryption of every object (unset: objects are plain, and config check warns)'),
    objectLock: z
      .strictObject({
        mode: z.enum(['governance', 'compliance']).default('governance').describe('S3 Object Lock mode'),
        retain: duration('every object is written with retain-until = now + this'),
      })
      .optional()
      .describe('S3 Object Lock retention for every object (the bucket must have Object Lock enabled)'),
    generations: z
      .int()
      .min(1)
      .max(100000)
      .optional()
      .describe('committed generations kept offsite per source and stream (unset: all; prune removes none)'),
    keepWithin: duration(
      'offsite generations within this of the newest one are never pruned by count',
    ).optional(),
    ...calendarRetention,
    parallel: z.int().min(1).max(64).default(4).describe('uploads at once'),
    bwlimit: byteSize('upload bandwidth limit per second for the whole push').optional(),
    packSize: byteSize('target size of a pack of small files and chunks').default(32 * 1024 * 1024),
    afterPull: z
      .boolean()
      .default(false)
      .describe('push at the end of every successful `sink pull` (a failed push is its own alert)'),
  })
  .describe('replicate verified sink generations to S3-compatible object storage (`baton offsite`)');

export const sinkSchema = z
  .strictObject({
    store: absPath(
      'the Sink-Store root; must exist and hold the marker file .baton-store (made by `baton install sink`)',
    ),
    stateDir: absPath('baton state: run records, locks').prefault('/var/lib/baton/sink-state'),
    verify: z.boolean().default(true).describe('compare every received file with its manifest hash'),
    storeMode: z
      .enum(['hardlink', 'reflink', 'auto'])
      .default('hardlink')
      .describe(
        'how a new generation shares unchanged data with the previous one: hardlink (unchanged files are hard links, a changed file is a whole new copy), reflink (the previous tree is cloned with cp --reflink=always and rsync updates changed blocks in place: a database file with a few changed pages costs only those pages; needs XFS with reflink=1 or btrfs), auto (reflink where the store can clone, else hardlink)',
      ),
    parallel: z.int().min(1).max(32).default(2).describe('sources pulled at once'),
    timeout: duration('rsync/ssh I/O timeout: a stalled connection fails after this').prefault('10m'),
    limits: z
      .strictObject({
        maxFiles: z.int().min(1).default(10_000_000).describe('most manifest entries accepted from a source'),
        maxBytes: z
          .int()
          .min(1)
          .default(2 ** 44)
          .describe('largest generation accepted from a source, in bytes'),
        maxManifestBytes: z
          .int()
          .min(1)
          .optional()
          .describe(
            'largest manifest accepted from a source, in bytes; a larger one is refused before it is pulled (unset: the smaller of maxBytes and maxFiles × 1024)',
          ),
        maxPullDuration: duration(
          'longest one pull of a source and stream may run; past it the pull is ended, alerted, and the next run resumes from the partial copy',
        ).prefault('6h'),
        minThroughput: z
          .strictObject({
            bytes: z
              .int()
              .min(0)
              .default(2 ** 20)
              .describe('fewer bytes than this received within `window` ends the transfer (0 disables)'),
            window: duration('the window over which `bytes` must arrive').prefault('30m'),
          })
          .prefault({})
          .describe('a trickling source is ended with one line and an alert'),
        futureSkew: duration(
          'a generation id further than this ahead of the sink clock is refused (not pulled, alerted)',
        ).prefault('10m'),
        maxQuarantined: z
          .int()
          .min(1)
          .default(5)
          .describe('quarantined generations kept per source and stream; the oldest are dropped'),
        maxQuarantineBytes: z
          .int()
          .min(0)
          .default(16 * 2 ** 30)
          .describe(
            'bytes kept in .quarantine per source and stream (files only there); the oldest are dropped, the newest is always kept',
          ),
      })
      .prefault({})
      .describe('bounds on what a source may send'),
    sources: z
      .array(
        z
          .strictObject({
            name: name('the source name (its `name:`)'),
            host: z
              .string()
              .min(1)
              .regex(/^[A-Za-z0-9.:_[\]-]+$/, { error: 'expected a host name or address' })
              .describe('ssh host name or address of the source'),
            port: z.int().min(1).max(65535).default(22).describe('ssh port of the source'),
            knownHosts: absPath('known_hosts file pinning the source host key (never accept-new)'),
            bwlimit: byteSize('rsync bandwidth limit of each pull of this source, per second').optional(),
            window: z
              .string()
              .regex(PULL_WINDOW_PATTERN, { error: 'expected a local time window like 01:00-06:00' })
              .refine((w) => w.slice(0, 5) !== w.slice(6), { error: 'start and end must differ' })
              .optional()
              .describe(
                'pull this source only between these local times (HH:MM-HH:MM, may cross midnight, e.g. 22:00-06:00); outside it a pull skips the source (not a failure)',
              ),
            priority: z
              .int()
              .min(-1000)
              .max(1000)
              .default(0)
              .describe(
                'parallel pulls start higher priorities first, then the source whose last successful pull is oldest',
              ),
            streams: z
              .strictObject({ data: sinkStream.optional(), logs: sinkStream.optional() })
              .refine((s) => s.data !== undefined || s.logs !== undefined, {
                error: 'configure data or logs',
              })
              .describe('the streams pulled from this source (at least one)'),
          })
          .describe('one source server'),
      )
      .min(1)
      .refine((list) => new Set(list.map((s) => s.name)).size === list.length, {
        error: 'source names must be unique',
      })
      .describe('the sources this sink pulls from'),
    alerts: z
      .strictObject({
        staleAfter: duration('no new verified generation for this long → alert').optional(),
        offsiteStaleAfter: duration(
          'the newest offsite commit of a stream older than the newest sink generation by more than this → alert',
        ).optional(),
        lockHeldAfter: duration(
          'a pull that finds its source and stream locked by the same live run for longer than this alerts instead of skipping quietly (unset: limits.maxPullDuration + 1h)',
        ).optional(),
        mail: mailSchema.optional(),
        webhook: webhookSchema.optional(),
        command: alertCommandSchema.optional(),
        ping: pingSchema.optional(),
      })
      .default({})
      .describe('how failures reach people'),
    metrics: metricsSchema,
    offsite: offsiteSchema.optional(),
    recoveryTiers: z
      .array(
        z.strictObject({
          name: z.string().min(1).describe('what the tier is, e.g. "HostEurope daily snapshot"'),
          keepDays: z.int().min(1).describe('how many days back it reaches'),
          scope: z.string().min(1).describe('what it covers, e.g. "whole source filesystem"'),
        }),
      )
      .default([])
      .describe('outer rollback tiers shown by `status` (baton does not manage them)'),
  })
  .describe('baton sink configuration (/etc/baton/sink.yaml)');

/** The two config files: `source.yaml` on the app server, `sink.yaml` on the backup server. */
export type ConfigKind = 'source' | 'sink';
export const CONFIG_KINDS: readonly ConfigKind[] = ['source', 'sink'];

export type SourceConfig = z.output<typeof sourceSchema>;
export type SinkConfig = z.output<typeof sinkSchema>;
export type MailConfig = z.output<typeof mailSchema>;
export type PingConfig = z.output<typeof pingSchema>;
export type WebhookConfig = z.output<typeof webhookSchema>;
export type AlertCommandConfig = z.output<typeof alertCommandSchema>;
/** The alert channels of either config (`alerts.mail`, `alerts.webhook`, `alerts.command`). */
export interface AlertChannels {
  mail?: MailConfig | undefined;
  webhook?: WebhookConfig | undefined;
  command?: AlertCommandConfig | undefined;
}
export { STREAMS, type StreamName } from '../core/streams.js';
export type SourceStreamConfig =
  SourceConfig['streams']['data'] | NonNullable<SourceConfig['streams']['logs']>;
export type SinkSourceConfig = SinkConfig['sources'][number];
export type SinkStreamConfig = z.output<typeof sinkStream>;
export type OffsiteConfig = z.output<typeof offsiteSchema>;

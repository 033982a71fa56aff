/**
 * Fixtures for tests of the gate and of the sink that talks to it: generations on disk (tree/,
 * SHA256SUMS, meta.json, manifest written last), a source config pointing at temp dirs, and a fake
 * remote shell that lets a real rsync client talk to `baton gate` without sshd.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runProcess, type RunResult } from '../../src/adapters/run.js';
import { sourceSchema, type SourceConfig, type StreamName } from '../../src/config/schema.js';
import { proveChallenge } from '../../src/generation/ack-proof.js';
import { formatAnswer, parseChallengeHeader, parseRangeLine } from '../../src/core/ack-challenge.js';
import { spawnDialogue } from '../../src/adapters/run.js';
import {
  compareTreeOrder,
  formatManifestLine,
  formatSha256SumsLine,
  MANIFEST_HEADER,
  type ManifestEntry,
} from '../../src/core/manifest.js';

/** The repository root (this file is test/helpers/gate-fixtures.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A tree entry: file content, or a symlink. Directories are implied by the paths. */
export type TreeEntry = string | Buffer | { symlink: string };

export interface GenerationOptions {
  /** Paths relative to tree/ (`a/b.txt`); default: a few small files. */
  files?: Record<string, TreeEntry>;
  source?: string;
  stream?: StreamName;
  /** false: stop before the manifest, like a crashed run (an incomplete generation). Default true. */
  complete?: boolean;
  /**
   * Hostile sources: replaces the manifest text that would be written (`generated`, header and one line
   * per tree entry) with any text or bytes. `manifestSha256` is the hash of what was written.
   */
  manifest?: (generated: string) => string | Buffer;
  /**
   * Hostile sources: changes the generation (the work dir, with tree/, meta.json and manifest written)
   * before it is renamed into place, so that tree and manifest disagree (a file removed, changed, or
   * swapped for a symlink; meta.json made a symlink…).
   */
  tamper?: (dir: string) => Promise<void>;
}

export interface WrittenGeneration {
  id: string;
  dir: string;
  /** sha256 (hex) of the manifest: what the sink acks. Empty for an incomplete generation. */
  manifestSha256: string;
}

export const DEFAULT_TREE: Readonly<Record<string, TreeEntry>> = {
  'README.txt': 'hello from the source\n',
  'db/data.bin': Buffer.from([0, 1, 2, 3, 255, 254, 10, 13]),
  'db/empty': '',
  'etc/app.conf': 'port = 8080\n',
  'etc/current': { symlink: 'app.conf' },
};

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/**
 * Writes `<parent>/<id>/` in the generation layout. Like the real thing it is built under the dot-name
 * `.<id>.tmp`, its manifest is written last, then it is renamed into place. With `complete: false` it
 * stays without a manifest under its real name (what a reader must not count).
 */
export async function writeGeneration(
  parent: string,
  id: string,
  opts: GenerationOptions = {},
): Promise<WrittenGeneration> {
  const files = opts.files ?? DEFAULT_TREE;
  const work = join(parent, `.${id}.tmp`);
  const tree = join(work, 'tree');
  await mkdir(tree, { recursive: true });
  for (const [rel, entry] of Object.entries(files)) {
    const path = join(tree, rel);
    await mkdir(dirname(path), { recursive: true });
    if (typeof entry === 'object' && !Buffer.isBuffer(entry)) await symlink(entry.symlink, path);
    else await writeFile(path, entry);
  }

  const entries = await describeTree(tree);
  const sums = entries
    .filter((e) => e.type === 'f' && e.sha256 !== undefined)
    .map((e) => formatSha256SumsLine(e.sha256 ?? '', e.path));
  await writeFile(join(work, 'SHA256SUMS'), Buffer.concat(sums));
  const files_ = entries.filter((e) => e.type === 'f');
  await writeFile(
    join(work, 'meta.json'),
    `${JSON.stringify(
      {
        id,
        source: opts.source ?? 'test-source',
        stream: opts.stream ?? 'data',
        created: new Date().toISOString(),
        files: files_.length,
        entries: entries.length,
        bytes: files_.reduce((n, e) => n + e.size, 0),
        bytesCopied: files_.reduce((n, e) => n + e.size, 0),
        batonVersion: '0.0.0-test',
      },
      null,
      2,
    )}\n`,
  );
  let manifestSha256 = '';
  if (opts.complete !== false) {
    const generated = `${[MANIFEST_HEADER, ...entries.map(formatManifestLine)].join('\n')}\n`;
    const manifest = opts.manifest ? opts.manifest(generated) : generated;
    await writeFile(join(work, 'manifest'), manifest);
    manifestSha256 = sha256(manifest);
  }
  if (opts.tamper) await opts.tamper(work);
  const dir = join(parent, id);
  await rename(work, dir);
  return { id, dir, manifestSha256 };
}

/** Manifest entries of a tree in tree order (files, directories and symlinks). */
async function describeTree(tree: string): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(tree, rel))).sort((a, b) =>
      compareTreeOrder(Buffer.from(a), Buffer.from(b)),
    );
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const abs = join(tree, relPath);
      const st = await lstat(abs, { bigint: true });
      const base = {
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        user: undefined,
        group: undefined,
        mtimeNs: st.mtimeNs,
        path: Buffer.from(relPath),
      };
      if (st.isSymbolicLink()) {
        const target = Buffer.from(await readlink(abs));
        out.push({ ...base, type: 'l', size: target.length, sha256: undefined, target });
      } else if (st.isDirectory()) {
        out.push({ ...base, type: 'd', size: 0, sha256: undefined, target: undefined });
        await walk(relPath);
      } else {
        const content = await readFile(abs);
        out.push({ ...base, type: 'f', size: content.length, sha256: sha256(content), target: undefined });
      }
    }
  };
  await walk('');
  return out;
}

export interface SourceFixtureOptions {
  name?: string;
  /** streams.data.generations (source store retention). Default 3. */
  generations?: number;
  /** Also configure a logs stream. Default true. */
  logs?: boolean;
  /** The stream user written into the config. Default: root. */
  user?: string;
  /** streams.data calendar retention of the source store (keepDaily … keepYearly). Default: none. */
  calendar?: { keepDaily?: number; keepWeekly?: number; keepMonthly?: number; keepYearly?: number };
}

export interface SourceFixture {
  root: string;
  dataHandover: string;
  store: string;
  logsHandover: string;
  configFile: string;
  config: SourceConfig;
}

/** A source.yaml whose handovers and store live under `root` (created, empty). */
export async function writeSourceFixture(
  root: string,
  opts: SourceFixtureOptions = {},
): Promise<SourceFixture> {
  const dataHandover = join(root, 'handover', 'data');
  const logsHandover = join(root, 'handover', 'logs');
  const store = join(root, 'source-store');
  for (const d of [dataHandover, logsHandover, store]) await mkdir(d, { recursive: true });
  const user = opts.user ?? 'root';
  const raw = {
    name: opts.name ?? 'test-source',
    stateDir: join(root, 'state'),
    app: { stop: ['true'], start: ['true'] },
    streams: {
      data: {
        paths: [join(root, 'app-data')],
        handover: dataHandover,
        user,
        store,
        generations: opts.generations ?? 3,
        ...opts.calendar,
      },
      ...(opts.logs === false
        ? {}
        : { logs: { paths: [join(root, 'app-logs')], handover: logsHandover, user } }),
    },
  };
  const configFile = join(root, 'source.yaml');
  await writeFile(configFile, stringify(raw));
  return { root, dataHandover, store, logsHandover, configFile, config: sourceSchema.parse(raw) };
}

/** argv of `baton gate <stream> --config <file>` run from the sources (no build needed). */
export function gateCliArgv(stream: StreamName, configFile: string): string[] {
  return [
    process.execPath,
    '--import',
    'tsx',
    join(REPO_ROOT, 'src/cli/main.ts'),
    'gate',
    stream,
    '--config',
    configFile,
  ];
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Writes an executable fake remote shell for `rsync -e <script>` and returns its path (no spaces, so
 * rsync can split `-e` safely). rsync runs `<rsh> [-l user] host command…`; like sshd with a forced
 * command, the script drops the host, puts the rest joined by spaces into SSH_ORIGINAL_COMMAND and runs
 * `gateArgv` (e.g. {@link gateCliArgv}). It runs from the repository root so `--import tsx` resolves.
 */
export async function writeFakeRsh(dir: string, name: string, gateArgv: readonly string[]): Promise<string> {
  if (/\s/.test(dir) || /\s/.test(name))
    throw new Error(`fake rsh path must not contain spaces: ${dir}/${name}`);
  await mkdir(dir, { recursive: true });
  const script = join(dir, name);
  const text = [
    '#!/bin/sh',
    '# Fake ssh for tests: rsync calls <this> [-l user] host command...; the host is ignored.',
    'if [ "$1" = "-l" ]; then shift 2; fi',
    'shift',
    'SSH_ORIGINAL_COMMAND="$*"',
    'export SSH_ORIGINAL_COMMAND',
    `cd ${shellQuote(REPO_ROOT)} || exit 255`,
    `exec ${gateArgv.map(shellQuote).join(' ')}`,
    '',
  ].join('\n');
  await writeFile(script, text);
  await chmod(script, 0o755);
  return script;
}

/**
 * Runs one remote command through a fake rsh as ssh would: `rsh host "<command>"`, so the command
 * reaches the gate byte for byte (newlines included).
 */
export function runThroughRsh(rsh: string, command: string, timeoutMs = 60_000): Promise<RunResult> {
  return runProcess([rsh, 'x', command], { timeoutMs, captureStdout: true });
}

/** `rsync <args…>` with the fake rsh as remote shell. */
export function rsyncThroughRsh(
  rsh: string,
  args: readonly string[],
  timeoutMs = 60_000,
): Promise<RunResult> {
  return runProcess(['rsync', '-e', rsh, ...args], { timeoutMs });
}

export interface AckDialogueResult {
  code: number | null;
  /** The gate's stdout after the challenge: its JSON result line, if any. */
  stdout: string;
  stderr: string;
  /** Whether the gate sent a challenge at all. */
  challenged: boolean;
}

/**
 * Runs `ack ID SHA` through `argv` (a fake rsh or ssh … user@host, without the command) as the sink does:
 * reads the gate's challenge and answers it from `copyDir` (a copy of the generation). `answer` replaces
 * the proofs (a thief's guess); without `copyDir` and `answer` stdin is closed unanswered.
 */
export async function ackDialogue(
  argv: readonly string[],
  command: string,
  opts: { copyDir?: string; answer?: (proofs: string[] | undefined, count: number) => string } = {},
): Promise<AckDialogueResult> {
  const d = spawnDialogue([...argv, command], { timeoutMs: 60_000, maxLines: 70, maxLineBytes: 65_536 });
  const head = await d.readLine();
  const parsed = head === undefined ? undefined : parseChallengeHeader(head);
  if (parsed === undefined || !parsed.ok) {
    const end = await d.finish();
    return { code: end.code, stdout: head ?? '', stderr: end.stderr, challenged: false };
  }
  const ranges = [];
  for (let i = 0; i < parsed.value.count; i++) {
    const r = parseRangeLine((await d.readLine()) ?? '');
    assert.ok(r.ok, 'a well-formed challenge line');
    ranges.push(r.value);
  }
  const proofs =
    opts.copyDir === undefined
      ? undefined
      : await proveChallenge(opts.copyDir, { nonce: parsed.value.nonce, ranges });
  if (opts.answer) d.write(opts.answer(proofs, ranges.length));
  else if (proofs) d.write(formatAnswer(proofs));
  if (proofs || opts.answer) return { ...(await readRest(d)), challenged: true };
  const end = await d.finish();
  return { code: end.code, stdout: '', stderr: end.stderr, challenged: true };
}

async function readRest(
  d: ReturnType<typeof spawnDialogue>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const lines: string[] = [];
  for (let l = await d.readLine(); l !== undefined; l = await d.readLine()) lines.push(l);
  const end = await d.finish();
  return { code: end.code, stdout: lines.map((l) => `${l}\n`).join(''), stderr: end.stderr };
}

/** `ack ID SHA` through a fake rsh, answered from `copyDir` (see {@link ackDialogue}). */
export function ackThroughRsh(rsh: string, command: string, copyDir?: string): Promise<AckDialogueResult> {
  return ackDialogue([rsh, 'x'], command, copyDir === undefined ? {} : { copyDir });
}

/** A copy of a generation dir (what a sink that really pulled it holds), under `parent`. */
export async function copyGeneration(dir: string, parent: string): Promise<string> {
  await mkdir(parent, { recursive: true });
  const to = join(parent, `${basename(dir)}-${Math.random().toString(16).slice(2)}`);
  const r = await runProcess(['cp', '-a', dir, to], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`cp -a ${dir}: ${r.stderr}`);
  return to;
}

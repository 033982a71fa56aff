/**
 * Issue #14, the pre-pass's change journal with changed dirs: while the app is down only what
 * changed since the pre-pass started is copied, names gone are removed, new dirs copied whole, and
 * the result is what a full `rsync -a --delete` refresh would make of the copy, down to dir mtimes,
 * modes, hard links and excludes (checked with rsync's own itemized dry run: nothing left to do).
 * Real files, real find, real rsync.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  appendFile,
  chmod,
  link,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { runProcess } from '../../src/adapters/run.js';
import { createLogger, recentLogLines } from '../../src/adapters/log.js';
import { sourceSchema, type SourceStreamConfig } from '../../src/config/schema.js';
import {
  FINE_RACY_MARGIN_MS,
  collectStream,
  journalPass,
  mirrorArgv,
  prepassStream,
  racyMarginMs,
  type Prepassed,
} from '../../src/source/collect.js';
import type { PrepassJournal } from '../../src/source/prepass-journal.js';

// info records kept for recentLogLines() (which pass ran), written nowhere
const log = createLogger({ format: 'json', level: 'info', fd: openSync('/dev/null', 'w') });
let root: string;
let fine = false;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'baton-journal-unit-'));
  fine = (await racyMarginMs([root])) === FINE_RACY_MARGIN_MS;
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const EXCLUDE = ['*.tmp', 'cache/'];

function streamOf(app: string, exclude = EXCLUDE): SourceStreamConfig {
  return sourceSchema.parse({
    name: 'a',
    app: { stop: 'true', start: 'true' },
    streams: { data: { paths: [app], exclude, handover: '/h/d', user: 'u', store: '/st' } },
  }).streams.data;
}

interface Case {
  app: string;
  mirror: string;
  pathsFile: string;
  stream: SourceStreamConfig;
}

let n = 0;
/** A fresh app dir with a small tree, and its first full mirror. */
async function freshCase(exclude = EXCLUDE): Promise<Case> {
  const base = join(root, `c${n++}`);
  // the mirror and its paths file (rewritten by each pass) are not in a dir above the app: its mtime
  const app = join(base, 'app');
  for (const d of ['a/b', 'c', 'cache', 'e'].map((x) => join(app, x))) await mkdir(d, { recursive: true });
  const files: Record<string, string> = {
    'a/f1': 'one',
    'a/f2': 'two two',
    'a/b/g1': 'gee',
    'c/h1': 'aitch',
    top: 'top file',
    'x.tmp': 'excluded',
    'cache/k': 'cached',
  };
  for (const [f, text] of Object.entries(files)) await writeFile(join(app, f), text);
  await symlink('a/f1', join(app, 'l'));
  await link(join(app, 'c/h1'), join(app, 'a/hl'));
  const state = join(root, `s${n}`);
  const c: Case = {
    app,
    mirror: join(state, 'mirror'),
    pathsFile: join(state, 'paths.json'),
    stream: streamOf(app, exclude),
  };
  await collectStream('data', c.stream, c.mirror, c.pathsFile, log);
  return c;
}

async function prepass(c: Case): Promise<Prepassed & { journal: PrepassJournal }> {
  const p = await prepassStream('data', c.stream, { mirror: c.mirror, pathsFile: c.pathsFile }, log);
  assert.ok(p?.journal, 'the pre-pass took a journal');
  return { ...p, journal: p.journal };
}

/** What a full refresh would still change in the copy (rsync's itemized dry run): '' when nothing. */
async function leftForFullPass(c: Case): Promise<string> {
  const argv = mirrorArgv(c.stream, c.mirror);
  argv.splice(1, 0, '--dry-run', '--itemize-changes');
  const r = await runProcess(argv, { captureStdout: true, env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(r.code, 0, r.stderr);
  // the dirs above the test's own dir (the system's tmp dir) change under other programs
  const above = (name: string) =>
    `${root}/`.startsWith(`/${name.replace(/^\/+/, '')}`) && `/${name.replace(/^\/+/, '')}` !== `${root}/`;
  return r.stdout
    .split('\n')
    .filter((l) => l !== '' && !(l.startsWith('.d..t...... ') && above(l.slice(12))))
    .join('\n');
}

/** All entries below `dir` (relative), dirs first. */
async function listAll(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const out = { files: [] as string[], dirs: [] as string[] };
  const walk = async (rel: string) => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.dirs.push(p);
        await walk(p);
      } else out.files.push(p);
    }
  };
  await walk('');
  return out;
}

/** Same-size rewrite with the mtime set back to what it was: only the ctime tells. */
async function rewriteKeepingMtime(f: string): Promise<void> {
  const st = await stat(f, { bigint: true });
  const len = Number(st.size);
  await writeFile(f, 'Z'.repeat(len));
  const ns = st.mtimeNs;
  const r = await runProcess([
    'touch',
    '-m',
    '-d',
    `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`,
    f,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

type Op =
  | { t: 'rewrite' | 'append' | 'rm' | 'chmod' | 'future'; i: number }
  | { t: 'create' | 'mkdir' | 'excluded' | 'symlink'; d: number; k: number }
  | { t: 'mv' | 'ln'; i: number; d: number; k: number }
  | { t: 'mvdir' | 'rmdir'; i: number; d: number }
  | { t: 'mvover'; i: number; j: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constantFrom('rewrite', 'append', 'rm', 'chmod', 'future'), i: fc.nat(50) }),
  fc.record({ t: fc.constantFrom('create', 'mkdir', 'excluded', 'symlink'), d: fc.nat(50), k: fc.nat(3) }),
  fc.record({ t: fc.constantFrom('mv', 'ln'), i: fc.nat(50), d: fc.nat(50), k: fc.nat(3) }),
  fc.record({ t: fc.constantFrom('mvdir', 'rmdir'), i: fc.nat(50), d: fc.nat(50) }),
  fc.record({ t: fc.constant('mvover'), i: fc.nat(50), j: fc.nat(50) }),
);

/** Applies one op to the live tree, picking its targets among what is there now. */
async function apply(app: string, op: Op, seq: number): Promise<void> {
  const { files, dirs } = await listAll(app);
  const pick = <T>(xs: T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);
  const dirAt = (d: number) => join(app, pick(['', ...dirs], d) ?? '');
  const file = pick(files, 'i' in op ? op.i : 0);
  const at = (p: string) => join(app, p);
  switch (op.t) {
    case 'rewrite':
      if (file && !(await isLink(at(file)))) await rewriteKeepingMtime(at(file));
      return;
    case 'append':
      if (file && !(await isLink(at(file)))) await appendFile(at(file), `more ${seq}\n`);
      return;
    case 'rm':
      if (file) await rm(at(file));
      return;
    case 'chmod':
      if (file && !(await isLink(at(file)))) await chmod(at(file), 0o600);
      else await chmod(dirAt(op.i), 0o750);
      return;
    case 'future':
      if (file && !(await isLink(at(file))))
        await utimes(at(file), Date.now() / 1000 + 3600, Date.now() / 1000 + 3600);
      return;
    case 'create':
      await writeFile(join(dirAt(op.d), `n${seq}-${op.k}`), 'x'.repeat(op.k * 7));
      return;
    case 'excluded':
      if (op.k % 2) await writeFile(join(dirAt(op.d), `t${seq}.tmp`), 'tmp');
      else {
        await mkdir(join(dirAt(op.d), 'cache'), { recursive: true });
        await writeFile(join(dirAt(op.d), 'cache', `k${seq}`), 'cached');
      }
      return;
    case 'symlink':
      await symlink(`target-${seq}`, join(dirAt(op.d), `s${seq}`));
      return;
    case 'mkdir': {
      const d = join(dirAt(op.d), `d${seq}`);
      await mkdir(join(d, 'sub'), { recursive: true });
      await writeFile(join(d, 'sub', 'inner'), `inner ${seq}`);
      if (op.k > 1) await writeFile(join(d, 'g1'), 'same name as an old file');
      return;
    }
    case 'mv':
    case 'ln': {
      if (!file) return;
      const to =
        op.k === 0 && files.length > 1 ? at(pick(files, op.i + 1) ?? '') : join(dirAt(op.d), `m${seq}`);
      if (to === at(file)) return;
      if (op.t === 'mv') await rename(at(file), to);
      else await link(at(file), to).catch(() => undefined);
      return;
    }
    case 'mvdir': {
      const d = pick(dirs, op.i);
      if (!d) return;
      const to = join(dirAt(op.d), `r${seq}`);
      if (to.startsWith(`${at(d)}/`)) return;
      await rename(at(d), to);
      return;
    }
    case 'rmdir': {
      const d = pick(dirs, op.i);
      if (d) await rm(at(d), { recursive: true });
      return;
    }
    case 'mvover': {
      // the copy's dir is emptied, then another dir (old ctimes below it) is renamed over it
      const from = pick(dirs, op.i);
      const onto = pick(dirs, op.j);
      if (!from || !onto || from === onto || onto.startsWith(`${from}/`) || from.startsWith(`${onto}/`))
        return;
      for (const e of await readdir(at(onto))) await rm(join(at(onto), e), { recursive: true });
      await rename(at(from), at(onto));
      return;
    }
  }
}

async function isLink(p: string): Promise<boolean> {
  const { lstat } = await import('node:fs/promises');
  return (await lstat(p)).isSymbolicLink();
}

test('after any changes since the pre-pass (files and dirs created, removed, renamed, rewritten), the journal pass leaves nothing for a full refresh to do', async (t) => {
  if (!fine) return t.skip(`${tmpdir()} does not keep nanosecond timestamps: no journal`);
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 10 }), async (ops) => {
      const c = await freshCase();
      const p = await prepass(c);
      let seq = 0;
      for (const op of ops) await apply(c.app, op, seq++);
      const r = await journalPass('data', c.stream, c.mirror, p, log);
      if (r === undefined) {
        // the one case left to the full pass: a dir renamed in that holds a hard-linked file
        assert.match(
          recentLogLines().at(-1) ?? '',
          /full pass runs: a dir renamed in holds a file with several hard links/,
        );
        await collectStream('data', c.stream, c.mirror, c.pathsFile, log);
      }
      assert.equal(await leftForFullPass(c), '', `ops: ${JSON.stringify(ops)}`);
    }),
    { numRuns: 15 },
  );
});

test('a dir renamed over an emptied dir of the copy: the same names below it are copied, not taken for the old ones', async (t) => {
  if (!fine) return t.skip('no nanosecond timestamps here');
  const c = await freshCase();
  // a/b and e have a file of the same name and size, with the same mtime
  await writeFile(join(c.app, 'e', 'g1'), 'GEE');
  const st = await stat(join(c.app, 'a/b/g1'));
  await utimes(join(c.app, 'e', 'g1'), st.atime, st.mtime);
  await mkdir(join(c.app, 'e', 'deep'));
  await mkdir(join(c.app, 'a', 'b', 'deep'));
  await writeFile(join(c.app, 'e', 'deep', 'z'), 'new');
  await writeFile(join(c.app, 'a', 'b', 'deep', 'z'), 'old');
  await collectStream('data', c.stream, c.mirror, c.pathsFile, log);
  await new Promise((r) => setTimeout(r, 50));
  const p = await prepass(c);
  await rm(join(c.app, 'a', 'b'), { recursive: true });
  await mkdir(join(c.app, 'a', 'b'));
  await rename(join(c.app, 'e'), join(c.app, 'a', 'b'));
  assert.ok(await journalPass('data', c.stream, c.mirror, p, log), 'the journal pass ran');
  assert.equal(await leftForFullPass(c), '');
});

test('a file the pre-pass dropped as racily clean (mtime in the future) but whose ctime is old is copied again', async (t) => {
  if (!fine) return t.skip('no nanosecond timestamps here');
  const c = await freshCase();
  const f = join(c.app, 'a', 'f1');
  const future = Date.now() / 1000 + 600;
  await utimes(f, future, future);
  await collectStream('data', c.stream, c.mirror, c.pathsFile, log);
  // the ctime of that utimes is now clearly before the pre-pass's start
  await new Promise((r) => setTimeout(r, 100));
  const p = await prepass(c);
  assert.deepEqual(p.racy, [f], 'the pre-pass dropped its copy');
  assert.ok(await journalPass('data', c.stream, c.mirror, p, log), 'the journal pass ran');
  assert.equal(await leftForFullPass(c), '', 'the dropped file is back in the copy');
});

test('a same-size rewrite within one timestamp tick of the pre-pass (mtime unchanged) is copied', async (t) => {
  if (!fine) return t.skip('no nanosecond timestamps here');
  const c = await freshCase();
  const p = await prepass(c);
  await rewriteKeepingMtime(join(c.app, 'a', 'f2'));
  assert.ok(await journalPass('data', c.stream, c.mirror, p, log));
  assert.equal(await leftForFullPass(c), '');
});

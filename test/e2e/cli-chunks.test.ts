import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// What a start of the built CLI compiles (scripts/bundle.mjs splits at dynamic imports): `sink pull` and
// `baton gate` run on every pull, so neither may load the offsite engine (age-encryption, about 0.12 s
// of CPU per start), the SMTP client or the AWS SDK before one is used. Reads the bundle `npm run
// build` wrote: the chunks a static `import` reaches from the one main.js loads for the command.

const cli = fileURLToPath(new URL('../../dist/cli/', import.meta.url));
const chunks = join(cli, 'chunks');

/** The chunk files statically imported from `file`, transitively, `file` included. */
function staticClosure(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = readFileSync(join(chunks, file), 'utf8');
  for (const m of text.matchAll(/^(?:import [^;]*? from |import )"\.\/([^"]+\.js)";?$/gm)) {
    if (m[1] !== undefined) staticClosure(m[1], seen);
  }
  return seen;
}

/** The chunk main.js imports (dynamically) for `gate` or for every other command. */
function entryChunk(prefix: 'gate' | 'commands'): string {
  const found = readdirSync(chunks).filter((f) => f.startsWith(`${prefix}-`) && f.endsWith('.js'));
  assert.equal(found.length, 1, `one ${prefix} chunk in ${chunks}: ${found.join(', ')}`);
  assert.match(
    readFileSync(join(cli, 'main.js'), 'utf8'),
    new RegExp(`import\\("\\./chunks/${found[0]}"\\)`),
  );
  return found[0] ?? '';
}

/** The npm packages whose code the chunks hold (esbuild's `// node_modules/<pkg>/…` markers). */
function packagesIn(files: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(join(chunks, f), 'utf8').matchAll(
      /^\/\/ (?:.*\/)?node_modules\/((?:@[^/]+\/)?[^/]+)\//gm,
    )) {
      if (m[1] !== undefined) out.add(m[1]);
    }
  }
  return out;
}

const LAZY = ['age-encryption', '@noble/curves', '@noble/ciphers', 'nodemailer', '@aws-sdk/client-s3'];

for (const prefix of ['commands', 'gate'] as const) {
  test(`a start of ${prefix === 'gate' ? '`baton gate`' : 'every other command (`sink pull`)'} loads no offsite engine, SMTP client or AWS SDK`, () => {
    const closure = staticClosure(entryChunk(prefix));
    const packages = packagesIn(closure);
    assert.ok(
      packages.has('zod') && packages.has('commander'),
      `the closure holds the CLI's own deps: ${[...packages].join(', ')}`,
    );
    for (const pkg of LAZY)
      assert.ok(!packages.has(pkg), `${pkg} is loaded at start-up by ${[...closure].join(', ')}`);
    // the offsite engine's own source, not only its dependencies
    const text = [...closure].map((f) => readFileSync(join(chunks, f), 'utf8')).join('\n');
    assert.doesNotMatch(text, /^\/\/ src\/offsite\/(crypto|repo|push|run-push)\.ts$/m);
  });
}

test('the offsite engine and the SMTP client are still in the bundle, behind a dynamic import', () => {
  const all = readdirSync(chunks).filter((f) => f.endsWith('.js'));
  assert.ok(packagesIn(all).has('age-encryption'));
  assert.ok(packagesIn(all).has('nodemailer'));
  const commands = readFileSync(join(chunks, entryChunk('commands')), 'utf8');
  assert.match(commands, /import\("\.\/offsite-engine-[A-Z0-9]+\.js"\)/);
});

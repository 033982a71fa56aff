/**
 * Stand-in for `baton verify --deep DIR` while that command does not exist: runs the sink's
 * verifyGeneration with hashes on, no link base (every file is read and hashed), and prints
 * `{"ok":…,"files":…,"bytes":…,"hashed":…,"ms":…}` (ms: the verification alone, without startup).
 *
 *   node --import tsx bench/verify-deep.ts GENERATION_DIR
 */
import { verifyGeneration } from '../src/generation/verify.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node --import tsx bench/verify-deep.ts GENERATION_DIR\n');
  process.exitCode = 2;
} else {
  const t = performance.now();
  const r = await verifyGeneration({ dir, hashes: true });
  const ms = performance.now() - t;
  process.stdout.write(
    `${JSON.stringify({ ok: r.ok, files: r.files, bytes: r.bytes, hashed: r.hashed, ms: Math.round(ms), problems: r.problems.slice(0, 5) })}\n`,
  );
  if (!r.ok) {
    process.stderr.write(`verify-deep: ${dir}: ${r.problems.length} problem(s)\n`);
    process.exitCode = 1;
  }
}

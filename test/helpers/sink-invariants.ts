import assert from 'node:assert/strict';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runBaton, show } from './cli.js';
import type { SmtpSink } from './smtp.js';
import type { RunResult } from '../../src/adapters/run.js';

// Checks shared by the fault tests of the sink (issue "Faults", invariants I2–I4).

/** Every path under `dir` with its type, size and mtime: equal before and after = nothing written. */
export async function treeListing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const st = await lstat(join(d, name));
      out.push(`${rel}${name} ${st.mode.toString(8)} ${st.isDirectory() ? '-' : st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) await walk(join(d, name), `${rel}${name}/`);
    }
  };
  if (existsSync(dir)) await walk(dir, '');
  return out;
}

/** The published generations of a sink stream: id -> its manifest (I2: none lost or changed). */
export async function publishedGenerations(streamDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!existsSync(streamDir)) return out;
  for (const id of (await readdir(streamDir)).filter((n) => !n.startsWith('.')).sort()) {
    out.set(id, await readFile(join(streamDir, id, 'manifest'), 'utf8'));
  }
  return out;
}

/** I2: every generation of `before` is still there with the same manifest (and maybe newer ones). */
export function assertNoneLost(before: Map<string, string>, after: Map<string, string>): void {
  for (const [id, manifest] of before) {
    assert.ok(after.has(id), `verified generation ${id} was lost`);
    assert.equal(after.get(id), manifest, `generation ${id} changed`);
  }
}

/**
 * I4 for a failed sink run: exit `code`, the last stderr line is one `baton: …` line matching
 * `message`, `baton status` exits 1 showing the failure from the persisted record, and an alert
 * mail (one more than `mailsBefore`) whose subject matches `subject`.
 */
export async function assertSinkFailure(
  r: RunResult,
  o: { code: number; message: RegExp; config: string; smtp: SmtpSink; mailsBefore: number; subject: RegExp },
): Promise<void> {
  assert.equal(r.code, o.code, show(r));
  const last = r.stderr.trim().split('\n').at(-1) ?? '';
  assert.match(last, /^baton: /, show(r));
  assert.match(last, o.message, show(r));
  const status = await runBaton(['status', '--config', o.config, '--json']);
  assert.equal(status.code, 1, `status must report the failure: ${show(status)}`);
  const report = JSON.parse(status.stdout) as {
    lastRuns: Array<{ ok: boolean; error: string | null }>;
    problems: Array<{ kind: string; message: string }>;
  };
  assert.ok(
    report.lastRuns.some((run) => !run.ok && o.message.test(run.error ?? '')),
    `the failure record: ${status.stdout}`,
  );
  assert.ok(report.problems.some((p) => p.kind === 'run-failed'));
  const mails = await o.smtp.waitFor(o.mailsBefore + 1);
  assert.match(mails.at(-1)?.subject ?? '', o.subject);
}

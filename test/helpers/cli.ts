import { fileURLToPath } from 'node:url';
import { runProcess, type RunResult } from '../../src/adapters/run.js';

export const BATON_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** Runs the built CLI (`npm run build` first) and resolves with its exit and output. */
export function runBaton(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return runProcess([process.execPath, BATON_MAIN, ...args], {
    env: { ...process.env, ...opts.env },
    timeoutMs: opts.timeoutMs ?? 120_000,
    captureStdout: true,
    ...(opts.input === undefined ? {} : { input: opts.input }),
  });
}

/** For assertion messages: everything a failed run said. */
export function show(r: RunResult): string {
  return `exit ${r.code} signal ${r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

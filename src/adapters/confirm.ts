import { createInterface } from 'node:readline/promises';
import { ConfigError } from '../errors.js';

/**
 * Asks on the terminal to type `expected` to go on. Throws ConfigError (exit 2) without a terminal
 * (cron, pipes: pass --yes there) and when the answer differs; nothing has been changed then.
 */
export async function confirmByTyping(question: string, expected: string, step: string): Promise<void> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new ConfigError('no terminal to confirm on: pass --yes to restore without asking', { step });
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // Ctrl-C (readline takes it from the terminal) and Ctrl-D end the question as a "no".
  const ac = new AbortController();
  rl.on('SIGINT', () => ac.abort());
  rl.on('close', () => ac.abort());
  let answer: string | undefined;
  try {
    answer = await rl.question(`${question}\nType ${expected} to go on: `, { signal: ac.signal });
  } catch {
    answer = undefined;
  } finally {
    rl.close();
  }
  if (answer?.trim() !== expected) throw new ConfigError('not confirmed: nothing was changed', { step });
}

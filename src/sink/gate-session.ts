import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { FrameReader } from '../adapters/frame-reader.js';
import type { Dialogue, DialogueLimits, RunResult } from '../adapters/run.js';
import { describeSshFailure } from '../adapters/ssh.js';
import type { Logger } from '../adapters/log.js';
import {
  isReplyHeader,
  MAX_REPLY_HEADER_BYTES,
  parseReplyHeader,
  SESSION_HELLO,
} from '../core/gate-session.js';
import { JobError, oneLine } from '../errors.js';
import { GATE_REPLY_MAX_BYTES, type Transport } from './transport.js';

/** How much of the session's stderr is kept (its last lines say why the gate refused). */
const STDERR_TAIL_BYTES = 16 * 1024;

/** Why a session answered nothing at all to a request: the request is sent again in a session of its own. */
class SessionGone extends Error {}

/**
 * One gate session for a whole pull (src/core/gate-session.ts): `list-head`, `ack` and `reject` go over
 * one ssh channel to one gate process instead of a channel and a node start on the source each.
 * Returns a Transport whose `run` and `dialogue` use the session; rsync keeps its own channel. A gate of
 * an older baton refuses `session`: then `transport` itself comes back (one session per command, as
 * before). A session that ends before a request got any answer (the gate's idle limit, its request cap)
 * hands that request and every later one to `transport`. Every reply is bounded and parsed as hostile:
 * its header ({@link parseReplyHeader}) against the caller's cap, then exactly the bytes it announced.
 */
export async function openGateSession(
  transport: Transport,
  timeoutMs: number,
  log: Logger,
): Promise<Transport> {
  if (transport.spawn === undefined) return transport;
  const session = new GateSession(transport.spawn('session'), timeoutMs);
  const hello = await session.hello();
  if (hello !== 'ok') {
    const end = await session.end();
    if (hello === 'refused' && end.stderr.includes('baton gate: refused: not an allowed command')) {
      log.info({ step: 'list' }, 'the gate serves no sessions (an older baton): one ssh session per command');
      return transport;
    }
    const gateSaid = end.stderr.split('\n').find((l) => l.startsWith('baton gate:'));
    throw new JobError(
      `list over ${transport.describe} failed: ${gateSaid ?? (hello === 'late' ? 'timed out' : describeSshFailure(end))}`,
      { step: 'list' },
    );
  }
  let queue: Promise<unknown> = Promise.resolve();
  // one request at a time: the next waits for the one before to end
  const serial = <T>(job: () => Promise<T>): Promise<T> => {
    const next = queue.then(job, job);
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    ...transport,
    run: (command, ms, maxStdoutBytes = GATE_REPLY_MAX_BYTES, asBytes = false) =>
      serial(async () => {
        if (session.usable) {
          try {
            return await session.run(command, ms, maxStdoutBytes, asBytes);
          } catch (e) {
            if (!(e instanceof SessionGone)) throw e;
            log.info({ step: 'gate' }, `the gate session ended (${e.message}): one ssh session per command`);
          }
        }
        return transport.run(command, ms, maxStdoutBytes, asBytes);
      }),
    dialogue: (command, limits) =>
      session.usable
        ? session.dialogue(command, limits, () => transport.dialogue(command, limits))
        : transport.dialogue(command, limits),
    close: async () => {
      await session.end();
      await transport.close();
    },
  };
}

class GateSession {
  private readonly reader: FrameReader;
  private stderr = Buffer.alloc(0);
  private readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;
  /** set after a reply that broke the protocol: the session is not used again */
  private broken = false;

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly timeoutMs: number,
  ) {
    this.reader = new FrameReader(child.stdout);
    child.stderr.on('data', (b: Buffer) => {
      this.stderr = Buffer.concat([this.stderr, b]);
      if (this.stderr.length > STDERR_TAIL_BYTES)
        this.stderr = this.stderr.subarray(this.stderr.length - STDERR_TAIL_BYTES);
    });
    child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
      child.on('error', () => {
        this.exitCode = 127;
        resolve(127);
      });
    });
  }

  /** Still worth a request: not broken, not exited, its stdout not ended. */
  get usable(): boolean {
    return !this.broken && this.exitCode === undefined && !this.reader.done;
  }

  /** Waits for the gate's first line: `ok` (a session), `refused` (the gate ended without one), `late`. */
  async hello(): Promise<'ok' | 'refused' | 'late'> {
    try {
      const line = await this.reader.line(SESSION_HELLO.length + 1, this.timeoutMs);
      return line === SESSION_HELLO ? 'ok' : 'refused';
    } catch {
      return this.reader.done ? 'refused' : 'late';
    }
  }

  private send(command: string): void {
    this.child.stdin.write(`${command}\n`);
  }

  private fail(why: string): never {
    this.broken = true;
    this.kill();
    throw new JobError(why, { step: 'gate' });
  }

  /** The next reply frame: its exit code and bytes (at most `maxBytes`), or `exceeded`. */
  private async frame(
    header: string | undefined,
    maxBytes: number,
    ms: number,
  ): Promise<{ code: number; body: Buffer } | { exceeded: true }> {
    if (header === undefined) return this.fail('the gate session ended in the middle of a reply');
    // a refusal is one line; a success at most what the caller reads of this command
    const h = parseReplyHeader(header, Number.MAX_SAFE_INTEGER);
    if (!h.ok) return this.fail(`the gate session sent a bad reply: ${h.error}`);
    if (h.value.code !== 0 && h.value.bytes > GATE_REPLY_MAX_BYTES)
      return this.fail(`the gate session sent a refusal of ${h.value.bytes} bytes`);
    if (h.value.bytes > maxBytes) {
      this.broken = true;
      this.kill();
      return { exceeded: true };
    }
    const body = await this.reader.bytes(h.value.bytes, ms);
    if (body === undefined) return this.fail('the gate session ended in the middle of a reply');
    return { code: h.value.code, body };
  }

  /** A one-line request: its reply as `transport.run` would give it (stdout on exit 0, else the gate's line as stderr). */
  async run(command: string, ms: number, maxBytes: number, asBytes: boolean): Promise<RunResult> {
    const started = Date.now();
    this.send(command);
    let header: string | undefined;
    try {
      header = await this.reader.line(MAX_REPLY_HEADER_BYTES, ms);
    } catch (e) {
      this.broken = true;
      this.kill();
      return this.result(command, started, {
        code: null,
        timedOut: /within/.test(oneLine(e)),
        stderr: oneLine(e),
      });
    }
    if (header === undefined && this.reader.empty) throw new SessionGone('no answer');
    try {
      const f = await this.frame(header, maxBytes, ms);
      if ('exceeded' in f)
        return {
          ...this.result(command, started, { code: null, timedOut: false, stderr: '' }),
          exceeded: { stream: 'stdout', limitBytes: maxBytes },
        };
      const ok = f.code === 0;
      return {
        ...this.result(command, started, {
          code: f.code,
          timedOut: false,
          stderr: ok ? '' : f.body.toString('utf8'),
        }),
        stdout: ok && !asBytes ? f.body.toString('utf8') : '',
        ...(ok && asBytes ? { stdoutBytes: f.body } : {}),
      };
    } catch (e) {
      return this.result(command, started, {
        code: null,
        timedOut: /within/.test(oneLine(e)),
        stderr: oneLine(e),
      });
    }
  }

  private result(
    command: string,
    started: number,
    r: { code: number | null; timedOut: boolean; stderr: string },
  ): RunResult {
    return { argv: ['session', command], signal: null, durationMs: Date.now() - started, stdout: '', ...r };
  }

  /**
   * The ack's dialogue over the session: the challenge arrives as lines, the answer goes back, and the
   * reply frame ends it (its line on exit 0, else `finish` gives its code and the gate's line). When the
   * session ended before anything came back, the request goes to `fallback` (a session of its own).
   */
  dialogue(command: string, limits: DialogueLimits, fallback: () => Dialogue): Dialogue {
    let own: Dialogue | undefined;
    let sent = false;
    let lines = 0;
    let end: { code: number | null; timedOut: boolean; stderr: string } | undefined;
    const readLine = async (): Promise<string | undefined> => {
      if (own) return own.readLine();
      if (end) return undefined;
      if (!sent) {
        sent = true;
        this.send(command);
      }
      if (++lines > limits.maxLines) this.fail(`the gate session sent more than ${limits.maxLines} lines`);
      let line: string | undefined;
      try {
        line = await this.reader.line(limits.maxLineBytes, limits.timeoutMs);
      } catch (e) {
        this.broken = true;
        this.kill();
        throw e;
      }
      if (line === undefined) {
        if (lines === 1 && this.reader.empty) {
          own = fallback();
          return own.readLine();
        }
        end = { code: null, timedOut: false, stderr: this.stderrText() };
        return undefined;
      }
      if (!isReplyHeader(line)) return line;
      const f = await this.frame(line, MAX_DIALOGUE_RESULT_BYTES, limits.timeoutMs);
      if ('exceeded' in f) {
        end = { code: null, timedOut: false, stderr: 'the reply is larger than it may be' };
        return undefined;
      }
      if (f.code !== 0) {
        end = { code: f.code, timedOut: false, stderr: f.body.toString('utf8') };
        return undefined;
      }
      end = { code: 0, timedOut: false, stderr: '' };
      const text = f.body.toString('latin1');
      return text.endsWith('\n') ? text.slice(0, -1) : text;
    };
    return {
      readLine,
      write: (text) => (own ? own.write(text) : void this.child.stdin.write(text)),
      finish: async () => {
        if (own) return own.finish();
        // the reply frame ends an ack; a dialogue left before it (a bad challenge) ends the session
        if (end === undefined) {
          this.broken = true;
          this.kill();
        }
        return end ?? { code: null, timedOut: false, stderr: this.stderrText() };
      },
      kill: () => {
        if (own) own.kill();
        else {
          this.broken = true;
          this.kill();
        }
      },
    };
  }

  private stderrText(): string {
    return this.stderr.toString('utf8');
  }

  private kill(): void {
    if (this.child.pid === undefined || this.exitCode !== undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }

  /** Closes our side (the gate ends its session), waits for it at most the timeout, kills it when late. */
  async end(): Promise<RunResult> {
    const started = Date.now();
    this.child.stdin.end();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.timeoutMs);
    });
    const code = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (code === 'late') this.kill();
    return {
      argv: ['session'],
      code: code === 'late' ? null : code,
      signal: null,
      timedOut: code === 'late',
      durationMs: Date.now() - started,
      stdout: '',
      stderr: this.stderrText(),
    };
  }
}

/** The most an ack's result frame may hold (one JSON line; the one-shot ack reads at most 64 KiB a line). */
const MAX_DIALOGUE_RESULT_BYTES = 64 * 1024;

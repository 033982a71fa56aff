import type { Readable } from 'node:stream';
import { LineTimeout } from './line-reader.js';

/**
 * Reads `\n`-ended lines and counted byte blocks from a hostile peer (the gate session, src/core/gate-session.ts),
 * bounded while reading: a line longer than the caller's limit is an error before it is buffered whole,
 * a block is read only up to the length the caller accepted, and every wait has a deadline. Unasked-for
 * bytes are not buffered past {@link FrameReader.slackBytes}: the stream is paused (the peer blocks on
 * its pipe) until a read takes them.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** what the current read may need buffered at once */
  private want = 0;
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;
  private paused = false;

  constructor(
    private readonly stream: Readable,
    /** bytes buffered beyond the current read before the stream is paused */
    readonly slackBytes = 64 * 1024,
  ) {
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    stream.on('end', () => this.finish());
    stream.on('close', () => this.finish());
    stream.on('error', (e: Error) => this.finish(e));
  }

  private push(chunk: Buffer): void {
    if (this.error || this.ended) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.throttle();
    this.notify();
  }

  private throttle(): void {
    const over = this.buffered > this.want + this.slackBytes;
    if (over && !this.paused) {
      this.paused = true;
      this.stream.pause();
    } else if (!over && this.paused) {
      this.paused = false;
      this.stream.resume();
    }
  }

  private finish(e?: Error): void {
    if (e && !this.error) this.error = e;
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** True once the peer ended its side and everything it sent was read. */
  get done(): boolean {
    return this.ended && this.buffered === 0;
  }

  /** True when nothing at all is buffered (no byte of a reply arrived yet). */
  get empty(): boolean {
    return this.buffered === 0;
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private take(n: number, skip: number): Buffer {
    const all = this.flat();
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n + skip);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    this.throttle();
    return out;
  }

  private async waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.error) throw this.error;
      if (ready()) return true;
      if (this.ended) return false;
      const left = deadline - Date.now();
      if (left <= 0) throw new LineTimeout(`no answer within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /**
   * The next line (latin1, without its `\n`), or undefined at the end of the stream (a last line
   * without `\n` is dropped: a truncated reply is no reply). Throws when the line is longer than
   * `maxBytes`, on a stream error, or when `timeoutMs` passes first.
   */
  async line(maxBytes: number, timeoutMs: number): Promise<string | undefined> {
    this.want = maxBytes + 1;
    this.throttle();
    let nl = -1;
    const ready = (): boolean => {
      const all = this.flat();
      nl = all.subarray(0, maxBytes + 1).indexOf(0x0a);
      if (nl < 0 && all.length > maxBytes) throw new Error(`a line longer than ${maxBytes} bytes`);
      return nl >= 0;
    };
    try {
      if (!(await this.waitFor(ready, timeoutMs))) return undefined;
      return this.take(nl, 1).toString('latin1');
    } finally {
      this.want = 0;
    }
  }

  /** Exactly `n` bytes (the caller checked `n` against its cap), or undefined when the stream ends first. */
  async bytes(n: number, timeoutMs: number): Promise<Buffer | undefined> {
    this.want = n;
    this.throttle();
    try {
      if (!(await this.waitFor(() => this.buffered >= n, timeoutMs))) return undefined;
      return this.take(n, 0);
    } finally {
      this.want = 0;
    }
  }
}

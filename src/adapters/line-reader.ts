import type { Readable } from 'node:stream';

/**
 * Reads `\n`-ended lines from a hostile peer (the other end of an ssh session), bounded while reading:
 * a line longer than `maxLineBytes` or more than `maxLines` lines is an error before it is buffered
 * whole, and every wait has a deadline. Used by both ends of the ack dialogue.
 */
export class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly lines: string[] = [];
  private ended = false;
  private error: Error | undefined;
  private delivered = 0;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: Readable,
    private readonly maxLineBytes: number,
    private readonly maxLines: number,
  ) {
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    stream.on('end', () => this.finish());
    stream.on('close', () => this.finish());
    stream.on('error', (e: Error) => this.finish(e));
  }

  private push(chunk: Buffer): void {
    if (this.error || this.ended) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let nl: number;
    while ((nl = this.buf.indexOf(0x0a)) >= 0) {
      if (nl > this.maxLineBytes) return this.fail(`a line longer than ${this.maxLineBytes} bytes`);
      if (this.delivered + this.lines.length >= this.maxLines)
        return this.fail(`more than ${this.maxLines} lines`);
      this.lines.push(this.buf.subarray(0, nl).toString('latin1'));
      this.buf = this.buf.subarray(nl + 1);
    }
    if (this.buf.length > this.maxLineBytes)
      return this.fail(`a line longer than ${this.maxLineBytes} bytes`);
    this.notify();
  }

  private fail(message: string): void {
    this.error = new Error(message);
    this.buf = Buffer.alloc(0);
    this.stream.pause();
    this.notify();
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

  /**
   * The next line, or undefined at the end of the stream (a last line without `\n` is dropped: a
   * truncated answer is no answer). Throws on a bound broken or when `timeoutMs` passes first.
   */
  async next(timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.error) throw this.error;
      const line = this.lines.shift();
      if (line !== undefined) {
        this.delivered++;
        return line;
      }
      if (this.ended) return undefined;
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
}

export class LineTimeout extends Error {}

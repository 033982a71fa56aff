/**
 * Fault injection for the test suite: `BATON_CRASH_AT=<point>` makes baton SIGKILL itself when
 * it reaches that point, `BATON_CRASH_AT=pause:<point>` sleeps 5 s there (time for a test to send
 * a signal). Nothing else sets the variable; in normal runs this is a no-op.
 */
const setting = process.env.BATON_CRASH_AT;

export async function crashPoint(name: string): Promise<void> {
  if (setting === undefined) return;
  if (setting === name) {
    process.stderr.write(`baton: BATON_CRASH_AT=${name}: killing myself\n`);
    process.kill(process.pid, 'SIGKILL');
    await new Promise(() => undefined); // never resumes
  }
  if (setting === `pause:${name}`) {
    process.stderr.write(`baton: BATON_CRASH_AT=pause:${name}: pausing 5s\n`);
    await new Promise((r) => setTimeout(r, 5000));
  }
}

/**
 * The flags every installed start of baton gives Node (systemd units, cron lines, the gate's
 * authorized_keys command, the `baton` script's shebang, the demo).
 *
 * `--max-semi-space-size=4`: V8 lets its young generation grow to 3 × 16 MiB while a run allocates
 * fast (a buffer per path, an object per manifest line); capped at 3 × 4 MiB, peak RSS of a source
 * backup or sink pull of 20,000 files fell from about 157 to 117-131 MiB here (bench/RESULTS.md
 * figures 5a-5d), for a few more young-generation collections of short-lived objects.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

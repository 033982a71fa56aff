import { setFlagsFromString } from 'node:v8';
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

/**
 * For the offsite commands (push, verify, restore of up to millions of files): V8 grows its old
 * generation by smaller steps and collects sooner (`--optimize-for-size`, read at each GC, so it works
 * when set at run time). The short-lived pack-index records, sort lines and S3 bodies of those
 * commands otherwise pile up as garbage between two full GCs: a restore of 100,000 files peaked at
 * 195 MiB with the flag off and 131 MiB with it on (bench/RESULTS-offsite.md). Not for the other
 * commands: a source backup's app downtime must not pay for it.
 */
export function favourMemoryOverSpeed(): void {
  setFlagsFromString('--optimize-for-size');
}

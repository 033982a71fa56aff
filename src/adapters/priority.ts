import { getPriority, setPriority } from 'node:os';

/**
 * Raises this process's CPU priority (its nice value; on Linux the calling thread's, which is the
 * one that starts child processes) for the app's down window: on a busy machine every wake-up of
 * baton between the stop command's end and the start command's start would otherwise wait for a
 * time slice. Children started meanwhile (a collect rsync) inherit it. Only root may raise it;
 * elsewhere nothing changes. Returns the function that puts the old value back, which must run
 * before the app's start command is spawned (the app must not inherit the raised priority).
 */
export function raisePriority(nice = -20): () => void {
  let before: number;
  try {
    before = getPriority();
    if (before <= nice) return () => undefined;
    setPriority(nice);
  } catch {
    return () => undefined;
  }
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    try {
      // lowering one's own priority is always allowed
      setPriority(before);
    } catch {
      /* never in the way of the app's start */
    }
  };
}

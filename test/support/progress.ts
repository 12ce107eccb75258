/**
 * Deadlines that follow measured progress instead of wall time, so a test waits as long as
 * the system under test keeps working and fails as soon as it has worked enough to be sure:
 * on a busy machine everything is slower, and a fixed number of seconds that suits a quiet
 * one fails there for no fault of the code.
 */
export interface ProgressWait<T> {
  /** What is awaited; a truthy result ends the wait. */
  check: () => T | Promise<T>;
  /** A counter of the system's own work (list versions, reports, log lines, samples). */
  progress: () => number | Promise<number>;
  /** Fail when `progress` has advanced this much since the start without `check` passing. */
  budget: number;
  /** Fail when `progress` has not moved for this long: the system stopped working. */
  stallMs: number;
  /** For the error message. */
  what: string;
  pollMs?: number;
}

export async function waitWithProgress<T>(
  wait: ProgressWait<T>,
): Promise<Exclude<T, undefined | null | false>> {
  const started = await wait.progress();
  let last = started;
  let lastMovedAt = Date.now();
  for (;;) {
    const value = await wait.check();
    if (value) return value as Exclude<T, undefined | null | false>;
    const now = await wait.progress();
    if (now !== last) {
      last = now;
      lastMovedAt = Date.now();
    }
    if (now - started >= wait.budget)
      throw new Error(
        `${wait.what}: not reached after ${now - started} units of progress (budget ${wait.budget})`,
      );
    if (Date.now() - lastMovedAt > wait.stallMs)
      throw new Error(
        `${wait.what}: no progress for ${wait.stallMs} ms (stuck at ${now}, started at ${started})`,
      );
    await new Promise((r) => setTimeout(r, wait.pollMs ?? 50));
  }
}

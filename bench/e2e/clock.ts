/**
 * Milliseconds since the epoch with sub-millisecond resolution, comparable between the
 * processes of one run on one machine (each process's time origin is read from the same clock).
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `ms` (never earlier), for waiting until a planned moment. */
export function sleepUntil(atMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const wait = (): void => {
      const left = atMs - nowMs();
      if (left <= 0 || signal?.aborted) resolve();
      else setTimeout(wait, Math.min(left, 1000));
    };
    wait();
  });
}

/**
 * Polls `check` every `everyMs` until it returns a value other than undefined, or fails after
 * `timeoutMs` with an error that says what was awaited.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = nowMs() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (nowMs() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleepUntil(nowMs() + everyMs);
  }
}

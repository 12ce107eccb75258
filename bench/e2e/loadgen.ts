/**
 * The open-loop load generator: sends each planned request at its planned time, whatever is
 * still in flight (arrivals never wait for completions), and times it from the planned moment,
 * so a generator that falls behind adds its own delay to the figures instead of hiding it
 * (no coordinated omission). How late each send was is kept, so a run can tell.
 */
import type { ArmClient, Outcome } from './arms.js';
import { nowMs } from './clock.js';
import type { Arrivals } from './workload.js';

export interface RequestLog {
  /** Per planned request: how late it was sent, ms. */
  lateMs: Float64Array;
  /** From its planned send to its answer (or failure), ms. */
  latencyMs: Float64Array;
  /** The backend that served it, -1 if it failed. */
  backend: Int16Array;
  /** Time it queued and was served in the backend, ms. */
  queueMs: Float32Array;
  serviceMs: Float32Array;
  /** Why it failed, by request index (successes are absent). */
  failures: Map<number, string>;
}

/**
 * Replays `arrivals` from `t0` (epoch ms) through `clients` (request i through client
 * `arrivals.client[i]`), and resolves once every request has an outcome. A request with no
 * outcome `graceMs` after its deadline is counted as failed with `NO_ANSWER`. Once `signal`
 * aborts, nothing more is sent (the rest count as failed with `ABORTED`).
 */
export function replay(
  arrivals: Arrivals,
  clients: readonly ArmClient[],
  t0: number,
  deadlineMs: number,
  signal?: AbortSignal,
  graceMs = 5_000,
): Promise<RequestLog> {
  const n = arrivals.atMs.length;
  const log: RequestLog = {
    lateMs: new Float64Array(n),
    latencyMs: new Float64Array(n),
    backend: new Int16Array(n).fill(-1),
    queueMs: new Float32Array(n),
    serviceMs: new Float32Array(n),
    failures: new Map(),
  };
  const settled = new Uint8Array(n);
  let open = n;
  return new Promise((resolve) => {
    if (n === 0) {
      resolve(log);
      return;
    }
    let watchdog: NodeJS.Timeout | undefined;
    const finish = (i: number, outcome: Outcome): void => {
      if (settled[i]) return;
      settled[i] = 1;
      log.latencyMs[i] = nowMs() - (t0 + arrivals.atMs[i]);
      if (outcome.ok) {
        log.backend[i] = outcome.backend;
        log.queueMs[i] = outcome.queueMs;
        log.serviceMs[i] = outcome.serviceMs;
      } else {
        log.failures.set(i, outcome.code);
      }
      if (--open === 0) {
        clearTimeout(watchdog);
        resolve(log);
      }
    };
    let next = 0;
    const dispatch = (): void => {
      const now = nowMs();
      while (next < n && t0 + arrivals.atMs[next] <= now && !signal?.aborted) {
        const i = next++;
        log.lateMs[i] = now - (t0 + arrivals.atMs[i]);
        clients[arrivals.client[i] % clients.length].send(arrivals.work[i], deadlineMs, (o) =>
          finish(i, o),
        );
      }
      if (next < n && signal?.aborted) {
        const aborted = { ok: false, backend: -1, queueMs: 0, serviceMs: 0, code: 'ABORTED' };
        while (next < n) finish(next++, aborted);
      }
      if (next < n) {
        setTimeout(dispatch, Math.max(0, t0 + arrivals.atMs[next] - nowMs()));
        return;
      }
      watchdog = setTimeout(() => {
        for (let i = 0; i < n; i++) {
          if (!settled[i])
            finish(i, { ok: false, backend: -1, queueMs: 0, serviceMs: 0, code: 'NO_ANSWER' });
        }
      }, deadlineMs + graceMs);
    };
    dispatch();
  });
}

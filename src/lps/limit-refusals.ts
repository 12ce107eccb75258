import type { Counter } from 'prom-client';
import type { Logger } from '../common/logger.js';

/** The limits the LPS counts in augur_lps_limit_refusals_total. */
export type LpsLimit =
  | 'max_endpoints'
  | 'max_endpoints_per_service'
  | 'max_streams'
  | 'max_streams_per_connection'
  | 'max_streams_per_client'
  | 'max_samples_per_second'
  | 'max_watch_streams'
  | 'max_watch_streams_per_client';

/** Logs a limit's refusals at most once per this many ms, with how many came since. */
const LIMIT_LOG_GAP_MS = 10_000;

/**
 * What the LPS refused for a configured limit (lps.max*), whichever of its services refused it:
 * counted in augur_lps_limit_refusals_total, and logged at most once per LIMIT_LOG_GAP_MS per
 * limit (a flood must not become a flood of log lines).
 */
export class LimitRefusals {
  /** Per limit: when its refusals were last logged, and how many came since. */
  private readonly logged = new Map<LpsLimit, { atMs: number; since: number }>();

  constructor(
    private readonly counter: Counter<'limit'>,
    private readonly logger: Logger,
  ) {}

  /** Counts `n` refusals for `limit`, and logs them unless that limit was logged lately. */
  note(limit: LpsLimit, n: number, endpoint?: string, details?: string): void {
    this.counter.inc({ limit }, n);
    const now = Date.now();
    const seen = this.logged.get(limit);
    if (seen && now - seen.atMs < LIMIT_LOG_GAP_MS) {
      seen.since += n;
      return;
    }
    this.logged.set(limit, { atMs: now, since: 0 });
    this.logger.warn(
      { limit, endpoint, refusedSinceLastLog: (seen?.since ?? 0) + n, details },
      `refused for a limit (${limit}); see augur_lps_limit_refusals_total`,
    );
  }
}

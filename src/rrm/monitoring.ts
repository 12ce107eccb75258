import type { Logger } from '../common/logger.js';

/**
 * Where monitoring-interval asks go: the LPS, in-process or over
 * `LoadPrediction/SetMonitoringInterval`. Resolves to the ids whose agents were told.
 * Contract: `endpointIds` is never empty; the interval is already validated.
 */
export interface MonitoringIntervalSink {
  setMonitoringInterval(service: string, endpointIds: string[], seconds: number): Promise<string[]>;
}

export type ForwardOutcome = 'forwarded' | 'rate_limited' | 'failed' | 'disabled';

export interface MonitoringForwarderOptions {
  sink: MonitoringIntervalSink;
  /**
   * Whether requests may change intervals at all (`rrm.monitoringIntervalFromRequests`); when
   * not, every ask is answered 'disabled' and nothing reaches the LPS.
   */
  fromRequests: boolean;
  /** Seconds between two forwards for the same endpoint set. */
  minGapSeconds: number;
  /** Endpoint sets remembered for the rate limit (oldest forgotten first). */
  memory: number;
  logger: Logger;
  /** Called when a forward fails (after `request` returned 'forwarded'). */
  onFailure?: () => void;
  now?: () => number;
}

/**
 * Forwards `x-augur-monitoring-interval` asks to the LPS without letting request traffic
 * become control traffic: one forward per endpoint set per `minGapSeconds`, whatever the
 * request rate, and never on the request's path (the request does not wait for the LPS).
 */
export class MonitoringForwarder {
  private readonly options: MonitoringForwarderOptions;
  private readonly lastForward = new Map<string, number>();
  private readonly now: () => number;

  constructor(options: MonitoringForwarderOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /**
   * Asks for `seconds` on the caller's endpoints (`candidates`), or on every endpoint of the
   * service (`allOf()`, only called when forwarding), unless the same set was asked recently.
   */
  request(
    service: string,
    candidates: readonly string[] | undefined,
    seconds: number,
    allOf: () => string[],
  ): ForwardOutcome {
    if (!this.options.fromRequests) return 'disabled';
    const key = candidates ? `${service}|${[...candidates].sort().join(',')}` : `${service}|*`;
    const now = this.now();
    const last = this.lastForward.get(key);
    if (last !== undefined && now - last < this.options.minGapSeconds * 1000) return 'rate_limited';
    const endpointIds = candidates ? [...candidates] : allOf();
    if (endpointIds.length === 0) return 'rate_limited';
    this.lastForward.delete(key); // re-insert so Map order is last-forward order
    this.lastForward.set(key, now);
    if (this.lastForward.size > this.options.memory) {
      const oldest = this.lastForward.keys().next().value;
      if (oldest !== undefined) this.lastForward.delete(oldest);
    }
    this.options.sink.setMonitoringInterval(service, endpointIds, seconds).then(
      (told) => {
        this.options.logger.info(
          { service, seconds, endpoints: told },
          'monitoring interval forwarded',
        );
      },
      (err: unknown) => {
        this.options.onFailure?.();
        this.options.logger.warn(
          {
            service,
            seconds,
            err:
              (err as { details?: string; message?: string }).details ??
              String((err as Error).message ?? err),
          },
          'monitoring interval could not be forwarded to the LPS',
        );
      },
    );
    return 'forwarded';
  }
}

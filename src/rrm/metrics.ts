import { Counter, Gauge, type Registry } from 'prom-client';
import type { ForwardOutcome } from './monitoring.js';
import type { RoutedOutcome } from './routed-requests.js';
import type { ServingMode } from './router.js';

export interface LpsStatus {
  reachable: boolean;
  downSeconds: number;
  mode: ServingMode;
}

export type DecisionOutcome = 'routed' | 'bad_request' | 'no_endpoint';

/** The RRM's Prometheus metrics. Children are resolved once so the request path only increments. */
export class RrmMetrics {
  private readonly decisions: Record<DecisionOutcome, Counter.Internal>;
  private readonly forwards: Record<ForwardOutcome, Counter.Internal>;
  private readonly deliveries: Counter<'outcome'>;
  /** Open ext_proc streams: a plain count on the request path, read by the gauge at scrape. */
  private openStreams = 0;
  private readonly routed: Record<RoutedOutcome, Counter.Internal>;
  private readonly lpsReachable: Gauge;
  private readonly lpsDownSeconds: Gauge;
  private readonly mode: Gauge<'mode'>;
  private readonly fastPathRefusals: Counter<'code'>;
  private readonly streamRefusals: Counter;
  private readonly deliveryRefusals: Counter<'reason'>;

  /**
   * `status` is read at each scrape: how the LPS connection and the serving mode are now;
   * `inFlight`: the routed requests whose response has not come back.
   */
  constructor(registry: Registry, status: () => LpsStatus, inFlight: () => number) {
    const decisions = new Counter({
      name: 'augur_rrm_decisions_total',
      help: 'ext_proc routing decisions, by outcome (routed, bad_request: 400, no_endpoint: 503)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.decisions = {
      routed: decisions.labels('routed'),
      bad_request: decisions.labels('bad_request'),
      no_endpoint: decisions.labels('no_endpoint'),
    };
    const forwards = new Counter({
      name: 'augur_rrm_monitoring_interval_requests_total',
      help:
        'x-augur-monitoring-interval asks: forwarded to the LPS, rate_limited, failed, or ' +
        'disabled (rrm.monitoringIntervalFromRequests is off)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.forwards = {
      forwarded: forwards.labels('forwarded'),
      rate_limited: forwards.labels('rate_limited'),
      failed: forwards.labels('failed'),
      disabled: forwards.labels('disabled'),
    };
    this.deliveries = new Counter({
      name: 'augur_rrm_route_response_attempts_total',
      help: 'RouteResponse delivery attempts, by outcome (delivered, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.fastPathRefusals = new Counter({
      name: 'augur_rrm_ext_proc_refused_streams_total',
      help: 'ext_proc fast-path streams refused by a limit, by status: UNIMPLEMENTED (compressed), RESOURCE_EXHAUSTED (message too large, partial-message budget), DEADLINE_EXCEEDED (message partial too long)',
      labelNames: ['code'],
      registers: [registry],
    });
    this.streamRefusals = new Counter({
      name: 'augur_rrm_ext_proc_streams_refused_total',
      help: 'ext_proc streams refused when they started, by limit: rrm.maxStreams were open in this process (either address), or rrm.maxStreamsPerClient of them from the same client',
      labelNames: ['limit'],
      registers: [registry],
    });
    for (const limit of ['rrm.maxStreams', 'rrm.maxStreamsPerClient']) {
      this.streamRefusals.labels(limit).inc(0);
    }
    this.deliveryRefusals = new Counter({
      name: 'augur_rrm_route_response_refused_total',
      help: 'RouteResponse deliveries refused by the guard, by reason (not_allowed, own_address, unverified)',
      labelNames: ['reason'],
      registers: [registry],
    });
    const streams = () => this.openStreams;
    new Gauge({
      name: 'augur_rrm_ext_proc_streams',
      help: 'Open ext_proc streams (one per HTTP request in flight at Envoy)',
      registers: [registry],
      collect() {
        this.set(streams());
      },
    });
    const routed = new Counter({
      name: 'augur_rrm_routed_requests_total',
      help: 'Routed requests by how the RRM heard of their end: answered (response headers from the pick), failed (a 5xx, or answered by a fallback), abandoned (the stream ended without response headers), timed_out (rrm.inFlightTimeout)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.routed = {
      answered: routed.labels('answered'),
      failed: routed.labels('failed'),
      abandoned: routed.labels('abandoned'),
      timed_out: routed.labels('timed_out'),
    };
    new Gauge({
      name: 'augur_rrm_requests_in_flight',
      help: 'Routed requests counted in flight (picked, their response not yet back)',
      registers: [registry],
      collect() {
        this.set(inFlight());
      },
    });
    // Read at scrape time, so /metrics says what is true now, not at the last timer tick.
    this.lpsReachable = new Gauge({
      name: 'augur_rrm_lps_reachable',
      help: '1 while the RRM gets prioritized lists from the LPS; 0 once it has been unreachable past rrm.lpsUnreachableAfter',
      registers: [registry],
      collect() {
        this.set(status().reachable ? 1 : 0);
      },
    });
    this.lpsDownSeconds = new Gauge({
      name: 'augur_rrm_lps_unreachable_seconds',
      help: 'Seconds since the watch stream to the LPS went down; 0 while it is up',
      registers: [registry],
      collect() {
        this.set(status().downSeconds);
      },
    });
    this.mode = new Gauge({
      name: 'augur_rrm_serving_mode',
      help: 'The list the RRM routes by: live (LPS reachable), last-list (unreachable, last lists), standard-order (unreachable too long)',
      labelNames: ['mode'],
      registers: [registry],
      collect() {
        const current = status().mode;
        for (const m of ['live', 'last-list', 'standard-order'] as const) {
          this.labels(m).set(m === current ? 1 : 0);
        }
      },
    });
  }

  /** A stream on the ext_proc fast path refused by a limit, by gRPC status name. */
  fastPathRefused(code: string): void {
    this.fastPathRefusals.labels(code).inc();
  }

  /** An ext_proc stream refused as it started, by the limit it met. */
  streamRefused(limit: 'rrm.maxStreams' | 'rrm.maxStreamsPerClient'): void {
    this.streamRefusals.labels(limit).inc();
  }

  /** A RouteResponse delivery refused by the guard (delivery-guard.ts), by reason. */
  deliveryRefused(reason: string): void {
    this.deliveryRefusals.labels(reason).inc();
  }

  decision(outcome: DecisionOutcome): void {
    this.decisions[outcome].inc();
  }

  forward(outcome: ForwardOutcome): void {
    this.forwards[outcome].inc();
  }

  delivery(outcome: 'delivered' | 'failed'): void {
    this.deliveries.labels(outcome).inc();
  }

  routedEnded(outcome: RoutedOutcome): void {
    this.routed[outcome].inc();
  }

  /** Open ext_proc streams now, on every address of this process (rrm.maxStreams). */
  get extProcStreams(): number {
    return this.openStreams;
  }

  streamOpened(): void {
    this.openStreams++;
  }

  streamClosed(): void {
    this.openStreams--;
  }
}

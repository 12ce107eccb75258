import type { Logger } from '../common/logger.js';
import { EndpointState, type EndpointRecord } from './types.js';

const NAMES: Record<EndpointState, string> = {
  [EndpointState.ENDPOINT_STATE_UNSPECIFIED]: 'unknown',
  [EndpointState.ENDPOINT_STATE_ACTIVE]: 'active',
  [EndpointState.ENDPOINT_STATE_STALE]: 'stale',
  [EndpointState.ENDPOINT_STATE_FAILING]: 'failing',
  [EndpointState.ENDPOINT_STATE_DRAINING]: 'draining',
  [EndpointState.UNRECOGNIZED]: 'unknown',
};

/**
 * One log line each time an endpoint's state changes (it joins, goes stale, fails its
 * health probe, drains, comes back, is forgotten), saying why and what follows for its
 * traffic: an endpoint at weight 0 must never be a mystery to whoever reads the log.
 */
export class EndpointStateLog {
  private readonly last = new Map<string, EndpointState>();

  constructor(
    private readonly logger: Logger,
    private readonly staleAfterIntervals: number,
  ) {}

  /** Compares each endpoint's state with the one last seen and logs the changes. */
  observe(
    records: readonly EndpointRecord[],
    states: ReadonlyMap<string, EndpointState>,
    nowMs: number,
  ): void {
    const present = new Set<string>();
    for (const r of records) {
      present.add(r.id);
      const state = states.get(r.id);
      if (state === undefined) continue;
      const before = this.last.get(r.id);
      if (before === state) continue;
      this.last.set(r.id, state);
      this.log(r, state, before, nowMs);
    }
    for (const id of [...this.last.keys()]) {
      if (present.has(id)) continue;
      this.last.delete(id);
      this.logger.info(
        { endpoint: id },
        `endpoint ${id} forgotten: silent for too long (lps.forgetAfter)`,
      );
    }
  }

  private log(
    r: EndpointRecord,
    state: EndpointState,
    before: EndpointState | undefined,
    nowMs: number,
  ): void {
    const fields = {
      endpoint: r.id,
      service: r.service,
      state: NAMES[state],
      previous: before === undefined ? undefined : NAMES[before],
      connected: r.connected,
    };
    const silentSeconds = Math.max(0, (nowMs - r.lastSeenMs) / 1000);
    switch (state) {
      case EndpointState.ENDPOINT_STATE_ACTIVE:
        this.logger.info(
          fields,
          before === undefined
            ? `endpoint ${r.id} of service ${r.service} is active`
            : `endpoint ${r.id} is active again (was ${NAMES[before]}): it gets traffic`,
        );
        return;
      case EndpointState.ENDPOINT_STATE_STALE:
        this.logger.warn(
          { ...fields, silentSeconds: Number(silentSeconds.toFixed(1)) },
          `endpoint ${r.id} is stale: no sample for ${silentSeconds.toFixed(1)} s ` +
            `(stale after ${this.staleAfterIntervals} intervals of ${r.interval} s` +
            `${r.connected ? '' : '; its agent is not connected'}): it gets no traffic`,
        );
        return;
      case EndpointState.ENDPOINT_STATE_FAILING:
        this.logger.warn(
          fields,
          `endpoint ${r.id} is failing: its agent's health probe fails (the agent's log says why): it gets no traffic`,
        );
        return;
      case EndpointState.ENDPOINT_STATE_DRAINING:
        this.logger.info(
          fields,
          `endpoint ${r.id} is draining: its agent said goodbye: it gets no traffic`,
        );
        return;
      default:
        this.logger.warn(fields, `endpoint ${r.id} is in state ${NAMES[state]}`);
    }
  }
}

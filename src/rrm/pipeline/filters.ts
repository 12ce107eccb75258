import { EndpointState } from '../../gen/augur/v1/common.js';
import type { EndpointEntry } from '../endpoint-table.js';
import type { EndpointFilter, PickRequest } from './types.js';

/** Keeps the endpoints the caller listed (`x-augur-endpoints`); keeps all when it listed none. */
export class CandidateListFilter implements EndpointFilter {
  readonly name = 'candidate-list';

  filter(entries: readonly EndpointEntry[], request: PickRequest): readonly EndpointEntry[] {
    const ids = request.candidates;
    if (!ids) return entries;
    // Candidate lists are short next to a service; a Set only pays off when they are not. When
    // the entries already are the caller's (the pipeline starts from table.select), nothing is
    // copied.
    if (ids.length <= 8) return keepIf(entries, (e) => ids.includes(e.id));
    const wanted = new Set(ids);
    return keepIf(entries, (e) => wanted.has(e.id));
  }
}

/**
 * Drops endpoints the LPS saw failing or draining. Envoy's override-host policy does not
 * check health, so an endpoint named here would get traffic even if it is down.
 */
export class HealthyFilter implements EndpointFilter {
  readonly name = 'healthy';

  filter(entries: readonly EndpointEntry[]): readonly EndpointEntry[] {
    return keepIf(
      entries,
      (e) =>
        e.state !== EndpointState.ENDPOINT_STATE_FAILING &&
        e.state !== EndpointState.ENDPOINT_STATE_DRAINING,
    );
  }
}

/**
 * Drops endpoints whose agent had been silent longer than `maxStalenessSeconds` (or marked
 * stale), unless that would drop every one: when augur has heard nothing recent from any
 * candidate (the LPS just restarted and its agents are reconnecting, or they are cut off from
 * it), none of them is known to be down, so they all stay, as Envoy's load balancer ignores
 * health below its panic threshold; failing every request instead would turn a control-plane
 * hiccup into an outage.
 */
export class FreshFilter implements EndpointFilter {
  readonly name = 'fresh';
  private readonly maxStalenessSeconds: number;

  constructor(maxStalenessSeconds: number) {
    this.maxStalenessSeconds = maxStalenessSeconds;
  }

  filter(entries: readonly EndpointEntry[]): readonly EndpointEntry[] {
    const max = this.maxStalenessSeconds;
    const fresh = keepIf(
      entries,
      (e) => e.state !== EndpointState.ENDPOINT_STATE_STALE && e.stalenessSeconds <= max,
    );
    return fresh.length > 0 ? fresh : entries;
  }
}

/** `entries.filter(keep)`, but returns `entries` itself when every entry is kept. */
function keepIf(
  entries: readonly EndpointEntry[],
  keep: (e: EndpointEntry) => boolean,
): readonly EndpointEntry[] {
  for (let i = 0; i < entries.length; i++) {
    if (!keep(entries[i]!)) {
      const out = entries.slice(0, i);
      for (let j = i + 1; j < entries.length; j++) if (keep(entries[j]!)) out.push(entries[j]!);
      return out;
    }
  }
  return entries;
}

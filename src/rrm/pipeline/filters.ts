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

/** Drops endpoints whose agent had been silent longer than `maxStalenessSeconds` (or marked stale). */
export class FreshFilter implements EndpointFilter {
  readonly name = 'fresh';
  private readonly maxStalenessSeconds: number;

  constructor(maxStalenessSeconds: number) {
    this.maxStalenessSeconds = maxStalenessSeconds;
  }

  filter(entries: readonly EndpointEntry[]): readonly EndpointEntry[] {
    const max = this.maxStalenessSeconds;
    return keepIf(
      entries,
      (e) => e.state !== EndpointState.ENDPOINT_STATE_STALE && e.stalenessSeconds <= max,
    );
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

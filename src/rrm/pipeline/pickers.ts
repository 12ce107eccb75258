import type { EndpointEntry } from '../endpoint-table.js';
import type { EndpointPicker, PickPlan, PickRequest } from './types.js';

/** One answer for every request: a fixed order, cut per call. */
export class FixedPlan implements PickPlan {
  readonly variants = 1;
  private readonly order: readonly EndpointEntry[];

  constructor(order: readonly EndpointEntry[]) {
    this.order = order;
  }

  next(): number {
    return 0;
  }

  answer(_variant: number, limit: number): EndpointEntry[] {
    return this.order.slice(0, Math.max(0, limit));
  }
}

/**
 * Highest score first, then the fallbacks in score order. Ties keep the order the entries
 * came in (registration order), so equal endpoints are not reshuffled between versions.
 * This is the seed's literal per-request rule; between two list versions every request gets
 * the same answer, so the best endpoint takes all the traffic (see WeightedPrimaryPicker).
 */
export class HighestScorePicker implements EndpointPicker {
  readonly name = 'highest-score';

  pick(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    request: PickRequest,
  ): EndpointEntry[] {
    return byScore(entries, scores, request.limit);
  }

  plan(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    _request: PickRequest,
  ): PickPlan {
    return new FixedPlan(byScore(entries, scores, entries.length));
  }
}

/** The first `limit` entries by score, best first, ties in the order given. A new array. */
export function byScore(
  entries: readonly EndpointEntry[],
  scores: Float64Array | undefined,
  limit: number,
): EndpointEntry[] {
  if (!scores) return entries.slice(0, limit);
  const order = new Array<number>(entries.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  if (order.length <= 16) {
    // Insertion sort: for a caller's few candidates it beats a sort call and its comparator.
    for (let i = 1; i < order.length; i++) {
      const x = order[i]!;
      const sx = scores[x]!;
      let j = i - 1;
      while (j >= 0 && scores[order[j]!]! < sx) {
        order[j + 1] = order[j]!;
        j--;
      }
      order[j + 1] = x;
    }
  } else {
    order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  }
  const n = Math.min(limit, order.length);
  const out = new Array<EndpointEntry>(n);
  for (let i = 0; i < n; i++) out[i] = entries[order[i]!]!;
  return out;
}

/**
 * The caller's order (`x-augur-endpoints`), first available first, as the seed's
 * dynamic-routing-off path does; without a caller list, the standard (registration) order.
 */
export class CallerOrderPicker implements EndpointPicker {
  readonly name = 'caller-order';

  pick(
    entries: readonly EndpointEntry[],
    _scores: Float64Array | undefined,
    request: PickRequest,
  ): EndpointEntry[] {
    const ids = request.candidates;
    if (!ids) {
      const sorted = [...entries].sort((a, b) => a.registrationRank - b.registrationRank);
      return sorted.slice(0, request.limit);
    }
    const byId = new Map<string, EndpointEntry>();
    for (const e of entries) byId.set(e.id, e);
    const out: EndpointEntry[] = [];
    for (const id of ids) {
      const e = byId.get(id);
      if (e) {
        out.push(e);
        byId.delete(id); // a repeated id counts once
        if (out.length === request.limit) break;
      }
    }
    return out;
  }

  plan(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    request: PickRequest,
  ): PickPlan {
    return new FixedPlan(this.pick(entries, scores, { ...request, limit: entries.length }));
  }
}

import type { EndpointEntry } from '../endpoint-table.js';
import type { EndpointPicker } from './types.js';

/**
 * The first candidate: for a routed request the best Load Score (`highest-score`, the seed's
 * literal per-request rule), for the others the caller's order, first available
 * (`caller-order`). Every request of a shape gets the same answer until the list changes; for
 * routed requests that herds them onto one endpoint (see ExpectedDelayPicker).
 */
export class FirstCandidatePicker implements EndpointPicker {
  readonly name: 'highest-score' | 'caller-order';

  constructor(name: 'highest-score' | 'caller-order') {
    this.name = name;
  }

  pick(): number {
    return 0;
  }
}

/** The entries by score, best first, ties in the order given. A new array. */
export function byScore(entries: readonly EndpointEntry[], scores: Float64Array): EndpointEntry[] {
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
  const out = new Array<EndpointEntry>(order.length);
  for (let i = 0; i < order.length; i++) out[i] = entries[order[i]!]!;
  return out;
}

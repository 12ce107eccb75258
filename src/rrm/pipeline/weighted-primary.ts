import type { EndpointEntry } from '../endpoint-table.js';
import { FixedPlan, byScore } from './pickers.js';
import type { EndpointPicker, PickPlan, PickRequest } from './types.js';

/**
 * Weights are turned into integers summing to this, so the rotation's sums are exact (no
 * float drift however long a list version lives) and 1e-6 of a share is still honoured.
 */
const WEIGHT_UNITS = 1_000_000;

/**
 * Smooth weighted round robin (nginx's): each turn every member's credit grows by its weight,
 * the member with the most credit is chosen and pays back the total. At every point each
 * member's count stays within a few picks of its exact share (credits are bounded), and the
 * choices are interleaved (3:1 goes a,b,a,a rather than a,a,a,b). Deterministic; ties go to
 * the lower index.
 */
export class SmoothWeightedRoundRobin {
  // Plain arrays: typed-array allocation costs more than the few members of a caller's list.
  private readonly weights: number[];
  private readonly credit: number[];
  private readonly total: number;

  private constructor(weights: number[], total: number) {
    this.weights = weights;
    this.credit = new Array<number>(weights.length).fill(0);
    this.total = total;
  }

  /** A rotation over `weights` (non-positive and non-finite count as 0); undefined if all are 0. */
  static of(weights: readonly number[]): SmoothWeightedRoundRobin | undefined {
    return SmoothWeightedRoundRobin.over(weights, (w) => w);
  }

  /** `of(items.map(weightOf))` without the intermediate array (this runs per request shape). */
  static over<T>(
    items: readonly T[],
    weightOf: (item: T) => number,
  ): SmoothWeightedRoundRobin | undefined {
    let sum = 0;
    for (let i = 0; i < items.length; i++) {
      const w = weightOf(items[i]!);
      if (w > 0 && w !== Infinity) sum += w;
    }
    if (!(sum > 0) || sum === Infinity) return undefined;
    const units = new Array<number>(items.length).fill(0);
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const w = weightOf(items[i]!);
      if (w > 0 && w !== Infinity) {
        const u = Math.round((w / sum) * WEIGHT_UNITS);
        units[i] = u;
        total += u;
      }
    }
    return total > 0 ? new SmoothWeightedRoundRobin(units, total) : undefined;
  }

  /** The index of the next member. O(members). */
  next(): number {
    const { weights, credit } = this;
    let best = -1;
    let bestCredit = -Infinity;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i]!;
      if (w === 0) continue;
      const c = credit[i]! + w;
      credit[i] = c;
      if (c > bestCredit) {
        best = i;
        bestCredit = c;
      }
    }
    credit[best] = bestCredit - this.total;
    return best;
  }
}

const weightOf = (e: EndpointEntry): number => e.weight;

/** Weighted primary over candidates in Load Score order: answer i is entry i first, then the rest by score. */
class WeightedPrimaryPlan implements PickPlan {
  readonly variants: number;
  private readonly byScore: readonly EndpointEntry[];
  private readonly rotation: SmoothWeightedRoundRobin;

  constructor(byScore: readonly EndpointEntry[], rotation: SmoothWeightedRoundRobin) {
    this.byScore = byScore;
    this.rotation = rotation;
    this.variants = byScore.length;
  }

  next(): number {
    return this.rotation.next();
  }

  answer(variant: number, limit: number): EndpointEntry[] {
    const all = this.byScore;
    const n = Math.min(Math.max(0, limit), all.length);
    if (n === 0) return [];
    const out: EndpointEntry[] = [all[variant]!];
    for (let i = 0; out.length < n; i++) if (i !== variant) out.push(all[i]!);
    return out;
  }
}

/**
 * The primary is drawn so that, over many requests, each candidate is first in proportion to
 * its LPS weight (smooth weighted round robin over the candidates that passed the filters,
 * weights renormalised among them); the fallbacks follow in Load Score order, best first.
 *
 * Why not always the best score: the router answers from a memo per list version, so "best
 * first" sends every request between two versions to one endpoint, which overloads it, its
 * score falls, the next one takes everything, and so on (herding). The LPS's weights are the
 * shares it wants; the score keeps ordering the fallbacks.
 *
 * The rotation lives in the plan, which the router keeps on the list version's table: a new
 * version starts a fresh rotation. If every candidate's weight is 0 (an LPS that publishes
 * none), the plan is the highest-score order.
 */
export class WeightedPrimaryPicker implements EndpointPicker {
  readonly name = 'weighted-primary';

  pick(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    request: PickRequest,
  ): EndpointEntry[] {
    const plan = this.plan(entries, scores, request);
    return plan.answer(plan.next(), request.limit);
  }

  plan(
    entries: readonly EndpointEntry[],
    scores: Float64Array | undefined,
    _request: PickRequest,
  ): PickPlan {
    // Sorted once per list version and request shape; the per-request cost is the rotation.
    const ordered = byScore(entries, scores, entries.length);
    const rotation = SmoothWeightedRoundRobin.over(ordered, weightOf);
    return rotation ? new WeightedPrimaryPlan(ordered, rotation) : new FixedPlan(ordered);
  }
}

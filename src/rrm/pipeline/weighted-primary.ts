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

  private constructor(weights: number[], total: number, credit?: number[]) {
    this.weights = weights;
    this.credit = credit ?? new Array<number>(weights.length).fill(0);
    this.total = total;
  }

  /** A rotation over `weights` (non-positive and non-finite count as 0); undefined if all are 0. */
  static of(weights: readonly number[]): SmoothWeightedRoundRobin | undefined {
    return SmoothWeightedRoundRobin.over(weights, (w) => w);
  }

  /**
   * `of(items.map(weightOf))` without the intermediate array (this runs per request shape).
   * `creditOf`, if given, continues an earlier rotation: each member starts with the credit it
   * had there (what it is owed, or has had too much of), made to sum to zero over the members
   * and kept within one round; members it does not know start at 0.
   */
  static over<T>(
    items: readonly T[],
    weightOf: (item: T) => number,
    creditOf?: (item: T) => number | undefined,
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
    if (!(total > 0)) return undefined;
    return new SmoothWeightedRoundRobin(
      units,
      total,
      creditOf && carriedCredit(items, units, total, creditOf),
    );
  }

  /** The credit of member `i`: positive, it is owed picks; negative, it has had extra ones. */
  creditOf(i: number): number {
    return this.credit[i]!;
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

/**
 * Starting credits from an earlier rotation: members with weight keep theirs (clamped to one
 * round, ±total), then all are shifted so they sum to zero, the invariant of smooth weighted
 * round robin (each turn adds the total and the pick pays it back); zero-weight members get 0.
 */
function carriedCredit<T>(
  items: readonly T[],
  units: readonly number[],
  total: number,
  creditOf: (item: T) => number | undefined,
): number[] {
  const credit = new Array<number>(items.length).fill(0);
  let sum = 0;
  let members = 0;
  for (let i = 0; i < items.length; i++) {
    if (units[i] === 0) continue;
    const c = creditOf(items[i]!) ?? 0;
    credit[i] = Number.isFinite(c) ? Math.max(-total, Math.min(total, c)) : 0;
    sum += credit[i]!;
    members++;
  }
  const shift = sum / members;
  for (let i = 0; i < items.length; i++) if (units[i] !== 0) credit[i]! -= shift;
  return credit;
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

  /** Each candidate's rotation credit, by endpoint id (what a next version's plan continues). */
  credits(): Map<string, number> {
    const out = new Map<string, number>();
    for (let i = 0; i < this.byScore.length; i++)
      out.set(this.byScore[i]!.id, this.rotation.creditOf(i));
    return out;
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
 * The rotation lives in the plan, which the router keeps on the list version's table. A new
 * version's plan continues the previous version's rotation (each candidate keeps its credit),
 * so the shares stay exact even when versions change every few requests; a fresh start per
 * version would give the heaviest endpoints the first picks of every version. If every
 * candidate's weight is 0 (an LPS that publishes none), the plan is the highest-score order.
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
    previous?: PickPlan,
  ): PickPlan {
    // Sorted once per list version and request shape; the per-request cost is the rotation.
    const ordered = byScore(entries, scores, entries.length);
    const carried = previous instanceof WeightedPrimaryPlan ? previous.credits() : undefined;
    const rotation = SmoothWeightedRoundRobin.over(
      ordered,
      weightOf,
      carried && ((e) => carried.get(e.id)),
    );
    return rotation ? new WeightedPrimaryPlan(ordered, rotation) : new FixedPlan(ordered);
  }
}

import { EventEmitter } from 'node:events';
import { z } from 'zod';
import type { EndpointStore } from './store.js';
import {
  EndpointState,
  type EndpointRecord,
  type PrioritizedEndpointList,
  type PrioritizedListSource,
} from './types.js';

/**
 * What counts as a swap and as overload: `dashboard.swaps` in the config.
 *
 * Shares are compared in units of the fair share (1 / number of active
 * endpoints of the service that have a weight), so an endpoint joining or
 * leaving, which changes everyone's plain share, is not a cut.
 */
export const swapConfigSchema = z
  .object({
    /**
     * A cut: the endpoint's share (relative to the fair share) falls by more
     * than this fraction of itself from one list version to the next. 0 disables.
     */
    dropFraction: z.number().min(0).max(1).default(0.3),
    /**
     * Also a cut: the share crosses from at or above this fraction of the fair
     * share to below it, however slowly (a damped controller cuts in steps). 0 disables.
     */
    belowFairShare: z.number().min(0).max(1).default(0.5),
    /** Shares below this fraction of the fair share before the change are already starved: no swap. */
    minShareBefore: z.number().min(0).max(1).default(0.2),
    /** Overload: measured CPU utilisation above this, [0,1]. */
    overloadUtilization: z.number().gt(0).max(1).default(0.9),
    /** Overload: measured response time above this, seconds (0 disables). */
    responseTimeSlo: z.number().min(0).default(0.5),
    /** A swap is judged over this many of the endpoint's monitoring intervals after the cut. */
    watchIntervals: z.number().int().min(1).max(1000).default(10),
    /** Swaps kept (newest); older ones are dropped. */
    history: z.number().int().min(1).max(100_000).default(200),
  })
  .strict();

export type SwapConfig = z.infer<typeof swapConfigSchema>;

/**
 * What a cut achieved. "Without the cut" is the higher of two estimates: the forecast
 * the LPS cut on (`predictedUtilization`, made while the share was uncut), and, for each
 * sample in the window, the measured utilisation plus the traffic the cut moved away
 * (the fall in the endpoint's request rate since the cut, at the LPS's own estimate of
 * its cost: 1 / `estimatedCapacity`). Overload is measured, in the window of
 * `watchIntervals` intervals after the cut (or already at the cut).
 *
 * | overload measured?                          | verdict   |
 * |---------------------------------------------|-----------|
 * | yes, and the forecast at the cut foresaw it | late      |
 * | yes, and the forecast at the cut did not    | missed    |
 * | no, and without the cut it would have been  | prevented |
 * | no, and not even without the cut            | false     |
 */
export type SwapOutcome =
  /** Still inside the watch window, no overload seen yet. */
  | 'pending'
  /** Overload was forecast, the share was cut, and the measured load stayed under the limit. */
  | 'prevented'
  /** Overload was forecast and the share cut, but overload came anyway (or was already there). */
  | 'late'
  /** Overload came that the forecast at the cut had not foreseen. */
  | 'missed'
  /** No overload was forecast and none came: the cut was not needed to prevent one. */
  | 'false'
  /** The endpoint left the store before the window ended. */
  | 'unknown';

/** The outcome of a swap from what was forecast, measured, and estimated without the cut. */
export function judgeSwap(
  forecastOverload: boolean,
  overloadMeasured: boolean,
  overloadWithoutCut: boolean,
): SwapOutcome {
  if (overloadMeasured) return forecastOverload ? 'late' : 'missed';
  return forecastOverload || overloadWithoutCut ? 'prevented' : 'false';
}

/** One cut of an endpoint's traffic share and what followed it. */
export interface Swap {
  /** Increasing per detector, from 1. */
  id: number;
  service: string;
  endpointId: string;
  /** When the list that cut the share was computed, ms since epoch (LPS clock). */
  atMs: number;
  /** Which rule fired. */
  rule: 'drop' | 'below-fair-share';
  weightBefore: number;
  weightAfter: number;
  /** 1 / active endpoints of the service when cut. */
  fairShare: number;
  scoreBefore: number;
  score: number;
  /**
   * ScoreParts.predicted_utilization of the list that cut: the forecast that moved the
   * traffic, made with the share uncut (the counterfactual the outcome is judged against).
   */
  predictedUtilization: number;
  /** The forecast at the cut reached the overload limit. */
  forecastOverload: boolean;
  forecaster: string;
  /** The newest measured CPU utilisation when cut; NaN if none. */
  utilizationAtCut: number;
  /** The endpoint was already overloaded when cut: the cut was a reaction, not a prediction. */
  overloadedAtCut: boolean;
  /** Lowest share seen during the watch window. */
  lowestWeight: number;
  /** Highest measured CPU utilisation after the cut, in the window so far; NaN before a sample. */
  measuredPeak: number;
  /**
   * Highest utilisation estimated without the cut, in the window so far: the forecast at
   * the cut, or a sample's measured utilisation plus the load the cut moved away.
   */
  withoutCutPeak: number;
  /** The endpoint's request rate at the cut, per second (0 when its agent does not report one). */
  requestRateAtCut: number;
  /** ScoreParts.estimated_capacity at the cut: requests per second at full utilisation; 0 if unknown. */
  estimatedCapacity: number;
  outcome: SwapOutcome;
  /** Seconds from the cut to the first overloaded sample (outcomes 'late' and 'missed'; 0 if already overloaded). */
  overloadAfterSeconds?: number;
  /** What crossed its limit first: the measured utilisation or the response time. */
  overloadCause?: 'utilization' | 'response-time';
  /** When the outcome was decided, ms since epoch. */
  resolvedAtMs?: number;
  /** The outcome in words, with the figures it rests on (what screens and logs show). */
  verdict: string;
}

export interface SwapEvents {
  /** A new cut was detected (outcome 'pending'). */
  swap: [swap: Swap];
  /** A swap got its outcome; the same object as announced by `swap`, updated. */
  'swap-resolved': [swap: Swap];
}

export interface SwapDetectorOptions {
  lists: PrioritizedListSource;
  store: EndpointStore;
  config?: Partial<SwapConfig>;
  /** Clock, ms since epoch (tests drive it). */
  now?: () => number;
  /**
   * How often pending swaps are checked without a new list, ms (lists are only
   * published when they change). 0: only on lists and explicit `check()` calls.
   */
  checkEveryMs?: number;
}

interface Previous {
  weight: number;
  score: number;
  /** weight / fair share. */
  relative: number;
}

/**
 * Watches every prioritized list and records **swaps**: moments when an active
 * endpoint's traffic share is cut (see `swapConfigSchema` for the two rules).
 * Each swap is then watched for `watchIntervals` of the endpoint's monitoring
 * intervals: if a stored sample in that window shows overload (measured CPU
 * above `overloadUtilization`, or response time above `responseTimeSlo`) the
 * swap resolves as soon as it is seen, otherwise when the window ends; the
 * outcome compares that with the forecast at the cut (`SwapOutcome`).
 *
 * While a swap of an endpoint is pending, further cuts of it deepen the same
 * swap (its `lowestWeight`) instead of starting new ones: a damped controller
 * cuts in several steps and that is one decision.
 *
 * Events: `swap` when a cut is seen, `swap-resolved` when its outcome is known.
 * History is bounded (`history`, newest kept). Call `stop()` to unsubscribe.
 */
export class SwapDetector extends EventEmitter<SwapEvents> {
  readonly config: SwapConfig;
  private readonly store: EndpointStore;
  private readonly now: () => number;
  private readonly previous = new Map<string, Map<string, Previous>>();
  private readonly pendingByEndpoint = new Map<string, Swap>();
  private readonly swaps: Swap[] = [];
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout | undefined;
  private nextId = 1;

  constructor(options: SwapDetectorOptions) {
    super();
    this.config = swapConfigSchema.parse(options.config ?? {});
    this.store = options.store;
    this.now = options.now ?? Date.now;
    for (const service of options.lists.services()) {
      const list = options.lists.get(service);
      if (list) this.remember(list);
    }
    this.unsubscribe = options.lists.subscribe((list) => this.onList(list));
    const every = options.checkEveryMs ?? 250;
    if (every > 0) {
      this.timer = setInterval(() => this.check(), every);
      this.timer.unref();
    }
  }

  /** Every swap kept, oldest first (the array is a copy; the swaps are live objects). */
  history(): Swap[] {
    return [...this.swaps];
  }

  /** Swaps still in their watch window. */
  pending(): Swap[] {
    return [...this.pendingByEndpoint.values()];
  }

  stop(): void {
    this.unsubscribe();
    clearInterval(this.timer);
  }

  /** Feeds one list; called by the subscription (public so tests can drive it). */
  onList(list: PrioritizedEndpointList): void {
    const before = this.previous.get(list.service);
    const atMs = list.computedAt?.getTime() ?? this.now();
    const fair = fairShareOf(list, before);
    if (before && fair > 0) {
      for (const e of list.endpoints) {
        if (e.state !== EndpointState.ENDPOINT_STATE_ACTIVE) continue;
        const prev = before.get(e.endpointId);
        if (!prev) continue;
        const relative = e.weight / fair;
        const pending = this.pendingByEndpoint.get(e.endpointId);
        if (pending) {
          pending.lowestWeight = Math.min(pending.lowestWeight, e.weight);
          continue;
        }
        const rule = this.cutRule(prev.relative, relative);
        if (!rule) continue;
        const record = this.store.get(e.endpointId);
        const utilizationAtCut = record?.series.at('cpu') ?? NaN;
        const predictedUtilization = e.parts?.predictedUtilization ?? NaN;
        const swap: Swap = {
          id: this.nextId++,
          service: list.service,
          endpointId: e.endpointId,
          atMs,
          rule,
          weightBefore: prev.weight,
          weightAfter: e.weight,
          fairShare: fair,
          scoreBefore: prev.score,
          score: e.score,
          predictedUtilization,
          forecastOverload: predictedUtilization >= this.config.overloadUtilization,
          forecaster: e.parts?.forecaster ?? '',
          utilizationAtCut,
          overloadedAtCut:
            utilizationAtCut > this.config.overloadUtilization ||
            this.slowResponse(record?.series.at('responseTime') ?? NaN),
          lowestWeight: e.weight,
          measuredPeak: NaN,
          withoutCutPeak: predictedUtilization,
          verdict: '',
          requestRateAtCut: record?.series.at('requestRate') || 0,
          estimatedCapacity: e.parts?.estimatedCapacity ?? 0,
          outcome: 'pending',
        };
        swap.verdict = describeSwapOutcome(swap, this.config);
        this.swaps.push(swap);
        if (this.swaps.length > this.config.history) this.swaps.shift();
        this.pendingByEndpoint.set(e.endpointId, swap);
        this.emit('swap', swap);
      }
    }
    this.remember(list);
    this.check();
  }

  /** Resolves pending swaps whose window shows overload or has ended. */
  check(nowMs = this.now()): void {
    for (const swap of [...this.pendingByEndpoint.values()]) {
      const record = this.store.get(swap.endpointId);
      if (!record) {
        this.resolve(swap, 'unknown', nowMs);
        continue;
      }
      if (swap.overloadedAtCut) {
        swap.overloadAfterSeconds = 0;
        swap.overloadCause =
          swap.utilizationAtCut > this.config.overloadUtilization ? 'utilization' : 'response-time';
        this.resolve(swap, judgeSwap(swap.forecastOverload, true, true), nowMs);
        continue;
      }
      const windowEnd = swap.atMs + this.config.watchIntervals * record.interval * 1000;
      const seen = this.afterCut(record, swap, windowEnd);
      swap.measuredPeak = seen.peak;
      swap.withoutCutPeak = Math.max(swap.predictedUtilization || 0, seen.withoutCutPeak || 0);
      const limit = this.config.overloadUtilization;
      if (seen.overload) {
        swap.overloadAfterSeconds = Math.max(0, (seen.overload.atMs - swap.atMs) / 1000);
        swap.overloadCause = seen.overload.cause;
        this.resolve(swap, judgeSwap(swap.forecastOverload, true, true), nowMs);
      } else if (nowMs >= windowEnd) {
        this.resolve(
          swap,
          judgeSwap(swap.forecastOverload, false, swap.withoutCutPeak >= limit),
          nowMs,
        );
      }
    }
  }

  private resolve(swap: Swap, outcome: SwapOutcome, nowMs: number): void {
    swap.outcome = outcome;
    swap.resolvedAtMs = nowMs;
    swap.verdict = describeSwapOutcome(swap, this.config);
    this.pendingByEndpoint.delete(swap.endpointId);
    this.emit('swap-resolved', swap);
  }

  private cutRule(before: number, after: number): Swap['rule'] | undefined {
    const c = this.config;
    if (before < c.minShareBefore) return undefined;
    if (c.dropFraction > 0 && after < before * (1 - c.dropFraction)) return 'drop';
    if (c.belowFairShare > 0 && before >= c.belowFairShare && after < c.belowFairShare)
      return 'below-fair-share';
    return undefined;
  }

  private slowResponse(seconds: number): boolean {
    return this.config.responseTimeSlo > 0 && seconds > this.config.responseTimeSlo;
  }

  /**
   * The samples received after the cut up to `toMs`: the oldest that shows overload, the
   * measured CPU peak, and the peak of measured CPU plus the load the cut moved away.
   */
  private afterCut(
    record: EndpointRecord,
    swap: Swap,
    toMs: number,
  ): {
    overload?: { atMs: number; cause: 'utilization' | 'response-time' };
    peak: number;
    withoutCutPeak: number;
  } {
    let overload: { atMs: number; cause: 'utilization' | 'response-time' } | undefined;
    let peak = NaN;
    let withoutCutPeak = NaN;
    const costPerRequest = swap.estimatedCapacity > 0 ? 1 / swap.estimatedCapacity : 0;
    const ring = record.series;
    for (let back = 0; back < ring.size; back++) {
      const at = ring.at('receivedAt', back);
      if (at <= swap.atMs) break;
      if (at > toMs) continue;
      const cpu = ring.at('cpu', back);
      if (!(cpu <= peak)) peak = cpu;
      const moved = Math.max(0, swap.requestRateAtCut - ring.at('requestRate', back));
      const without = cpu + moved * costPerRequest;
      if (!(without <= withoutCutPeak)) withoutCutPeak = without;
      if (cpu > this.config.overloadUtilization) overload = { atMs: at, cause: 'utilization' };
      else if (this.slowResponse(ring.at('responseTime', back)))
        overload = { atMs: at, cause: 'response-time' };
    }
    return { overload, peak, withoutCutPeak };
  }

  private remember(list: PrioritizedEndpointList): void {
    if (list.endpoints.length === 0) {
      this.previous.delete(list.service);
      return;
    }
    const fair = fairShareOf(list);
    const map = new Map<string, Previous>();
    for (const e of list.endpoints) {
      if (e.state !== EndpointState.ENDPOINT_STATE_ACTIVE) continue;
      map.set(e.endpointId, {
        weight: e.weight,
        score: e.score,
        relative: fair > 0 ? e.weight / fair : 0,
      });
    }
    this.previous.set(list.service, map);
  }
}

/**
 * 1 / the endpoints that share the traffic: active ones with a weight, plus
 * active ones that had a weight in the previous list (a cut to 0 is a cut).
 * An endpoint that joined and has no weight yet does not dilute the others'
 * fair share, so its first weight is not seen as a cut of theirs.
 */
function fairShareOf(list: PrioritizedEndpointList, previous?: Map<string, Previous>): number {
  let sharing = 0;
  for (const e of list.endpoints) {
    if (e.state !== EndpointState.ENDPOINT_STATE_ACTIVE) continue;
    if (e.weight > 0 || (previous?.get(e.endpointId)?.weight ?? 0) > 0) sharing++;
  }
  return sharing > 0 ? 1 / sharing : 0;
}

// Utilisations are fractions of capacity: an estimate past 1 reads as 100 %.
const percent = (x: number): string =>
  Number.isFinite(x) ? `${Math.round(Math.min(1, Math.max(0, x)) * 100)} %` : '?';

/** The rule the outcomes follow, in one line, for screens that show verdicts. */
export function describeSwapRule(
  config: Pick<SwapConfig, 'overloadUtilization' | 'responseTimeSlo' | 'watchIntervals'>,
): string {
  const limit = percent(config.overloadUtilization);
  const overload =
    `CPU over ${limit}` +
    (config.responseTimeSlo > 0 ? ` or response time over ${config.responseTimeSlo} s` : '');
  return (
    `Each cut is watched for ${config.watchIntervals} intervals; overload = ${overload}. ` +
    `prevented: no overload came, and without the cut there would have been (the forecast at the cut, ` +
    `or the measured load plus the traffic the cut moved, reached ${limit}). ` +
    `false: no overload came, and none would have without the cut. ` +
    `late: overload came though the forecast at the cut foresaw it. ` +
    `missed: overload came that the forecast at the cut did not foresee.`
  );
}

/** One swap's outcome in words, with its figures. */
export function describeSwapOutcome(
  swap: Swap,
  config: Pick<SwapConfig, 'overloadUtilization' | 'watchIntervals'>,
): string {
  const limit = percent(config.overloadUtilization);
  const forecast = `the forecast at the cut (${percent(swap.predictedUtilization)})`;
  const cause = swap.overloadCause === 'response-time' ? 'response time' : 'CPU';
  const when =
    swap.overloadAfterSeconds === 0
      ? 'already overloaded when cut'
      : `overloaded (${cause}) ${swap.overloadAfterSeconds?.toFixed(1)} s after the cut`;
  switch (swap.outcome) {
    case 'pending':
      return `watching for ${config.watchIntervals} intervals after the cut`;
    case 'prevented': {
      const source =
        swap.withoutCutPeak > swap.predictedUtilization
          ? 'its measured load plus the traffic the cut moved'
          : 'the forecast at the cut';
      return (
        `prevented: without the cut it would have reached ${percent(swap.withoutCutPeak)} (${source}); ` +
        `with it, it peaked at ${percent(swap.measuredPeak)}, under ${limit}`
      );
    }
    case 'late':
      return `late: ${when}, though ${forecast} foresaw it`;
    case 'missed':
      return `missed: ${when}; ${forecast} was under ${limit}`;
    case 'false':
      return (
        `false: no overload followed (peak ${percent(swap.measuredPeak)}), and none would have ` +
        `without the cut (at most ${percent(swap.withoutCutPeak)}, under ${limit})`
      );
    case 'unknown':
      return 'the endpoint left before its window ended';
  }
}

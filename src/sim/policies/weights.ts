import type { FleetView, IntervalReport } from '../types.js';

/**
 * Where a weighted policy's weights come from: called at the start of each
 * interval with the reports of the interval that just ended (undefined at the
 * first), returns relative weights (>= 0, not normalised). A source that has
 * nothing usable yet returns equal weights.
 */
export interface WeightSource {
  init(view: FleetView): void;
  update(step: number, report: IntervalReport | undefined): Float64Array | Promise<Float64Array>;
  /** Its estimate of each endpoint's capacity (requests/s) behind the last weights, if it has one. */
  capacities?(): Float64Array | undefined;
}

/** Options of gRPC's weighted_round_robin (gRFC A58), with its defaults. */
export interface A58Options {
  /** Multiplier of the error rate in the weight's denominator. */
  errorUtilizationPenalty: number;
  /** A weight is used only once it has been valid this long, seconds. */
  blackoutPeriod: number;
}

export const A58_DEFAULTS: A58Options = { errorUtilizationPenalty: 1, blackoutPeriod: 10 };

/**
 * Reactive weights as gRPC's weighted_round_robin computes them from ORCA
 * reports: qps / (utilisation + errors/qps × penalty). An endpoint without a
 * usable weight (no traffic, or still in its blackout period) gets the mean of
 * the usable ones; with fewer than two usable, every endpoint weighs the same.
 */
export class A58Weights implements WeightSource {
  private nonEmptySince = new Float64Array(0);
  private n = 0;
  private interval = 1;
  private readonly opts: A58Options;

  constructor(opts: Partial<A58Options> = {}) {
    this.opts = { ...A58_DEFAULTS, ...opts };
  }

  init(view: FleetView): void {
    this.n = view.endpoints;
    this.interval = view.interval;
    this.nonEmptySince = new Float64Array(view.endpoints).fill(NaN);
  }

  update(_step: number, report: IntervalReport | undefined): Float64Array {
    const w = new Float64Array(this.n);
    if (!report) return w.fill(1);
    // the report arrives at the end of the interval it covers
    const time = (report.step + 1) * this.interval;
    let sum = 0;
    let usable = 0;
    for (let e = 0; e < this.n; e++) {
      const qps = report.qps[e];
      const util = report.utilisation[e];
      const raw =
        qps > 0 && util > 0
          ? qps / (util + (report.errors[e] / qps) * this.opts.errorUtilizationPenalty)
          : 0;
      if (raw > 0) {
        if (Number.isNaN(this.nonEmptySince[e])) this.nonEmptySince[e] = time;
        if (time - this.nonEmptySince[e] >= this.opts.blackoutPeriod) {
          w[e] = raw;
          sum += raw;
          usable++;
          continue;
        }
      } else {
        this.nonEmptySince[e] = NaN;
      }
      w[e] = NaN;
    }
    if (usable < 2) return w.fill(1);
    const mean = sum / usable;
    for (let e = 0; e < this.n; e++) if (Number.isNaN(w[e])) w[e] = mean;
    return w;
  }
}

/**
 * Weights equal to each endpoint's true service capacity (requests/s), either
 * of the interval that just ended (`lookahead` 0: the perfect reactive
 * estimator, no measurement error and no foresight) or of the interval about
 * to start (`lookahead` 1: the oracle). Privileged: it reads the simulator's
 * speed schedule, which no real policy can.
 */
export class TrueCapacityWeights implements WeightSource {
  private serviceTime = 1;
  constructor(
    private readonly speed: readonly Float64Array[],
    private readonly lookahead: 0 | 1,
  ) {}
  init(view: FleetView): void {
    this.serviceTime = view.serviceTime;
  }
  update(step: number): Float64Array {
    const k = Math.max(0, step - 1 + this.lookahead);
    return Float64Array.from(this.speed, (s) => s[Math.min(k, s.length - 1)] / this.serviceTime);
  }
}

import type { Forecaster } from '../lps/forecast/forecaster.js';
import { DEFAULT_WEIGHT_PARAMS, WeightController, type WeightParams } from '../lps/score/weight.js';
import type { WeightSource } from './policies/weights.js';
import type { FleetView, IntervalReport } from './types.js';

/**
 * augur's predictive weights: the LPS's own WeightController (src/lps/score),
 * fed each interval with what the agents reported (CPU utilisation and the
 * request rate each endpoint served), exactly as the LPS feeds it. This file
 * only translates the simulator's report into the controller's observations;
 * the forecasting and the allocation are the project's code.
 */
export class AugurWeights implements WeightSource {
  private controller: WeightController | undefined;
  private ids: string[] = [];
  private interval = 1;

  /**
   * @param allocation `share`: the controller's published share (its water
   *   filling at the last interval's total rate). `capacity`: weights from the
   *   same estimates, (1 − predicted background) / cost per request, i.e. the
   *   forecast capacity left for our traffic, without the water filling (a
   *   variant: see BENCHMARKS.md for why), floored like the controller's
   *   shares at `minShareFraction` of the equal share so that no endpoint
   *   starves (an endpoint without traffic looks expensive to the estimator
   *   and would never get any back).
   */
  constructor(
    private readonly params: Partial<WeightParams> = {},
    private readonly newForecaster?: () => Forecaster,
    private readonly allocation: 'share' | 'capacity' = 'share',
  ) {}

  init(view: FleetView): void {
    this.controller = new WeightController(this.params, this.newForecaster);
    this.ids = Array.from({ length: view.endpoints }, (_, e) => `ep-${e}`);
    this.interval = view.interval;
  }

  update(_step: number, report: IntervalReport | undefined): Float64Array {
    const w = new Float64Array(this.ids.length);
    if (!report) return w.fill(1);
    const result = this.controller!.update(
      this.ids.map((id, e) => ({
        id,
        utilization: report.utilisation[e],
        // The controller reads a rate of 0 as "unknown" and then drops every
        // endpoint to share mode, forgetting what it learned; an agent that
        // counted no request knows the rate is below one per interval, so it
        // says half of one (an API gap reported to the forecasting issue).
        requestRate: report.qps[e] > 0 ? report.qps[e] : 0.5 / this.interval,
        available: true,
      })),
    );
    this.ids.forEach((id, e) => {
      const r = result.get(id);
      if (!r) return;
      w[e] =
        this.allocation === 'share'
          ? r.share
          : r.costPerUnit > 0
            ? Math.max(0, 1 - r.predictedBackground) / r.costPerUnit
            : 0;
    });
    if (this.allocation === 'capacity') {
      const minShare = this.params.minShareFraction ?? DEFAULT_WEIGHT_PARAMS.minShareFraction;
      const floor = (minShare * w.reduce((a, x) => a + x, 0)) / w.length;
      for (let e = 0; e < w.length; e++) w[e] = Math.max(w[e], floor);
    }
    return w;
  }
}

import type { Rng } from '../rng.js';
import type { FleetView, RoutingPolicy } from '../types.js';

/**
 * `omniscient-sed`: a reference no data plane can run. For each request it knows what no data
 * plane knows: every endpoint's true speed at this instant and its true queue (the requests of
 * every proxy, in service and waiting). It sends the request where its expected completion is
 * soonest: on an endpoint with `c` workers at speed `s` holding `r`
 * requests, a worker is free when r < c, else the request waits for r − c + 1 of the c workers
 * to finish, so
 *
 *     expected delay = (1 + max(0, r + 1 − c) / c) × serviceTime / s
 *
 * (shortest expected delay, SED, with exact inputs; first endpoint on a tie). The work of the
 * requests is still unknown to it, as to every policy. SED is greedy, not proven optimal for
 * servers of different speeds, so this measures what perfect information would give the kind of
 * rule the RRM runs (src/common/expected-delay.ts), not the best any rule could do. Where the
 * shipped RRM comes close to it, better signals would not buy the RRM much; where a target asks
 * for more than it gives, the target needs more than a better-informed per-request choice.
 */
export class OmniscientSedPolicy implements RoutingPolicy {
  readonly name: string;
  private view: FleetView | undefined;

  constructor(
    name: string,
    private readonly speed: readonly Float64Array[],
  ) {
    this.name = name;
  }

  init(view: FleetView, _rng: Rng): void {
    this.view = view;
  }

  onInterval(): void {}

  pick(_proxy: number): number {
    const view = this.view!;
    const c = view.workers;
    const step = Math.floor(view.now() / view.interval);
    let best = 0;
    let bestDelay = Infinity;
    for (let e = 0; e < view.endpoints; e++) {
      const series = this.speed[e]!;
      const speed = series[Math.min(step, series.length - 1)]!;
      const waiting = Math.max(0, view.serverInflight(e) + 1 - c);
      const delay = (1 + waiting / c) / speed;
      if (delay < bestDelay) {
        best = e;
        bestDelay = delay;
      }
    }
    return best;
  }
}

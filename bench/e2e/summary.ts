/**
 * Figures over repetitions: each arm's median and range over its valid runs, and the ratios the
 * issue's targets are stated in, taken within each repetition (both arms ran over the same trace
 * segment and the same arrivals, minutes apart) and then summarised over repetitions.
 */
import type { ArmName } from './arms.js';
import type { ArmRun } from './figures.js';
import type { ConfigResult } from './run.js';

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Values it summarises. */
  n: number;
}

export function spread(values: readonly number[]): Spread | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

export interface Target {
  name: string;
  numerator: ArmName;
  denominator: ArmName;
  /** The ratio must be at most this; undefined where the issue sets no target for this step. */
  atMost: number | undefined;
}

/** The targets for one configuration. */
export function targetsFor(stepSeconds: number): Target[] {
  return [
    {
      name: 'augur xDS weights vs grpc-js WRR+ORCA',
      numerator: 'augur-xds',
      denominator: 'wrr-orca',
      atMost: stepSeconds === 1 ? 0.8 : stepSeconds === 5 ? 1.0 : undefined,
    },
    {
      name: 'augur xDS weights vs perfect-reactive',
      numerator: 'augur-xds',
      denominator: 'perfect-reactive',
      atMost: 1.0,
    },
    {
      name: 'augur RRM vs augur xDS weights',
      numerator: 'augur-rrm',
      denominator: 'augur-xds',
      atMost: 0.8,
    },
    // No targets: what the weights alone are worth (a gRPC client without augur's policy), and
    // the RRM against them, the comparison the RRM target was written for (before the xDS arm's
    // clients ran augur's per-call picker).
    {
      name: 'augur xDS weights alone (no augur policy) vs grpc-js WRR+ORCA',
      numerator: 'augur-xds-locality',
      denominator: 'wrr-orca',
      atMost: undefined,
    },
    {
      name: 'augur RRM vs augur xDS weights alone',
      numerator: 'augur-rrm',
      denominator: 'augur-xds-locality',
      atMost: undefined,
    },
  ];
}

export interface TargetResult extends Target {
  /** p99 ratio per repetition in which both arms ran validly. */
  ratios: number[];
  spread: Spread | undefined;
  /** met: the median is within the target; undefined: no target or no figure. */
  met: boolean | undefined;
  /** Every repetition within the target. */
  metEveryRep: boolean | undefined;
}

export function evaluateTargets(result: ConfigResult): TargetResult[] {
  return targetsFor(result.config.stepSeconds).map((t) => {
    const ratios = p99Ratios(result.runs, t.numerator, t.denominator);
    const s = spread(ratios);
    return {
      ...t,
      ratios,
      spread: s,
      met: s && t.atMost !== undefined ? s.median <= t.atMost : undefined,
      metEveryRep: s && t.atMost !== undefined ? s.max <= t.atMost : undefined,
    };
  });
}

/** p99 of `a` over p99 of `b`, per repetition in which both ran validly. */
export function p99Ratios(runs: readonly ArmRun[], a: ArmName, b: ArmName): number[] {
  const ratios: number[] = [];
  for (const rep of new Set(runs.map((r) => r.rep))) {
    const x = validRun(runs, a, rep);
    const y = validRun(runs, b, rep);
    if (x && y && y.p99.ms > 0) ratios.push(x.p99.ms / y.p99.ms);
  }
  return ratios;
}

function validRun(runs: readonly ArmRun[], arm: ArmName, rep: number): ArmRun | undefined {
  return runs.find((r) => r.arm === arm && r.rep === rep && !r.invalid);
}

/** An arm's valid runs. */
export function validRuns(runs: readonly ArmRun[], arm: ArmName): ArmRun[] {
  return runs.filter((r) => r.arm === arm && !r.invalid);
}

import type { ScenarioKind } from './scenarios.js';

/*
 * The routing benchmark's scenarios and CLI defaults as plain data, so `augur`'s CLI can show
 * them without loading the simulator (every `augur` command, the agent's too, builds the CLI).
 */

/** One scenario of the benchmark: a name and what it changes from the defaults. */
export interface ScenarioSpec {
  name: string;
  kind: ScenarioKind;
  /** Monitoring interval, seconds; undefined: the run's interval. */
  interval?: number;
}

export const SCENARIOS: readonly ScenarioSpec[] = [
  { name: 'default', kind: 'traces' },
  { name: 'interval 5 s', kind: 'traces', interval: 5 },
  { name: 'interval 15 s', kind: 'traces', interval: 15 },
  { name: 'flash crowd', kind: 'flash-crowd' },
  { name: 'noisy neighbour', kind: 'noisy-neighbour' },
  { name: 'constant capacity', kind: 'constant' },
];

/** Monitoring interval (seconds), seed and simulated seconds per scenario of a benchmark run. */
export const RUN_DEFAULTS = { interval: 1, seed: 1, simulatedSeconds: 600 } as const;

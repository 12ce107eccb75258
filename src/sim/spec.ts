import type { ScenarioKind } from './scenarios.js';

/*
 * The routing benchmark's scenarios and CLI defaults as plain data, so `augur`'s CLI can show
 * them without loading the simulator (every `augur` command, the agent's too, builds the CLI).
 */

/** One scenario of the benchmark: a name and what it changes from the defaults. */
export interface ScenarioSpec {
  name: string;
  kind: ScenarioKind;
  /** The background CPU traces: a trace set by name (`nab`, `bitbrains`, ...), or `custom` (--trace). */
  traces: string;
  /** Monitoring interval, seconds; undefined: the run's interval. */
  interval?: number;
  /** Used to tune augur's parameters (the report says so); the others are reported only. */
  tuning: boolean;
  what: string;
}

export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    name: 'nab',
    kind: 'traces',
    traces: 'nab',
    tuning: true,
    what: 'NAB CPU traces, one 5-minute step per 1 s interval',
  },
  {
    name: 'nab-5s',
    kind: 'traces',
    traces: 'nab',
    interval: 5,
    tuning: true,
    what: 'the same at a 5 s interval',
  },
  {
    name: 'nab-15s',
    kind: 'traces',
    traces: 'nab',
    interval: 15,
    tuning: true,
    what: 'the same at a 15 s interval',
  },
  {
    name: 'noisy-neighbour',
    kind: 'noisy-neighbour',
    traces: 'nab',
    tuning: true,
    what: 'NAB, and on 3 endpoints batch jobs ramping up over 3 intervals to +60 % CPU at random times',
  },
  {
    name: 'batch-job',
    kind: 'batch-job',
    traces: 'nab',
    tuning: true,
    what: 'NAB, and on 3 endpoints a periodic job: +55 % CPU within one interval, 25 of every 90 intervals',
  },
  {
    name: 'diurnal',
    kind: 'diurnal',
    traces: 'nab',
    tuning: true,
    what: 'background 0.35 + 0.25 sin (period 240 intervals, a phase per endpoint) + AR(1) noise',
  },
  {
    name: 'flash-crowd',
    kind: 'flash-crowd',
    traces: 'nab',
    tuning: true,
    what: 'NAB, and halfway through the arrival rate rises 1.5x over 3 intervals and holds',
  },
  {
    name: 'constant',
    kind: 'constant',
    traces: 'nab',
    tuning: true,
    what: "every endpoint's background held at its NAB trace's mean, constant arrivals",
  },
  {
    name: 'bitbrains',
    kind: 'traces',
    traces: 'bitbrains',
    tuning: false,
    what: 'Bitbrains VMs (CPU usage [%], clipped at 100), one 5-minute step per 1 s interval',
  },
  {
    name: 'azure2017',
    kind: 'traces',
    traces: 'azure2017',
    tuning: false,
    what: 'Azure 2017 VMs (avg_cpu), one 5-minute step per 1 s interval',
  },
  {
    name: 'google2011',
    kind: 'traces',
    traces: 'google2011',
    tuning: false,
    what: 'Google 2011 pseudo-VMs (cpu; 288 steps, cycled), one 5-minute step per 1 s interval',
  },
];

/** Monitoring interval (seconds), seeds and simulated seconds per scenario of a benchmark run. */
export const RUN_DEFAULTS = { interval: 1, seeds: 5, simulatedSeconds: 600 } as const;

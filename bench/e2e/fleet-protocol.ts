/** What the harness and the fleet process (bench/e2e/fleet.ts) say to each other over IPC. */
import type { AgentStats } from '../../src/agent/agent.js';
import type { BackendStats } from './backend.js';
import type { ProcessProbe } from './process-probe.js';

export interface FleetStart {
  /** `augur serve`'s gRPC address, where the agents report. */
  lps: string;
  /** The augur service every backend belongs to. */
  service: string;
  backends: number;
  workers: number;
  /** The agents' monitoring interval, seconds (the LPS's default interval should match). */
  reportInterval: number;
}

export interface FleetStarted {
  backends: Array<{ id: string; address: string }>;
}

/** Each backend's speed per step from `t0` (epoch ms). */
export interface FleetSchedule {
  t0: number;
  stepMs: number;
  speeds: number[][];
}

export interface FleetStats {
  backends: BackendStats[];
  agents: Array<AgentStats & { id: string }>;
  probe: ProcessProbe;
}

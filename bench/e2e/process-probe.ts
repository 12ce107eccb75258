/**
 * How late a process's event loop runs and how much CPU it takes, so that each arm's figures
 * come with the state of every process that served them: a run whose processes fell behind says
 * so instead of passing their delay off as routing quality.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** A process's event-loop lag and CPU since its probe was last reset. */
export interface ProcessProbe {
  pid: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** CPU time over wall time: 1 is one core busy. */
  cpuCores: number;
}

export interface Probe {
  read(): ProcessProbe;
  reset(): void;
}

export function createProbe(): Probe {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  let cpuFrom = process.cpuUsage();
  let wallFrom = performance.now();
  return {
    read: () => {
      const cpu = process.cpuUsage(cpuFrom);
      const wallMs = Math.max(1, performance.now() - wallFrom);
      return {
        pid: process.pid,
        lagP99Ms: lag.count ? lag.percentile(99) / 1e6 : 0,
        lagMaxMs: lag.count ? lag.max / 1e6 : 0,
        cpuCores: (cpu.user + cpu.system) / 1000 / wallMs,
      };
    },
    reset: () => {
      lag.reset();
      cpuFrom = process.cpuUsage();
      wallFrom = performance.now();
    },
  };
}

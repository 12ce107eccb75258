/**
 * The fleet process of `npm run bench:e2e`: the backends and, beside each, a real augur agent
 * (the shipped `Agent` class with its `HttpLoadSampler`, exactly what `augur agent --load-url
 * http://backend/load --health-url http://backend/healthz` runs). The agents run in this process
 * rather than as one `augur agent` process each: eight more Node processes would take a good part
 * of a 2-core machine; in-process they speak to `augur serve` over real gRPC streams and read
 * their backend's load over real HTTP all the same.
 *
 * Driven by the harness over IPC (fleet-protocol.ts); stops everything on `stop`, on SIGTERM or
 * SIGINT, and when the harness goes away.
 */
import { Agent } from '../../src/agent/agent.js';
import { HttpLoadSampler } from '../../src/agent/http-sampler.js';
import { createLogger } from '../../src/common/logger.js';
import { TraceBackend } from './backend.js';
import type { FleetSchedule, FleetStart, FleetStarted, FleetStats } from './fleet-protocol.js';
import { answerIpc } from './ipc.js';
import { cacheGrpcOrcaProto } from './orca-cache.js';
import { createProbe } from './process-probe.js';

cacheGrpcOrcaProto();
const logger = createLogger('e2e-fleet', 'warn');
const probe = createProbe();
const backends: TraceBackend[] = [];
const agents: Agent[] = [];
let stopping: Promise<void> | undefined;

async function start(options: FleetStart): Promise<FleetStarted> {
  if (backends.length > 0) throw new Error('the fleet is already started');
  for (let i = 0; i < options.backends; i++) {
    const backend = new TraceBackend({ index: i, id: `b${i}`, workers: options.workers });
    await backend.start();
    backends.push(backend);
  }
  for (const b of backends) {
    agents.push(
      await Agent.start({
        lps: options.lps,
        endpointId: b.id,
        service: options.service,
        address: b.address,
        intervalSeconds: options.reportInterval,
        probe: { kind: 'http', url: `http://${b.address}/healthz` },
        sampler: new HttpLoadSampler({ url: `http://${b.address}/load` }),
        // The host this backend models: one core per worker (the load report's unit).
        hostFacts: {
          cpuCores: options.workers,
          memoryBytes: 8 * 2 ** 30,
          networkBytesPerSecond: 250e6,
          linkSpeedSource: 'default',
        },
        logger: logger.child({ endpoint: b.id }),
      }),
    );
  }
  return { backends: backends.map((b) => ({ id: b.id, address: b.address })) };
}

function schedule({ t0, stepMs, speeds }: FleetSchedule): void {
  if (speeds.length !== backends.length) {
    throw new Error(`a schedule for ${speeds.length} backends, the fleet has ${backends.length}`);
  }
  backends.forEach((b, i) => b.setSchedule({ t0, stepMs, speeds: speeds[i]! }));
}

function stats(): FleetStats {
  return {
    backends: backends.map((b) => b.stats()),
    agents: agents.map((a, i) => ({ id: backends[i]!.id, ...a.stats() })),
    probe: probe.read(),
  };
}

function stop(): Promise<void> {
  stopping ??= (async () => {
    // Agents first: each says goodbye to the LPS while its backend still answers.
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled(backends.map((b) => b.stop()));
  })();
  return stopping;
}

answerIpc('start', (body) => start(body as FleetStart));
answerIpc('schedule', (body) => schedule(body as FleetSchedule));
answerIpc('stats', () => stats());
answerIpc('reset', () => {
  probe.reset();
  for (const b of backends) b.resetTimerStats();
});
answerIpc('stop', async () => {
  await stop();
  // Answer first, then leave.
  setTimeout(() => process.exit(0), 50);
});
for (const signal of ['SIGTERM', 'SIGINT', 'disconnect'] as const) {
  process.once(signal, () => void stop().then(() => process.exit(0)));
}

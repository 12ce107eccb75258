/**
 * npm run bench:ingest — how many samples per second `augur serve` ingests from
 * many concurrent agent streams, how many streams it holds at a 1 s interval
 * with its event loop responsive, and how long an agent waits for its ack; with
 * durable acks (the default: an ack follows the fsync of the sample log) and
 * without (lps.durableAcks false, acks on receipt), measured in one run. The LPS
 * runs in its own process (`augur serve`); this process plays the agents over
 * real gRPC on loopback.
 *
 * `npm run bench:ingest -- --only=footprint` measures memory and scoring CPU per endpoint
 * instead (bench/footprint.ts).
 *
 * The `augur serve` children run with the node flags of the Docker image's ENTRYPOINT (as augur
 * ships), in their NODE_OPTIONS. BENCH_SERVE_NODE_OPTIONS (environment) replaces them, to compare
 * runtime settings without changing this process ('' for none).
 */
import * as grpc from '@grpc/grpc-js';
import { loadavg } from 'node:os';
import { ProbeHealth } from '../src/gen/augur/v1/common.js';
import {
  TelemetryClient,
  type AgentMessage,
  type ControlMessage,
  type EndpointData,
} from '../src/gen/augur/v1/telemetry.js';
import { ServeProcess } from '../test/support/serve-process.js';
import { imageRuntime } from './image-runtime.js';
import { markdownTable, quantile, writeBenchmarkSection } from './report.js';

const args = new Map(
  process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]),
);
if (args.get('only') === 'footprint') {
  // Memory and scoring CPU per endpoint, without the agents' streams (bench/footprint.ts).
  const { runFootprint } = await import('./footprint.js');
  await runFootprint(process.argv.slice(2));
  process.exit(0);
}
const STREAMS = Number(args.get('streams') ?? 5000);
const HOLD_SECONDS = Number(args.get('hold') ?? 30);
/**
 * Streams of a flood. More make this process the bottleneck, not the LPS: at 200 streams sending
 * one sample per message it ran at 85–131 % CPU with 0.6–1.3 GB of grpc-js write buffers while
 * each LPS used 14–23 %, and 2,300 samples/s got through against 17,000–20,000 with 20 streams.
 */
const FLOOD_STREAMS = Number(args.get('flood-streams') ?? 20);
const FLOOD_SECONDS = Number(args.get('flood') ?? 5);
/** Flood phases are repeated, the two ack modes taking turns: a comparison is a median of these. */
const REPEATS = Number(args.get('repeats') ?? 5);
const CHANNELS = 50;

type Call = grpc.ClientDuplexStream<AgentMessage, ControlMessage>;

function makeClients(address: string, n: number): InstanceType<typeof TelemetryClient>[] {
  // Separate subchannels, so streams spread over many TCP connections as real agents do.
  return Array.from(
    { length: n },
    (_, i) =>
      new TelemetryClient(address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        'augur.bench.channel': i,
      }),
  );
}

function sample(seq: number): EndpointData {
  return {
    endpointId: '',
    cpuUsage: 0.3 + 0.2 * Math.sin(seq / 10),
    memoryUsage: 0.4,
    networkIo: 1e6,
    networkCapacity: 0,
    responseTime: 0.012,
    timestamp: new Date(),
    sequence: seq,
    health: ProbeHealth.PROBE_HEALTH_SERVING,
    requestRate: 100,
  };
}

/** Ack delays (send of a sample to the ack that covers it), ms, of the streams that track them. */
type AckDelays = number[];

function openStream(
  client: InstanceType<typeof TelemetryClient>,
  id: string,
  delays?: { sent: Map<number, number>; out: AckDelays },
): Call {
  const call = client.report();
  call.on('data', (m: ControlMessage) => {
    const acked = m.ack?.lastSequence;
    if (!delays || acked === undefined) return;
    const now = performance.now();
    for (const [seq, at] of delays.sent) {
      if (seq > acked) break;
      delays.out.push(now - at);
      delays.sent.delete(seq);
    }
  });
  call.on('error', () => undefined);
  call.write({
    hello: {
      endpointId: id,
      service: `svc-${Number(id.split('-')[1]) % 20}`,
      address: '10.0.0.1',
      port: 8000,
      labels: {},
      agentVersion: 'bench',
    },
  });
  return call;
}

async function lagWindow(lps: ServeProcess): Promise<number> {
  return (await lps.metric('nodejs_eventloop_lag_p99_seconds')) * 1000;
}

/** Phase 1: STREAMS agents at a 1 s interval, held for HOLD_SECONDS. */
async function hold(lps: ServeProcess) {
  const clients = makeClients(lps.grpcAddress, CHANNELS);
  const calls: Call[] = [];
  const seqs: number[] = [];
  // Every 10th stream times its acks (what an agent waits before it may drop a sample).
  const ackDelays: AckDelays = [];
  const sentAt: Array<Map<number, number> | undefined> = [];
  const rssBefore = await lps.metric('process_resident_memory_bytes');
  const opened = Date.now();
  for (let i = 0; i < STREAMS; i++) {
    const sent = i % 10 === 0 ? new Map<number, number>() : undefined;
    sentAt.push(sent);
    calls.push(openStream(clients[i % CHANNELS]!, `ep-${i}`, sent && { sent, out: ackDelays }));
    seqs.push(0);
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50));
  }
  // Each agent ticks once a second, spread over the second as real agents are.
  const timers = calls.map((call, i) =>
    setTimeout(
      () => {
        const t = setInterval(() => {
          const seq = ++seqs[i]!;
          sentAt[i]?.set(seq, performance.now());
          call.write({ sample: sample(seq) });
        }, 1000);
        timers.push(t as unknown as NodeJS.Timeout);
      },
      (i * 1000) / STREAMS,
    ),
  );
  while ((await lps.metric('augur_lps_agent_streams')) < STREAMS && Date.now() - opened < 30_000) {
    await new Promise((r) => setTimeout(r, 500));
  }
  const connectSeconds = (Date.now() - opened) / 1000;
  await new Promise((r) => setTimeout(r, 3000));
  await lagWindow(lps); // reset the server's lag histogram
  const s0 = await lps.metric('augur_lps_samples_total');
  const c0 = await lps.metric('process_cpu_seconds_total');
  const g0 = await lps.metric('nodejs_gc_duration_seconds_sum');
  const t0 = Date.now();
  const lags: number[] = [];
  while (Date.now() - t0 < HOLD_SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 5000));
    lags.push(await lagWindow(lps));
  }
  const elapsed = (Date.now() - t0) / 1000;
  const samples = (await lps.metric('augur_lps_samples_total')) - s0;
  const cpu = (await lps.metric('process_cpu_seconds_total')) - c0;
  const gc = (await lps.metric('nodejs_gc_duration_seconds_sum')) - g0;
  await measuredSomething(lps, `the held phase (${STREAMS} agents)`, samples);
  const measured = ackDelays.splice(0);
  const result = {
    ackP50Ms: quantile(measured, 0.5),
    ackP99Ms: quantile(measured, 0.99),
    acks: measured.length,
    streams: await lps.metric('augur_lps_agent_streams'),
    connectSeconds,
    samplesPerSecond: samples / elapsed,
    lagP99Ms: Math.max(...lags),
    cpuPercent: (cpu / elapsed) * 100,
    /** Time in V8's garbage collector, as a share of the CPU time. */
    gcShare: gc / Math.max(cpu, 1e-9),
    newSpaceMb: (await lps.metric('nodejs_heap_space_size_total_bytes{space="new"}')) / 2 ** 20,
    rssMb: (await lps.metric('process_resident_memory_bytes')) / 2 ** 20,
    /** Growth of the LPS's RSS from before the first stream, per stream (its endpoint and stream). */
    rssPerEndpointKb:
      ((await lps.metric('process_resident_memory_bytes')) - rssBefore) / STREAMS / 1024,
    rejected: await lps.metric('augur_lps_samples_rejected_total'),
    scoringMeanMs:
      ((await lps.metric('augur_lps_scoring_duration_seconds_sum')) /
        Math.max(1, await lps.metric('augur_lps_scoring_duration_seconds_count'))) *
      1000,
  };
  for (const t of timers) clearInterval(t);
  for (const c of calls) c.cancel();
  for (const c of clients) c.close();
  return result;
}

/** Throws when a phase stored nothing or the LPS refused a sample: a figure would be wrong. */
async function measuredSomething(lps: ServeProcess, phase: string, samples: number): Promise<void> {
  const rejected = await lps.metric('augur_lps_samples_rejected_total');
  if (samples > 0 && rejected === 0) return;
  throw new Error(
    `bench:ingest: ${phase} stored ${samples} samples and the LPS has refused ${rejected}; ` +
      `its log:\n${lps.log().split('\n').slice(-20).join('\n')}`,
  );
}

let floods = 0;

/** Phase 2: FLOOD_STREAMS agents sending as fast as flow control allows. */
async function flood(lps: ServeProcess, batch: number) {
  const clients = makeClients(lps.grpcAddress, Math.min(CHANNELS, FLOOD_STREAMS));
  // New endpoints each time: the streams of the last flood may not all have closed yet.
  const base = 100_000 * ++floods;
  let running = true;
  const calls = Array.from({ length: FLOOD_STREAMS }, (_, i) => {
    const call = openStream(clients[i % clients.length]!, `ep-${base + i}`);
    let seq = 0;
    const pump = () => {
      while (running) {
        const msg: AgentMessage =
          batch === 1
            ? { sample: sample(++seq) }
            : { batch: { samples: Array.from({ length: batch }, () => sample(++seq)) } };
        if (!call.write(msg)) {
          call.once('drain', pump);
          return;
        }
      }
    };
    setImmediate(pump);
    return call;
  });
  await new Promise((r) => setTimeout(r, 2000));
  await lagWindow(lps);
  const s0 = await lps.metric('augur_lps_samples_total');
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, FLOOD_SECONDS * 1000));
  const samples = (await lps.metric('augur_lps_samples_total')) - s0;
  const elapsed = (Date.now() - t0) / 1000;
  const lag = await lagWindow(lps);
  running = false;
  for (const c of calls) c.cancel();
  for (const c of clients) c.close();
  await measuredSomething(lps, `a flood (batches of ${batch})`, samples);
  return { samplesPerSecond: samples / elapsed, lagP99Ms: lag };
}

/** Waits until the agent streams of the last phase have closed. */
async function settle(lps: ServeProcess): Promise<void> {
  const until = Date.now() + 60_000;
  while ((await lps.metric('augur_lps_agent_streams')) > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface Spread {
  median: number;
  min: number;
  max: number;
}
const spread = (xs: number[]): Spread => ({
  median: quantile(xs, 0.5),
  min: Math.min(...xs),
  max: Math.max(...xs),
});

// Both modes run side by side, each in its own `augur serve` (an idle one costs little), and
// take turns: a load that comes and goes on this shared machine falls on both alike.
// This bench measures capacity, so the limits meant for a hostile client (issue 12) are raised
// past what it sends: every flood brings new endpoint ids (kept after their streams close), and a
// flooding stream sends far more than lps.maxSamplesPerSecond. A phase that stores nothing, or any
// refused sample, fails the run rather than printing a zero.
const capacity = {
  AUGUR_LPS__MAX_ENDPOINTS: String(STREAMS + FLOOD_STREAMS * REPEATS * 2 + 1000),
  AUGUR_LPS__MAX_ENDPOINTS_PER_SERVICE: String(STREAMS + FLOOD_STREAMS * REPEATS * 2 + 1000),
  AUGUR_LPS__MAX_SAMPLES_PER_SECOND: '1000000000',
  AUGUR_LPS__SAMPLE_BURST: '1000000000',
};
/** Node flags of the `augur serve` children: the image's, unless BENCH_SERVE_NODE_OPTIONS says. */
const serveNodeOptions = process.env.BENCH_SERVE_NODE_OPTIONS ?? imageRuntime().nodeFlags.join(' ');
const serveEnv = { ...capacity, NODE_OPTIONS: serveNodeOptions };
const servers = {
  durable: await ServeProcess.start([], { ...serveEnv, AUGUR_LPS__DURABLE_ACKS: 'true' }),
  onReceipt: await ServeProcess.start([], { ...serveEnv, AUGUR_LPS__DURABLE_ACKS: 'false' }),
};
type Mode = keyof typeof servers;
const MODES: Mode[] = ['durable', 'onReceipt'];
const results = {} as Record<
  Mode,
  {
    held: Awaited<ReturnType<typeof hold>>;
    single: number[];
    batched: number[];
    syncs: number;
    syncMeanMs: number;
  }
>;
try {
  for (const mode of MODES) {
    const held = await hold(servers[mode]);
    console.log(mode, 'hold', held);
    await settle(servers[mode]);
    results[mode] = { held, single: [], batched: [], syncs: 0, syncMeanMs: NaN };
  }
  for (let r = 0; r < REPEATS; r++) {
    for (const batch of [1, 50]) {
      for (const mode of r % 2 === 0 ? MODES : [...MODES].reverse()) {
        const f = await flood(servers[mode], batch);
        (batch === 1 ? results[mode].single : results[mode].batched).push(f.samplesPerSecond);
        console.log(`repeat ${r + 1}: ${mode}, batch ${batch}:`, f);
        await settle(servers[mode]);
      }
    }
  }
  const syncs = await servers.durable.metric('augur_lps_log_sync_seconds_count');
  const syncSeconds = await servers.durable.metric('augur_lps_log_sync_seconds_sum');
  results.durable.syncs = syncs;
  results.durable.syncMeanMs = syncs > 0 ? (syncSeconds / syncs) * 1000 : NaN;
} finally {
  await Promise.all(MODES.map((m) => servers[m].stop()));
}
const durable = {
  ...results.durable,
  single: spread(results.durable.single),
  batched: spread(results.durable.batched),
};
const onReceipt = {
  ...results.onReceipt,
  single: spread(results.onReceipt.single),
  batched: spread(results.onReceipt.batched),
};
const perSecond = (x: Spread): string =>
  `${x.median.toFixed(0)} (${x.min.toFixed(0)}-${x.max.toFixed(0)})`;
const rows = [durable, onReceipt].flatMap((r, k) => {
  const mode = k === 0 ? 'durable (log + fsync)' : 'on receipt (no log)';
  return [
    [
      mode,
      `${STREAMS} agents at a 1 s interval, held ${HOLD_SECONDS} s`,
      r.held.streams,
      r.held.samplesPerSecond.toFixed(0),
      `${r.held.ackP50Ms.toFixed(1)} / ${r.held.ackP99Ms.toFixed(1)} ms`,
      `${r.held.lagP99Ms.toFixed(1)} ms`,
      `${r.held.cpuPercent.toFixed(0)} % of a core (GC ${(r.held.gcShare * 100).toFixed(1)} % of it; young generation ${r.held.newSpaceMb.toFixed(0)} MB)`,
      `${r.held.rssMb.toFixed(0)} MB (${r.held.rssPerEndpointKb.toFixed(1)} KB / endpoint)`,
    ],
    [
      mode,
      `${FLOOD_STREAMS} agents flooding, 1 sample per message (${REPEATS} × ${FLOOD_SECONDS} s)`,
      FLOOD_STREAMS,
      perSecond(r.single),
      '',
      '',
      '',
      '',
    ],
    [
      mode,
      `${FLOOD_STREAMS} agents flooding, batches of 50, a replay (${REPEATS} × ${FLOOD_SECONDS} s)`,
      FLOOD_STREAMS,
      perSecond(r.batched),
      '',
      '',
      '',
      '',
    ],
  ];
});
const ratio = (a: number, b: number): string =>
  b > 0 ? `${((a / b) * 100).toFixed(0)} %` : 'n/a (nothing measured on receipt)';
const load = loadavg()
  .map((l) => l.toFixed(1))
  .join(', ');
const body = [
  `The LPS runs as \`augur serve\` in its own process (node flags ${serveNodeOptions ? `\`${serveNodeOptions}\`, ${process.env.BENCH_SERVE_NODE_OPTIONS === undefined ? "as the Docker image's ENTRYPOINT gives them" : 'from BENCH_SERVE_NODE_OPTIONS'}` : 'none'}); this process plays the agents over real gRPC on loopback (${CHANNELS} TCP connections), so both share the machine's cores. The two acknowledgement modes each have their own \`augur serve\`, started together: the held phase runs once on each, then the floods ${REPEATS} times, the modes taking turns; samples/s of a flood is the median of its ${REPEATS} runs with their range.`,
  '',
  markdownTable(
    [
      'acks',
      'scenario',
      'streams',
      'samples/s',
      'ack delay p50 / p99',
      'LPS event-loop lag p99',
      'LPS CPU',
      'LPS RSS',
    ],
    rows,
  ),
  '',
  `**What a durable ack costs** (lps.durableAcks, on by default: an ack is sent once the samples it covers are in the sample log and fsynced, in batches): ` +
    `flooding, ${ratio(durable.single.median, onReceipt.single.median)} of the samples/s of acks on receipt with one sample per message and ${ratio(durable.batched.median, onReceipt.batched.median)} with batches of 50 (medians); ` +
    `at ${STREAMS} agents × 1 s, ${ratio(durable.held.cpuPercent, onReceipt.held.cpuPercent)} of the CPU, and an agent waits ${durable.held.ackP50Ms.toFixed(1)} ms (p50) / ${durable.held.ackP99Ms.toFixed(1)} ms (p99) for its ack instead of ${onReceipt.held.ackP50Ms.toFixed(1)} / ${onReceipt.held.ackP99Ms.toFixed(1)} ms. ` +
    `Over the durable run, ${durable.syncs.toFixed(0)} fsyncs (batches) took ${durable.syncMeanMs.toFixed(2)} ms on average from a record's first waiter to the end of its fsync. ` +
    `Ack delay is measured by every 10th stream of the held phase, from the write of a sample to the ack that covers it.`,
  '',
  `Targets: >= 50,000 samples/s; 5,000 concurrent streams at 1 s with p99 event-loop lag < 50 ms. ` +
    `Connecting ${STREAMS} streams took ${durable.held.connectSeconds.toFixed(1)} s (durable) and ${onReceipt.held.connectSeconds.toFixed(1)} s; samples rejected: ${durable.held.rejected + onReceipt.held.rejected}. ` +
    `A scoring pass took ${durable.held.scoringMeanMs.toFixed(1)} ms on average (durable) and ${onReceipt.held.scoringMeanMs.toFixed(1)} ms (wall time, ${((durable.held.scoringMeanMs * 1000) / STREAMS).toFixed(1)} and ${((onReceipt.held.scoringMeanMs * 1000) / STREAMS).toFixed(1)} µs per endpoint). ` +
    `Lag is prom-client's \`nodejs_eventloop_lag_p99_seconds\` (10 ms resolution), read every 5 s; the worst window is shown. ` +
    `GC is \`nodejs_gc_duration_seconds\` over the held phase as a share of the LPS's CPU time; the young generation is V8's new space at its end (\`nodejs_heap_space_size_total_bytes{space="new"}\`). ` +
    `The limits meant for hostile clients (\`lps.maxEndpoints\`, \`lps.maxEndpointsPerService\`, \`lps.maxSamplesPerSecond\`, \`lps.sampleBurst\`) are raised for this bench, which measures capacity. ` +
    `LPS RSS per endpoint is the growth of its RSS from before the first stream to the end of the held phase, over the streams (the endpoint, its samples so far and its gRPC stream; \`npm run bench:ingest -- --only=footprint\` measures full rings and the forecaster state without the streams). ` +
    `Load average of the (shared) machine at the end of the run: ${load}.`,
].join('\n');
writeBenchmarkSection('Ingest (LPS)', 'npm run bench:ingest', body);
process.exit(0);

/**
 * Child process of bench/cluster.ts: the endpoints' agents. Each endpoint is one Telemetry/Report
 * stream (as a real agent's), many streams sharing each HTTP/2 connection (CHANNELS_PER_REPLICA
 * connections per replica), so 15,000 endpoints cost a few dozen sockets. Every endpoint sends one
 * sample per second, spread over the second; a stream that fails (its replica was killed) opens
 * again a second later on a live replica, with a new hello, its sequence numbers continuing.
 *
 * Endpoint i belongs to service `svc-(i mod services)` and connects first to replica
 * `floor(i / services) mod replicas`, so every service has endpoints on every replica.
 *
 * IPC in: {start}, {addresses} (index = replica; '' = down), {report}, {stop}.
 * IPC out: {ready}, {counts}.
 */
import * as grpc from '@grpc/grpc-js';
import { ProbeHealth } from '../src/gen/augur/v1/common.js';
import {
  TelemetryClient,
  type AgentMessage,
  type ControlMessage,
} from '../src/gen/augur/v1/telemetry.js';

export interface AgentsStart {
  addresses: string[];
  endpoints: number;
  services: number;
}

export interface AgentCounts {
  /** Samples written to a stream. */
  sent: number;
  /** Samples covered by an ack. */
  acked: number;
  /** Streams whose hello was acknowledged and that are open now. */
  open: number;
  /** Streams that failed (and were opened again). */
  failures: number;
  /** CPU of this process since start, seconds. */
  cpuSeconds: number;
}

type Call = grpc.ClientDuplexStream<AgentMessage, ControlMessage>;
type Client = InstanceType<typeof TelemetryClient>;

const CHANNELS_PER_REPLICA = 16;
const TICK_MS = 10;

interface Endpoint {
  id: string;
  service: string;
  address: string;
  home: number;
  call: Call | undefined;
  /** The hello of the current stream was acknowledged. */
  open: boolean;
  seq: number;
  acked: number;
}

let addresses: string[] = [];
let clients: Client[][] = [];
const endpoints: Endpoint[] = [];
let stopping = false;
const counts = { sent: 0, acked: 0, failures: 0 };

function channels(replica: number): Client[] {
  let list = clients[replica];
  if (!list || list.length === 0) {
    list = Array.from(
      { length: CHANNELS_PER_REPLICA },
      (_, k) =>
        new TelemetryClient(addresses[replica]!, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'augur.bench.channel': `${replica}-${k}-${addresses[replica]}`,
        }),
    );
    clients[replica] = list;
  }
  return list;
}

function open(e: Endpoint, index: number): void {
  if (stopping) return;
  // The endpoint's home replica if it is up, otherwise the next one up.
  let replica = -1;
  for (let k = 0; k < addresses.length; k++) {
    const r = (e.home + k) % addresses.length;
    if (addresses[r]) {
      replica = r;
      break;
    }
  }
  if (replica < 0) {
    setTimeout(() => open(e, index), 1000);
    return;
  }
  const list = channels(replica);
  const call = list[index % list.length]!.report();
  e.call = call;
  e.open = false;
  // Acks cover sequence numbers of this endpoint; after a reconnect the hello's ack covers the
  // samples the replica already holds.
  call.on('data', (m: ControlMessage) => {
    const last = m.ack?.lastSequence;
    if (last === undefined) return;
    e.open = true;
    if (last > e.acked) {
      counts.acked += Math.min(last, e.seq) - e.acked;
      e.acked = Math.min(last, e.seq);
    }
  });
  let failed = false;
  const fail = (): void => {
    if (failed || e.call !== call) return;
    failed = true;
    e.call = undefined;
    e.open = false;
    if (stopping) return;
    counts.failures++;
    setTimeout(() => open(e, index), 1000 + Math.random() * 500);
  };
  call.on('error', fail);
  call.on('end', fail);
  call.write({
    hello: {
      endpointId: e.id,
      service: e.service,
      address: e.address,
      port: 8080,
      labels: {},
      agentVersion: 'bench-cluster',
    },
  });
}

function tick(slot: number, slots: number): void {
  const now = new Date();
  for (let i = slot; i < endpoints.length; i += slots) {
    const e = endpoints[i]!;
    if (!e.call) continue;
    const seq = ++e.seq;
    // Load that moves, differently per endpoint, so lists change and some are pushed.
    const phase = seq / 6 + i;
    e.call.write({
      sample: {
        endpointId: '',
        cpuUsage: 0.35 + 0.25 * Math.sin(phase),
        memoryUsage: 0.4,
        networkIo: 1e6,
        networkCapacity: 0,
        responseTime: 0.01 + 0.005 * (1 + Math.sin(phase)),
        timestamp: now,
        sequence: seq,
        health: ProbeHealth.PROBE_HEALTH_SERVING,
        requestRate: 100,
      },
    });
    counts.sent++;
  }
}

function start(s: AgentsStart): void {
  addresses = s.addresses;
  clients = addresses.map(() => []);
  for (let i = 0; i < s.endpoints; i++) {
    endpoints.push({
      id: `ep-${i}`,
      service: `svc-${i % s.services}`,
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      home: Math.floor(i / s.services) % addresses.length,
      call: undefined,
      open: false,
      seq: 0,
      acked: 0,
    });
  }
  // Open the streams in steps, so the replicas are not handed 15,000 hellos in one turn.
  let next = 0;
  const opener = setInterval(() => {
    const until = Math.min(endpoints.length, next + 250);
    for (; next < until; next++) open(endpoints[next]!, next);
    if (next >= endpoints.length) clearInterval(opener);
  }, 50);
  // One timer: every TICK_MS, the next slice of the endpoints sends (each once a second).
  const slots = 1000 / TICK_MS;
  let slot = 0;
  setInterval(() => {
    tick(slot, slots);
    slot = (slot + 1) % slots;
  }, TICK_MS);
}

function report(): AgentCounts {
  const cpu = process.cpuUsage();
  return {
    ...counts,
    open: endpoints.reduce((n, e) => n + (e.open ? 1 : 0), 0),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

process.on(
  'message',
  (m: { start?: AgentsStart; addresses?: string[]; report?: boolean; stop?: boolean }) => {
    if (m.start) start(m.start);
    if (m.addresses) {
      // A replica that changed address (restarted) gets new connections.
      m.addresses.forEach((a, r) => {
        if (a !== addresses[r]) {
          for (const c of clients[r] ?? []) c.close();
          clients[r] = [];
        }
      });
      addresses = m.addresses;
    }
    if (m.report) process.send!({ counts: report() });
    if (m.stop) {
      stopping = true;
      for (const e of endpoints) e.call?.cancel();
      for (const list of clients) for (const c of list) c.close();
      process.exit(0);
    }
  },
);
process.send!({ ready: true });

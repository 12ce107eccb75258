/**
 * The data-plane process of `npm run bench:e2e`: the demo data planes (src/rrm/dataplane.ts) the
 * augur-rrm arm sends its requests through, each asking augur's RRM over ext_proc for every
 * request, as Envoy does. A proxy runs as a process of its own, like Envoy beside its clients:
 * in the load generator's process its work (an HTTP server, an ext_proc stream and an upstream
 * request per request) delayed the load generator's sends and put the harness into the arm's
 * figures.
 *
 * It also hosts the augur-xds-locality arm's gateways (xds-gateway.ts): grpc-js-xds channels in a
 * process that never registers augur's per-call policy.
 *
 * Driven over IPC: `open` starts a data plane (or, with `gateway`, a gateway) and answers its
 * URL, `close` stops it and answers the requests a data plane could not route through the RRM
 * (by reason), `probe` and `probe-reset` report this process's event-loop lag and CPU. Stops on
 * SIGTERM, SIGINT, and when the harness goes away.
 */
import { pino } from 'pino';
import { DataPlane } from '../../src/rrm/dataplane.js';
import { answerIpc } from './ipc.js';
import { createProbe } from './process-probe.js';
import { XdsGateway, type XdsGatewayOptions } from './xds-gateway.js';

export interface DataPlaneOpen {
  /** The RRM's ext_proc address. */
  extProc: string;
  /** The augur service (Envoy's route and cluster name). */
  service: string;
  /** What Envoy's fallback policy balances over when the RRM does not answer: every backend. */
  fallbackHosts: string[];
  /** The per-try timeout, ms. */
  upstreamTimeoutMs: number;
}

/** Opens an xds-gateway.ts gateway instead of a data plane. */
export interface GatewayOpen {
  gateway: XdsGatewayOptions;
}

export interface DataPlaneOpened {
  id: number;
  url: string;
}

const probe = createProbe();
const open = new Map<number, { plane: Pick<DataPlane, 'stop'>; detours: Record<string, number> }>();
let nextId = 1;

async function start(options: DataPlaneOpen): Promise<DataPlaneOpened> {
  const detours: Record<string, number> = {};
  // The data plane logs (warn) each request it could not route through the RRM.
  const logger = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        // Keyed by the message and its error, so a report says why (a timeout, a reset, …).
        const { msg, err } = JSON.parse(line) as { msg?: string; err?: unknown };
        const why = `${msg ?? 'warning'}${typeof err === 'string' ? ` (${err})` : ''}`;
        detours[why] = (detours[why] ?? 0) + 1;
      },
    },
  );
  const plane = new DataPlane({
    listen: '127.0.0.1:0',
    rrm: options.extProc,
    routeName: options.service,
    clusterName: options.service,
    upstreamTimeoutMs: options.upstreamTimeoutMs,
    fallbackHosts: options.fallbackHosts,
    logger,
  });
  await plane.start();
  const id = nextId++;
  open.set(id, { plane, detours });
  return { id, url: plane.url };
}

async function startGateway(options: XdsGatewayOptions): Promise<DataPlaneOpened> {
  const gateway = new XdsGateway(options);
  const url = await gateway.start();
  const id = nextId++;
  open.set(id, { plane: gateway, detours: {} });
  return { id, url };
}

async function close(id: number): Promise<Record<string, number>> {
  const entry = open.get(id);
  if (!entry) throw new Error(`no data plane ${id}`);
  open.delete(id);
  await entry.plane.stop();
  return entry.detours;
}

async function stopAll(): Promise<void> {
  await Promise.allSettled([...open.keys()].map((id) => close(id)));
}

answerIpc('open', (body) => {
  const b = body as DataPlaneOpen | GatewayOpen;
  return 'gateway' in b ? startGateway(b.gateway) : start(b);
});
answerIpc('close', (body) => close((body as { id: number }).id));
answerIpc('probe', () => probe.read());
answerIpc('probe-reset', () => probe.reset());
for (const signal of ['SIGTERM', 'SIGINT', 'disconnect'] as const) {
  process.once(signal, () => void stopAll().then(() => process.exit(0)));
}

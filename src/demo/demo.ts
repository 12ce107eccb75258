import { loadConfig } from '../serve/config.js';
import { createLogger, type Logger } from '../common/logger.js';
import { Agent } from '../agent/agent.js';
import { EndpointState } from '../gen/augur/v1/common.js';
import { describeSwapRule, type Swap } from '../lps/swaps.js';
import { DataPlane } from '../rrm/dataplane.js';
import { startControlPlane, type ControlPlane } from '../serve/control-plane.js';
import { DemoBackend } from './backend.js';
import { LoadGenerator, type RequestResult } from './loadgen.js';
import { DEMO_DEFAULTS, type DemoOptions } from './defaults.js';
import { constantProfile, rampProfile, type BackgroundProfile } from './profile.js';

export type { DemoOptions };
export { DEMO_DEFAULTS };

const SERVICE = 'demo';
const CAPACITY_RPS = 150;

/**
 * The three demo backends. backend-2's background load ramps from 15 % to 85 %
 * of its capacity from t = 20 s to t = 45 s, holds 40 s, comes back down, and
 * does it again every 150 s, so a swap happens within the first minute and
 * keeps happening while the demo runs.
 */
export const DEMO_BACKENDS: Array<{ id: string; background: BackgroundProfile }> = [
  { id: 'backend-1', background: constantProfile(0.2) },
  {
    id: 'backend-2',
    background: rampProfile(0.15, { at: 20, over: 25, to: 0.85, hold: 40, every: 150 }),
  },
  { id: 'backend-3', background: constantProfile(0.3) },
];

export interface RunningDemo {
  plane: ControlPlane;
  backends: DemoBackend[];
  dataPlane: DataPlane;
  load: LoadGenerator;
  /** Resolves when the demo has stopped (duration reached or `stop()`). */
  done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * `augur demo`: the control plane, three HTTP backends whose capacity is shared
 * with a changing background load, an agent beside each, the demo data plane
 * routing through the RRM, and a load generator, all in one process with no
 * external services. Prints where everything listens, a live table, and one
 * line each time augur cuts a backend's traffic (and what followed).
 */
export async function runDemo(partial: Partial<DemoOptions> = {}): Promise<RunningDemo> {
  const opts: DemoOptions = { ...DEMO_DEFAULTS, ...partial };
  const logger = createLogger('augur-demo', opts.logLevel);
  const config = loadConfig({
    flags: {
      grpcListen: opts.grpcListen,
      httpListen: opts.httpListen,
      dataDir: opts.dataDir,
      logLevel: opts.logLevel,
      rrm: { extProcListen: opts.extProcListen },
    },
  });
  const plane = await startControlPlane({ config, logger });
  const started = Date.now();
  const backends = DEMO_BACKENDS.map(
    (b) => new DemoBackend({ id: b.id, capacityRps: CAPACITY_RPS, background: b.background }),
  );
  await Promise.all(backends.map((b) => b.start()));
  const agents = await Promise.all(
    backends.map((b) =>
      Agent.start({
        lps: plane.grpcAddress,
        endpointId: b.id,
        service: SERVICE,
        address: b.address,
        probe: { kind: 'http', url: `http://${b.address}/healthz` },
        intervalSeconds: 1,
        sampler: b.sampler(),
        logger: logger.child({ part: 'agent', endpoint: b.id }),
      }),
    ),
  );
  const dataPlane = new DataPlane({
    listen: opts.proxyListen,
    // As Envoy's ext_proc cluster in envoy/bootstrap.yaml: the fast path if there is one.
    rrm: plane.extProcAddress ?? plane.grpcAddress,
    routeName: SERVICE,
    clusterName: SERVICE,
    fallbackHosts: backends.map((b) => b.address),
    logger: logger.child({ part: 'dataplane' }),
  });
  await dataPlane.start();
  const load = new LoadGenerator({
    target: `${dataPlane.url}/`,
    rate: opts.rate,
    timeoutSeconds: 5,
  });
  load.start();

  const write = (line: string) => opts.out.write(`${line}\n`);
  const clock = () => formatClock((Date.now() - started) / 1000);
  const banner = [
    '',
    'augur demo: predictive load balancing, all in this process',
    `  dashboard     ${plane.httpUrl}/dashboard   (open it in a browser)`,
    `  gRPC (LPS, xDS, ext_proc, RouteResponse)   ${plane.grpcAddress}`,
    ...(plane.extProcAddress
      ? [`  ext_proc fast path (the data plane asks it)   ${plane.extProcAddress}`]
      : []),
    `  data plane    ${dataPlane.url}   (the demo stand-in for Envoy; curl it)`,
    `  metrics       ${plane.httpUrl}/metrics`,
    `  backends      ${backends.map((b) => `${b.id} ${b.address}`).join(', ')}`,
    `  load          ${opts.rate} requests/s; backend-2's background load ramps up at 0:20`,
    `  swaps         ${describeSwapRule(plane.swaps.config)}`,
    '',
  ];
  for (const line of banner) write(line);

  // A damped controller cuts in steps; the line reports the cut from the share the
  // endpoint held during the last 30 s, not just the last step.
  const shares = new Map<string, Array<{ at: number; weight: number }>>();
  const unsubscribe = plane.lps.lists.subscribe((list) => {
    if (list.service !== SERVICE) return;
    const now = Date.now();
    for (const e of list.endpoints) {
      const h = shares.get(e.endpointId) ?? [];
      h.push({ at: now, weight: e.weight });
      while (h.length && h[0]!.at < now - 30_000) h.shift();
      shares.set(e.endpointId, h);
    }
  });
  const swaps = plane.swaps;
  const onSwap = (s: Swap) => {
    if (s.service !== SERVICE) return;
    const p99 = percentile(
      load.recent(5000).filter((r) => r.backend === s.endpointId),
      0.99,
    );
    const held = Math.max(s.weightBefore, ...(shares.get(s.endpointId) ?? []).map((h) => h.weight));
    write(
      `${clock()}  SWAP  augur cut ${s.endpointId} from ${pct(held)} to ${pct(s.weightAfter)} of traffic: ` +
        `predicted CPU ${pct(s.predictedUtilization)} (${s.forecaster}), measured ${pct(s.utilizationAtCut)}, ` +
        `its p99 still ${p99.toFixed(0)} ms${s.overloadedAtCut ? ' (already overloaded: a reaction, not a prediction)' : ''}`,
    );
  };
  const onResolved = (s: Swap) => {
    if (s.service !== SERVICE) return;
    write(`${clock()}  ...   ${s.endpointId} ${s.verdict}`);
  };
  swaps.on('swap', onSwap);
  swaps.on('swap-resolved', onResolved);

  const pace = new PaceWatch(opts.rate);
  const tableTimer = setInterval(() => {
    const recent = load.recent(5000);
    if (opts.table) write(renderTable(plane, backends, recent, clock()));
    const warning = pace.check(recent.length / 5, (Date.now() - started) / 1000);
    if (warning) write(`${clock()}  ${warning}`);
  }, 5000);

  let stopping: Promise<void> | undefined;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => (resolveDone = r));
  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(tableTimer);
      unsubscribe();
      clearTimeout(durationTimer);
      swaps.off('swap', onSwap);
      swaps.off('swap-resolved', onResolved);
      const totals = await load.stop();
      await dataPlane.stop();
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(backends.map((b) => b.stop()));
      await plane.stop();
      write(`augur demo stopped: ${totals.sent} requests sent, ${totals.errors} errors`);
      resolveDone();
    })());
  const durationTimer =
    opts.durationSeconds > 0
      ? setTimeout(() => void stop(), opts.durationSeconds * 1000)
      : undefined;
  return { plane, backends, dataPlane, load, done, stop };
}

/**
 * Says when the load generator falls behind its rate (a busy machine cannot keep 170
 * requests/s in one process), once when it starts and again when it recovers, so the
 * figures on screen are read for the load that was really sent.
 */
export class PaceWatch {
  private behind = false;
  constructor(
    private readonly rate: number,
    /** Below this fraction of the rate counts as behind. */
    private readonly tolerance = 0.9,
  ) {}

  /** Requests per second completed over the last window; returns a line to print, or undefined. */
  check(sentPerSecond: number, elapsedSeconds: number): string | undefined {
    // The first window includes the start-up.
    if (elapsedSeconds < 10) return undefined;
    const behind = sentPerSecond < this.rate * this.tolerance;
    if (behind === this.behind) return undefined;
    this.behind = behind;
    return behind
      ? `BEHIND  only ${sentPerSecond.toFixed(0)} of the ${this.rate} requests/s asked went through ` +
          `in the last 5 s: this machine is too busy to keep the rate, so traffic, swaps and latencies ` +
          `are those of a lighter load (try --rate ${Math.max(1, Math.floor(sentPerSecond))})`
      : `BACK    the load generator keeps its ${this.rate} requests/s again`;
  }
}

function renderTable(
  plane: ControlPlane,
  backends: DemoBackend[],
  recent: RequestResult[],
  at: string,
): string {
  const list = plane.lps.lists.get(SERVICE);
  const rows = [
    [
      'endpoint',
      'state',
      'score',
      'weight',
      'pred CPU',
      'CPU',
      'background',
      'traffic',
      'p99',
      'forecaster',
    ],
  ];
  const total = recent.filter((r) => r.backend).length || 1;
  for (const b of backends) {
    const e = list?.endpoints.find((x) => x.endpointId === b.id);
    const record = plane.lps.store.get(b.id);
    const mine = recent.filter((r) => r.backend === b.id);
    rows.push([
      b.id,
      e ? (STATE_NAMES[e.state] ?? '?') : 'joining',
      e ? e.score.toFixed(2) : '-',
      e ? pct(e.weight) : '-',
      e?.parts ? pct(e.parts.predictedUtilization) : '-',
      record?.series.size ? pct(record.series.at('cpu')) : '-',
      pct(b.backgroundNow()),
      pct(mine.length / total),
      mine.length ? `${percentile(mine, 0.99).toFixed(0)} ms` : '-',
      e?.parts?.forecaster ?? '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => '  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  const errors = recent.filter((r) => r.status !== 200).length;
  return `${at}  service ${SERVICE}, list v${list?.version ?? 0}, last 5 s: ${recent.length} requests, ${errors} errors\n${lines.join('\n')}`;
}

const STATE_NAMES: Record<number, string> = {
  [EndpointState.ENDPOINT_STATE_ACTIVE]: 'active',
  [EndpointState.ENDPOINT_STATE_STALE]: 'stale',
  [EndpointState.ENDPOINT_STATE_FAILING]: 'failing',
  [EndpointState.ENDPOINT_STATE_DRAINING]: 'draining',
};

function pct(x: number): string {
  return Number.isFinite(x) ? `${Math.round(x * 100)}%` : '-';
}

function percentile(results: RequestResult[], q: number): number {
  if (!results.length) return 0;
  const sorted = results.map((r) => r.latencyMs).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function formatClock(seconds: number): string {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export type { Logger };

import { durationToSeconds } from '../common/duration.js';
import {
  Metric,
  type GetForecastResponse,
  type ScoredEndpoint,
} from '../gen/augur/v1/load_prediction.js';
import type { ForecastProvider } from '../lps/load-prediction-service.js';
import type { EndpointStore } from '../lps/store.js';
import { describeSwapRule, type Swap, type SwapDetector } from '../lps/swaps.js';
import { EndpointState, type EndpointRecord, type PrioritizedListSource } from '../lps/types.js';

/**
 * The frames the dashboard's event stream carries. JSON, short keys, numbers
 * rounded: with 500 endpoints reporting every second, a delta is what changed
 * since the previous one, about 60 bytes per endpoint and sample.
 *
 * Applying a delta is idempotent (rows and forecasts replace fields, samples
 * newer than the last one held are appended, swaps are upserted by id), so a
 * browser that got a snapshot between two deltas can apply the next delta as is.
 */
export interface SnapshotFrame {
  type: 'snapshot';
  /** Server clock, ms since epoch (the browser corrects staleness by it). */
  now: number;
  /**
   * Monitoring intervals after a cut over which a swap is judged, the overload limits,
   * and the rule behind the verdicts in words.
   */
  swapRules: {
    watchIntervals: number;
    overloadUtilization: number;
    responseTimeSlo: number;
    text: string;
  };
  /** Samples per endpoint the browser keeps for its plot. */
  plotSamples: number;
  services: ServiceFrame[];
  endpoints: EndpointFrame[];
  swaps: Swap[];
}

export interface DeltaFrame {
  type: 'delta';
  now: number;
  /** Services whose list has a new version. */
  services?: ServiceFrame[];
  /** Changed endpoints: `id` plus only the fields that changed. */
  endpoints?: EndpointFrame[];
  /** Endpoints that left the store. */
  removed?: string[];
  /** New swaps and swaps whose outcome changed. */
  swaps?: Swap[];
}

export interface ServiceFrame {
  name: string;
  version: number;
  /** When the list was computed, ms since epoch. */
  at: number;
}

/** The fields of one endpoint's row; every field but `id` is optional in a delta. */
export interface EndpointRow {
  id: string;
  svc: string;
  /** host:port */
  addr: string;
  /** 'active' | 'stale' | 'failing' | 'draining' */
  state: string;
  /** Load Score, [0,1]; null before the first list. */
  score: number | null;
  /** Share of the service's traffic, [0,1]; null before the first list. */
  weight: number | null;
  /** Position in the service's list, 1 = best. */
  rank: number | null;
  /** Predicted CPU utilisation (upper quantile) behind the score. */
  pu: number | null;
  /** Forecaster in use for CPU. */
  fc: string;
  /** Its recent MASE at the score horizon (< 1 beats the last value); null if unknown. */
  mase: number | null;
  /** Newest measured response time, seconds. */
  rt: number | null;
  /** When the LPS last heard from the endpoint, ms since epoch. */
  seen: number;
  /** Why it has its rank and its weight, in words (the two orders can differ). */
  why: string;
}

export interface EndpointFrame extends Partial<EndpointRow> {
  id: string;
  /** New samples, oldest first: [timestamps ms, CPU utilisation]. */
  s?: [number[], number[]];
  /** The newest CPU forecast, replacing the previous one; null when there is none. */
  f?: ForecastFrame | null;
}

export interface ForecastFrame {
  /** Timestamp of the last sample the forecast was made from, ms. */
  t0: number;
  /** Interval between forecast steps, ms (step h is at t0 + h·dt). */
  dt: number;
  /** Median forecast, steps 1..H. */
  med: number[];
  /** Upper-quantile forecast, steps 1..H. */
  up: number[];
  /** When the forecast was computed, ms. */
  at: number;
}

export interface DashboardFeedOptions {
  lists: PrioritizedListSource;
  store: EndpointStore;
  swaps: SwapDetector;
  /** The scorer's forecasts, when it makes any; asked again on every frame (the scorer can change). */
  forecasts: () => ForecastProvider | undefined;
  /** Samples per endpoint in a snapshot, and at most in one delta. */
  plotSamples: number;
  now?: () => number;
}

interface Sent {
  row: EndpointRow;
  /** `samplesStored` of the record up to which samples were sent. */
  samples: number;
  /** `at` of the forecast sent, 0 for none. */
  forecastAt: number;
  /** Version of the service's list when the forecast was last asked for (-1: not listed). */
  forecastVersion: number;
  forecaster: ForecasterInfo | undefined;
}

/** The CPU forecaster in use and its error, as shown in a row. */
interface ForecasterInfo {
  fc: string;
  mase: number | null;
}

interface Scored {
  e: ScoredEndpoint;
  rank: number;
  version: number;
  /** The whole list, best first, for comparing an endpoint with the others. */
  list: readonly ScoredEndpoint[];
}

const STATE_NAMES: Record<number, string> = {
  [EndpointState.ENDPOINT_STATE_ACTIVE]: 'active',
  [EndpointState.ENDPOINT_STATE_STALE]: 'stale',
  [EndpointState.ENDPOINT_STATE_FAILING]: 'failing',
  [EndpointState.ENDPOINT_STATE_DRAINING]: 'draining',
};

const ROW_KEYS = [
  'svc',
  'addr',
  'state',
  'score',
  'weight',
  'rank',
  'pu',
  'fc',
  'mase',
  'rt',
  'seen',
  'why',
] as const;

/**
 * Builds the dashboard's frames from the LPS's lists, store and forecasts and
 * from the swap detector. `delta()` keeps what it last sent, so one delta is
 * computed per update for all browsers, and marshalled once by the caller.
 */
export class DashboardFeed {
  private readonly options: DashboardFeedOptions;
  private readonly now: () => number;
  private readonly sent = new Map<string, Sent>();
  private readonly serviceVersions = new Map<string, number>();
  private readonly changedSwaps = new Map<number, Swap>();
  private readonly onSwap = (swap: Swap) => this.changedSwaps.set(swap.id, swap);

  constructor(options: DashboardFeedOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    options.swaps.on('swap', this.onSwap);
    options.swaps.on('swap-resolved', this.onSwap);
  }

  close(): void {
    this.options.swaps.off('swap', this.onSwap);
    this.options.swaps.off('swap-resolved', this.onSwap);
  }

  /** Everything a browser needs to draw the page; does not change what deltas send. */
  snapshot(): SnapshotFrame {
    const now = this.now();
    const scored = this.scoredEndpoints();
    const provider = this.options.forecasts();
    const cfg = this.options.swaps.config;
    return {
      type: 'snapshot',
      now,
      swapRules: {
        watchIntervals: cfg.watchIntervals,
        overloadUtilization: cfg.overloadUtilization,
        responseTimeSlo: cfg.responseTimeSlo,
        text: describeSwapRule(cfg),
      },
      plotSamples: this.options.plotSamples,
      services: this.serviceFrames(),
      endpoints: this.records().map((r) => {
        const forecast = provider?.forecastFor(r.id);
        return {
          ...this.row(r, scored.get(r.id), forecasterOf(forecast), now),
          s: samplesOf(r, this.options.plotSamples),
          f: forecastFrame(r, forecast),
        };
      }),
      swaps: this.options.swaps.history(),
    };
  }

  /** What changed since the previous delta; undefined when nothing did. */
  delta(): DeltaFrame | undefined {
    const now = this.now();
    const frame: DeltaFrame = { type: 'delta', now };
    const services = this.serviceFrames().filter(
      (s) => this.serviceVersions.get(s.name) !== s.version,
    );
    for (const s of services) this.serviceVersions.set(s.name, s.version);
    for (const name of [...this.serviceVersions.keys()])
      if (!this.options.lists.get(name)) this.serviceVersions.delete(name);
    if (services.length) frame.services = services;

    const scored = this.scoredEndpoints();
    const provider = this.options.forecasts();
    const present = new Set<string>();
    const endpoints: EndpointFrame[] = [];
    for (const r of this.records()) {
      present.add(r.id);
      const listed = scored.get(r.id);
      const prev = this.sent.get(r.id);
      const version = listed?.version ?? -1;
      // Forecasts change when the scorer runs, which is when lists get new
      // versions: asking only then spares building hundreds of forecast
      // responses per frame for nothing.
      let forecastAt = prev?.forecastAt ?? 0;
      let forecaster = prev?.forecaster;
      let f: ForecastFrame | null | undefined;
      if (!provider) {
        forecaster = undefined;
        if (forecastAt !== 0) [f, forecastAt] = [null, 0];
      } else if (!prev || prev.forecastVersion !== version) {
        const forecast = provider.forecastFor(r.id);
        forecaster = forecasterOf(forecast);
        const at = forecast?.computedAt?.getTime() ?? 0;
        if (at !== forecastAt) [f, forecastAt] = [forecastFrame(r, forecast), at];
      }
      const row = this.row(r, listed, forecaster, now);
      const fields: Partial<Record<keyof EndpointRow, unknown>> = {};
      let changed = false;
      for (const k of ROW_KEYS) {
        if (!prev || prev.row[k] !== row[k]) {
          fields[k] = row[k];
          changed = true;
        }
      }
      const out = { ...fields, id: r.id } as EndpointFrame;
      const newSamples = Math.min(
        r.samplesStored - (prev?.samples ?? 0),
        r.series.historySize,
        this.options.plotSamples,
      );
      if (newSamples > 0) {
        out.s = samplesOf(r, newSamples);
        changed = true;
      }
      if (f !== undefined) {
        out.f = f;
        changed = true;
      }
      this.sent.set(r.id, {
        row,
        samples: r.samplesStored,
        forecastAt,
        forecastVersion: version,
        forecaster,
      });
      if (changed) endpoints.push(out);
    }
    if (endpoints.length) frame.endpoints = endpoints;
    const removed = [...this.sent.keys()].filter((id) => !present.has(id));
    for (const id of removed) this.sent.delete(id);
    if (removed.length) frame.removed = removed;
    if (this.changedSwaps.size) {
      frame.swaps = [...this.changedSwaps.values()];
      this.changedSwaps.clear();
    }
    const empty = !frame.services && !frame.endpoints && !frame.removed && !frame.swaps;
    return empty ? undefined : frame;
  }

  private records(): EndpointRecord[] {
    return this.options.store.all().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private serviceFrames(): ServiceFrame[] {
    const out: ServiceFrame[] = [];
    for (const name of this.options.lists.services()) {
      const list = this.options.lists.get(name);
      if (list) out.push({ name, version: list.version, at: list.computedAt?.getTime() ?? 0 });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private scoredEndpoints(): Map<string, Scored> {
    const out = new Map<string, Scored>();
    for (const name of this.options.lists.services()) {
      const list = this.options.lists.get(name);
      list?.endpoints.forEach((e, i) =>
        out.set(e.endpointId, { e, rank: i + 1, version: list.version, list: list.endpoints }),
      );
    }
    return out;
  }

  private row(
    r: EndpointRecord,
    scored: Scored | undefined,
    forecaster: ForecasterInfo | undefined,
    now: number,
  ): EndpointRow {
    const e = scored?.e;
    const state = this.options.store.stateOf(r, now);
    return {
      id: r.id,
      svc: r.service,
      addr: `${r.address}:${r.port}`,
      state: STATE_NAMES[state] ?? 'unknown',
      score: e ? round(e.score, 4) : null,
      weight: e ? round(e.weight, 4) : null,
      rank: scored?.rank ?? null,
      pu: e?.parts ? round(e.parts.predictedUtilization, 3) : null,
      fc: forecaster?.fc || e?.parts?.forecaster || '',
      mase: forecaster?.mase ?? null,
      rt: r.series.size > 0 ? round(r.series.at('responseTime'), 4) : null,
      seen: r.lastSeenMs,
      why: explainRankAndWeight(scored),
    };
  }
}

// Fractions of capacity: an estimate past 1 (an upper quantile can be) reads as 100 %.
const percent = (x: number) => `${Math.round(Math.min(1, Math.max(0, x)) * 100)} %`;

const NO_TRAFFIC: Record<number, string> = {
  [EndpointState.ENDPOINT_STATE_STALE]: 'stale: its agent stopped reporting',
  [EndpointState.ENDPOINT_STATE_FAILING]: 'failing: its health probe fails',
  [EndpointState.ENDPOINT_STATE_DRAINING]: 'draining: its agent said goodbye',
};

/**
 * Rank and weight answer two questions and can disagree: the rank orders picks and
 * fallbacks by Load Score (predicted load: lower is better), the weight is a share of
 * traffic from estimated capacity (what the endpoint can take). A card that shows both
 * says which is which, and when an endpoint ranks below one that gets less traffic
 * (or above one that gets more), why.
 */
export function explainRankAndWeight(scored: Scored | undefined): string {
  if (!scored) return 'not in a list yet: no score and no traffic until the LPS has scored it';
  const { e, rank, list } = scored;
  // The state the list was computed with: the one behind this rank and weight.
  if (e.state !== EndpointState.ENDPOINT_STATE_ACTIVE)
    return `no traffic, ranked after every active endpoint: ${NO_TRAFFIC[e.state] ?? 'not active'}`;
  const predicted = e.parts ? ` (predicted CPU ${percent(e.parts.predictedUtilization)})` : '';
  const capacity =
    (e.parts?.estimatedCapacity ?? 0) > 0
      ? `its estimated capacity, ${e.parts!.estimatedCapacity.toFixed(0)} requests/s`
      : 'the weight controller (capacity not estimated yet)';
  let text =
    `rank #${rank} of ${list.length} by Load Score${predicted}: the order of picks and fallbacks. ` +
    `Weight ${percent(e.weight)}: its share of traffic, from ${capacity}.`;
  const active = list.filter((o) => o.state === EndpointState.ENDPOINT_STATE_ACTIVE);
  const heavierBelow = active.find(
    (o, i) => i + 1 > rank && o.weight > e.weight + 0.005 && o.endpointId !== e.endpointId,
  );
  const lighterAbove = active.find(
    (o, i) => i + 1 < rank && o.weight + 0.005 < e.weight && o.endpointId !== e.endpointId,
  );
  if (lighterAbove)
    text +=
      ` It gets more traffic than ${lighterAbove.endpointId}, which ranks higher: ` +
      `it can take more, though its load is predicted higher.`;
  else if (heavierBelow)
    text +=
      ` It gets less traffic than ${heavierBelow.endpointId}, which ranks lower: ` +
      `its predicted load is lower, but it can take less.`;
  return text;
}

function cpuForecastOf(f: GetForecastResponse | undefined) {
  return f?.metrics.find((m) => m.metric === Metric.METRIC_CPU);
}

function forecasterOf(f: GetForecastResponse | undefined): ForecasterInfo | undefined {
  const cpu = cpuForecastOf(f);
  return cpu ? { fc: cpu.forecaster, mase: maseOf(cpu) } : undefined;
}

/** The selected forecaster's MASE at the forecast's horizon (the score horizon), else its longest scored one. */
function maseOf(cpu: NonNullable<ReturnType<typeof cpuForecastOf>>): number | null {
  const own = cpu.errors.filter((x) => x.forecaster === cpu.forecaster && x.count > 0);
  if (own.length === 0) return null;
  const at = own.find((x) => x.horizon === cpu.median.length);
  const best = at ?? own.reduce((a, b) => (b.horizon > a.horizon ? b : a));
  return Number.isFinite(best.mase) ? round(best.mase, 3) : null;
}

function forecastFrame(
  r: EndpointRecord,
  forecast: GetForecastResponse | undefined,
): ForecastFrame | null {
  const cpu = cpuForecastOf(forecast);
  if (!forecast || !cpu || cpu.median.length === 0) return null;
  const at = forecast.computedAt?.getTime() ?? 0;
  // The forecast continues from the newest sample the scorer had seen when it ran.
  let t0 = NaN;
  for (let back = 0; back < r.series.size; back++) {
    if (r.series.at('receivedAt', back) <= at) {
      t0 = r.series.at('timestamp', back);
      break;
    }
  }
  if (!Number.isFinite(t0)) return null;
  const interval = durationToSeconds(forecast.interval) || r.interval;
  return {
    t0,
    dt: Math.round(interval * 1000),
    med: cpu.median.map((v) => round(v, 3) ?? 0),
    up: cpu.upper.map((v) => round(v, 3) ?? 0),
    at,
  };
}

function samplesOf(r: EndpointRecord, n: number): [number[], number[]] {
  // Timestamps and CPU reach back over the whole ring (its history), not only the detailed samples.
  const k = Math.min(n, r.series.historySize);
  const t: number[] = new Array<number>(k);
  const cpu: number[] = new Array<number>(k);
  for (let i = 0; i < k; i++) {
    const back = k - 1 - i;
    t[i] = r.series.at('timestamp', back);
    cpu[i] = round(r.series.at('cpu', back), 3) ?? 0;
  }
  return [t, cpu];
}

function round(x: number, digits: number): number | null {
  if (!Number.isFinite(x)) return null;
  const p = 10 ** digits;
  return Math.round(x * p) / p;
}

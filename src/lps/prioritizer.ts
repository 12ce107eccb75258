import type { Logger } from '../common/logger.js';
import { ScoredEndpoint, type ScoreParts } from '../gen/augur/v1/load_prediction.js';
import type { HostNameResolver } from './host-names.js';
import { ListStore } from './list-store.js';
import { EndpointStateLog } from './state-log.js';
import type { LpsMetrics } from './metrics.js';
import { fieldBytes, fitReply } from './reply-size.js';
import { inStep, type EndpointStore } from './store.js';
import { EndpointState, type Assessment, type EndpointRecord, type Scorer } from './types.js';

/** What started a scoring tick (augur_lps_scoring_ticks_total's label). */
export type TickTrigger = 'clock' | 'reports' | 'change';

/** Scores and weights are compared at this precision when deciding if a list changed. */
const PRECISION = 1e4;

/**
 * Keeps the prioritized endpoint list of every service: once per tick (and
 * soon after any membership change) it asks the Scorer to judge every
 * endpoint, sorts each service best first, normalises weights to shares, and
 * publishes a new version of each list whose content changed. A tick comes
 * once the interval's samples are in (lps.scoreOnReports), or on the clock.
 */
export class Prioritizer extends ListStore {
  /**
   * Per service, the endpoints last published (an empty list too, until the service is dropped):
   * what a new list is compared with, field by field, to decide whether it changed.
   */
  private readonly lastPublished = new Map<string, readonly ScoredEndpoint[]>();
  /** Survives a service's removal, so a service that comes back never reuses a version. */
  private readonly versions = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  private rerunTrigger: TickTrigger = 'change';
  private started = false;
  private intervalMs = 1000;
  private reportShare = 0;
  /** When the newest tick began (wall clock, ms). */
  private tickStartedMs = 0;
  private readonly onReports = () => this.reportsIn();
  private soon: NodeJS.Immediate | undefined;
  private readonly stateLog: EndpointStateLog;
  /** Per service, the ids last left out for lps.maxReplyBytes (logged when they change). */
  private readonly droppedIds = new Map<string, string>();
  /** Each record's row of the lists, written again each tick. */
  private readonly rows = new WeakMap<EndpointRecord, Row>();

  constructor(
    private readonly store: EndpointStore,
    private scorer: Scorer,
    private readonly metrics: LpsMetrics,
    private readonly logger: Logger,
    private readonly hostNames: HostNameResolver,
  ) {
    super((err, list) =>
      logger.error({ err, service: list.service }, 'prioritized list listener failed'),
    );
    this.stateLog = new EndpointStateLog(logger, store.config.staleAfterIntervals);
    store.on('membership', () => this.recomputeSoon());
  }

  /** Replaces the scorer (the forecasting scorer once it is ready). */
  setScorer(scorer: Scorer): void {
    this.scorer = scorer;
  }

  /**
   * Ticks every `intervalSeconds` at the latest; with `reportShare` > 0 a tick comes early once
   * that share of the endpoints reporting once per tick have sent a sample since the last one
   * (EndpointStore.markRound), but no sooner than half an interval after it.
   */
  start(intervalSeconds: number, reportShare = 0): void {
    this.intervalMs = intervalSeconds * 1000;
    this.reportShare = reportShare;
    this.started = true;
    this.arm(Date.now() + this.intervalMs, 'clock');
  }

  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    if (this.soon) clearImmediate(this.soon);
    await this.running;
  }

  /** Coalesces bursts of membership changes (many agents connecting) into one computation. */
  recomputeSoon(): void {
    if (this.soon) return;
    this.soon = setImmediate(() => {
      this.soon = undefined;
      void this.recompute('change');
    });
  }

  /**
   * Recomputes every list now; concurrent calls share one run plus at most one more.
   * `trigger`: what asked, as counted in augur_lps_scoring_ticks_total.
   */
  async recompute(trigger: TickTrigger = 'change'): Promise<void> {
    if (this.running) {
      this.rerun = true;
      this.rerunTrigger = trigger;
      return this.running;
    }
    this.running = (async () => {
      let next = trigger;
      do {
        this.rerun = false;
        try {
          await this.computeOnce(Date.now(), next);
        } catch (err) {
          this.logger.error({ err }, 'scoring failed; keeping the previous lists');
        }
        next = this.rerunTrigger;
      } while (this.rerun);
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  /** The next tick at `atMs` (wall clock), replacing the one planned. */
  private arm(atMs: number, trigger: TickTrigger): void {
    if (!this.started) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.recompute(trigger), Math.max(0, atMs - Date.now()));
    this.timer.unref();
  }

  /** The store says the round's reports are in: tick now, or once half an interval has passed. */
  private reportsIn(): void {
    this.arm(this.tickStartedMs + this.intervalMs / 2, 'reports');
  }

  private async computeOnce(nowMs: number, trigger: TickTrigger): Promise<void> {
    const stopTimer = this.metrics.scoringSeconds.startTimer();
    this.metrics.scoringTicks.inc({ trigger });
    // A new round: samples stored from here on are the next tick's news.
    this.tickStartedMs = nowMs;
    if (this.started) {
      this.store.markRound(this.reportShare, this.onReports);
      this.arm(nowMs + this.intervalMs, 'clock');
    }
    this.store.forgetSilent(nowMs, (_record, reason) => this.metrics.forgotten.inc({ reason }));
    const records = this.store.all();
    const states = new Map<string, EndpointState>();
    const counts = new Map<EndpointState, number>();
    const scoreInterval = this.store.config.scoreInterval;
    let ageSum = 0;
    let aged = 0;
    for (const r of records) {
      const s = this.store.stateOf(r, nowMs);
      states.set(r.id, s);
      counts.set(s, (counts.get(s) ?? 0) + 1);
      if (r.connected && inStep(r.interval, scoreInterval)) {
        ageSum += nowMs - r.lastSeenMs;
        aged++;
      }
    }
    if (aged > 0) this.metrics.sampleAgeAtScoring.set(ageSum / aged / 1000);
    this.stateLog.observe(records, states, nowMs);
    for (const [state, label] of STATE_LABELS)
      this.metrics.endpoints.set({ state: label }, counts.get(state) ?? 0);

    const assessments = await this.scorer.assess(records, states, nowMs);
    const byService = new Map<string, Row[]>();
    let unresolved = 0;
    for (const r of records) {
      let list = byService.get(r.service);
      if (!list) byService.set(r.service, (list = []));
      const row = this.rowOf(r, assessments.get(r.id), states.get(r.id)!);
      if (!row.ip) unresolved++;
      list.push(row);
    }
    // A service whose last endpoint left gets one empty list, then is dropped.
    for (const service of this.services()) if (!byService.has(service)) byService.set(service, []);

    const computedAt = new Date(nowMs);
    for (const [service, rows] of byService) {
      const { fitted, dropped } = this.fit(service, rows);
      let total = 0;
      for (const row of fitted) total += row.weight;
      for (const row of fitted) row.share = total > 0 ? row.weight / total : 0;
      // Best first: every active endpoint before any other (at equal scores of 0 a failing
      // one must not read as better), then by score, then by id.
      fitted.sort(
        (a, b) =>
          Number(b.state === EndpointState.ENDPOINT_STATE_ACTIVE) -
            Number(a.state === EndpointState.ENDPOINT_STATE_ACTIVE) ||
          b.score - a.score ||
          (a.record.id < b.record.id ? -1 : 1),
      );
      if (this.publishIfChanged(service, fitted, computedAt) && dropped > 0)
        this.metrics.replyDropped.inc({ reply: 'list' }, dropped);
      if (rows.length === 0) this.lastPublished.delete(service);
    }
    this.metrics.unresolvedEndpoints.set(unresolved);
    this.hostNames.retain(addressesOf(records));
    stopTimer();
  }

  /**
   * The endpoints of a service that fit in lps.maxReplyBytes as a list (and so as EDS, whose
   * bytes per endpoint are a part of the list's): past it the largest are left out and counted.
   * A rough bound (3 bytes a character, 512 for the numbers) skips the measuring in the common
   * case.
   */
  private fit(service: string, rows: Row[]): { fitted: Row[]; dropped: number } {
    const max = this.store.config.maxReplyBytes;
    let bound = 64 + 3 * service.length;
    for (const { record: r, ip, parts } of rows) {
      const l = r.locality;
      bound +=
        512 +
        3 *
          (r.id.length +
            r.address.length +
            ip.length +
            (l ? l.region.length + l.zone.length + l.subZone.length : 0) +
            (parts?.forecaster.length ?? 0));
    }
    let fitted = rows;
    let dropped: Row[] = [];
    if (bound > max) {
      // The list's other fields: service, version, computed_at.
      const fixed = fieldBytes(Buffer.byteLength(service)) + 11 + 24;
      ({ kept: fitted, dropped } = fitReply(
        rows,
        (row) => ScoredEndpoint.encode(scoredEndpoint(row)).finish().length,
        fixed,
        max,
      ));
    }
    const ids = dropped.map((row) => row.record.id).join(',');
    if ((this.droppedIds.get(service) ?? '') !== ids) {
      if (ids) {
        this.droppedIds.set(service, ids);
        this.logger.warn(
          {
            service,
            dropped: dropped.length,
            endpoints: dropped.slice(0, 10).map((row) => row.record.id),
          },
          `the list of service "${service}" would pass lps.maxReplyBytes (${max} bytes): its ${dropped.length} largest endpoints are left out`,
        );
      } else {
        this.droppedIds.delete(service);
      }
    }
    return { fitted, dropped: dropped.length };
  }

  /**
   * The row of record `r` for this tick: the record's own, written again (an object per endpoint
   * per tick was most of what a tick allocated, and a list that did not change needs none).
   */
  private rowOf(r: EndpointRecord, a: Assessment | undefined, state: EndpointState): Row {
    let row = this.rows.get(r);
    if (!row)
      this.rows.set(
        r,
        (row = { record: r, parts: undefined, state, score: 0, weight: 0, share: 0, ip: '' }),
      );
    const routable = state === EndpointState.ENDPOINT_STATE_ACTIVE;
    row.parts = a?.parts;
    row.state = state;
    row.score = routable ? clamp01(a?.score ?? 0) : 0;
    row.weight = routable ? Math.max(0, a?.weight ?? 0) : 0;
    // Until the list's shares are computed (after `fit`, which may encode the row to measure
    // it), the share is the weight: zero exactly when the share will be, so the same size.
    row.share = row.weight;
    row.ip = this.hostNames.ipOf(r.address) ?? '';
    return row;
  }

  /**
   * Publishes a new version if the list changed (its endpoints built from the rows only then);
   * returns whether it did.
   */
  private publishIfChanged(service: string, rows: readonly Row[], computedAt: Date): boolean {
    const last = this.lastPublished.get(service);
    if (last && sameList(last, rows)) return false;
    const endpoints = rows.map(scoredEndpoint);
    this.lastPublished.set(service, endpoints);
    const version = (this.versions.get(service) ?? 0) + 1;
    this.versions.set(service, version);
    this.metrics.listVersions.inc();
    this.publish({ service, version, computedAt, endpoints });
    return true;
  }
}

const STATE_LABELS: Array<[EndpointState, string]> = [
  [EndpointState.ENDPOINT_STATE_ACTIVE, 'active'],
  [EndpointState.ENDPOINT_STATE_STALE, 'stale'],
  [EndpointState.ENDPOINT_STATE_FAILING, 'failing'],
  [EndpointState.ENDPOINT_STATE_DRAINING, 'draining'],
];

/**
 * An endpoint of a tick's list before it is published, one per record, written again each tick:
 * what the list needs of the record and of the scorer's assessment (not copied: the scorer may
 * write it again at the next tick; `scoredEndpoint` copies it into a list that is published).
 */
interface Row {
  readonly record: EndpointRecord;
  parts: ScoreParts | undefined;
  state: EndpointState;
  score: number;
  /** The scorer's weight (0 unless routable). */
  weight: number;
  /** The weight's share of the list's total. */
  share: number;
  /** The address's IP, '' while not resolved. */
  ip: string;
}

/** A row as a published list's endpoint: its own objects, the parts copied. */
function scoredEndpoint(row: Row): ScoredEndpoint {
  const { record: r, parts } = row;
  return {
    endpointId: r.id,
    score: row.score,
    weight: row.share,
    address: r.address,
    port: r.port,
    state: row.state,
    locality: r.locality,
    // The proto documents utilisations in [0,1]; an upper-quantile forecast can pass 1.
    parts: parts && {
      ...parts,
      predictedUtilization: clamp01(parts.predictedUtilization),
      predictedMemory: clamp01(parts.predictedMemory),
      predictedNetwork: clamp01(parts.predictedNetwork),
      weightParts: parts.weightParts && { ...parts.weightParts },
    },
    ip: row.ip,
  };
}

/**
 * The published list and this tick's rows: the same endpoints in the same order, with the same
 * scores and shares at PRECISION.
 */
function sameList(a: readonly ScoredEndpoint[], b: readonly Row[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const r = y.record;
    if (
      x.endpointId !== r.id ||
      x.address !== r.address ||
      x.ip !== y.ip ||
      x.port !== r.port ||
      x.state !== y.state ||
      Math.round(x.score * PRECISION) !== Math.round(y.score * PRECISION) ||
      Math.round(x.weight * PRECISION) !== Math.round(y.share * PRECISION)
    )
      return false;
  }
  return true;
}

/** The records' addresses, read only if iterated. */
function* addressesOf(records: readonly EndpointRecord[]): Generator<string> {
  for (const r of records) yield r.address;
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

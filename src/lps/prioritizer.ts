import type { Logger } from '../common/logger.js';
import { ScoredEndpoint } from '../gen/augur/v1/load_prediction.js';
import type { HostNameResolver } from './host-names.js';
import { ListStore } from './list-store.js';
import { EndpointStateLog } from './state-log.js';
import type { LpsMetrics } from './metrics.js';
import { fieldBytes, fitReply } from './reply-size.js';
import { inStep, type EndpointStore } from './store.js';
import { EndpointState, type EndpointRecord, type Scorer } from './types.js';

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
    const byService = new Map<string, EndpointRecord[]>();
    for (const r of records) {
      let list = byService.get(r.service);
      if (!list) byService.set(r.service, (list = []));
      list.push(r);
    }
    // A service whose last endpoint left gets one empty list, then is dropped.
    for (const service of this.services()) if (!byService.has(service)) byService.set(service, []);

    const computedAt = new Date(nowMs);
    let unresolved = 0;
    for (const [service, members] of byService) {
      const endpoints: ScoredEndpoint[] = members.map((r) => {
        const a = assessments.get(r.id);
        const state = states.get(r.id)!;
        const routable = state === EndpointState.ENDPOINT_STATE_ACTIVE;
        const ip = this.hostNames.ipOf(r.address) ?? '';
        if (!ip) unresolved++;
        return {
          endpointId: r.id,
          score: routable ? clamp01(a?.score ?? 0) : 0,
          weight: routable ? Math.max(0, a?.weight ?? 0) : 0,
          address: r.address,
          port: r.port,
          state,
          locality: r.locality,
          // The proto documents utilisations in [0,1]; an upper-quantile forecast can pass 1.
          // A copy: a scorer may write its assessments again at the next tick.
          parts: a?.parts && {
            ...a.parts,
            predictedUtilization: clamp01(a.parts.predictedUtilization),
            predictedMemory: clamp01(a.parts.predictedMemory),
            predictedNetwork: clamp01(a.parts.predictedNetwork),
            weightParts: a.parts.weightParts && { ...a.parts.weightParts },
          },
          ip,
        };
      });
      const { fitted, dropped } = this.fit(service, endpoints);
      const total = fitted.reduce((s, e) => s + e.weight, 0);
      for (const e of fitted) e.weight = total > 0 ? e.weight / total : 0;
      // Best first: every active endpoint before any other (at equal scores of 0 a failing
      // one must not read as better), then by score, then by id.
      fitted.sort(
        (a, b) =>
          Number(b.state === EndpointState.ENDPOINT_STATE_ACTIVE) -
            Number(a.state === EndpointState.ENDPOINT_STATE_ACTIVE) ||
          b.score - a.score ||
          (a.endpointId < b.endpointId ? -1 : 1),
      );
      if (this.publishIfChanged(service, fitted, computedAt) && dropped > 0)
        this.metrics.replyDropped.inc({ reply: 'list' }, dropped);
      if (members.length === 0) this.lastPublished.delete(service);
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
  private fit(
    service: string,
    endpoints: ScoredEndpoint[],
  ): { fitted: ScoredEndpoint[]; dropped: number } {
    const max = this.store.config.maxReplyBytes;
    let bound = 64 + 3 * service.length;
    for (const e of endpoints) {
      const l = e.locality;
      bound +=
        512 +
        3 *
          (e.endpointId.length +
            e.address.length +
            (e.ip?.length ?? 0) +
            (l ? l.region.length + l.zone.length + l.subZone.length : 0) +
            (e.parts?.forecaster.length ?? 0));
    }
    let fitted = endpoints;
    let dropped: ScoredEndpoint[] = [];
    if (bound > max) {
      // The list's other fields: service, version, computed_at.
      const fixed = fieldBytes(Buffer.byteLength(service)) + 11 + 24;
      ({ kept: fitted, dropped } = fitReply(
        endpoints,
        (e) => ScoredEndpoint.encode(e).finish().length,
        fixed,
        max,
      ));
    }
    const ids = dropped.map((e) => e.endpointId).join(',');
    if ((this.droppedIds.get(service) ?? '') !== ids) {
      if (ids) {
        this.droppedIds.set(service, ids);
        this.logger.warn(
          {
            service,
            dropped: dropped.length,
            endpoints: dropped.slice(0, 10).map((e) => e.endpointId),
          },
          `the list of service "${service}" would pass lps.maxReplyBytes (${max} bytes): its ${dropped.length} largest endpoints are left out`,
        );
      } else {
        this.droppedIds.delete(service);
      }
    }
    return { fitted, dropped: dropped.length };
  }

  /** Publishes a new version if the list changed; returns whether it did. */
  private publishIfChanged(
    service: string,
    endpoints: ScoredEndpoint[],
    computedAt: Date,
  ): boolean {
    const last = this.lastPublished.get(service);
    if (last && sameList(last, endpoints)) return false;
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

/** The same endpoints in the same order, with the same scores and weights at PRECISION. */
function sameList(a: readonly ScoredEndpoint[], b: readonly ScoredEndpoint[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.endpointId !== y.endpointId ||
      x.address !== y.address ||
      x.ip !== y.ip ||
      x.port !== y.port ||
      x.state !== y.state ||
      Math.round(x.score * PRECISION) !== Math.round(y.score * PRECISION) ||
      Math.round(x.weight * PRECISION) !== Math.round(y.weight * PRECISION)
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

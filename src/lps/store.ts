import { EventEmitter } from 'node:events';
import { durationToSeconds, secondsToDuration } from '../common/duration.js';
import type { Capacity, Locality } from '../gen/augur/v1/common.js';
import { ProbeHealth } from '../gen/augur/v1/common.js';
import type { AgentHello, EndpointData } from '../gen/augur/v1/telemetry.js';
import type { LpsConfig } from './config.js';
import { SampleRing, type StoredSample } from './ring.js';
import { EndpointState, type EndpointRecord } from './types.js';
import { validateSample, type Rejection } from './validate.js';

export interface StoreEvents {
  /** An endpoint appeared, left, changed service or address, or changed state by a hello or goodbye. */
  membership: [record: EndpointRecord];
  /** The interval of an endpoint changed; its stream (if any) must tell the agent. */
  interval: [record: EndpointRecord];
}

/**
 * Told of every change the store makes that must outlive the process (src/lps/persistence keeps
 * them in its log). Called synchronously, after the change is made in memory.
 */
export interface StoreJournal {
  /** `owner`: the identity that holds the id ('' where authorisation is off). */
  hello(hello: AgentHello, atMs: number, owner: string): void;
  sample(endpointId: string, sample: StoredSample): void;
  interval(endpointIds: readonly string[], seconds: number): void;
  goodbye(endpointId: string, atMs: number): void;
}

/** A hello the store would take past one of its limits: which limit, and why, for the status. */
export interface LimitRefusal {
  limit: 'max_endpoints' | 'max_endpoints_per_service';
  message: string;
}

/** What became of a sample offered to the store. */
export type SampleOutcome = 'stored' | 'duplicate' | Rejection;

/**
 * Every endpoint the LPS knows and its recent samples. The only writer of
 * EndpointRecords; the Telemetry service calls it for each accepted message,
 * the prioritizer reads it once per tick.
 */
export class EndpointStore extends EventEmitter<StoreEvents> {
  private readonly records = new Map<string, EndpointRecord>();
  /** Endpoints per service, kept with `records` (lps.maxEndpointsPerService). */
  private readonly perService = new Map<string, number>();
  /** Endpoint id to the identity that holds its record (only with identities configured). */
  private readonly owners = new Map<string, string>();
  readonly config: LpsConfig;
  /** Set once the state on disk has been restored; restoring must not write it again. */
  journal: StoreJournal | undefined;
  /** The scoring round (markRound), the in-step endpoints that reported in it, and the goal. */
  private round = 0;
  private reported = 0;
  private reportsWanted = Infinity;
  private onReports: (() => void) | undefined;

  constructor(config: LpsConfig) {
    super();
    this.config = config;
  }

  /**
   * The identity that holds the record of `id`: the first identity whose hello created or
   * re-claimed it; kept while the record exists (forgotten with it).
   */
  ownerOf(id: string): string | undefined {
    return this.records.has(id) ? this.owners.get(id) : undefined;
  }

  get(id: string): EndpointRecord | undefined {
    return this.records.get(id);
  }

  all(): EndpointRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  /** Endpoints the store holds in a service. */
  serviceSize(service: string): number {
    return this.perService.get(service) ?? 0;
  }

  /**
   * Whether a hello may be taken under lps.maxEndpoints and lps.maxEndpointsPerService: an
   * endpoint already held in the same service always may (its agent reconnecting); a new one, or
   * one moving to another service, only while there is room.
   */
  admits(hello: AgentHello): LimitRefusal | undefined {
    const known = this.records.get(hello.endpointId);
    if (known?.service === hello.service) return undefined;
    const { maxEndpoints, maxEndpointsPerService } = this.config;
    if (!known && this.records.size >= maxEndpoints) {
      return {
        limit: 'max_endpoints',
        message: `the LPS holds ${this.records.size} endpoints, its limit (lps.maxEndpoints ${maxEndpoints}); endpoint "${hello.endpointId}" is not taken`,
      };
    }
    const inService = this.serviceSize(hello.service);
    if (inService >= maxEndpointsPerService) {
      return {
        limit: 'max_endpoints_per_service',
        message: `service "${hello.service}" holds ${inService} endpoints, its limit (lps.maxEndpointsPerService ${maxEndpointsPerService}); endpoint "${hello.endpointId}" is not taken`,
      };
    }
    return undefined;
  }

  /**
   * Creates or updates the endpoint named by a hello, marks it connected, returns it. `owner`:
   * the identity that said it, which then holds the id (the Telemetry service checks ownerOf
   * first); undefined leaves the holder as it was.
   */
  upsertFromHello(hello: AgentHello, nowMs: number, owner?: string): EndpointRecord {
    const requested = hello.requestedInterval
      ? Number(hello.requestedInterval.seconds) + hello.requestedInterval.nanos / 1e9
      : 0;
    let record = this.records.get(hello.endpointId);
    if (!record) {
      record = {
        id: hello.endpointId,
        service: hello.service,
        address: hello.address,
        port: hello.port,
        locality: hello.locality ?? { region: '', zone: '', subZone: '' },
        labels: { ...hello.labels },
        capacity: hello.capacity ?? { cpuCores: 0, memoryBytes: 0, networkBytesPerSecond: 0 },
        interval: this.clampInterval(requested || this.config.defaultInterval),
        intervalPinned: false,
        connected: true,
        draining: false,
        lastSequence: 0,
        lastSeenMs: nowMs,
        leftAtMs: 0,
        samplesStored: 0,
        reportRound: -1,
        series: this.newRing(),
      };
      this.records.set(record.id, record);
      this.count(record.service, 1);
    } else {
      if (record.service !== hello.service) {
        this.count(record.service, -1);
        this.count(hello.service, 1);
      }
      record.service = hello.service;
      record.address = hello.address;
      record.port = hello.port;
      record.locality = hello.locality ?? record.locality;
      record.labels = { ...hello.labels };
      record.capacity = hello.capacity ?? record.capacity;
      if (!record.intervalPinned && requested) record.interval = this.clampInterval(requested);
      record.connected = true;
      record.draining = false;
      record.lastSeenMs = nowMs;
      record.leftAtMs = 0;
    }
    if (owner !== undefined) this.owners.set(record.id, owner);
    this.journal?.hello(hello, nowMs, this.owners.get(record.id) ?? '');
    this.emit('membership', record);
    return record;
  }

  /**
   * A sample as it came from the endpoint's agent (or from disk, then with the LPS clock of its
   * first arrival as `nowMs`): a replayed duplicate is dropped, a bad one refused with the reason,
   * a good one stored.
   */
  accept(record: EndpointRecord, s: EndpointData, nowMs: number): SampleOutcome {
    if (s.sequence >= 1 && s.sequence <= record.lastSequence) return 'duplicate';
    const bad = validateSample(s, {
      endpointId: record.id,
      lastSequence: record.lastSequence,
      lastTimestampMs: record.series.size ? record.series.at('timestamp') : NaN,
      nowMs,
      maxSkewMs: this.config.maxClockSkew * 1000,
      maxAgeMs: this.config.maxSampleAge * 1000,
    });
    if (bad) return bad;
    this.append(record, s, nowMs);
    return 'stored';
  }

  /** Stores an already validated sample; returns false for a duplicate (sequence already stored). */
  append(record: EndpointRecord, s: EndpointData, nowMs: number): boolean {
    if (s.sequence <= record.lastSequence) return false;
    const sample = storedSampleOf(record, s, nowMs);
    record.series.push(sample);
    record.lastSequence = s.sequence;
    record.lastSeenMs = nowMs;
    record.samplesStored++;
    this.journal?.sample(record.id, sample);
    if (record.reportRound !== this.round) {
      record.reportRound = this.round;
      if (
        inStep(record.interval, this.config.scoreInterval) &&
        ++this.reported === this.reportsWanted
      )
        this.onReports?.();
    }
    return true;
  }

  /**
   * Starts a scoring round (the prioritizer, as a tick begins): from now on, once `share` of the
   * connected endpoints that report once per tick (an interval within ±25 % of
   * lps.scoreInterval: inStep) have stored a sample, `onReports` is called, once. Endpoints that
   * report several times a tick, or once in several, never hold a tick back or bring it forward.
   * `share` 0: never called. Returns how many endpoints the round waits for.
   */
  markRound(share: number, onReports: (() => void) | undefined): number {
    this.round++;
    this.reported = 0;
    let expected = 0;
    for (const r of this.records.values())
      if (r.connected && inStep(r.interval, this.config.scoreInterval)) expected++;
    this.reportsWanted = share > 0 && expected > 0 ? Math.ceil(share * expected) : Infinity;
    this.onReports = onReports;
    return this.reportsWanted === Infinity ? 0 : this.reportsWanted;
  }

  /**
   * Older samples of an endpoint, passed on from another replica (cluster mode: a new owner
   * reading a service's history after this replica already stored the agent's newer samples):
   * each is checked as the wire's are (`atMs`: when it arrived there), those whose sequence the
   * ring does not hold are merged in sequence order, as far as the ring's size allows. Returns
   * how many were stored.
   */
  backfill(
    record: EndpointRecord,
    older: ReadonlyArray<{ sample: EndpointData; atMs: number }>,
  ): number {
    // Only while every sample held has every column (no older tier yet): nothing is lost.
    if (record.series.historySize > record.series.size) return 0;
    const existing = record.series.toArray();
    const held = new Set(existing.map((s) => s.sequence));
    const added: StoredSample[] = [];
    for (const { sample, atMs } of older) {
      if (sample.sequence < 1 || held.has(sample.sequence)) continue;
      const bad = validateSample(sample, {
        endpointId: record.id,
        lastSequence: 0,
        lastTimestampMs: NaN,
        nowMs: atMs,
        maxSkewMs: this.config.maxClockSkew * 1000,
        maxAgeMs: this.config.maxSampleAge * 1000,
      });
      if (bad) continue;
      held.add(sample.sequence);
      added.push(storedSampleOf(record, sample, atMs));
    }
    if (added.length === 0) return 0;
    // The ring keeps the newest `capacity`: an older sample that would fall off is not stored.
    const kept = [...existing, ...added]
      .sort((a, b) => a.sequence - b.sequence)
      .slice(-record.series.capacity);
    const stored = added.filter((s) => s.sequence >= kept[0]!.sequence).length;
    if (stored === 0) return 0;
    record.series.clear();
    for (const s of kept) record.series.push(s);
    record.samplesStored += stored;
    return stored;
  }

  /** The agent's stream ended; `goodbye` when the agent closed it on purpose. */
  disconnect(record: EndpointRecord, goodbye: boolean): void {
    record.connected = false;
    record.leftAtMs = Date.now();
    if (goodbye) {
      record.draining = true;
      this.journal?.goodbye(record.id, Date.now());
      this.emit('membership', record);
    }
  }

  /**
   * Sets the monitoring interval of endpoints (pinned: a later hello does not
   * override it). Returns the ids it applied to.
   */
  setInterval(ids: readonly string[], seconds: number): string[] {
    const applied: string[] = [];
    for (const id of ids) {
      const record = this.records.get(id);
      if (!record) continue;
      record.interval = seconds;
      record.intervalPinned = true;
      applied.push(id);
      this.emit('interval', record);
    }
    if (applied.length > 0) this.journal?.interval(applied, seconds);
    return applied;
  }

  /** The state of an endpoint now: draining, stale, failing or active. */
  stateOf(record: EndpointRecord, nowMs: number): EndpointState {
    if (record.draining) return EndpointState.ENDPOINT_STATE_DRAINING;
    if (nowMs - record.lastSeenMs > this.config.staleAfterIntervals * record.interval * 1000) {
      return EndpointState.ENDPOINT_STATE_STALE;
    }
    if (record.series.size > 0 && record.series.at('healthy') === 0)
      return EndpointState.ENDPOINT_STATE_FAILING;
    return EndpointState.ENDPOINT_STATE_ACTIVE;
  }

  /**
   * Forgets endpoints with no stream: those silent for longer than `forgetAfter`, and those that
   * never stored a sample once `forgetUnsampledAfter` has passed since their last hello or
   * stream. Calls `onForget` with each one's reason; returns them.
   */
  forgetSilent(
    nowMs: number,
    onForget?: (record: EndpointRecord, reason: 'silent' | 'unsampled') => void,
  ): EndpointRecord[] {
    const gone: EndpointRecord[] = [];
    const { forgetAfter, forgetUnsampledAfter } = this.config;
    for (const record of this.records.values()) {
      if (record.connected) continue;
      const quietMs = nowMs - Math.max(record.lastSeenMs, record.leftAtMs);
      let reason: 'silent' | 'unsampled' | undefined;
      if (nowMs - record.lastSeenMs > forgetAfter * 1000) reason = 'silent';
      else if (record.lastSequence === 0 && quietMs > forgetUnsampledAfter * 1000)
        reason = 'unsampled';
      if (!reason) continue;
      this.records.delete(record.id);
      this.owners.delete(record.id);
      this.count(record.service, -1);
      gone.push(record);
      onForget?.(record, reason);
    }
    for (const record of gone) this.emit('membership', record);
    return gone;
  }

  private count(service: string, delta: number): void {
    const n = (this.perService.get(service) ?? 0) + delta;
    if (n > 0) this.perService.set(service, n);
    else this.perService.delete(service);
  }

  clampInterval(seconds: number): number {
    return Math.min(this.config.maxInterval, Math.max(this.config.minInterval, seconds));
  }

  newRing(): SampleRing {
    const { ringSize, detailSamples } = this.config;
    return new SampleRing(ringSize, Math.min(ringSize, detailSamples));
  }
}

/**
 * A stored sample as the agent sent it (the inverse of `append`'s mapping): what ListEndpoints
 * shows as the latest sample, and how a sample read back from disk is validated like one from
 * the wire.
 */
export function endpointDataOf(endpointId: string, s: StoredSample): EndpointData {
  return {
    endpointId,
    cpuUsage: s.cpu,
    memoryUsage: s.memory,
    networkIo: s.network,
    networkCapacity: s.networkCapacity,
    responseTime: s.responseTime,
    timestamp: new Date(s.timestamp),
    sequence: s.sequence,
    health: s.healthy ? ProbeHealth.PROBE_HEALTH_SERVING : ProbeHealth.PROBE_HEALTH_FAILING,
    requestRate: s.requestRate,
    processCpuUsage: Number.isNaN(s.processCpu) ? undefined : s.processCpu,
    requestsCompleted: Number.isNaN(s.completed) ? undefined : s.completed,
    latencySumSeconds: Number.isNaN(s.latencySum) ? undefined : s.latencySum,
    sampleSpan: Number.isNaN(s.span) ? undefined : secondsToDuration(s.span),
  };
}

/** A sample from the wire as the ring keeps it (`nowMs`: when it arrived). */
function storedSampleOf(record: EndpointRecord, s: EndpointData, nowMs: number): StoredSample {
  return {
    timestamp: s.timestamp!.getTime(),
    receivedAt: nowMs,
    sequence: s.sequence,
    cpu: s.cpuUsage,
    memory: s.memoryUsage,
    network: s.networkIo,
    networkCapacity: s.networkCapacity || record.capacity.networkBytesPerSecond,
    responseTime: s.responseTime,
    healthy: s.health === ProbeHealth.PROBE_HEALTH_FAILING ? 0 : 1,
    requestRate: s.requestRate,
    processCpu: s.processCpuUsage === undefined ? NaN : Math.min(s.processCpuUsage, s.cpuUsage),
    completed: s.requestsCompleted ?? NaN,
    latencySum: s.latencySumSeconds ?? NaN,
    span: s.sampleSpan ? durationToSeconds(s.sampleSpan) : NaN,
  };
}

export type { Capacity, Locality };

/**
 * An endpoint whose monitoring interval is the scoring interval, within ±25 %: its newest sample
 * is fresh at a tick only if the tick comes after it (see EndpointStore.markRound).
 */
export function inStep(intervalSeconds: number, scoreIntervalSeconds: number): boolean {
  return Math.abs(intervalSeconds - scoreIntervalSeconds) <= 0.25 * scoreIntervalSeconds;
}

import { EventEmitter } from 'node:events';
import { durationToSeconds } from '../common/duration.js';
import type { Capacity, Locality } from '../gen/augur/v1/common.js';
import { ProbeHealth } from '../gen/augur/v1/common.js';
import type { AgentHello, EndpointData } from '../gen/augur/v1/telemetry.js';
import type { LpsConfig } from './config.js';
import { SampleRing, type StoredSample } from './ring.js';
import { EndpointState, type EndpointRecord } from './types.js';

export interface StoreEvents {
  /** An endpoint appeared, left, changed service or address, or changed state by a hello or goodbye. */
  membership: [record: EndpointRecord];
  /** The interval of an endpoint changed; its stream (if any) must tell the agent. */
  interval: [record: EndpointRecord];
}

/**
 * Every endpoint the LPS knows and its recent samples. The only writer of
 * EndpointRecords; the Telemetry service calls it for each accepted message,
 * the prioritizer reads it once per tick.
 */
export class EndpointStore extends EventEmitter<StoreEvents> {
  private readonly records = new Map<string, EndpointRecord>();
  private readonly config: LpsConfig;

  constructor(config: LpsConfig) {
    super();
    this.config = config;
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

  /** Creates or updates the endpoint named by a hello, marks it connected, returns it. */
  upsertFromHello(hello: AgentHello, nowMs: number): EndpointRecord {
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
        samplesStored: 0,
        series: new SampleRing(this.config.ringSize),
      };
      this.records.set(record.id, record);
    } else {
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
    }
    this.emit('membership', record);
    return record;
  }

  /** Stores an already validated sample; returns false for a duplicate (sequence already stored). */
  append(record: EndpointRecord, s: EndpointData, nowMs: number): boolean {
    if (s.sequence <= record.lastSequence) return false;
    const sample: StoredSample = {
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
    record.series.push(sample);
    record.lastSequence = s.sequence;
    record.lastSeenMs = nowMs;
    record.samplesStored++;
    return true;
  }

  /** The agent's stream ended; `goodbye` when the agent closed it on purpose. */
  disconnect(record: EndpointRecord, goodbye: boolean): void {
    record.connected = false;
    if (goodbye) {
      record.draining = true;
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

  /** Forgets endpoints silent for longer than `forgetAfter`; returns them. */
  forgetSilent(nowMs: number): EndpointRecord[] {
    const gone: EndpointRecord[] = [];
    for (const record of this.records.values()) {
      if (!record.connected && nowMs - record.lastSeenMs > this.config.forgetAfter * 1000) {
        this.records.delete(record.id);
        gone.push(record);
      }
    }
    for (const record of gone) this.emit('membership', record);
    return gone;
  }

  clampInterval(seconds: number): number {
    return Math.min(this.config.maxInterval, Math.max(this.config.minInterval, seconds));
  }

  /** Adds a record restored from disk (disconnected, as it was last seen). */
  restore(record: EndpointRecord): void {
    this.records.set(record.id, record);
  }

  newRing(): SampleRing {
    return new SampleRing(this.config.ringSize);
  }
}

export type { Capacity, Locality };

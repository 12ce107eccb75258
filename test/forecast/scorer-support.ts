import { EndpointState } from '../../src/gen/augur/v1/common.js';
import { SampleRing, type StoredSample } from '../../src/lps/ring.js';
import type { EndpointRecord } from '../../src/lps/types.js';

/** An endpoint record as the store keeps it, for driving a Scorer directly. */
export function record(id: string, service = 'svc'): EndpointRecord {
  return {
    id,
    service,
    address: '127.0.0.1',
    port: 9000,
    locality: { region: '', zone: '', subZone: '' },
    labels: {},
    capacity: { cpuCores: 2, memoryBytes: 1 << 30, networkBytesPerSecond: 1e9 },
    interval: 1,
    intervalPinned: false,
    connected: true,
    draining: false,
    lastSequence: 0,
    lastSeenMs: 0,
    leftAtMs: 0,
    samplesStored: 0,
    series: new SampleRing(256),
  };
}

/** Stores a sample the way the store does (sequence, counters, clock). */
export function push(r: EndpointRecord, nowMs: number, over: Partial<StoredSample>): void {
  const seq = r.lastSequence + 1;
  r.series.push({
    timestamp: nowMs,
    receivedAt: nowMs,
    sequence: seq,
    cpu: 0.5,
    memory: 0.3,
    network: 1e6,
    networkCapacity: 1e9,
    responseTime: 0.02,
    healthy: 1,
    requestRate: 0,
    processCpu: NaN,
    completed: NaN,
    latencySum: NaN,
    span: NaN,
    ...over,
  });
  r.lastSequence = seq;
  r.samplesStored++;
  r.lastSeenMs = nowMs;
}

export const ACTIVE = EndpointState.ENDPOINT_STATE_ACTIVE;
export const STALE = EndpointState.ENDPOINT_STATE_STALE;

import { durationToSeconds } from '../common/duration.js';
import { quoted } from '../common/text.js';
import { ProbeHealth } from '../gen/augur/v1/common.js';
import type { AgentHello, EndpointData } from '../gen/augur/v1/telemetry.js';

/** Why a sample or a hello was refused; `field` names the offending proto field. */
export interface Rejection {
  field: string;
  code: RejectionCode;
  message: string;
}

export type RejectionCode =
  | 'MISSING'
  | 'NOT_FINITE'
  | 'OUT_OF_RANGE'
  | 'BAD_FORMAT'
  | 'UNKNOWN_ENDPOINT'
  | 'TIMESTAMP_SKEW'
  | 'TIMESTAMP_TOO_OLD'
  | 'TIMESTAMP_NOT_INCREASING'
  | 'BATCH_TOO_LARGE'
  | 'RATE_LIMITED';

export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Labels an endpoint may carry, and the longest key and value (they ride every list and EDS). */
export const MAX_LABELS = 32;
export const MAX_LABEL_KEY = 128;
export const MAX_LABEL_VALUE = 256;
/** The longest locality field (region, zone, sub-zone) and agent version. */
const MAX_NAME = 128;
/**
 * The highest sequence a sample may carry: far below 2^53, so an agent told that the LPS holds a
 * sequence above its own can always continue after it (at 1,000 samples/s for 35,000 years),
 * whatever a client sent before.
 */
export const MAX_SEQUENCE = 2 ** 50;
/**
 * The most samples an agent takes per second, for bounding sequence steps: one per 10 ms. Not
 * `lps.minInterval`: an agent that has not reached the LPS yet samples at its own `--interval`,
 * which nothing bounds by the LPS's config, and a refused sample must never be the real agent's.
 */
export const MAX_SAMPLE_RATE = 100;
/**
 * How far a sample's sequence may run ahead of the last stored one beyond what the time between
 * them allows: samples an agent dropped from a full buffer, clocks read a moment apart.
 */
export const SEQUENCE_SLACK = 10_000;
/**
 * How far the first sample of an endpoint with no stored history may start (an agent that has run
 * for years, reporting to an LPS that lost its state): 2^40, which leaves 2^50 − 2^40 for the
 * endpoint's agent to continue after it.
 */
export const MAX_FIRST_STEP = 2 ** 40;
const SERVICE_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** A response time beyond this is a broken probe, not a slow endpoint. */
const MAX_RESPONSE_TIME_S = 3600;

function reject(field: string, code: RejectionCode, message: string): Rejection {
  return { field, code, message };
}

function checkNumber(field: string, v: number, min: number, max: number): Rejection | undefined {
  if (!Number.isFinite(v))
    return reject(field, 'NOT_FINITE', `${field} must be a finite number, got ${v}`);
  if (v < min || v > max) {
    const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`;
    return reject(field, 'OUT_OF_RANGE', `${field} must be ${range}, got ${v}`);
  }
  return undefined;
}

/** A sample may claim a little more own CPU than host CPU: the two are read a moment apart. */
export const OWN_CPU_SKEW = 0.05;
/** A sample's span beyond this is a broken clock, not a slow agent, seconds. */
const MAX_SPAN_S = 86_400;

/** The endpoint's own signals (own CPU, completed requests, their latency, the span they cover). */
function validateSignals(s: EndpointData): Rejection | undefined {
  if (s.processCpuUsage !== undefined) {
    const bad = checkNumber('process_cpu_usage', s.processCpuUsage, 0, 1);
    if (bad) return bad;
    if (s.processCpuUsage > s.cpuUsage + OWN_CPU_SKEW) {
      return reject(
        'process_cpu_usage',
        'OUT_OF_RANGE',
        `process_cpu_usage ${s.processCpuUsage} exceeds cpu_usage ${s.cpuUsage} by more than ${OWN_CPU_SKEW}: ` +
          "the endpoint's own CPU is part of the host's (both must be fractions of the same capacity)",
      );
    }
  }
  if (s.requestsCompleted !== undefined) {
    const bad = checkNumber('requests_completed', s.requestsCompleted, 0, Number.MAX_SAFE_INTEGER);
    if (bad) return bad;
    if (!Number.isInteger(s.requestsCompleted)) {
      return reject(
        'requests_completed',
        'BAD_FORMAT',
        `requests_completed must be a whole number, got ${s.requestsCompleted}`,
      );
    }
  }
  if (s.latencySumSeconds !== undefined) {
    const bad = checkNumber('latency_sum_seconds', s.latencySumSeconds, 0, Infinity);
    if (bad) return bad;
    if (s.requestsCompleted === undefined) {
      return reject(
        'latency_sum_seconds',
        'MISSING',
        'latency_sum_seconds needs requests_completed (the number of requests it sums over)',
      );
    }
  }
  if (s.sampleSpan !== undefined) {
    const span = durationToSeconds(s.sampleSpan);
    if (!Number.isFinite(span) || span <= 0 || span > MAX_SPAN_S || s.sampleSpan.nanos < 0) {
      return reject(
        'sample_span',
        'OUT_OF_RANGE',
        `sample_span must be in (0, ${MAX_SPAN_S}] seconds with non-negative nanos, got ${span} s`,
      );
    }
  }
  return undefined;
}

/** Checks a hello; the first problem found, or undefined. */
export function validateHello(hello: AgentHello): Rejection | undefined {
  if (!ID_PATTERN.test(hello.endpointId)) {
    return reject(
      'endpoint_id',
      hello.endpointId ? 'BAD_FORMAT' : 'MISSING',
      `endpoint_id must be 1-128 characters of [A-Za-z0-9._:-], got ${quoted(hello.endpointId)}`,
    );
  }
  if (!SERVICE_PATTERN.test(hello.service)) {
    return reject(
      'service',
      hello.service ? 'BAD_FORMAT' : 'MISSING',
      `service must be 1-128 characters of [A-Za-z0-9._-], got ${quoted(hello.service)}`,
    );
  }
  if (!hello.address || hello.address.length > 253 || /\s/.test(hello.address)) {
    return reject(
      'address',
      hello.address ? 'BAD_FORMAT' : 'MISSING',
      `address must be an IP or host name, got ${quoted(hello.address)}`,
    );
  }
  if (!Number.isInteger(hello.port) || hello.port < 1 || hello.port > 65535) {
    return reject('port', 'OUT_OF_RANGE', `port must be in [1, 65535], got ${hello.port}`);
  }
  const names = validateNames(hello);
  if (names) return names;
  const cap = hello.capacity;
  if (cap) {
    return (
      checkNumber('capacity.cpu_cores', cap.cpuCores, 0, 1e6) ??
      checkNumber('capacity.memory_bytes', cap.memoryBytes, 0, Number.MAX_SAFE_INTEGER) ??
      checkNumber('capacity.network_bytes_per_second', cap.networkBytesPerSecond, 0, 1e15)
    );
  }
  return undefined;
}

/** Locality, labels and version: bounded, as they ride every list, EDS and dashboard frame. */
function validateNames(hello: AgentHello): Rejection | undefined {
  const loc = hello.locality;
  for (const [field, value] of [
    ['locality.region', loc?.region ?? ''],
    ['locality.zone', loc?.zone ?? ''],
    ['locality.sub_zone', loc?.subZone ?? ''],
    ['agent_version', hello.agentVersion],
  ] as const) {
    if (value.length > MAX_NAME)
      return reject(
        field,
        'OUT_OF_RANGE',
        `${field} is at most ${MAX_NAME} characters, got ${value.length}`,
      );
  }
  const labels = Object.entries(hello.labels ?? {});
  if (labels.length > MAX_LABELS)
    return reject('labels', 'OUT_OF_RANGE', `at most ${MAX_LABELS} labels, got ${labels.length}`);
  for (const [key, value] of labels) {
    if (key.length === 0 || key.length > MAX_LABEL_KEY)
      return reject(
        'labels',
        'OUT_OF_RANGE',
        `a label key is 1-${MAX_LABEL_KEY} characters, got ${key.length}: ${quoted(key)}`,
      );
    if (value.length > MAX_LABEL_VALUE)
      return reject(
        'labels',
        'OUT_OF_RANGE',
        `label ${quoted(key)}'s value is at most ${MAX_LABEL_VALUE} characters, got ${value.length}`,
      );
  }
  return undefined;
}

export interface SampleContext {
  endpointId: string;
  /** Highest sequence stored for the endpoint. */
  lastSequence: number;
  /** Timestamp of the newest stored sample, ms (NaN if none). */
  lastTimestampMs: number;
  nowMs: number;
  maxSkewMs: number;
  maxAgeMs: number;
}

/**
 * Checks one sample against its stream's endpoint and history. Duplicates
 * (sequence <= lastSequence) are not an error: the caller drops them.
 */
export function validateSample(s: EndpointData, ctx: SampleContext): Rejection | undefined {
  if (s.endpointId !== '' && s.endpointId !== ctx.endpointId) {
    return reject(
      'endpoint_id',
      'UNKNOWN_ENDPOINT',
      `endpoint_id ${quoted(s.endpointId)} is not the endpoint of this stream ("${ctx.endpointId}")`,
    );
  }
  if (!Number.isSafeInteger(s.sequence) || s.sequence < 1) {
    return reject('sequence', 'MISSING', `sequence must be an integer >= 1, got ${s.sequence}`);
  }
  if (s.sequence > MAX_SEQUENCE) {
    return reject(
      'sequence',
      'OUT_OF_RANGE',
      `sequence must be at most 2^50 (${MAX_SEQUENCE}), got ${s.sequence}`,
    );
  }
  const numeric =
    checkNumber('cpu_usage', s.cpuUsage, 0, 1) ??
    checkNumber('memory_usage', s.memoryUsage, 0, 1) ??
    checkNumber('network_io', s.networkIo, 0, Infinity) ??
    checkNumber('network_capacity', s.networkCapacity, 0, Infinity) ??
    checkNumber('response_time', s.responseTime, 0, MAX_RESPONSE_TIME_S) ??
    checkNumber('request_rate', s.requestRate, 0, Infinity);
  if (numeric) return numeric;
  const signals = validateSignals(s);
  if (signals) return signals;
  if (
    s.health !== ProbeHealth.PROBE_HEALTH_SERVING &&
    s.health !== ProbeHealth.PROBE_HEALTH_FAILING &&
    s.health !== ProbeHealth.PROBE_HEALTH_UNSPECIFIED
  ) {
    return reject(
      'health',
      'OUT_OF_RANGE',
      `health ${String(s.health)} is not a ProbeHealth value`,
    );
  }
  if (!s.timestamp) return reject('timestamp', 'MISSING', 'timestamp is required');
  const ts = s.timestamp.getTime();
  if (!Number.isFinite(ts))
    return reject('timestamp', 'NOT_FINITE', 'timestamp is not a valid time');
  if (ts > ctx.nowMs + ctx.maxSkewMs) {
    return reject(
      'timestamp',
      'TIMESTAMP_SKEW',
      `timestamp ${s.timestamp.toISOString()} is ${((ts - ctx.nowMs) / 1000).toFixed(1)} s ahead of the LPS clock (limit ${ctx.maxSkewMs / 1000} s): check the agent's clock`,
    );
  }
  if (ts < ctx.nowMs - ctx.maxAgeMs) {
    return reject(
      'timestamp',
      'TIMESTAMP_TOO_OLD',
      `timestamp ${s.timestamp.toISOString()} is older than ${ctx.maxAgeMs / 1000} s`,
    );
  }
  // An agent numbers its samples one by one and takes at most MAX_SAMPLE_RATE a second: a
  // sequence further ahead than the time since the last stored sample allows is not one (and
  // would leave the real agent less room to continue after it).
  const step = s.sequence - ctx.lastSequence;
  if (Number.isFinite(ctx.lastTimestampMs)) {
    const elapsed = Math.max(0, ts - ctx.lastTimestampMs) / 1000;
    const maxStep = Math.ceil(elapsed * MAX_SAMPLE_RATE) + SEQUENCE_SLACK;
    if (step > maxStep) {
      return reject(
        'sequence',
        'OUT_OF_RANGE',
        `sequence ${s.sequence} is ${step} after the last stored (${ctx.lastSequence}); ` +
          `a sample taken ${elapsed.toFixed(1)} s later may be at most ${maxStep} after it`,
      );
    }
  } else if (step > MAX_FIRST_STEP) {
    return reject(
      'sequence',
      'OUT_OF_RANGE',
      `sequence ${s.sequence} is ${step} after the last stored (${ctx.lastSequence}); ` +
        `with no sample to date it from, at most 2^40 (${MAX_FIRST_STEP})`,
    );
  }
  if (s.sequence > ctx.lastSequence && ts < ctx.lastTimestampMs) {
    return reject(
      'timestamp',
      'TIMESTAMP_NOT_INCREASING',
      `timestamp ${s.timestamp.toISOString()} is before the previous sample's (${new Date(ctx.lastTimestampMs).toISOString()})`,
    );
  }
  return undefined;
}

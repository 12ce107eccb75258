import { AugurError } from '../common/errors.js';
import { parseDurationSeconds } from '../common/duration.js';
import { quoted } from '../common/text.js';

/** The request-level API (DESIGN.md), as HTTP header names. */
export const HEADER_DYNAMIC_ROUTING = 'x-augur-dynamic-routing';
export const HEADER_ENDPOINTS = 'x-augur-endpoints';
export const HEADER_MONITORING_INTERVAL = 'x-augur-monitoring-interval';
/** The Endpoint Picker Protocol's header and metadata key. */
export const DESTINATION_ENDPOINT = 'x-gateway-destination-endpoint';

/** Same rule as the agent's hello (telemetry.proto). */
const ENDPOINT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The raw values of the headers the RRM reads, as found on one request. */
export interface RoutingHeaders {
  dynamicRouting?: string;
  endpoints?: string;
  monitoringInterval?: string;
  /** A single-valued header that came more than once with different values. */
  conflicting?: string;
  /** The client sent `x-gateway-destination-endpoint` itself (it is removed, never trusted). */
  destinationSent: boolean;
}

/** What a request asks for, validated. */
export interface RouteQuery {
  dynamic: boolean;
  /** Candidate ids in the caller's order, duplicates dropped; undefined: every endpoint. */
  candidates: string[] | undefined;
  /** Seconds, within the configured bounds; undefined when not asked. */
  monitoringInterval: number | undefined;
}

export interface RequestApiLimits {
  dynamicRoutingDefault: boolean;
  maxCandidates: number;
  minInterval: number;
  maxInterval: number;
  /**
   * Whether `x-augur-monitoring-interval` is read at all (`rrm.monitoringIntervalFromRequests`);
   * when not, the header is left unparsed, so a value augur does not act on fails no request.
   */
  monitoringIntervalFromRequests: boolean;
}

/** A bad `x-augur-*` value: the header and why, for a 400 body or INVALID_ARGUMENT. */
export class BadRoutingHeader extends AugurError {
  readonly header: string;
  constructor(header: string, reason: string) {
    super('BAD_ROUTING_HEADER', `${header}: ${reason}`);
    this.header = header;
  }
}

/**
 * Collects the routing headers from `[name, value]` pairs (names lower case, as HTTP/2 and
 * Envoy give them). A repeated `x-augur-endpoints` is joined with commas, as HTTP says a
 * list header may be; any other repeated routing header must repeat the same value.
 */
export class RoutingHeaderCollector {
  headers: RoutingHeaders = { destinationSent: false };

  reset(): void {
    this.headers = { destinationSent: false };
  }

  /** Feeds one header; returns quickly for the ones the RRM ignores. */
  add(name: string, value: string): void {
    if (name.length < 17 || name.charCodeAt(0) !== 120 /* x */) return;
    const h = this.headers;
    switch (name) {
      case HEADER_ENDPOINTS:
        h.endpoints = h.endpoints === undefined ? value : `${h.endpoints},${value}`;
        break;
      case HEADER_DYNAMIC_ROUTING:
        if (h.dynamicRouting !== undefined && h.dynamicRouting !== value) h.conflicting = name;
        h.dynamicRouting = value;
        break;
      case HEADER_MONITORING_INTERVAL:
        if (h.monitoringInterval !== undefined && h.monitoringInterval !== value)
          h.conflicting = name;
        h.monitoringInterval = value;
        break;
      case DESTINATION_ENDPOINT:
        h.destinationSent = true;
        break;
    }
  }
}

/** Validates the routing headers; throws BadRoutingHeader naming the header and the problem. */
export function parseRoutingHeaders(h: RoutingHeaders, limits: RequestApiLimits): RouteQuery {
  // A header the RRM does not read fails no request, repeated or not.
  const ignored =
    h.conflicting === HEADER_MONITORING_INTERVAL && !limits.monitoringIntervalFromRequests;
  if (h.conflicting && !ignored) {
    throw new BadRoutingHeader(
      h.conflicting,
      'sent more than once with different values; send it once',
    );
  }
  return {
    dynamic: parseDynamicRouting(h.dynamicRouting, limits.dynamicRoutingDefault),
    candidates:
      h.endpoints === undefined ? undefined : parseEndpointList(h.endpoints, limits.maxCandidates),
    monitoringInterval:
      h.monitoringInterval === undefined || !limits.monitoringIntervalFromRequests
        ? undefined
        : parseMonitoringInterval(h.monitoringInterval, limits.minInterval, limits.maxInterval),
  };
}

export function parseDynamicRouting(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new BadRoutingHeader(HEADER_DYNAMIC_ROUTING, `${quoted(value)} is not true or false`);
}

/** Comma-separated endpoint ids; blanks around commas are ignored, a repeated id counts once. */
export function parseEndpointList(value: string, max: number): string[] {
  const ids: string[] = [];
  const parts = value.split(',');
  // Lists are short as a rule; a Set only pays off for long ones.
  const seen = parts.length > 16 ? new Set<string>() : undefined;
  for (let i = 0; i < parts.length; i++) {
    const id = parts[i]!.trim();
    if (id === '') {
      throw new BadRoutingHeader(
        HEADER_ENDPOINTS,
        `entry ${i + 1} is empty; give endpoint ids separated by commas, for example "web-1,web-2"`,
      );
    }
    if (!ENDPOINT_ID.test(id)) {
      throw new BadRoutingHeader(
        HEADER_ENDPOINTS,
        `entry ${i + 1} ${quoted(id)} is not an endpoint id (1 to 128 of A-Z a-z 0-9 . _ : -)`,
      );
    }
    if (seen ? seen.has(id) : ids.includes(id)) continue;
    seen?.add(id);
    ids.push(id);
  }
  if (ids.length > max) {
    throw new BadRoutingHeader(
      HEADER_ENDPOINTS,
      `${ids.length} endpoints given; at most ${max} are accepted`,
    );
  }
  return ids;
}

/** Seconds ("5", "0.5") or with a unit ("250ms", "2m"), within [min, max]. */
export function parseMonitoringInterval(value: string, min: number, max: number): number {
  let seconds: number;
  try {
    seconds = parseDurationSeconds(value, HEADER_MONITORING_INTERVAL);
  } catch {
    throw new BadRoutingHeader(
      HEADER_MONITORING_INTERVAL,
      `${quoted(value)} is not a duration; use seconds ("5", "0.5") or a unit ("250ms", "2m")`,
    );
  }
  if (seconds < min || seconds > max) {
    throw new BadRoutingHeader(
      HEADER_MONITORING_INTERVAL,
      `${seconds} s is outside the allowed range ${min} s to ${max} s`,
    );
  }
  return seconds;
}

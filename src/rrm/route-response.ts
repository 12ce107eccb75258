import * as grpc from '@grpc/grpc-js';
import { durationToSeconds, secondsToDuration } from '../common/duration.js';
import type { Logger } from '../common/logger.js';
import type {
  DeliveryAttempt,
  ResponseRouterServer,
  RouteResponseRequest,
  RouteResponseResponse,
} from '../gen/augur/v1/response_router.js';
import { DeliveryFailed, type Deliverer, type DeliveryTarget } from './delivery.js';
import type { DeliveryGuard } from './delivery-guard.js';
import type { EndpointTables } from './endpoint-table.js';
import type { RrmMetrics } from './metrics.js';
import type { MonitoringForwarder } from './monitoring.js';
import {
  BadRoutingHeader,
  parseEndpointList,
  parseMonitoringInterval,
  type RequestApiLimits,
} from './request-api.js';
import type { Router } from './router.js';

const GRPC_METHOD = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;

export interface RouteResponseDeps {
  router: Router;
  tables: EndpointTables;
  deliverer: Deliverer;
  guard: DeliveryGuard;
  monitoring: MonitoringForwarder;
  limits: RequestApiLimits;
  metrics: RrmMetrics;
  defaultService: string;
  /** Per attempt when the request does not say, seconds. */
  deliveryTimeout: number;
  maxPayloadBytes: number;
  logger: Logger;
}

/** A gRPC error with a status code, as grpc-js sends it. */
function status(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details };
}

/**
 * `augur.v1.ResponseRouter/RouteResponse`: the seed's routeResponse for systems without
 * Envoy. Orders the given endpoints as the ext_proc path would (Load Score, or the caller's
 * order), then delivers to each in turn until one takes the payload; a connection error, a
 * timeout or an "unavailable" answer (HTTP 502/503/504, gRPC UNAVAILABLE/DEADLINE_EXCEEDED)
 * moves on to the next.
 */
export function responseRouterService(deps: RouteResponseDeps): ResponseRouterServer {
  return {
    routeResponse: (call, callback) => {
      routeResponse(deps, call.request).then(
        (res) => callback(null, res),
        (err: Partial<grpc.StatusObject>) => callback(err),
      );
    },
  };
}

async function routeResponse(
  deps: RouteResponseDeps,
  req: RouteResponseRequest,
): Promise<RouteResponseResponse> {
  const { router, tables, limits } = deps;
  let candidates: string[] | undefined;
  let interval: number | undefined;
  try {
    if (req.endpointIds.length > 0)
      candidates = parseEndpointList(req.endpointIds.join(','), limits.maxCandidates);
    if (req.monitoringInterval) {
      interval = parseMonitoringInterval(
        String(durationToSeconds(req.monitoringInterval)),
        limits.minInterval,
        limits.maxInterval,
      );
    }
  } catch (err) {
    const field =
      err instanceof BadRoutingHeader && err.header.endsWith('endpoints')
        ? 'endpoint_ids'
        : 'monitoring_interval';
    const reason =
      err instanceof BadRoutingHeader ? err.message.slice(err.header.length + 2) : String(err);
    throw status(grpc.status.INVALID_ARGUMENT, `${field}: ${reason}`);
  }
  if (req.payload.length > deps.maxPayloadBytes) {
    throw status(
      grpc.status.INVALID_ARGUMENT,
      `payload: ${req.payload.length} bytes is above the limit of ${deps.maxPayloadBytes} (rrm.maxPayloadBytes)`,
    );
  }
  const target = deliveryTarget(req);
  const service = resolveService(req, candidates, tables, deps.defaultService);
  if (!tables.has(service)) {
    throw status(grpc.status.NOT_FOUND, `service "${service}" has no endpoints known to augur`);
  }
  if (interval !== undefined) {
    deps.metrics.forward(
      deps.monitoring.request(service, candidates, interval, () => router.endpointIds(service)),
    );
  }
  const dynamic = req.dynamicRoutingEnabled ?? limits.dynamicRoutingDefault;
  const limit = req.maxAttempts > 0 ? req.maxAttempts : Number.MAX_SAFE_INTEGER;
  const order = router.order(service, dynamic, candidates, limit);
  if (order.length === 0) {
    throw status(
      grpc.status.UNAVAILABLE,
      candidates
        ? `none of the ${candidates.length} endpoint_ids is a healthy, fresh endpoint of service "${service}"`
        : `no endpoint of service "${service}" is healthy and fresh`,
    );
  }
  const timeoutMs =
    (req.attemptTimeout ? durationToSeconds(req.attemptTimeout) : 0) * 1000 ||
    deps.deliveryTimeout * 1000;
  const attempts: DeliveryAttempt[] = [];
  for (const endpoint of order) {
    const started = performance.now();
    const allowed = await deps.guard.check(endpoint.id, endpoint.hostPort);
    if (!allowed.ok) {
      deps.metrics.deliveryRefused(allowed.reason);
      attempts.push({
        endpointId: endpoint.id,
        address: endpoint.hostPort,
        error: `not delivered: ${allowed.message}`,
        statusCode: 0,
        duration: secondsToDuration((performance.now() - started) / 1000),
      });
      continue;
    }
    try {
      const res = await deps.deliverer.deliver(
        allowed.address,
        req.payload,
        target,
        timeoutMs,
        endpoint.hostPort,
      );
      deps.metrics.delivery('delivered');
      attempts.push({
        endpointId: endpoint.id,
        address: endpoint.hostPort,
        error: '',
        statusCode: res.statusCode,
        duration: secondsToDuration((performance.now() - started) / 1000),
      });
      return {
        endpointId: endpoint.id,
        address: endpoint.hostPort,
        statusCode: res.statusCode,
        responseBody: res.body,
        attempts,
      };
    } catch (err) {
      deps.metrics.delivery('failed');
      const failed = err instanceof DeliveryFailed ? err : new DeliveryFailed(String(err));
      attempts.push({
        endpointId: endpoint.id,
        address: endpoint.hostPort,
        error: failed.message,
        statusCode: failed.statusCode,
        duration: secondsToDuration((performance.now() - started) / 1000),
      });
    }
  }
  const summary = attempts.map((a) => `${a.endpointId} (${a.address}): ${a.error}`).join('; ');
  deps.logger.warn({ service, attempts: attempts.length }, 'RouteResponse: every endpoint failed');
  throw status(grpc.status.UNAVAILABLE, `every endpoint tried failed: ${summary}`);
}

function deliveryTarget(req: RouteResponseRequest): DeliveryTarget {
  if (req.grpc) {
    if (!GRPC_METHOD.test(req.grpc.method)) {
      throw status(
        grpc.status.INVALID_ARGUMENT,
        `grpc.method: "${req.grpc.method}" is not a full method name like "/acme.Hooks/Deliver"`,
      );
    }
    return { kind: 'grpc', method: req.grpc.method };
  }
  const path = req.http?.path || '/';
  if (!path.startsWith('/')) {
    throw status(grpc.status.INVALID_ARGUMENT, `http.path: "${path}" must start with "/"`);
  }
  const method = (req.http?.method || 'POST').toUpperCase();
  if (!/^[A-Z]+$/.test(method)) {
    throw status(grpc.status.INVALID_ARGUMENT, `http.method: "${method}" is not an HTTP method`);
  }
  return {
    kind: 'http',
    method,
    path,
    headers: req.http?.headers ?? {},
    contentType: req.contentType || 'application/octet-stream',
  };
}

/** The request's service, else the service of its endpoints (all must agree), else the default. */
function resolveService(
  req: RouteResponseRequest,
  candidates: string[] | undefined,
  tables: EndpointTables,
  defaultService: string,
): string {
  if (req.service) return req.service;
  if (!candidates) return defaultService;
  const services = new Set(
    candidates.map((id) => tables.serviceOf(id)).filter((s) => s !== undefined),
  );
  if (services.size > 1) {
    throw status(
      grpc.status.INVALID_ARGUMENT,
      `endpoint_ids belong to several services (${[...services].join(', ')}); set service`,
    );
  }
  return services.values().next().value ?? defaultService;
}

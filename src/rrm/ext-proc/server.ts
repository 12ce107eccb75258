import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import { clientOf, OpenCounts } from '../../common/peer.js';
import type { RrmMetrics } from '../metrics.js';
import type { MonitoringForwarder } from '../monitoring.js';
import {
  BadRoutingHeader,
  RoutingHeaderCollector,
  parseRoutingHeaders,
  type RequestApiLimits,
} from '../request-api.js';
import type { RoutedRequest, RoutedRequests } from '../routed-requests.js';
import type { Router } from '../router.js';
import {
  CLUSTER_NAME_ATTRIBUTE,
  EXT_PROC_ATTRIBUTE_NAMESPACE,
  ROUTE_NAME_ATTRIBUTE,
  type ServiceResolver,
} from '../service-resolver.js';
import {
  decodeProcessingRequest,
  encodeContinue,
  encodeImmediateResponse,
  encodeRouteResponse,
  headerValue,
  responseHeadersContinue,
  stringAttribute,
  warmExtProcCodec,
  type ProcessingRequestMessage,
} from './messages.js';

export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';

/** grpc-js service definition of ExternalProcessor; answers are pre-encoded bytes. */
export const extProcServiceDefinition: grpc.ServiceDefinition = {
  Process: {
    path: `/${EXT_PROC_SERVICE_NAME}/Process`,
    requestStream: true,
    responseStream: true,
    requestSerialize: (bytes: Uint8Array) => Buffer.from(bytes),
    requestDeserialize: (buf: Buffer) => decodeProcessingRequest(buf),
    // Answers are encoded (and memoised) before they are written, so this is a view, not a copy.
    responseSerialize: (bytes: Uint8Array) =>
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    responseDeserialize: (buf: Buffer) => buf,
  },
};

export interface ExtProcDeps {
  router: Router;
  resolver: ServiceResolver;
  limits: RequestApiLimits;
  monitoring: MonitoringForwarder;
  metrics: RrmMetrics;
  /** Where a routed request is counted in flight until its response. */
  routed: RoutedRequests;
  logger: Logger;
  /**
   * Most streams open at once, on every address this handler serves (rrm.maxStreams); a further
   * stream is refused with RESOURCE_EXHAUSTED when it starts. Absent: no limit.
   */
  maxStreams?: number;
  /**
   * Most streams one client (its IP address, src/common/peer.ts) holds open at once, on every
   * address this handler serves (rrm.maxStreamsPerClient); refused the same way. Absent: no limit.
   */
  maxStreamsPerClient?: number;
}

/** The limits a stream can be refused for as it starts. */
type StreamLimit = 'rrm.maxStreams' | 'rrm.maxStreamsPerClient';

/** Refusals for a limit are logged at most once per this many ms, with how many since. */
const REFUSAL_LOG_GAP_MS = 10_000;

/** The Envoy attribute naming the endpoint that served a request (`ip:port`). */
export const UPSTREAM_ADDRESS_ATTRIBUTE = 'upstream.address';

/**
 * One ext_proc stream, i.e. one HTTP request at Envoy, as the RRM holds it: the request
 * headers get the pick; if the request was routed, the stream stays open for its response
 * headers (ext_proc's response phase), which say which endpoint answered, with what status and
 * after how long; then the RRM is done. Whatever way the stream ends, a request still counted
 * in flight is given back (`close`).
 */
export class ExtProcExchange {
  /** True once the RRM needs nothing more from the stream: the transport may close it. */
  done = false;
  private readonly handler: ExtProcHandler;
  private routed: RoutedRequest | undefined;
  private closed = false;

  constructor(handler: ExtProcHandler) {
    this.handler = handler;
  }

  /** The answer to one ProcessingRequest, encoded; sets `done` when it is the last. */
  answer(request: ProcessingRequestMessage): Uint8Array {
    const phase = request.request;
    if (phase === 'request_headers' && request.request_headers && !this.routed) {
      const { bytes, routed } = this.handler.decide(request);
      if (routed && !this.closed) this.routed = routed;
      else this.done = true;
      return bytes;
    }
    if (phase === 'response_headers') {
      const routed = this.routed;
      this.routed = undefined;
      if (routed) this.handler.responded(routed, request);
      this.done = true;
      return responseHeadersContinue();
    }
    // Only a processing mode other than ours sends these; let the request carry on.
    return encodeContinue(phase ?? 'request_headers');
  }

  /** The stream is over, however it ended; idempotent. */
  close(): void {
    this.closed = true;
    const routed = this.routed;
    this.routed = undefined;
    if (routed) this.handler.deps.routed.abandon(routed);
  }
}

/**
 * The Endpoint Picker side of Envoy's ext_proc conversation. Envoy opens one Process stream
 * per HTTP request, sends the request headers and, on the routed path, the response headers
 * (see envoy/bootstrap.yaml), waits for an answer to each, and ends or cancels the stream when
 * the request is done.
 */
export class ExtProcHandler {
  readonly deps: ExtProcDeps;
  private readonly collector = new RoutingHeaderCollector();
  /** When refusals for each limit were last logged, and how many came since. */
  private readonly refusalLog = new Map<StreamLimit, { atMs: number; since: number }>();
  /** Open streams per client (rrm.maxStreamsPerClient). */
  private readonly perClient = new OpenCounts();

  constructor(deps: ExtProcDeps) {
    this.deps = deps;
    // At start, not in the first exchange (a stall past Envoy's message timeout otherwise).
    warmExtProcCodec();
  }

  /** The grpc-js implementation object for `extProcServiceDefinition`. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      Process: (call: grpc.ServerDuplexStream<ProcessingRequestMessage, Uint8Array>) =>
        this.process(call),
    };
  }

  /**
   * Why a stream that `client` (src/common/peer.ts: an IP address) starts now must be refused:
   * `maxStreams` are open, or `maxStreamsPerClient` of them are the client's. The refusal is
   * counted and logged (at most once per REFUSAL_LOG_GAP_MS per limit); undefined while there is
   * room. A transport calls it before `open`, and ends a refused stream with RESOURCE_EXHAUSTED
   * and this message.
   */
  refusal(client: string): string | undefined {
    const { maxStreams, maxStreamsPerClient, metrics } = this.deps;
    const open = metrics.extProcStreams;
    if (maxStreams !== undefined && open >= maxStreams) {
      return this.refuse(
        'rrm.maxStreams',
        `augur has ${open} ext_proc streams open, its limit (rrm.maxStreams ${maxStreams}); try again later`,
      );
    }
    const ofClient = this.perClient.of(client);
    if (maxStreamsPerClient !== undefined && ofClient >= maxStreamsPerClient) {
      return this.refuse(
        'rrm.maxStreamsPerClient',
        `client ${client} has ${ofClient} ext_proc streams open, the limit (rrm.maxStreamsPerClient ${maxStreamsPerClient}); try again later`,
      );
    }
    return undefined;
  }

  private refuse(limit: StreamLimit, details: string): string {
    const { metrics, logger } = this.deps;
    metrics.streamRefused(limit);
    const now = Date.now();
    const seen = this.refusalLog.get(limit);
    if (seen && now - seen.atMs < REFUSAL_LOG_GAP_MS) seen.since++;
    else {
      this.refusalLog.set(limit, { atMs: now, since: 0 });
      logger.warn(
        { limit, refusedSinceLastLog: (seen?.since ?? 0) + 1, details },
        `ext_proc streams refused for a limit (${limit}); see augur_rrm_ext_proc_streams_refused_total`,
      );
    }
    return details;
  }

  /** A new stream of `client`: counted open until the exchange's `close`. */
  open(client: string): ExtProcExchange {
    const { metrics } = this.deps;
    metrics.streamOpened();
    this.perClient.add(client);
    const exchange = new ExtProcExchange(this);
    const close = exchange.close.bind(exchange);
    let open = true;
    exchange.close = () => {
      close();
      if (!open) return;
      open = false;
      metrics.streamClosed();
      this.perClient.remove(client);
    };
    return exchange;
  }

  /** Clients with a stream open now (their entries; none is kept for a client without one). */
  get clientsOpen(): number {
    return this.perClient.size;
  }

  private process(call: grpc.ServerDuplexStream<ProcessingRequestMessage, Uint8Array>): void {
    const client = clientOf(call);
    const refused = this.refusal(client);
    if (refused !== undefined) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: refused });
      return;
    }
    const exchange = this.open(client);
    call.on('data', (request: ProcessingRequestMessage) => {
      if (call.cancelled || exchange.done) return;
      call.write(this.safeAnswer(exchange, request));
      if (exchange.done) call.end();
    });
    // Envoy ends the stream when the HTTP request is done; both ends are normal.
    call.on('end', () => {
      exchange.close();
      if (!exchange.done) call.end();
    });
    call.on('cancelled', () => exchange.close());
    call.on('error', () => exchange.close());
    call.on('close', () => exchange.close());
  }

  private safeAnswer(exchange: ExtProcExchange, request: ProcessingRequestMessage): Uint8Array {
    try {
      return exchange.answer(request);
    } catch (err) {
      this.deps.logger.warn({ err }, 'ext_proc request could not be answered');
      exchange.done = true;
      return encodeContinue(request.request ?? 'request_headers');
    }
  }

  /**
   * The answer to request headers, encoded, and the routed request if the request goes to an
   * endpoint (undefined for a 400 or a 503). Exposed for benchmarks and tests.
   */
  decide(request: ProcessingRequestMessage): { bytes: Uint8Array; routed?: RoutedRequest } {
    const { router, resolver, limits, metrics } = this.deps;
    const collector = this.collector;
    collector.reset();
    const headers = request.request_headers?.headers?.headers;
    if (headers) {
      for (let i = 0; i < headers.length; i++) {
        const h = headers[i]!;
        const key = h.key;
        // Only x-augur-* and x-gateway-* matter; skip the rest without decoding their value.
        if (key.length >= 17 && key.charCodeAt(0) === 120 && key.charCodeAt(1) === 45) {
          collector.add(key, headerValue(h));
        }
      }
    }
    const found = collector.headers;
    const service = resolver.resolve(
      stringAttribute(request.attributes, EXT_PROC_ATTRIBUTE_NAMESPACE, ROUTE_NAME_ATTRIBUTE),
      stringAttribute(request.attributes, EXT_PROC_ATTRIBUTE_NAMESPACE, CLUSTER_NAME_ATTRIBUTE),
      router.isKnown,
    );
    let dynamic: boolean;
    let candidates: string[] | undefined;
    try {
      const query = parseRoutingHeaders(found, limits);
      dynamic = query.dynamic;
      candidates = query.candidates;
      if (query.monitoringInterval !== undefined) {
        this.forwardInterval(service, candidates, query.monitoringInterval);
      } else if (found.monitoringInterval !== undefined) {
        metrics.forward('disabled'); // rrm.monitoringIntervalFromRequests is off
      }
    } catch (err) {
      if (!(err instanceof BadRoutingHeader)) throw err;
      metrics.decision('bad_request');
      return { bytes: encodeImmediateResponse(400, err.message, 'augur_bad_routing_header') };
    }
    const decision = router.decide(service, dynamic, candidates, found.endpoints);
    if (decision.endpoints.length === 0 || !decision.pick) {
      metrics.decision('no_endpoint');
      return {
        bytes: encodeImmediateResponse(
          503,
          decision.reason ?? 'no endpoint available',
          'augur_no_endpoint',
        ),
      };
    }
    metrics.decision('routed');
    const variant = found.destinationSent ? 1 : 0;
    let bytes = decision.encoded[variant];
    if (!bytes) {
      bytes = encodeRouteResponse(decision.value, found.destinationSent);
      decision.encoded[variant] = bytes;
    }
    return { bytes, routed: this.deps.routed.begin(decision.pick) };
  }

  /**
   * The response headers of a routed request: the endpoint that answered (Envoy's
   * `upstream.address`, which differs from the pick when a retry went to a fallback) and the
   * status, for the in-band signals.
   */
  responded(routed: RoutedRequest, request: ProcessingRequestMessage): void {
    const { routed: requests, router } = this.deps;
    const address = stringAttribute(
      request.attributes,
      EXT_PROC_ATTRIBUTE_NAMESPACE,
      UPSTREAM_ADDRESS_ATTRIBUTE,
    );
    const served =
      address === undefined || address === routed.pick.destination
        ? routed.pick
        : router.loads.get(address);
    requests.respond(routed, served, responseStatus(request));
  }

  private forwardInterval(
    service: string,
    candidates: string[] | undefined,
    seconds: number,
  ): void {
    const { router, monitoring, metrics } = this.deps;
    metrics.forward(
      monitoring.request(service, candidates, seconds, () => router.endpointIds(service)),
    );
  }
}

/** The `:status` of response headers; 0 if absent or malformed. */
function responseStatus(request: ProcessingRequestMessage): number {
  const headers = request.response_headers?.headers?.headers;
  if (!headers) return 0;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i]!.key === ':status') {
      const status = Number(headerValue(headers[i]!));
      return Number.isInteger(status) ? status : 0;
    }
  }
  return 0;
}

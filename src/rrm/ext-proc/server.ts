import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import type { RrmMetrics } from '../metrics.js';
import type { MonitoringForwarder } from '../monitoring.js';
import {
  BadRoutingHeader,
  RoutingHeaderCollector,
  parseRoutingHeaders,
  type RequestApiLimits,
} from '../request-api.js';
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
  stringAttribute,
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
  logger: Logger;
}

/**
 * The Endpoint Picker side of Envoy's ext_proc conversation. Envoy opens one Process stream
 * per HTTP request, sends the request headers (our processing mode asks for nothing else),
 * waits for one answer, and ends or cancels the stream when the request is done.
 */
export class ExtProcHandler {
  private readonly deps: ExtProcDeps;
  private readonly collector = new RoutingHeaderCollector();

  constructor(deps: ExtProcDeps) {
    this.deps = deps;
  }

  /** The grpc-js implementation object for `extProcServiceDefinition`. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      Process: (call: grpc.ServerDuplexStream<ProcessingRequestMessage, Uint8Array>) =>
        this.process(call),
    };
  }

  /** Counts a stream as open; the function returned counts it closed (once, however often called). */
  streamOpened(): () => void {
    const { metrics } = this.deps;
    metrics.streamOpened();
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      metrics.streamClosed();
    };
  }

  private process(call: grpc.ServerDuplexStream<ProcessingRequestMessage, Uint8Array>): void {
    const close = this.streamOpened();
    call.on('data', (request: ProcessingRequestMessage) => {
      if (call.cancelled) return;
      call.write(this.answer(request));
    });
    // Envoy ends the stream when the HTTP request is done; both ends are normal.
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('cancelled', close);
    call.on('error', close);
    call.on('close', close);
  }

  /** The one answer to one ProcessingRequest, encoded. Exposed for benchmarks and tests. */
  answer(request: ProcessingRequestMessage): Uint8Array {
    const phase = request.request;
    if (phase !== 'request_headers' || !request.request_headers) {
      // Only a processing mode other than ours sends these; let the request carry on.
      return encodeContinue(phase ?? 'request_headers');
    }
    const { router, resolver, limits, metrics } = this.deps;
    const collector = this.collector;
    collector.reset();
    const headers = request.request_headers.headers?.headers;
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
      }
    } catch (err) {
      if (!(err instanceof BadRoutingHeader)) throw err;
      metrics.decision('bad_request');
      return encodeImmediateResponse(400, err.message, 'augur_bad_routing_header');
    }
    const decision = router.decide(service, dynamic, candidates, found.endpoints);
    if (decision.endpoints.length === 0) {
      metrics.decision('no_endpoint');
      return encodeImmediateResponse(
        503,
        decision.reason ?? 'no endpoint available',
        'augur_no_endpoint',
      );
    }
    metrics.decision('routed');
    const variant = found.destinationSent ? 1 : 0;
    let bytes = decision.encoded[variant];
    if (!bytes) {
      bytes = encodeRouteResponse(decision.value, found.destinationSent);
      decision.encoded[variant] = bytes;
    }
    return bytes;
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

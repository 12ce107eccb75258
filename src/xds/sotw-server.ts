import { fromBinary, type FileRegistry, type JsonObject } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { clientOf, OpenCounts } from '../common/peer.js';
import { serializeSharedResponse, type SharedResponse } from '../common/shared-response.js';
import type { ClientKind, NodeIdentity } from './client-kind.js';
import { messageType } from './envoy-registry.js';
import type { ConfigWatcher, WatchRequest, WatchResponse } from './snapshot-cache.js';
import { DEPENDENT_TYPE, isKnownTypeUrl, type ResourceTypeUrl } from './types.js';

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const ADS_METHOD_PATH = `/${ADS_SERVICE}/StreamAggregatedResources`;

/**
 * The fields of envoy.service.discovery.v3.DiscoveryRequest the server reads, as
 * @bufbuild/protobuf gives them (field names in lowerCamelCase, `node.metadata`, a Struct, as
 * plain JSON).
 */
export interface DiscoveryRequestMessage {
  versionInfo: string;
  node?: { id: string; userAgentName: string; metadata?: JsonObject };
  resourceNames: string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

export interface AdsImplementation extends grpc.UntypedServiceImplementation {
  StreamAggregatedResources: grpc.handleBidiStreamingCall<DiscoveryRequestMessage, SharedResponse>;
}

/**
 * The ADS service. Responses are encoded once per snapshot and shared by every stream
 * (SharedResponse); with the `sharedResponses` interceptor on the server they are written without
 * a per-stream copy.
 */
export function adsServiceDefinition(
  registry: FileRegistry,
): grpc.ServiceDefinition<AdsImplementation> {
  const request = messageType(registry, 'envoy.service.discovery.v3.DiscoveryRequest');
  return {
    StreamAggregatedResources: {
      path: ADS_METHOD_PATH,
      requestStream: true,
      responseStream: true,
      originalName: 'streamAggregatedResources',
      requestSerialize: (m: DiscoveryRequestMessage): never => {
        throw new Error(`the ADS server does not send requests (${m.typeUrl})`);
      },
      // Every client ACKs every push: 100 clients, 100 of these per push, a few µs each
      // (BENCHMARKS.md, xDS), against tens of ms for the push.
      requestDeserialize: (b: Buffer) =>
        fromBinary(request, b) as unknown as DiscoveryRequestMessage,
      responseSerialize: serializeSharedResponse,
      responseDeserialize: (b: Buffer): never => {
        throw new Error(`the ADS server does not read responses (${b.length} bytes)`);
      },
    },
  };
}

/**
 * What the protocol tells whoever watches it (metrics, tests), as go-control-plane's server
 * `Callbacks` do: each is called synchronously on its event and must return quickly and not throw.
 * The protocol code knows no metrics library.
 */
export interface SotwCallbacks {
  /** A stream sent its first request; `group` is the kind of client its node was judged to be. */
  onStreamOpen?(streamId: number, group: ClientKind): void;
  /** A stream that had opened ended. */
  onStreamClosed?(streamId: number, group: ClientKind): void;
  /** A response was written to a stream. */
  onResponse?(streamId: number, typeUrl: ResourceTypeUrl, version: string): void;
  /** A client rejected the response it was last sent of this type (it keeps its last good one). */
  onNack?(streamId: number, group: ClientKind, typeUrl: ResourceTypeUrl, error: string): void;
  /** A request answered a response that was already superseded; it was ignored. */
  onStaleNonce?(streamId: number, typeUrl: ResourceTypeUrl): void;
  /** A stream was refused when it started, for `maxStreams` or `maxStreamsPerClient`. */
  onStreamRefused?(limit: StreamLimit): void;
}

/** The limits an ADS stream is refused for as it starts (the `limit` label of its counter). */
export type StreamLimit = 'max_streams' | 'max_streams_per_client';

/** Refusals for a limit are logged at most once per this many ms, with how many came since. */
const REFUSAL_LOG_GAP_MS = 10_000;

export interface SotwServerOptions {
  watcher: ConfigWatcher;
  /** The snapshot group (kind of client) of a node; called once per stream, on its first node. */
  groupOf: (node: NodeIdentity | undefined) => ClientKind;
  logger: Logger;
  callbacks?: SotwCallbacks;
  /**
   * Most ADS streams open at once, whatever their connection or client (xds.maxStreams); a further
   * stream is ended with RESOURCE_EXHAUSTED when it starts, before any of its requests is read.
   * Absent: no limit.
   */
  maxStreams?: number;
  /**
   * Most ADS streams open at once from one client (src/common/peer.ts: its IP address;
   * xds.maxStreamsPerClient), refused the same way. Absent: no limit.
   */
  maxStreamsPerClient?: number;
}

/** What one stream knows of one type. */
interface TypeState {
  /** Nonce of the last response sent; a request quoting another one is stale. */
  nonce?: string;
  sentVersion?: string;
  ackedVersion?: string;
  rejectedVersion?: string;
  namesKey?: string;
  request?: WatchRequest;
  cancel?: () => void;
  /** Answer the next request even if its version is current (its parent type changed). */
  forceNext: boolean;
}

interface StreamState {
  id: number;
  call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>;
  node?: NodeIdentity;
  group?: ClientKind;
  types: Map<ResourceTypeUrl, TypeState>;
}

/** A stream's protocol state, for tests and debugging. */
export interface StreamInfo {
  id: number;
  nodeId: string | undefined;
  group: ClientKind | undefined;
  types: Record<
    string,
    { sentVersion?: string; ackedVersion?: string; rejectedVersion?: string; nonce?: string }
  >;
}

/**
 * The state-of-the-world ADS protocol (go-control-plane's sotw server): each request becomes a
 * watch on the cache; the answer goes out as the cache marshalled it, nonce included. Per stream and type it tracks the
 * nonce, the version sent, ACKed and NACKed. Rules:
 * - a request quoting a nonce other than the last one sent for its type is stale and ignored
 *   (it answers a response the client has not seen the successor of yet);
 * - a request quoting the last nonce is an ACK, or a NACK if it carries `error_detail`: a NACK is
 *   logged and counted, and the rejected version is not sent again; the client keeps its last
 *   good version until the snapshot moves on;
 * - the first request of a type on a stream, and a request with changed resource names, are
 *   answered even if the client already holds the current version;
 * - when a Cluster (Listener) response changes the version, the stream's Endpoints (Routes) are
 *   sent again, as Envoy waits for them to finish warming the new cluster.
 */
export class SotwServer {
  private readonly options: SotwServerOptions;
  private readonly open = new Map<number, StreamState>();
  /** Open streams per client (maxStreamsPerClient). */
  private readonly perClient = new OpenCounts();
  /** Per limit: when its refusals were last logged, and how many came since. */
  private readonly refusalLog = new Map<StreamLimit, { atMs: number; since: number }>();
  private nextStreamId = 1;

  constructor(options: SotwServerOptions) {
    this.options = options;
  }

  readonly implementation: AdsImplementation = {
    StreamAggregatedResources: (call) => this.handleStream(call),
  };

  /** Clients with a stream open now (a client whose last stream ended holds no entry). */
  get streamingClients(): number {
    return this.perClient.size;
  }

  streams(): StreamInfo[] {
    return [...this.open.values()].map((s) => ({
      id: s.id,
      nodeId: s.node?.id,
      group: s.group,
      types: Object.fromEntries(
        [...s.types].map(([t, ts]) => [
          t,
          {
            sentVersion: ts.sentVersion,
            ackedVersion: ts.ackedVersion,
            rejectedVersion: ts.rejectedVersion,
            nonce: ts.nonce,
          },
        ]),
      ),
    }));
  }

  /**
   * Ends every open stream with UNAVAILABLE, so clients back off and reconnect (to this address,
   * once augur is back) instead of holding a server shutdown open until its grace period ends.
   */
  closeAll(reason = 'augur is shutting down'): void {
    for (const s of [...this.open.values()]) {
      s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: reason });
    }
  }

  private handleStream(
    call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>,
  ): void {
    const { maxStreams, maxStreamsPerClient } = this.options;
    if (maxStreams !== undefined && this.open.size >= maxStreams) {
      return this.refuse(
        call,
        'max_streams',
        `augur has ${this.open.size} ADS streams open, its limit (xds.maxStreams ${maxStreams}); try again later`,
      );
    }
    const client = clientOf(call);
    const ofClient = this.perClient.of(client);
    if (maxStreamsPerClient !== undefined && ofClient >= maxStreamsPerClient) {
      return this.refuse(
        call,
        'max_streams_per_client',
        `client ${client} has ${ofClient} ADS streams open, the limit (xds.maxStreamsPerClient ${maxStreamsPerClient}); try again later`,
      );
    }
    this.perClient.add(client);
    const stream: StreamState = {
      id: this.nextStreamId++,
      call,
      types: new Map(),
    };
    this.open.set(stream.id, stream);
    const log = this.options.logger.child({ stream: stream.id });
    let closed = false;
    const close = (why: string): void => {
      if (closed) return;
      closed = true;
      for (const ts of stream.types.values()) ts.cancel?.();
      this.open.delete(stream.id);
      this.perClient.remove(client);
      if (stream.group) this.options.callbacks?.onStreamClosed?.(stream.id, stream.group);
      log.debug({ node: stream.node?.id, why }, 'ADS stream closed');
    };
    call.on('data', (req: DiscoveryRequestMessage) => {
      if (closed) return;
      try {
        this.onRequest(stream, call, req, log);
      } catch (err) {
        log.error({ err }, 'ADS request failed');
        call.destroy(err as Error);
        close('error');
      }
    });
    call.on('end', () => {
      close('client finished');
      call.end();
    });
    call.on('error', () => close('error'));
    call.on('cancelled', () => close('cancelled'));
    call.on('close', () => close('closed'));
  }

  /**
   * Ends a stream that starts past a limit with RESOURCE_EXHAUSTED, before any of its requests is
   * read: counted, and logged at most once per REFUSAL_LOG_GAP_MS per limit.
   */
  private refuse(
    call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>,
    limit: StreamLimit,
    details: string,
  ): void {
    this.options.callbacks?.onStreamRefused?.(limit);
    const now = Date.now();
    const seen = this.refusalLog.get(limit);
    if (seen && now - seen.atMs < REFUSAL_LOG_GAP_MS) {
      seen.since++;
    } else {
      this.refusalLog.set(limit, { atMs: now, since: 0 });
      this.options.logger.warn(
        { limit, refusedSinceLastLog: (seen?.since ?? 0) + 1, details },
        `ADS streams refused for a limit (${limit}); see augur_xds_streams_refused_total`,
      );
    }
    call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details });
  }

  private onRequest(
    stream: StreamState,
    call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>,
    req: DiscoveryRequestMessage,
    log: Logger,
  ): void {
    if (!stream.group) {
      // Envoy and gRPC send the node on the first request only (at least); keep that one.
      stream.node = req.node ? nodeIdentity(req.node) : undefined;
      stream.group = this.options.groupOf(stream.node);
      this.options.callbacks?.onStreamOpen?.(stream.id, stream.group);
      log.debug(
        { node: stream.node?.id, userAgent: stream.node?.userAgentName, group: stream.group },
        'ADS stream opened',
      );
    }
    const typeUrl = req.typeUrl;
    if (!typeUrl) {
      call.emit('error', {
        code: grpc.status.INVALID_ARGUMENT,
        details: 'an ADS DiscoveryRequest must set type_url',
      });
      return;
    }
    if (!isKnownTypeUrl(typeUrl)) {
      log.debug({ typeUrl }, 'request for a resource type augur does not serve; no answer');
      return;
    }
    let ts = stream.types.get(typeUrl);
    if (!ts) stream.types.set(typeUrl, (ts = { forceNext: false }));

    const quotes = req.responseNonce;
    if (quotes && ts.nonce !== undefined && quotes !== ts.nonce) {
      this.options.callbacks?.onStaleNonce?.(stream.id, typeUrl);
      log.trace({ typeUrl, quotes, current: ts.nonce }, 'stale nonce ignored');
      return;
    }
    if (quotes && quotes === ts.nonce) {
      if (req.errorDetail && (req.errorDetail.message || req.errorDetail.code)) {
        ts.rejectedVersion = ts.sentVersion;
        this.options.callbacks?.onNack?.(stream.id, stream.group, typeUrl, req.errorDetail.message);
        log.warn(
          {
            node: stream.node?.id,
            typeUrl,
            rejected: ts.sentVersion,
            keeps: req.versionInfo,
            error: req.errorDetail.message,
          },
          'client rejected a response (NACK); it keeps its last good version',
        );
      } else {
        ts.ackedVersion = req.versionInfo;
        ts.rejectedVersion = undefined;
      }
    }

    const names = req.resourceNames.filter((n) => n !== '*');
    const namesKey = [...new Set(names)].sort().join('\0');
    const force = ts.nonce === undefined || namesKey !== ts.namesKey || ts.forceNext;
    ts.namesKey = namesKey;
    ts.forceNext = false;
    this.watch(stream, call, typeUrl, ts, {
      typeUrl,
      resourceNames: names,
      versionInfo: req.versionInfo,
      rejectedVersion: ts.rejectedVersion,
      force,
    });
  }

  private watch(
    stream: StreamState,
    call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>,
    typeUrl: ResourceTypeUrl,
    ts: TypeState,
    request: WatchRequest,
  ): void {
    ts.cancel?.();
    ts.request = request;
    let answered = false;
    const cancel = this.options.watcher.createWatch(stream.group!, request, (response) => {
      answered = true;
      ts.cancel = undefined;
      this.send(stream, call, ts, response);
    });
    if (!answered) ts.cancel = cancel;
  }

  private send(
    stream: StreamState,
    call: grpc.ServerDuplexStream<DiscoveryRequestMessage, SharedResponse>,
    ts: TypeState,
    response: WatchResponse,
  ): void {
    const nonce = response.nonce;
    const previous = ts.sentVersion;
    ts.nonce = nonce;
    ts.sentVersion = response.version;
    call.write(response.message);
    this.options.callbacks?.onResponse?.(stream.id, response.typeUrl, response.version);
    this.options.logger.trace(
      { stream: stream.id, typeUrl: response.typeUrl, version: response.version, nonce },
      'response sent',
    );

    const dependent = DEPENDENT_TYPE[response.typeUrl];
    if (!dependent || previous === undefined || previous === response.version) return;
    const dts = stream.types.get(dependent);
    if (!dts) return;
    if (dts.cancel && dts.request) {
      // The client is waiting on that type: answer it now, after the parent, in push order.
      this.watch(stream, call, dependent, dts, { ...dts.request, force: true });
    } else {
      dts.forceNext = true;
    }
  }
}

function nodeIdentity(node: NonNullable<DiscoveryRequestMessage['node']>): NodeIdentity {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(node.metadata ?? {})) {
    if (typeof v === 'string') metadata[k] = v;
  }
  return { id: node.id, userAgentName: node.userAgentName, metadata };
}

import {
  fromBinary,
  fromJson,
  toBinary,
  toJson,
  type FileRegistry,
  type JsonObject,
  type JsonValue,
} from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { clientChannel, type ClientSecurity } from '../common/tls.js';
import { messageType, xdsRegistry } from './envoy-registry.js';
import { ADS_METHOD_PATH } from './sotw-server.js';

/**
 * A DiscoveryRequest in proto3 JSON, Envoy's notation (snake_case or lowerCamelCase field
 * names; `node.metadata` a plain object).
 */
export interface DiscoveryRequestJson {
  type_url: string;
  version_info?: string;
  resource_names?: string[];
  response_nonce?: string;
  node?: { id?: string; user_agent_name?: string; metadata?: JsonObject; locality?: JsonObject };
  error_detail?: { code?: number; message?: string };
}

/** A DiscoveryResponse as a raw client sees it; resources stay encoded until asked for. */
export interface RawDiscoveryResponse {
  version_info: string;
  type_url: string;
  nonce: string;
  resources: Array<{ type_url: string; value: Uint8Array }>;
}

/**
 * A plain ADS stream over grpc-js with Envoy's protos: the client side of the protocol with no
 * xDS logic of its own, for protocol tests, benchmarks and `augur` debugging. Responses queue
 * until read with `next()`.
 */
export class RawAdsClient {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<DiscoveryRequestJson, RawDiscoveryResponse>;
  private readonly queue: RawDiscoveryResponse[] = [];
  private waiters: Array<(r: RawDiscoveryResponse | Error) => void> = [];
  private ended: Error | undefined;
  private readonly registry: FileRegistry;

  constructor(
    address: string,
    registry: FileRegistry = xdsRegistry(),
    /** TLS (a client certificate for mutual TLS) and bearer token; absent: plaintext. */
    security?: ClientSecurity,
  ) {
    this.registry = registry;
    const request = messageType(registry, 'envoy.service.discovery.v3.DiscoveryRequest');
    const response = messageType(registry, 'envoy.service.discovery.v3.DiscoveryResponse');
    const channel = clientChannel(security);
    this.client = new grpc.Client(address, channel.credentials, channel.options);
    this.call = this.client.makeBidiStreamRequest(
      ADS_METHOD_PATH,
      (m: DiscoveryRequestJson) =>
        Buffer.from(toBinary(request, fromJson(request, m as unknown as JsonValue, { registry }))),
      (b: Buffer) => {
        const r = fromBinary(response, b) as unknown as {
          versionInfo: string;
          typeUrl: string;
          nonce: string;
          resources: Array<{ typeUrl: string; value: Uint8Array }>;
        };
        return {
          version_info: r.versionInfo,
          type_url: r.typeUrl,
          nonce: r.nonce,
          resources: r.resources.map((a) => ({ type_url: a.typeUrl, value: a.value })),
        };
      },
    );
    this.call.on('data', (r: RawDiscoveryResponse) => {
      const w = this.waiters.shift();
      if (w) w(r);
      else this.queue.push(r);
    });
    const end = (err: Error): void => {
      this.ended = err;
      for (const w of this.waiters.splice(0)) w(err);
    };
    this.call.on('error', (err: Error) => end(err));
    this.call.on('end', () => end(new Error('ADS stream ended')));
  }

  send(request: DiscoveryRequestJson): void {
    this.call.write(request);
  }

  /** The next response, or an error after `timeoutMs`. */
  next(timeoutMs = 5000): Promise<RawDiscoveryResponse> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no DiscoveryResponse within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (r: RawDiscoveryResponse | Error): void => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      this.waiters.push(waiter);
    });
  }

  /** Responses received and not read yet. */
  get pending(): number {
    return this.queue.length;
  }

  /** Decodes one resource of a response with its own type, to proto3 JSON with Envoy's field names. */
  decode(resource: { type_url: string; value: Uint8Array }): JsonObject {
    const desc = messageType(
      this.registry,
      resource.type_url.slice(resource.type_url.lastIndexOf('/') + 1),
    );
    return toJson(desc, fromBinary(desc, resource.value), {
      registry: this.registry,
      useProtoFieldName: true,
    }) as JsonObject;
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

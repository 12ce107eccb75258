import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { ADS_METHOD_PATH, type DiscoveryRequestMessage } from './sotw-server.js';

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
  private readonly call: grpc.ClientDuplexStream<DiscoveryRequestMessage, RawDiscoveryResponse>;
  private readonly queue: RawDiscoveryResponse[] = [];
  private waiters: Array<(r: RawDiscoveryResponse | Error) => void> = [];
  private ended: Error | undefined;
  private readonly root: protobuf.Root;

  constructor(address: string, root: protobuf.Root) {
    this.root = root;
    const requestType = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
    const responseType = root.lookupType('envoy.service.discovery.v3.DiscoveryResponse');
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
    this.call = this.client.makeBidiStreamRequest(
      ADS_METHOD_PATH,
      (m: DiscoveryRequestMessage) =>
        Buffer.from(requestType.encode(requestType.fromObject(m)).finish()),
      (b: Buffer) =>
        responseType.toObject(responseType.decode(b), {
          defaults: true,
          arrays: true,
        }) as RawDiscoveryResponse,
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

  send(request: Partial<DiscoveryRequestMessage> & { type_url: string }): void {
    this.call.write({ version_info: '', resource_names: [], response_nonce: '', ...request });
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

  /** Decodes one resource of a response with its own type. */
  decode(resource: { type_url: string; value: Uint8Array }): Record<string, unknown> {
    const type = this.root.lookupType(
      resource.type_url.slice(resource.type_url.lastIndexOf('/') + 1),
    );
    return type.toObject(type.decode(resource.value), {
      enums: String,
      longs: Number,
      defaults: false,
    });
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

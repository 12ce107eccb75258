import * as grpc from '@grpc/grpc-js';
import { Agent, request as httpRequest } from 'node:http';

/** What an endpoint answered to a delivery it took. */
export interface Delivered {
  statusCode: number;
  body: Buffer;
}

/**
 * A delivery that did not reach the endpoint's application, or that the endpoint refused
 * as unavailable: the next endpoint should be tried.
 */
export class DeliveryFailed extends Error {
  readonly statusCode: number;
  constructor(message: string, statusCode = 0) {
    super(message);
    this.statusCode = statusCode;
  }
}

export interface HttpTarget {
  kind: 'http';
  method: string;
  path: string;
  headers: Record<string, string>;
  contentType: string;
}

export interface GrpcTarget {
  kind: 'grpc';
  /** `/package.Service/Method` */
  method: string;
}

export type DeliveryTarget = HttpTarget | GrpcTarget;

/** HTTP statuses that mean "this endpoint cannot take it now", as Envoy's retry_on 5xx-ish set. */
const HTTP_UNAVAILABLE = new Set([502, 503, 504]);
const GRPC_UNAVAILABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

/**
 * Delivers one payload to one endpoint, over HTTP or as a gRPC unary call with the payload
 * as the serialized request. Resolves when the endpoint took it (whatever its status, except
 * the "unavailable" ones); rejects with DeliveryFailed when the next endpoint should be tried.
 */
export class Deliverer {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly grpcClients = new Map<string, grpc.Client>();
  private readonly maxBodyBytes: number;

  constructor(options: { maxBodyBytes: number }) {
    this.maxBodyBytes = options.maxBodyBytes;
  }

  /**
   * `hostPort` is where to connect (an address the guard checked); `authority`, the endpoint's
   * own HOST:PORT for the HTTP Host header (default `hostPort`).
   */
  deliver(
    hostPort: string,
    payload: Buffer,
    target: DeliveryTarget,
    timeoutMs: number,
    authority = hostPort,
  ): Promise<Delivered> {
    return target.kind === 'http'
      ? this.http(hostPort, payload, target, timeoutMs, authority)
      : this.grpc(hostPort, payload, target, timeoutMs);
  }

  close(): void {
    this.agent.destroy();
    for (const c of this.grpcClients.values()) c.close();
    this.grpcClients.clear();
  }

  private http(
    hostPort: string,
    payload: Buffer,
    target: HttpTarget,
    timeoutMs: number,
    authority: string,
  ): Promise<Delivered> {
    const url = new URL(`http://${hostPort}`);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          agent: this.agent,
          host: url.hostname.replace(/^\[|\]$/g, ''),
          port: Number(url.port),
          method: target.method,
          path: target.path,
          headers: {
            host: authority,
            ...target.headers,
            'content-type': target.contentType,
            'content-length': payload.length,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          let settled = false;
          const done = (): void => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            const statusCode = res.statusCode ?? 0;
            if (HTTP_UNAVAILABLE.has(statusCode)) {
              reject(new DeliveryFailed(`HTTP ${statusCode} (unavailable)`, statusCode));
            } else {
              resolve({
                statusCode,
                body: Buffer.concat(chunks, Math.min(size, this.maxBodyBytes)),
              });
            }
          };
          res.on('data', (c: Buffer) => {
            const room = this.maxBodyBytes - size;
            size += c.length;
            chunks.push(room >= c.length ? c : c.subarray(0, Math.max(0, room)));
            // Past the cap nothing more is read: the answer is cut there and the socket dropped.
            if (size >= this.maxBodyBytes && !res.complete) {
              done();
              res.destroy();
            }
          });
          res.on('end', done);
          res.on('error', (err) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            reject(new DeliveryFailed(`response failed: ${err.message}`));
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new DeliveryFailed(`timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof DeliveryFailed ? err : new DeliveryFailed(describe(err)));
      });
      req.end(payload);
    });
  }

  private grpc(
    hostPort: string,
    payload: Buffer,
    target: GrpcTarget,
    timeoutMs: number,
  ): Promise<Delivered> {
    let client = this.grpcClients.get(hostPort);
    if (!client) {
      client = new grpc.Client(hostPort, grpc.credentials.createInsecure(), {
        // An answer over the cap fails with RESOURCE_EXHAUSTED, returned as the endpoint's status.
        'grpc.max_receive_message_length': this.maxBodyBytes,
      });
      this.grpcClients.set(hostPort, client);
    }
    const identity = (b: Buffer) => b;
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        target.method,
        identity,
        identity,
        payload,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (!err) return resolve({ statusCode: grpc.status.OK, body: res ?? Buffer.alloc(0) });
          const failure = err as grpc.ServiceError;
          if (GRPC_UNAVAILABLE.has(failure.code)) {
            reject(
              new DeliveryFailed(
                `gRPC ${grpc.status[failure.code]}: ${failure.details}`,
                failure.code,
              ),
            );
          } else {
            // The endpoint's application answered; that is a delivery, with its status.
            resolve({ statusCode: failure.code, body: Buffer.from(failure.details ?? '') });
          }
        },
      );
    });
  }
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code ? `${code}: ${err.message}` : err.message;
}

import * as grpc from '@grpc/grpc-js';
import { endEveryCall } from './grpc-hardening.js';
import { sharedResponses } from './shared-response.js';
import { HealthImplementation } from 'grpc-health-check';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AugurError } from './errors.js';
import { formatHostPort, parseHostPort, type HostPort } from './address.js';
import { augurDescriptorIndex, ServerReflection } from './reflection.js';
import type { Authorizer } from './auth.js';
import type { Logger } from './logger.js';
import { checkPlaintext } from './security.js';
import { serverCredentials, type TlsMaterial } from './tls.js';

/**
 * Streams per connection where the host is not told otherwise (Node's own default is 2^32-1:
 * one connection could open streams until the process runs out of memory). Envoy opens another
 * connection when one is full; an agent uses one stream on its own connection.
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 2000;

/** The repository's proto/ folder, the public API. */
export const PROTO_DIR = findProtoDir();

export interface GrpcHostOptions {
  listen: string;
  /** Largest message the server accepts, bytes. */
  maxReceiveMessageLength?: number;
  /**
   * Most streams of any service a client may open at once on one connection: the HTTP/2
   * SETTINGS_MAX_CONCURRENT_STREAMS the server announces (a client keeps further streams
   * queued, one that ignores it has them reset). Default DEFAULT_MAX_CONCURRENT_STREAMS.
   */
  maxConcurrentStreams?: number;
  /** Seconds a graceful shutdown may take before open streams are cut. */
  shutdownGraceSeconds?: number;
  /** TLS (and mutual TLS) from files kept current; absent: plaintext. */
  tls?: TlsMaterial | undefined;
  /** Plaintext off loopback allowed (`--insecure`); otherwise start() refuses it. */
  insecure?: boolean;
  /** Who may call what; absent or without principals: everyone. */
  authorizer?: Authorizer | undefined;
  /** Where the INSECURE warning goes. */
  logger?: Logger | undefined;
}

/**
 * One gRPC server for every service of a process, with grpc.health.v1 and
 * reflection (which lists every service added and describes augur's own).
 * Parts add their services before `start()`.
 */
export class GrpcHost {
  readonly server: grpc.Server;
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly options: GrpcHostOptions;
  private readonly serviceNames: string[] = [];
  private bound: HostPort | undefined;

  constructor(options: GrpcHostOptions) {
    this.options = options;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxReceiveMessageLength ?? 4 << 20,
      'grpc.max_concurrent_streams': options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
      // Every call ends with a status, and compressed messages are refused (grpc-hardening.ts;
      // first, so that it patches grpc-js's own call); responses shared by many streams (xDS
      // snapshots) are written without a copy per stream.
      interceptors: [
        endEveryCall,
        ...(options.authorizer?.enabled ? [options.authorizer.interceptor('grpc')] : []),
        sharedResponses,
      ],
    });
    this.health.addToServer(this.server);
  }

  addService<T extends grpc.UntypedServiceImplementation>(
    name: string,
    definition: grpc.ServiceDefinition<T>,
    implementation: T,
  ): void {
    this.server.addService(definition, implementation);
    this.serviceNames.push(name);
  }

  get address(): HostPort {
    if (!this.bound) throw new AugurError('NOT_STARTED', 'gRPC host is not listening yet');
    return this.bound;
  }

  async start(): Promise<HostPort> {
    const wanted = parseHostPort(this.options.listen, 'gRPC listen address');
    checkPlaintext({
      what: 'gRPC',
      host: wanted.host,
      tls: this.options.tls !== undefined,
      insecure: this.options.insecure ?? false,
      logger: this.options.logger,
    });
    new ServerReflection({
      index: augurDescriptorIndex(),
      services: () => this.serviceNames,
    }).addToServer(this.server);
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(
        formatHostPort(wanted),
        serverCredentials(this.options.tls),
        (err, p) =>
          err
            ? reject(
                new AugurError(
                  'LISTEN_FAILED',
                  `cannot listen on ${this.options.listen}: ${err.message}`,
                ),
              )
            : resolve(p),
      );
    });
    this.bound = { host: wanted.host, port };
    this.health.setStatus('', 'SERVING');
    for (const name of this.serviceNames) this.health.setStatus(name, 'SERVING');
    return this.bound;
  }

  /** Stops accepting calls, lets open calls finish for a grace period, then cuts them. */
  async stop(): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    for (const name of this.serviceNames) this.health.setStatus(name, 'NOT_SERVING');
    const graceMs = (this.options.shutdownGraceSeconds ?? 2) * 1000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** proto/ sits at the package root, two levels above src/common (or three above dist/src/common). */
function findProtoDir(): string {
  for (const rel of ['../../proto/', '../../../proto/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir + 'augur/v1/telemetry.proto')) return dir;
  }
  throw new AugurError('PROTO_MISSING', 'cannot find the proto/ folder of the augur package');
}

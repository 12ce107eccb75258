import * as grpc from '@grpc/grpc-js';
import { sharedResponses } from './shared-response.js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AugurError } from './errors.js';
import { formatHostPort, parseHostPort, type HostPort } from './address.js';

/** The repository's proto/ folder, the public API. */
export const PROTO_DIR = findProtoDir();

const AUGUR_PROTO_FILES = [
  'augur/v1/telemetry.proto',
  'augur/v1/load_prediction.proto',
  'augur/v1/response_router.proto',
];

/** Our protos as a proto-loader package definition, for reflection. */
export function loadAugurPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(AUGUR_PROTO_FILES, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}

export interface GrpcHostOptions {
  listen: string;
  /** Extra package definitions to expose through reflection (Envoy's ADS and ext_proc). */
  reflect?: protoLoader.PackageDefinition[];
  /** Largest message the server accepts, bytes. */
  maxReceiveMessageLength?: number;
  /** Seconds a graceful shutdown may take before open streams are cut. */
  shutdownGraceSeconds?: number;
}

/**
 * One gRPC server for every service of a process, with grpc.health.v1 and
 * reflection. Parts add their services before `start()`.
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
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
      // Responses shared by many streams (xDS snapshots) are written without a copy per stream.
      interceptors: [sharedResponses],
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
    // @grpc/reflection console.warns, at construction, each well-known type that Envoy's
    // proto tree references under another file name than proto-loader gave it; the
    // services still resolve. Keep those lines out of the process's output.
    const warn = console.warn;
    console.warn = () => undefined;
    let reflection: ReflectionService;
    try {
      reflection = new ReflectionService(
        Object.assign({}, loadAugurPackageDefinition(), ...(this.options.reflect ?? [])),
      );
    } finally {
      console.warn = warn;
    }
    reflection.addToServer(this.server);
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(
        formatHostPort(wanted),
        grpc.ServerCredentials.createInsecure(),
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

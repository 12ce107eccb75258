import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { AugurError } from './errors.js';
import { PROTO_DIR } from './grpc-host.js';

/**
 * Envoy's API as shipped in @grpc/grpc-js-xds's deps/ (envoy-api, xds, googleapis,
 * protoc-gen-validate), plus proto/envoy-extra for the few Envoy messages that copy
 * predates (the override-host load balancing policy).
 */
export const ENVOY_PROTO_FILES: readonly string[] = [
  // Services augur serves.
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/ext_proc/v3/external_processor.proto',
  // Resources and the bootstrap, for building and strictly checking configuration.
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  // Typed extensions our configs name in `typed_config`.
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.proto',
  'envoy/extensions/load_balancing_policies/override_host/v3/override_host.proto',
];

export interface EnvoyProtos {
  /** The grpc-js package object: `grpc.envoy.service.ext_proc.v3.ExternalProcessor` etc. */
  grpc: grpc.GrpcObject;
  /** The proto-loader package definition behind `grpc` (for reflection). */
  packageDefinition: protoLoader.PackageDefinition;
  /**
   * The protobufjs root with every message, field names as in the .proto files
   * (snake_case, as in Envoy's YAML): `root.lookupType('envoy.config.cluster.v3.Cluster')`.
   */
  root: protobuf.Root;
  /** The folders imports are resolved against, in order. */
  includeDirs: readonly string[];
}

/** Options shared by every proto-loader use of Envoy's protos, so all parts see the same shapes. */
export const ENVOY_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

let cached: EnvoyProtos | undefined;

/**
 * Loads Envoy's protos once per process (parsing them takes about a second) and
 * returns the same object on every later call.
 */
export function loadEnvoyProtos(): EnvoyProtos {
  if (cached) return cached;
  const includeDirs = envoyIncludeDirs();
  const root = new protobuf.Root();
  // Resolve imports against our include folders, as protoc's -I does.
  root.resolvePath = (_origin, target) => {
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  try {
    root.loadSync([...ENVOY_PROTO_FILES], { keepCase: true });
    root.resolveAll();
  } catch (err) {
    throw new AugurError('PROTO_MISSING', `cannot load Envoy's protos: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const packageDefinition = protoLoader.loadSync([...ENVOY_PROTO_FILES], {
    ...ENVOY_LOADER_OPTIONS,
    includeDirs: [...includeDirs],
  });
  cached = {
    grpc: grpc.loadPackageDefinition(packageDefinition),
    packageDefinition,
    root,
    includeDirs,
  };
  return cached;
}

function envoyIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  let xdsRoot: string;
  try {
    xdsRoot = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  } catch (err) {
    throw new AugurError(
      'PROTO_MISSING',
      "cannot find @grpc/grpc-js-xds, whose deps/ hold Envoy's protos: run npm install",
      { cause: err },
    );
  }
  const deps = join(xdsRoot, 'deps');
  return [
    join(PROTO_DIR, 'envoy-extra'),
    join(deps, 'envoy-api'),
    join(deps, 'xds'),
    join(deps, 'googleapis'),
    join(deps, 'protoc-gen-validate'),
  ];
}

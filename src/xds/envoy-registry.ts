import {
  create,
  createFileRegistry,
  fromBinary,
  type DescMessage,
  type FileRegistry,
} from '@bufbuild/protobuf';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type FileDescriptorProto,
  type FileDescriptorSet,
} from '@bufbuild/protobuf/wkt';
import { AugurError } from '../common/errors.js';
import { ENVOY_DESCRIPTOR_SET_BASE64 } from '../gen/envoy/descriptors.js';

/*
 * Envoy's API for src/xds, as @bufbuild/protobuf descriptors: the .proto tree @grpc/grpc-js-xds
 * ships (the schema of the xDS client augur is tested against) compiled by buf at
 * `npm run proto:gen` into src/gen/envoy/descriptors.ts (scripts/gen-envoy-descriptors.mjs).
 * One library reads and writes every Envoy message here: binary (fromBinary, toBinary) and
 * strict proto3 JSON (fromJson: an unknown field, a wrong enum, two members of a oneof, an
 * unknown `@type` are errors), which is the notation of Envoy's YAML and of the builders.
 */

/**
 * xds.type.v3.TypedStruct (cncf/xds `xds/type/v3/typed_struct.proto`), which the tree grpc-js-xds
 * ships does not compile into the set: declared here, field for field (type_url = 1, value = 2).
 * augur publishes its gRPC clients' LB policy as one (gRFC A52).
 */
function typedStructFile(): FileDescriptorProto {
  return create(FileDescriptorProtoSchema, {
    name: 'xds/type/v3/typed_struct.proto',
    package: 'xds.type.v3',
    dependency: ['google/protobuf/struct.proto'],
    syntax: 'proto3',
    messageType: [
      {
        name: 'TypedStruct',
        field: [
          {
            name: 'type_url',
            jsonName: 'typeUrl',
            number: 1,
            label: FieldDescriptorProto_Label.OPTIONAL,
            type: FieldDescriptorProto_Type.STRING,
          },
          {
            name: 'value',
            jsonName: 'value',
            number: 2,
            label: FieldDescriptorProto_Label.OPTIONAL,
            type: FieldDescriptorProto_Type.MESSAGE,
            typeName: '.google.protobuf.Struct',
          },
        ],
      },
    ],
  });
}

let envoySet: FileDescriptorSet | undefined;
function envoyFiles(): FileDescriptorSet {
  if (!envoySet) {
    envoySet = fromBinary(
      FileDescriptorSetSchema,
      Buffer.from(ENVOY_DESCRIPTOR_SET_BASE64, 'base64'),
    );
    if (!envoySet.file.some((f) => f.name === 'xds/type/v3/typed_struct.proto'))
      envoySet.file.push(typedStructFile());
  }
  return envoySet;
}

/** The files whose messages the xDS server builds, sends and reads (with what they import). */
const SERVER_FILES = [
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/override_host/v3/override_host.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'xds/type/v3/typed_struct.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

/** `roots` and every file they import, directly or not, in dependency order. */
function closure(
  all: readonly FileDescriptorProto[],
  roots: readonly string[],
): FileDescriptorProto[] {
  const byName = new Map(all.map((f) => [f.name, f]));
  const out: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const file = byName.get(name);
    if (!file) return;
    for (const dep of file.dependency) visit(dep);
    out.push(file);
  };
  for (const r of roots) visit(r);
  return out;
}

let serverRegistry: FileRegistry | undefined;

/**
 * The registry the xDS server uses: the files it needs of Envoy's API and their imports (about a
 * fifth of the whole, so it is built in a fraction of the time). Built once per process.
 */
export function xdsRegistry(): FileRegistry {
  serverRegistry ??= buildXdsRegistry();
  return serverRegistry;
}

/** A new registry of the server's part of Envoy's API (xdsRegistry keeps one; benchmarks time this). */
export function buildXdsRegistry(): FileRegistry {
  return createFileRegistry(
    create(FileDescriptorSetSchema, { file: closure(envoyFiles().file, SERVER_FILES) }),
  );
}

/**
 * All of Envoy's v3 API, plus the files of `extraSets` (serialized FileDescriptorSets, as
 * `buf build -o` or `protoc --include_imports --descriptor_set_out` write them: a user's own
 * extensions), for checking configuration. A file Envoy's API already has is taken from it.
 */
export function envoyRegistry(extraSets: readonly Uint8Array[] = []): FileRegistry {
  const files = [...envoyFiles().file];
  const names = new Set(files.map((f) => f.name));
  for (const [i, bytes] of extraSets.entries()) {
    let set: FileDescriptorSet;
    try {
      set = fromBinary(FileDescriptorSetSchema, bytes);
    } catch (err) {
      throw new AugurError(
        'DESCRIPTOR_SET_INVALID',
        `descriptor set ${i + 1} is not a google.protobuf.FileDescriptorSet: ${(err as Error).message}`,
        { cause: err },
      );
    }
    for (const f of set.file) {
      if (names.has(f.name)) continue;
      names.add(f.name);
      files.push(f);
    }
  }
  try {
    return createFileRegistry(create(FileDescriptorSetSchema, { file: files }));
  } catch (err) {
    throw new AugurError(
      'DESCRIPTOR_SET_INVALID',
      `the descriptor sets do not form a complete API (build them with their imports): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** The message type of that full name; an error naming it if the registry has none. */
export function messageType(registry: FileRegistry, fullName: string): DescMessage {
  const desc = registry.getMessage(fullName);
  if (!desc) {
    throw new AugurError('PROTO_TYPE_UNKNOWN', `no Envoy proto known to augur defines ${fullName}`);
  }
  return desc;
}

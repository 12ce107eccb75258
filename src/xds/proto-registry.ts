import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { AugurError } from '../common/errors.js';
import { PROTO_DIR } from '../common/grpc-host.js';

/*
 * A lazily loading registry of Envoy's protos, for the config checker: any `@type` a YAML file
 * names is found by loading the package folder that defines it, from Envoy's tree and from extra
 * folders a user adds. (The server uses the process-wide eager root of src/common/envoy-protos.ts;
 * loading at runtime instead of generating is argued in src/xds/README.md.)
 */

const require = createRequire(import.meta.url);

/**
 * Include folders of Envoy's API: augur's proto/envoy-extra (extensions grpc-js-xds predates),
 * then the tree shipped by @grpc/grpc-js-xds (the same folders as src/common/envoy-protos.ts).
 */
export function defaultEnvoyProtoDirs(): string[] {
  const xdsPackage = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  return [
    join(PROTO_DIR, 'envoy-extra'),
    ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) =>
      join(xdsPackage, 'deps', d),
    ),
  ];
}

let commonProtosAdded = false;
/** google/protobuf/descriptor.proto and friends are not built into protobufjs; Envoy imports them. */
function addCommonProtos(): void {
  if (commonProtosAdded) return;
  commonProtosAdded = true;
  for (const name of ['api', 'descriptor', 'source_context', 'type']) {
    const json = require(`protobufjs/google/protobuf/${name}.json`) as {
      nested: { google: { nested: { protobuf: { nested: protobuf.INamespace['nested'] } } } };
    };
    protobuf.common(name, json.nested.google.nested.protobuf.nested as Record<string, unknown>);
  }
}

/**
 * A protobufjs root over Envoy's proto tree (plus extra include folders, e.g. augur's
 * `proto/envoy-extra` for extensions grpc-js-xds does not ship). Types are looked up by
 * full name; the package folder that defines a type is loaded on first use.
 */
export class EnvoyProtos {
  readonly root = new protobuf.Root();
  readonly includeDirs: string[];
  private readonly loadedDirs = new Set<string>();

  constructor(extraDirs: string[] = []) {
    addCommonProtos();
    this.includeDirs = [...defaultEnvoyProtoDirs(), ...extraDirs];
    this.root.resolvePath = (_origin, target) => {
      if (isAbsolute(target)) return target;
      for (const dir of this.includeDirs) {
        const full = join(dir, target);
        if (existsSync(full)) return full;
      }
      // protobufjs serves its built-in google/protobuf/* files from this name.
      return target;
    };
  }

  /** Loads proto files (paths relative to an include folder). */
  load(files: string[]): void {
    this.root.loadSync(files, { keepCase: true });
    this.root.resolveAll();
  }

  /** The message type of that full name (no leading dot), or undefined if no include folder defines it. */
  findType(fullName: string): protobuf.Type | undefined {
    const found = this.lookup(fullName);
    if (found) return found;
    if (!this.loadPackageOf(fullName)) return undefined;
    return this.lookup(fullName);
  }

  /** Like findType, but a missing type is an error. */
  type(fullName: string): protobuf.Type {
    const t = this.findType(fullName);
    if (!t)
      throw new AugurError(
        'PROTO_TYPE_UNKNOWN',
        `no proto in ${this.includeDirs.join(', ')} defines ${fullName}`,
      );
    return t;
  }

  private lookup(fullName: string): protobuf.Type | undefined {
    try {
      const t = this.root.lookup(fullName);
      return t instanceof protobuf.Type ? t : undefined;
    } catch {
      return undefined;
    }
  }

  /** Loads every .proto of the folder that holds the package of `fullName` (a.b.v3.Msg.Inner → a/b/v3/). */
  private loadPackageOf(fullName: string): boolean {
    const parts = fullName.split('.');
    for (let n = parts.length - 1; n > 0; n--) {
      const rel = parts.slice(0, n).join('/');
      for (const dir of this.includeDirs) {
        const folder = join(dir, rel);
        if (this.loadedDirs.has(folder) || !existsSync(folder)) continue;
        const files = readdirSync(folder).filter((f) => f.endsWith('.proto'));
        if (files.length === 0) continue;
        this.loadedDirs.add(folder);
        this.load(files.map((f) => join(rel, f)));
        return true;
      }
    }
    return false;
  }
}

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { fileDescriptorProtos } from '../gen/augur/v1/descriptors.js';

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, as grpcurl, Postman and the
 * Python and Go reflection clients use it), serving the compiler's own file descriptors
 * (src/gen/augur/v1/descriptors.ts, made by `npm run proto:gen`): each file under its
 * real name with every file it imports, so a client can build a descriptor pool and call
 * a method knowing nothing but the server's address.
 *
 * Services whose descriptors augur does not ship (Envoy's ADS and ext_proc) are listed,
 * since the server serves them, but asking for their files answers NOT_FOUND with where
 * to get them: a descriptor that a pool rejects is worse than none.
 */

interface FileEntry {
  name: string;
  bytes: Buffer;
  dependencies: string[];
}

interface DescriptorNode {
  name?: string | null;
  nestedType?: DescriptorNode[] | null;
  enumType?: Array<{ name?: string | null }> | null;
  field?: Array<{ name?: string | null }> | null;
  method?: Array<{ name?: string | null }> | null;
}

interface DecodedFile extends DescriptorNode {
  name?: string | null;
  package?: string | null;
  dependency?: string[] | null;
  messageType?: DescriptorNode[] | null;
  service?: DescriptorNode[] | null;
}

/** Where the files of fully qualified symbols are, and what each file imports. */
export class DescriptorIndex {
  private readonly files = new Map<string, FileEntry>();
  private readonly symbols = new Map<string, string>();
  private readonly messages = new Set<string>();
  readonly services: string[] = [];

  constructor(files: ReadonlyArray<{ name: string; bytes: Buffer }>) {
    const FileDescriptorProto = (descriptor as unknown as { FileDescriptorProto: protobuf.Type })
      .FileDescriptorProto;
    for (const { name, bytes } of files) {
      const file = FileDescriptorProto.toObject(FileDescriptorProto.decode(bytes), {
        arrays: true,
      }) as DecodedFile;
      this.files.set(name, { name, bytes, dependencies: file.dependency ?? [] });
      const pkg = file.package ? `${file.package}.` : '';
      for (const m of file.messageType ?? []) this.addMessage(name, pkg, m);
      for (const e of file.enumType ?? []) this.symbols.set(`${pkg}${e.name}`, name);
      for (const s of file.service ?? []) {
        const full = `${pkg}${s.name}`;
        this.symbols.set(full, name);
        this.services.push(full);
        for (const m of s.method ?? []) this.symbols.set(`${full}.${m.name}`, name);
      }
    }
    for (const f of this.files.values())
      for (const dep of f.dependencies)
        if (!this.files.has(dep))
          throw new Error(`descriptor of ${f.name} imports ${dep}, which is not among them`);
  }

  /** The file named, then every file it imports directly or not (each once). */
  fileByName(name: string): Buffer[] | undefined {
    const file = this.files.get(name);
    if (!file) return undefined;
    const out: FileEntry[] = [];
    const seen = new Set<string>();
    const visit = (f: FileEntry) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      out.push(f);
      for (const dep of f.dependencies) visit(this.files.get(dep)!);
    };
    visit(file);
    return out.map((f) => f.bytes);
  }

  /** The file that defines a service, method, message (nested too), field or enum. */
  fileContainingSymbol(symbol: string): Buffer[] | undefined {
    const file = this.symbols.get(symbol.replace(/^\./, ''));
    return file === undefined ? undefined : this.fileByName(file);
  }

  isMessage(symbol: string): boolean {
    return this.messages.has(symbol.replace(/^\./, ''));
  }

  private addMessage(file: string, scope: string, m: DescriptorNode): void {
    const full = `${scope}${m.name}`;
    this.symbols.set(full, file);
    this.messages.add(full);
    for (const f of m.field ?? []) this.symbols.set(`${full}.${f.name}`, file);
    for (const e of m.enumType ?? []) this.symbols.set(`${full}.${e.name}`, file);
    for (const n of m.nestedType ?? []) this.addMessage(file, `${full}.`, n);
  }
}

/** The descriptors of augur's public protos and their imports, from src/gen. */
export function augurDescriptorIndex(): DescriptorIndex {
  return new DescriptorIndex(
    fileDescriptorProtos.map((f) => ({ name: f.name, bytes: Buffer.from(f.base64, 'base64') })),
  );
}

interface ReflectionRequest {
  host?: string;
  messageRequest?: string;
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType?: string; extensionNumber?: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

interface ReflectionResponse {
  validHost: string;
  originalRequest: ReflectionRequest;
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
  listServicesResponse?: { service: Array<{ name: string }> };
  errorResponse?: { errorCode: number; errorMessage: string };
}

const REFLECTION_VERSIONS = ['v1', 'v1alpha'] as const;

export interface ServerReflectionOptions {
  index: DescriptorIndex;
  /** Every service the server serves, described or not. */
  services: () => readonly string[];
}

/** The reflection service, both versions, answering from one DescriptorIndex. */
export class ServerReflection {
  constructor(private readonly options: ServerReflectionOptions) {}

  addToServer(server: grpc.Server): void {
    const protoRoot = join(
      dirname(createRequire(import.meta.url).resolve('@grpc/reflection')),
      '..',
      'proto',
    );
    for (const version of REFLECTION_VERSIONS) {
      const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
        includeDirs: [protoRoot],
        oneofs: true,
        defaults: false,
      });
      const service = definition[
        `grpc.reflection.${version}.ServerReflection`
      ] as grpc.ServiceDefinition;
      server.addService(service, {
        ServerReflectionInfo: (
          call: grpc.ServerDuplexStream<ReflectionRequest, ReflectionResponse>,
        ) => {
          call.on('data', (request: ReflectionRequest) => call.write(this.answer(request)));
          call.on('end', () => call.end());
          call.on('error', () => undefined);
        },
      });
    }
  }

  /** One response per request, as the protocol has it; failures are error responses. */
  answer(request: ReflectionRequest): ReflectionResponse {
    const base = { validHost: request.host ?? '', originalRequest: request };
    const { index } = this.options;
    const notFound = (message: string): ReflectionResponse => ({
      ...base,
      errorResponse: { errorCode: grpc.status.NOT_FOUND, errorMessage: message },
    });
    const files = (found: Buffer[] | undefined, what: string): ReflectionResponse =>
      found ? { ...base, fileDescriptorResponse: { fileDescriptorProto: found } } : notFound(what);
    switch (request.messageRequest) {
      case 'listServices':
        return {
          ...base,
          listServicesResponse: {
            service: [...new Set([...this.options.services()])].sort().map((name) => ({ name })),
          },
        };
      case 'fileByFilename':
        return files(
          index.fileByName(request.fileByFilename ?? ''),
          `no file ${request.fileByFilename}: reflection describes augur's own protos (augur/v1/*.proto) and their imports`,
        );
      case 'fileContainingSymbol': {
        const symbol = request.fileContainingSymbol ?? '';
        const served = this.options
          .services()
          .some((s) => symbol === s || symbol.startsWith(`${s}.`));
        return files(
          index.fileContainingSymbol(symbol),
          served
            ? `${symbol} is served, but its descriptors are not shipped with augur: use Envoy's data-plane-api protos (grpcurl -import-path ... -proto ...)`
            : `no symbol ${symbol}`,
        );
      }
      case 'fileContainingExtension':
        return notFound(
          `no extension ${request.fileContainingExtension?.extensionNumber} of ${request.fileContainingExtension?.containingType}: augur's protos declare no extensions`,
        );
      case 'allExtensionNumbersOfType': {
        const type = request.allExtensionNumbersOfType ?? '';
        return index.isMessage(type)
          ? {
              ...base,
              allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: [] },
            }
          : notFound(`no message type ${type}`);
      }
      default:
        return {
          ...base,
          errorResponse: {
            errorCode: grpc.status.UNIMPLEMENTED,
            errorMessage: `unknown reflection request ${request.messageRequest ?? '(none)'}`,
          },
        };
    }
  }
}

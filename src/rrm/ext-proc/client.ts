import * as grpc from '@grpc/grpc-js';
import { loadEnvoyProtos } from '../../common/envoy-protos.js';
import { AugurError } from '../../common/errors.js';
import {
  CLUSTER_NAME_ATTRIBUTE,
  EXT_PROC_ATTRIBUTE_NAMESPACE,
  ROUTE_NAME_ATTRIBUTE,
} from '../service-resolver.js';
import { DESTINATION_ENDPOINT } from '../request-api.js';
import { LB_METADATA_NAMESPACE } from './messages.js';

/** A ProcessingResponse as proto-loader gives it (keepCase, enums as strings, oneofs named). */
export interface ProcessingAnswer {
  response: 'request_headers' | 'immediate_response' | string;
  request_headers?: {
    response?: {
      header_mutation?: {
        set_headers?: Array<{ header: { key: string; value?: string; raw_value?: Buffer } }>;
        remove_headers?: string[];
      };
    };
  };
  immediate_response?: {
    status: { code: string | number };
    body?: Buffer;
    headers?: {
      set_headers?: Array<{ header: { key: string; value?: string; raw_value?: Buffer } }>;
    };
  };
  /** google.protobuf.Struct (camelCase: protobufjs bundles the well-known types). */
  dynamic_metadata?: {
    fields: Record<string, { structValue?: { fields: Record<string, { stringValue?: string }> } }>;
  };
}

type ProcessStream = grpc.ClientDuplexStream<Record<string, unknown>, ProcessingAnswer>;
interface ExternalProcessorStub extends grpc.Client {
  Process(options?: Partial<grpc.CallOptions>): ProcessStream;
}

export interface ExtProcRequest {
  /** Header name (lower case, pseudo-headers included) and value pairs. */
  headers: Array<[string, string]>;
  endOfStream: boolean;
  routeName?: string;
  clusterName?: string;
}

/** Envoy's ext_proc `deferred_close_timeout` default. */
const DEFERRED_CLOSE_MS = 5_000;

/**
 * Envoy's side of ext_proc, for the demo data plane: one Process stream per HTTP request,
 * request headers only, one answer, then the stream half-closed as Envoy does.
 */
export class ExtProcClient {
  private readonly stub: ExternalProcessorStub;

  constructor(address: string) {
    const pkg = loadEnvoyProtos().grpc as unknown as {
      envoy: {
        service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } };
      };
    };
    const Ctor = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
    this.stub = new Ctor(
      address,
      grpc.credentials.createInsecure(),
    ) as unknown as ExternalProcessorStub;
  }

  /** Asks about one request; rejects on a stream error or after `timeoutMs` (Envoy's message_timeout). */
  process(req: ExtProcRequest, timeoutMs: number): Promise<ProcessingAnswer> {
    return new Promise((resolve, reject) => {
      const stream = this.stub.Process();
      let settled = false;
      const finish = (err: Error | undefined, answer?: ProcessingAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          stream.cancel();
          return reject(err);
        }
        // As Envoy: half-close, and reset only if the server has not closed its side within
        // the deferred close timeout (a reset per request would look like a rapid-reset flood).
        stream.end();
        const deferred = setTimeout(() => stream.cancel(), DEFERRED_CLOSE_MS);
        deferred.unref();
        stream.on('status', () => clearTimeout(deferred));
        resolve(answer!);
      };
      const timer = setTimeout(
        () =>
          finish(
            new AugurError(
              'EXT_PROC_TIMEOUT',
              `ext_proc server did not answer within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      stream.on('data', (answer: ProcessingAnswer) => finish(undefined, answer));
      stream.on('error', (err: Error) => finish(err));
      const attrs: Record<string, { stringValue: string }> = {};
      if (req.routeName) attrs[ROUTE_NAME_ATTRIBUTE] = { stringValue: req.routeName };
      if (req.clusterName) attrs[CLUSTER_NAME_ATTRIBUTE] = { stringValue: req.clusterName };
      stream.write({
        request_headers: {
          headers: {
            headers: req.headers.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })),
          },
          end_of_stream: req.endOfStream,
        },
        attributes: { [EXT_PROC_ATTRIBUTE_NAMESPACE]: { fields: attrs } },
      });
    });
  }

  close(): void {
    this.stub.close();
  }
}

/** The override-host list an answer carries in `envoy.lb` metadata (what Envoy's policy reads). */
export function overrideHosts(answer: ProcessingAnswer): string[] {
  const v =
    answer.dynamic_metadata?.fields[LB_METADATA_NAMESPACE]?.structValue?.fields[
      DESTINATION_ENDPOINT
    ]?.stringValue;
  return v
    ? v
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h !== '')
    : [];
}

/** Header value of a HeaderValue from an answer: `raw_value` when set, else `value`. */
export function mutationValue(h: { value?: string; raw_value?: Buffer }): string {
  return h.raw_value && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? '');
}

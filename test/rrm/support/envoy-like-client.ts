import * as grpc from '@grpc/grpc-js';
import { loadEnvoyProtos } from '../../../src/common/envoy-protos.js';

/**
 * Plays Envoy's side of ext_proc as its documentation describes it, with Envoy's protos
 * loaded by proto-loader (not the server's codec): one Process stream per HTTP request,
 * the request headers (HTTP/2 pseudo-headers included, values in `raw_value`) with the
 * configured request attributes, one answer awaited, then the stream closed the way Envoy
 * closes it when the HTTP request is done (half-close then reset, or a plain reset); with the
 * response phase on, the response headers too (`exchangeWithResponse`).
 */

export interface ExtProcAnswer {
  /** Which oneof member of ProcessingResponse came back. */
  response: string;
  request_headers?: {
    response?: {
      status?: string;
      header_mutation?: {
        set_headers?: Array<{
          header: { key: string; value?: string; raw_value?: Buffer };
          append_action?: string;
        }>;
        remove_headers?: string[];
      };
    };
  };
  response_headers?: Record<string, unknown>;
  immediate_response?: {
    status: { code: string | number };
    body: Buffer;
    details: string;
    headers?: { set_headers?: Array<{ header: { key: string; raw_value?: Buffer } }> };
  };
  /** google.protobuf.Struct: camelCase field names, as protobufjs bundles the well-known types. */
  dynamic_metadata?: {
    fields: Record<string, { structValue?: { fields: Record<string, { stringValue?: string }> } }>;
  };
}

type ProcessStream = grpc.ClientDuplexStream<Record<string, unknown>, ExtProcAnswer>;
interface ExternalProcessorClient extends grpc.Client {
  Process(): ProcessStream;
}

export function extProcClient(address: string): ExternalProcessorClient {
  const pkg = loadEnvoyProtos().grpc as unknown as {
    envoy: { service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } };
  };
  const Ctor = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
  return new Ctor(address, grpc.credentials.createInsecure()) as unknown as ExternalProcessorClient;
}

export interface HttpRequestLike {
  method?: string;
  path?: string;
  authority?: string;
  headers?: Record<string, string | string[]>;
  routeName?: string;
  clusterName?: string;
  /** How the stream ends after the answer: Envoy half-closes then resets, or just resets. */
  close?: 'end-then-cancel' | 'cancel';
}

export function requestHeadersMessage(req: HttpRequestLike): Record<string, unknown> {
  const headers: Array<{ key: string; raw_value: Buffer }> = [
    { key: ':method', raw_value: Buffer.from(req.method ?? 'GET') },
    { key: ':scheme', raw_value: Buffer.from('http') },
    { key: ':authority', raw_value: Buffer.from(req.authority ?? 'shop.example') },
    { key: ':path', raw_value: Buffer.from(req.path ?? '/') },
    { key: 'user-agent', raw_value: Buffer.from('curl/8.5.0') },
    { key: 'x-request-id', raw_value: Buffer.from('5b0c9d62-5c6e-4e0e-9f9e-000000000001') },
  ];
  for (const [k, v] of Object.entries(req.headers ?? {})) {
    for (const one of Array.isArray(v) ? v : [v])
      headers.push({ key: k, raw_value: Buffer.from(one) });
  }
  const attrs: Record<string, { stringValue: string }> = {};
  if (req.routeName !== undefined) attrs['xds.route_name'] = { stringValue: req.routeName };
  if (req.clusterName !== undefined) attrs['xds.cluster_name'] = { stringValue: req.clusterName };
  return {
    request_headers: {
      headers: { headers },
      end_of_stream: req.method === undefined || req.method === 'GET',
    },
    attributes: { 'envoy.filters.http.ext_proc': { fields: attrs } },
  };
}

/** One HTTP request's ext_proc conversation; resolves with the one answer. */
export function exchange(
  client: ExternalProcessorClient,
  req: HttpRequestLike,
): Promise<ExtProcAnswer> {
  return new Promise((resolve, reject) => {
    const stream = client.Process();
    let answered = false;
    stream.on('data', (answer: ExtProcAnswer) => {
      if (answered) return reject(new Error('more than one answer to request headers'));
      answered = true;
      resolve(answer);
      // The HTTP request is done at Envoy: close the stream as Envoy does.
      if (req.close === 'cancel') stream.cancel();
      else {
        stream.end();
        setImmediate(() => stream.cancel());
      }
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && answered) return;
      reject(err);
    });
    stream.write(requestHeadersMessage(req));
  });
}

/** The response of the upstream, as Envoy reports it in ext_proc's response phase. */
export interface UpstreamResponseLike {
  status: number;
  /** The `upstream.address` response attribute (`ip:port`); absent if Envoy sends none. */
  upstreamAddress?: string;
}

export function responseHeadersMessage(res: UpstreamResponseLike): Record<string, unknown> {
  const fields: Record<string, { stringValue: string }> = {};
  if (res.upstreamAddress !== undefined)
    fields['upstream.address'] = { stringValue: res.upstreamAddress };
  return {
    response_headers: {
      headers: {
        headers: [
          { key: ':status', raw_value: Buffer.from(String(res.status)) },
          { key: 'content-type', raw_value: Buffer.from('application/json') },
        ],
      },
      end_of_stream: false,
    },
    attributes: { 'envoy.filters.http.ext_proc': { fields } },
  };
}

/**
 * One HTTP request's ext_proc conversation with the response phase on (`response_header_mode:
 * SEND`, `response_attributes: [upstream.address]`): the request headers, their answer, then
 * — after `beforeResponse` (the request is at the upstream) — the response headers and their
 * answer; resolves once the server has closed the stream, with both answers and its status.
 */
export function exchangeWithResponse(
  client: ExternalProcessorClient,
  req: HttpRequestLike,
  res: UpstreamResponseLike,
  beforeResponse: (answer: ExtProcAnswer) => void | Promise<void> = () => undefined,
): Promise<{ request: ExtProcAnswer; response: ExtProcAnswer; status: grpc.status }> {
  return new Promise((resolve, reject) => {
    const stream = client.Process();
    const answers: ExtProcAnswer[] = [];
    stream.on('data', (answer: ExtProcAnswer) => {
      answers.push(answer);
      if (answers.length === 1) {
        void Promise.resolve(beforeResponse(answer)).then(
          () => stream.write(responseHeadersMessage(res)),
          reject,
        );
      }
    });
    stream.on('status', (s: grpc.StatusObject) => {
      if (answers.length < 2) return reject(new Error(`closed after ${answers.length} answers`));
      resolve({ request: answers[0]!, response: answers[1]!, status: s.code });
      stream.end();
    });
    stream.on('error', (err: grpc.ServiceError) => reject(err));
    stream.write(requestHeadersMessage(req));
  });
}

/** The `envoy.lb` / `x-gateway-destination-endpoint` metadata value of an answer. */
export function metadataEndpoints(a: ExtProcAnswer): string | undefined {
  return a.dynamic_metadata?.fields['envoy.lb']?.structValue?.fields[
    'x-gateway-destination-endpoint'
  ]?.stringValue;
}

/** The value the answer sets on the `x-gateway-destination-endpoint` request header. */
export function headerEndpoints(a: ExtProcAnswer): string | undefined {
  const set = a.request_headers?.response?.header_mutation?.set_headers ?? [];
  const h = set.find((s) => s.header.key === 'x-gateway-destination-endpoint');
  return h?.header.raw_value?.toString('latin1');
}

import type protobuf from 'protobufjs';
import { loadEnvoyProtos } from '../../common/envoy-protos.js';
import { DESTINATION_ENDPOINT } from '../request-api.js';
import { decodeProcessingRequestFast } from './request-decoder.js';
import { encodeRouteResponseFast } from './route-response-encoder.js';

/** Envoy's dynamic metadata namespace the override-host policy reads (Endpoint Picker Protocol). */
export const LB_METADATA_NAMESPACE = 'envoy.lb';

/*
 * The shapes of the Envoy messages the RRM reads, as protobufjs decodes them with
 * keepCase (field names as in external_processor.proto). Only what we touch is typed.
 */
export interface HeaderValueMessage {
  key: string;
  value: string;
  raw_value: Uint8Array;
}

/**
 * google.protobuf.Value. protobufjs (and so proto-loader) always serves the well-known types
 * from its bundled definitions, whose field names are camelCase even with keepCase.
 */
export interface ValueMessage {
  stringValue?: string;
  structValue?: StructMessage;
  numberValue?: number;
  boolValue?: boolean;
}

export interface StructMessage {
  fields: Record<string, ValueMessage>;
}

export interface HttpHeadersMessage {
  headers?: { headers: HeaderValueMessage[] } | null;
  end_of_stream: boolean;
}

export type ProcessingPhase =
  | 'request_headers'
  | 'response_headers'
  | 'request_body'
  | 'response_body'
  | 'request_trailers'
  | 'response_trailers';

export interface ProcessingRequestMessage {
  /** Which oneof member is set. */
  request?: ProcessingPhase;
  request_headers?: HttpHeadersMessage | null;
  response_headers?: HttpHeadersMessage | null;
  attributes: Record<string, StructMessage>;
}

/** HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD */
const OVERWRITE_IF_EXISTS_OR_ADD = 2;

interface Codec {
  request: protobuf.Type;
  response: protobuf.Type;
}

let codec: Codec | undefined;

/** The protobufjs types of ProcessingRequest and ProcessingResponse (Envoy's own protos). */
export function extProcCodec(): Codec {
  if (!codec) {
    const { root } = loadEnvoyProtos();
    codec = {
      request: root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest'),
      response: root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse'),
    };
  }
  return codec;
}

/** ProcessingRequest decoded by protobufjs (the reference for the hand-written decoder). */
export function decodeProcessingRequestGeneric(bytes: Uint8Array): ProcessingRequestMessage {
  return extProcCodec().request.decode(bytes) as unknown as ProcessingRequestMessage;
}

/** ProcessingRequest decoded by the hand-written decoder (what the RRM reads; request-decoder.ts). */
export const decodeProcessingRequest = decodeProcessingRequestFast;

/** A header's value: Envoy sends `raw_value` (bytes) and leaves `value` empty; older Envoys the reverse. */
export function headerValue(h: HeaderValueMessage): string {
  const raw = h.raw_value;
  if (raw && raw.length > 0) {
    return Buffer.isBuffer(raw)
      ? raw.toString('latin1')
      : Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1');
  }
  return h.value ?? '';
}

/** A string attribute Envoy sent under the ext_proc filter's namespace, or undefined. */
export function stringAttribute(
  attributes: Record<string, StructMessage> | undefined,
  namespace: string,
  name: string,
): string | undefined {
  const v = attributes?.[namespace]?.fields?.[name]?.stringValue;
  return v ? v : undefined;
}

function encode(message: Record<string, unknown>): Uint8Array {
  const { response } = extProcCodec();
  return response.encode(response.fromObject(message)).finish();
}

/**
 * The Endpoint Picker Protocol answer to request headers: continue, with the endpoint list
 * in the `x-gateway-destination-endpoint` request header (set with `raw_value`, as Envoy
 * rejects `value` plus `raw_value`) and in dynamic metadata `envoy.lb`, which is what
 * Envoy's override-host policy should read. `removeClientHeader` removes a header of that
 * name the client sent (Envoy applies removals before sets).
 */
export function routeResponseObject(
  endpoints: string,
  removeClientHeader: boolean,
): Record<string, unknown> {
  return {
    request_headers: {
      // status CONTINUE is the default (0), so it is left out as on the wire.
      response: {
        header_mutation: {
          set_headers: [
            {
              header: { key: DESTINATION_ENDPOINT, raw_value: Buffer.from(endpoints, 'latin1') },
              append_action: OVERWRITE_IF_EXISTS_OR_ADD,
            },
          ],
          remove_headers: removeClientHeader ? [DESTINATION_ENDPOINT] : [],
        },
      },
    },
    dynamic_metadata: {
      fields: {
        [LB_METADATA_NAMESPACE]: {
          structValue: { fields: { [DESTINATION_ENDPOINT]: { stringValue: endpoints } } },
        },
      },
    },
  };
}

/** `routeResponseObject` encoded by protobufjs (the reference for the hand-written encoder). */
export function encodeRouteResponseGeneric(
  endpoints: string,
  removeClientHeader: boolean,
): Uint8Array {
  return encode(routeResponseObject(endpoints, removeClientHeader));
}

/** `routeResponseObject` encoded, by the hand-written encoder (same bytes, a third of the CPU). */
export const encodeRouteResponse = encodeRouteResponseFast;

/**
 * Ends the request at Envoy with `status` and a plain-text body (the reason); `details`
 * goes to Envoy's access log (%RESPONSE_CODE_DETAILS%).
 */
export function encodeImmediateResponse(status: number, body: string, details: string): Uint8Array {
  return encode({
    immediate_response: {
      status: { code: status },
      headers: {
        set_headers: [
          {
            header: { key: 'content-type', raw_value: Buffer.from('text/plain; charset=utf-8') },
            append_action: OVERWRITE_IF_EXISTS_OR_ADD,
          },
        ],
      },
      body: Buffer.from(body.endsWith('\n') ? body : `${body}\n`, 'utf8'),
      details,
    },
  });
}

let continueResponse: Uint8Array | undefined;

let warmed = false;

/**
 * Has protobufjs build its encoders and decoders of ProcessingRequest and ProcessingResponse now,
 * at start, rather than in the first exchange that needs them: it generates them on first use,
 * which took 250–310 ms on the 2-core development machine, one event-loop stall in which every
 * exchange in flight passed Envoy's 200 ms message timeout (`bench:e2e` saw 26–93 requests fall
 * back just after augur started). Once per process; later calls return at once.
 */
export function warmExtProcCodec(): void {
  if (warmed) return;
  warmed = true;
  const { request, response } = extProcCodec();
  responseHeadersContinue();
  encodeImmediateResponse(503, 'warm-up', 'warm-up');
  const attributes = { 'envoy.filters.http.ext_proc': { fields: { a: { stringValue: 'b' } } } };
  const header = { key: 'k', raw_value: Buffer.from('v') };
  for (const message of [
    { request_headers: { headers: { headers: [header] }, end_of_stream: true }, attributes },
    { response_headers: { headers: { headers: [header] } }, attributes },
  ])
    request.decode(request.encode(request.fromObject(message)).finish());
  const answer = response.decode(encodeRouteResponseGeneric('127.0.0.1:1', true));
  response.toObject(answer, { enums: String, oneofs: true, longs: String });
}

/** The answer to response headers: continue, unchanged (encoded once). */
export function responseHeadersContinue(): Uint8Array {
  continueResponse ??= encode({ response_headers: {} });
  return continueResponse;
}

/** "Carry on unchanged" for a phase the RRM did not ask for (a misconfigured processing mode). */
export function encodeContinue(phase: ProcessingPhase): Uint8Array {
  if (phase === 'request_trailers' || phase === 'response_trailers') return encode({ [phase]: {} });
  return encode({ [phase]: { response: { status: 'CONTINUE' } } });
}

import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';

/*
 * Hand-framed protobuf for DiscoveryResponse. A response is the concatenation of parts marshalled
 * once (each resource's Any, the version and type URL, the nonce): protobuf allows fields in any
 * order and repeated fields in separate runs, so the concatenation is a valid message.
 */

/** envoy.service.discovery.v3.DiscoveryResponse field numbers. */
const VERSION_INFO = 1;
const RESOURCES = 2;
const TYPE_URL = 4;
const NONCE = 5;

const tag = (field: number, wireType: number): number => (field << 3) | wireType;
const LENGTH_DELIMITED = 2;

/** google.protobuf.Any { type_url = 1; value = 2 } holding already-encoded message bytes. */
export function encodeAny(typeUrl: string, value: Uint8Array): Uint8Array {
  return protobuf.Writer.create()
    .uint32(tag(1, LENGTH_DELIMITED))
    .string(typeUrl)
    .uint32(tag(2, LENGTH_DELIMITED))
    .bytes(value)
    .finish();
}

/** An Any framed as one entry of DiscoveryResponse.resources, ready to concatenate. */
export function frameResource(any: Uint8Array): Uint8Array {
  return protobuf.Writer.create().uint32(tag(RESOURCES, LENGTH_DELIMITED)).bytes(any).finish();
}

/** The shared head of a response: version_info and type_url. */
export function encodeResponseHead(version: string, typeUrl: string): Uint8Array {
  return protobuf.Writer.create()
    .uint32(tag(VERSION_INFO, LENGTH_DELIMITED))
    .string(version)
    .uint32(tag(TYPE_URL, LENGTH_DELIMITED))
    .string(typeUrl)
    .finish();
}

/** The nonce field of a response. */
export function encodeNonce(nonce: string): Uint8Array {
  return protobuf.Writer.create().uint32(tag(NONCE, LENGTH_DELIMITED)).string(nonce).finish();
}

/** Short content hash used for resource and type versions. */
export function contentHash(...chunks: Array<Uint8Array | string>): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex').slice(0, 16);
}

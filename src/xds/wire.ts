import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { createHash } from 'node:crypto';

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

const LEN = WireType.LengthDelimited;

/** google.protobuf.Any { type_url = 1; value = 2 } holding already-encoded message bytes. */
export function encodeAny(typeUrl: string, value: Uint8Array): Uint8Array {
  return new BinaryWriter().tag(1, LEN).string(typeUrl).tag(2, LEN).bytes(value).finish();
}

/** An Any framed as one entry of DiscoveryResponse.resources, ready to concatenate. */
export function frameResource(any: Uint8Array): Uint8Array {
  return new BinaryWriter().tag(RESOURCES, LEN).bytes(any).finish();
}

/** The shared head of a response: version_info and type_url. */
export function encodeResponseHead(version: string, typeUrl: string): Uint8Array {
  return new BinaryWriter()
    .tag(VERSION_INFO, LEN)
    .string(version)
    .tag(TYPE_URL, LEN)
    .string(typeUrl)
    .finish();
}

/** The nonce field of a response. */
export function encodeNonce(nonce: string): Uint8Array {
  return new BinaryWriter().tag(NONCE, LEN).string(nonce).finish();
}

/** Short content hash used for resource and type versions. */
export function contentHash(...chunks: Array<Uint8Array | string>): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex').slice(0, 16);
}

import protobuf from 'protobufjs';
import type { DiscoveryRequestMessage } from './sotw-server.js';

/*
 * envoy.service.discovery.v3.DiscoveryRequest, decoded by hand for the ADS server's hot path:
 * every client ACKs every push, so a push to 100 clients is 100 requests to read. The top-level
 * fields are read here: version_info (1), resource_names (3), type_url (4), response_nonce (5)
 * and error_detail (6: google.rpc.Status code 1, message 2). `node` (2), which clients send on
 * their first request only, is decoded by protobufjs with Envoy's own Node type. Other fields
 * are skipped. The result has the shape of protobufjs's `toObject` with defaults (empty strings,
 * an empty list), which the protocol server was written against; the test holds the two to
 * the same result.
 */

const LENGTH_DELIMITED = 2;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;

export function discoveryRequestDecoder(
  root: protobuf.Root,
): (bytes: Uint8Array) => DiscoveryRequestMessage {
  const nodeType = root.lookupType('envoy.config.core.v3.Node');
  return (bytes) => {
    const r = protobuf.Reader.create(bytes);
    const out: DiscoveryRequestMessage = {
      version_info: '',
      resource_names: [],
      type_url: '',
      response_nonce: '',
    };
    while (r.pos < r.len) {
      const t = r.uint32();
      switch (t) {
        case tag(1, LENGTH_DELIMITED):
          out.version_info = r.string();
          break;
        case tag(2, LENGTH_DELIMITED):
          // Repeated occurrences of a message field merge; a client sends it once.
          out.node = nodeType.toObject(nodeType.decode(r.bytes()), {
            defaults: true,
            arrays: true,
            longs: String,
            enums: String,
          }) as DiscoveryRequestMessage['node'];
          break;
        case tag(3, LENGTH_DELIMITED):
          out.resource_names.push(r.string());
          break;
        case tag(4, LENGTH_DELIMITED):
          out.type_url = r.string();
          break;
        case tag(5, LENGTH_DELIMITED):
          out.response_nonce = r.string();
          break;
        case tag(6, LENGTH_DELIMITED): {
          const end = r.uint32() + r.pos;
          const detail = out.error_detail ?? { code: 0, message: '' };
          while (r.pos < end) {
            const u = r.uint32();
            if (u === tag(1, 0)) detail.code = r.int32();
            else if (u === tag(2, LENGTH_DELIMITED)) detail.message = r.string();
            else r.skipType(u & 7);
          }
          if (r.pos !== end) throw new Error('malformed DiscoveryRequest (error_detail)');
          out.error_detail = detail;
          break;
        }
        default:
          r.skipType(t & 7);
      }
    }
    return out;
  };
}

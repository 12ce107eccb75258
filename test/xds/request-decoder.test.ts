import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadEnvoyProtos } from '../../src/common/envoy-protos.js';
import { discoveryRequestDecoder } from '../../src/xds/request-decoder.js';

/*
 * The hand-written DiscoveryRequest decoder against protobufjs's toObject (with defaults, as
 * the protocol server read requests before), on requests protobufjs encodes from Envoy's protos.
 */

const { root } = loadEnvoyProtos();
const requestType = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const decode = discoveryRequestDecoder(root);
/** protobufjs's reading, without resource_locators (xDS-TP; augur does not serve it) ... */
function reference(b: Uint8Array): Record<string, unknown> {
  const all = requestType.toObject(requestType.decode(b), {
    defaults: true,
    arrays: true,
    longs: String,
    enums: String,
  });
  delete all.resource_locators;
  // error_detail.details (Any) neither: the server logs the code and message.
  if (all.error_detail) delete (all.error_detail as Record<string, unknown>).details;
  return all;
}

/** protobufjs gives null for an absent message field, the decoder leaves it out. */
const plain = (o: object): unknown =>
  JSON.parse(JSON.stringify(o, (_k, v: unknown) => (v === null ? undefined : v)));

const requestArb = fc.record(
  {
    version_info: fc.string({ unit: 'grapheme', maxLength: 20 }),
    resource_names: fc.array(fc.string({ unit: 'grapheme', maxLength: 20 }), { maxLength: 5 }),
    type_url: fc.constantFrom(
      'type.googleapis.com/envoy.config.cluster.v3.Cluster',
      'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
      '',
    ),
    response_nonce: fc.string({ maxLength: 10 }),
    error_detail: fc.record({
      code: fc.integer({ min: -5, max: 16 }),
      message: fc.string({ unit: 'grapheme', maxLength: 40 }),
    }),
    node: fc.record({
      id: fc.string({ maxLength: 20 }),
      cluster: fc.string({ maxLength: 10 }),
      user_agent_name: fc.constantFrom('envoy', 'gRPC Node Pure JS', ''),
      metadata: fc.record({
        fields: fc.dictionary(
          fc.string({ maxLength: 10 }).filter((k) => k !== '__proto__'),
          fc.record({ stringValue: fc.string({ maxLength: 10 }) }),
          { maxKeys: 3 },
        ),
      }),
    }),
  },
  { requiredKeys: ['type_url'] },
);

describe('DiscoveryRequest decoder', () => {
  it('reads what protobufjs reads (version, names, type, nonce, error detail, node)', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const bytes = requestType.encode(requestType.fromObject(req)).finish();
        expect(plain(decode(bytes))).toEqual(plain(reference(bytes)));
      }),
      { numRuns: 300 },
    );
  });

  it('reads an ACK (no node, no error) with empty defaults', () => {
    const bytes = requestType
      .encode(requestType.fromObject({ type_url: 't', version_info: 'v1', response_nonce: 'n' }))
      .finish();
    expect(decode(bytes)).toEqual({
      version_info: 'v1',
      resource_names: [],
      type_url: 't',
      response_nonce: 'n',
    });
  });

  it('rejects a request cut inside a field, as protobufjs does (a cut between fields is a valid shorter request)', () => {
    const bytes = requestType
      .encode(
        requestType.fromObject({
          type_url: 'type',
          version_info: 'v',
          error_detail: { code: 3, message: 'm' },
        }),
      )
      .finish();
    let rejected = 0;
    for (let cut = 1; cut < bytes.length; cut++) {
      const part = bytes.subarray(0, cut);
      let expected: unknown;
      try {
        expected = plain(reference(part));
      } catch {
        expect(() => decode(part)).toThrow();
        rejected++;
        continue;
      }
      expect(plain(decode(part))).toEqual(expected);
    }
    expect(rejected).toBeGreaterThanOrEqual(bytes.length / 2);
  });
});

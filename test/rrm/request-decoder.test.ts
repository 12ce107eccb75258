import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  decodeProcessingRequest,
  decodeProcessingRequestGeneric,
  extProcCodec,
  type ProcessingRequestMessage,
  type StructMessage,
  type ValueMessage,
} from '../../src/rrm/ext-proc/messages.js';

/*
 * The hand-written ProcessingRequest decoder against protobufjs's, on messages protobufjs
 * encodes from Envoy's own protos: every field the RRM reads must come out the same.
 */

interface Header {
  key: string;
  raw?: Uint8Array;
  value?: string;
}

/** A map key; "__proto__" is left out here (protobufjs's own decoder mishandles it) and tested apart. */
const safeKey = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ maxLength }).filter((k) => k !== '__proto__');

type Value = { s: string } | { n: number } | { b: boolean } | { struct: Record<string, Value> };

const valueArb: fc.Arbitrary<Value> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.record({ s: fc.string({ unit: 'grapheme', maxLength: 20 }) }),
    fc.record({ n: fc.double({ noNaN: true }) }),
    fc.record({ b: fc.boolean() }),
    fc.record({
      struct: fc.dictionary(safeKey(12), tie('value') as fc.Arbitrary<Value>, {
        maxKeys: 3,
      }),
    }),
  ),
})).value;

function toValue(v: Value): Record<string, unknown> {
  if ('s' in v) return { stringValue: v.s };
  if ('n' in v) return { numberValue: v.n };
  if ('b' in v) return { boolValue: v.b };
  return { structValue: { fields: mapValues(v.struct, toValue) } };
}

function mapValues<A, B>(o: Record<string, A>, f: (a: A) => B): Record<string, B> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

const headerArb: fc.Arbitrary<Header> = fc.oneof(
  fc.record({
    key: fc.oneof(
      fc.constantFrom(
        ':path',
        'x-augur-endpoints',
        'x-gateway-destination-endpoint',
        'x-envoy-expected-rq-timeout-ms-and-a-long-tail-of-more-characters',
        'ключ-заголовка',
      ),
      fc.string({ unit: 'grapheme', maxLength: 60, size: 'medium' }),
    ),
    raw: fc.uint8Array({ maxLength: 80, size: 'medium' }),
  }),
  fc.record({
    key: fc.string({ maxLength: 20 }),
    value: fc.string({ unit: 'grapheme', maxLength: 30 }),
  }),
);

const phaseArb = fc.constantFrom(
  'request_headers',
  'response_headers',
  'request_body',
  'request_trailers',
);

function encode(message: Record<string, unknown>): Buffer {
  const { request } = extProcCodec();
  return Buffer.from(request.encode(request.fromObject(message)).finish());
}

/** What the RRM reads of a decoded message, as plain data. */
function view(m: ProcessingRequestMessage): unknown {
  const value = (v: ValueMessage): unknown =>
    v.structValue !== undefined && v.structValue !== null
      ? { struct: struct(v.structValue) }
      : v.stringValue !== undefined && v.stringValue !== ''
        ? { s: v.stringValue }
        : v.numberValue !== undefined && v.numberValue !== 0
          ? { n: v.numberValue }
          : v.boolValue
            ? { b: true }
            : {};
  const struct = (s: StructMessage): unknown => mapValues(s.fields ?? {}, value);
  return {
    request: m.request,
    headers: m.request_headers
      ? {
          end: m.request_headers.end_of_stream ?? false,
          list: (m.request_headers.headers?.headers ?? []).map((h) => ({
            key: h.key,
            value: h.value ?? '',
            raw: Buffer.from(h.raw_value ?? []).toString('hex'),
          })),
        }
      : undefined,
    attributes: mapValues(m.attributes ?? {}, struct),
  };
}

describe('ProcessingRequest decoder', () => {
  it('reads what protobufjs reads: phase, headers (key, value, raw_value), end_of_stream, attributes', () => {
    fc.assert(
      fc.property(
        phaseArb,
        fc.array(headerArb, { maxLength: 20 }),
        fc.boolean(),
        fc.dictionary(safeKey(30), fc.dictionary(safeKey(20), valueArb, { maxKeys: 4 }), {
          maxKeys: 3,
        }),
        (phase, headers, endOfStream, attributes) => {
          const headerMap = {
            headers: headers.map((h) =>
              h.raw !== undefined
                ? { key: h.key, raw_value: h.raw }
                : { key: h.key, value: h.value },
            ),
          };
          const bytes = encode({
            [phase]:
              phase === 'request_body'
                ? { body: Buffer.from('x'), end_of_stream: endOfStream }
                : phase === 'request_trailers'
                  ? { trailers: headerMap }
                  : { headers: headerMap, end_of_stream: endOfStream },
            attributes: mapValues(attributes, (fields) => ({ fields: mapValues(fields, toValue) })),
            // Fields the RRM does not read, to be skipped on the wire.
            metadata_context: { filter_metadata: { ns: { fields: { k: { stringValue: 'v' } } } } },
            observability_mode: true,
          });
          const fast = view(decodeProcessingRequest(bytes));
          const generic = view(decodeProcessingRequestGeneric(bytes));
          expect(fast).toEqual(generic);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps map keys such as __proto__ as plain keys (no prototype is touched)', () => {
    const bytes = encode({
      attributes: {
        ns: { fields: { __proto__: { stringValue: 'x' }, constructor: { stringValue: 'y' } } },
      },
    });
    // protobufjs's fromObject drops an own "__proto__" key; write the entry on the wire by hand.
    const m = decodeProcessingRequest(bytes);
    expect(m.attributes.ns!.fields.constructor).toEqual({ stringValue: 'y' });
    const w = protobuf.Writer.create();
    w.uint32((9 << 3) | 2).fork(); // attributes entry
    w.uint32((1 << 3) | 2).string('__proto__'); // its key
    w.uint32((2 << 3) | 2).fork(); // its value, a Struct
    w.uint32((1 << 3) | 2).fork(); // a fields entry
    w.uint32((1 << 3) | 2).string('k');
    w.uint32((2 << 3) | 2).fork(); // Value
    w.uint32((3 << 3) | 2).string('vv'); // string_value
    w.ldelim().ldelim().ldelim().ldelim();
    const hand = Buffer.from(w.finish());
    const h = decodeProcessingRequest(hand);
    expect(Object.keys(h.attributes)).toEqual(['__proto__']);
    expect(h.attributes['__proto__']!.fields.k).toEqual({ stringValue: 'vv' });
    expect(Object.getPrototypeOf(h.attributes)).toBeNull();
    expect(({} as Record<string, unknown>).k).toBeUndefined();
  });

  it('rejects a truncated message instead of reading past its end', () => {
    const bytes = encode({
      request_headers: {
        headers: { headers: [{ key: 'x-augur-endpoints', raw_value: Buffer.from('a,b') }] },
      },
    });
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(() => decodeProcessingRequest(bytes.subarray(0, cut))).toThrow(/ProcessingRequest/);
    }
  });

  it('reads an empty message as no phase', () => {
    const m = decodeProcessingRequest(Buffer.alloc(0));
    expect(m.request).toBeUndefined();
    expect(m.attributes).toEqual({});
  });
});

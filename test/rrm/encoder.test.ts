import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadEnvoyProtos } from '../../src/common/envoy-protos.js';
import {
  encodeRouteResponse,
  encodeRouteResponseGeneric,
} from '../../src/rrm/ext-proc/messages.js';

const hostPort = fc
  .tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 }))
  .map(([ip, port]) => `${ip}:${port}`);

describe('hand-written route response encoder', () => {
  it('gives the same bytes as protobufjs over Envoy protos (property)', () => {
    fc.assert(
      fc.property(
        fc.array(hostPort, { minLength: 1, maxLength: 40 }),
        fc.boolean(),
        (hosts, remove) => {
          const value = hosts.join(',');
          expect(Buffer.from(encodeRouteResponse(value, remove))).toEqual(
            Buffer.from(encodeRouteResponseGeneric(value, remove)),
          );
        },
      ),
    );
  });

  it('decodes with Envoy protos to the Endpoint Picker answer', () => {
    const type = loadEnvoyProtos().root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
    const value = '10.0.0.1:80,[fd00::1]:8080';
    const decoded = type.toObject(type.decode(encodeRouteResponse(value, true)), {
      enums: String,
      oneofs: true,
    });
    expect(decoded.response).toBe('request_headers');
    const mutation = decoded.request_headers.response.header_mutation;
    expect(mutation.remove_headers).toEqual(['x-gateway-destination-endpoint']);
    expect(mutation.set_headers[0].append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(mutation.set_headers[0].header.key).toBe('x-gateway-destination-endpoint');
    expect(Buffer.from(mutation.set_headers[0].header.raw_value).toString()).toBe(value);
    expect(mutation.set_headers[0].header.value).toBeUndefined();
    expect(
      decoded.dynamic_metadata.fields['envoy.lb'].structValue.fields[
        'x-gateway-destination-endpoint'
      ].stringValue,
    ).toBe(value);
  });

  it('refuses a non-ASCII list rather than writing wrong lengths', () => {
    expect(() => encodeRouteResponse('héllo:1', false)).toThrow(/ASCII/);
  });
});

import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { PROTO_DIR } from '../../src/common/grpc-host.js';

/**
 * RouteResponseRequest.dynamic_routing_enabled was `optional bool` and is now the only member
 * of a oneof (Debian's protoc rejects proto3 `optional`). Messages written by either must read
 * the same in the other: the same bytes, and "unset" still distinct from "false".
 */
const before = protobuf
  .parse(
    `
  syntax = "proto3";
  message RouteResponseRequest { string service = 4; optional bool dynamic_routing_enabled = 5; }
`,
    { keepCase: true },
  )
  .root.lookupType('RouteResponseRequest');

const now = new protobuf.Root()
  .loadSync(join(PROTO_DIR, 'augur/v1/response_router.proto'), { keepCase: true })
  .lookupType('augur.v1.RouteResponseRequest');

describe('dynamic_routing_enabled, optional then a one-field oneof', () => {
  for (const value of [undefined, false, true]) {
    it(`encodes ${String(value)} to the same bytes and reads it back with its presence`, () => {
      const message =
        value === undefined ? { service: 's' } : { service: 's', dynamic_routing_enabled: value };
      const oldBytes = before.encode(before.fromObject(message)).finish();
      const newBytes = now.encode(now.fromObject(message)).finish();
      expect(Buffer.from(newBytes).toString('hex')).toBe(Buffer.from(oldBytes).toString('hex'));
      for (const [reader, bytes] of [
        [now, oldBytes],
        [before, newBytes],
      ] as const) {
        const decoded = reader.toObject(reader.decode(bytes)) as Record<string, unknown>;
        if (value === undefined) expect(decoded).not.toHaveProperty('dynamic_routing_enabled');
        else expect(decoded.dynamic_routing_enabled).toBe(value);
      }
    });
  }
});

import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/common/http-host.js';
import { silentLogger } from '../../src/common/logger.js';
import { ExtProcClient } from '../../src/rrm/ext-proc/client.js';
import { extProcCodec } from '../../src/rrm/ext-proc/messages.js';
import { Rrm } from '../../src/rrm/rrm.js';
import { loadConfig } from '../../src/serve/config.js';
import { StaticListSource } from './support/static-list-source.js';

/*
 * protobufjs generates a type's encoder and decoder on first use (250–310 ms for ext_proc's
 * messages on the 2-core development machine): one stall in which every exchange in flight
 * passed Envoy's 200 ms message timeout. The RRM and the ext_proc client build them when they are
 * made, so no exchange pays for it. (This file runs in a module context of its own: the types
 * are fresh here.)
 */

/** Whether protobufjs has generated `type`'s own coders (before, they are the prototype's setup stubs). */
function built(type: object): boolean {
  return ['encode', 'decode', 'fromObject', 'toObject'].every((m) => Object.hasOwn(type, m));
}

describe("ext_proc's protobuf coders are built at start, not in the first exchange", () => {
  it('by the RRM as it is made (its ext_proc handler)', async () => {
    const { request, response } = extProcCodec();
    expect(built(request) || built(response)).toBe(false);
    const rrm = new Rrm({
      config: loadConfig({ env: {}, flags: { logLevel: 'silent' } }),
      logger: silentLogger,
      registry: createRegistry(false),
      lists: new StaticListSource(),
      monitoring: { setMonitoringInterval: async (_s, ids) => ids },
    });
    expect(built(request)).toBe(true);
    expect(built(response)).toBe(true);
    // The answer to response headers, which protobufjs encodes, is ready too.
    const nested = response.lookupType('envoy.service.ext_proc.v3.HeadersResponse');
    expect(built(nested)).toBe(true);
    await rrm.stop();
  });

  it('by the ext_proc client as it is made (and again is a no-op)', () => {
    const client = new ExtProcClient('127.0.0.1:1');
    const { request, response } = extProcCodec();
    expect(built(request)).toBe(true);
    expect(built(response)).toBe(true);
    client.close();
  });
});

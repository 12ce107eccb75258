import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTO_DIR } from '../../src/common/grpc-host.js';
import { startTestPlane, type TestPlane } from '../support/control-plane.js';
import { DEBIAN_PYTHON, requirePrerequisite } from '../support/prerequisites.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../python/agent_client.py', import.meta.url));
let plane: TestPlane;
let out: string;

beforeAll(async () => {
  plane = await startTestPlane({ lps: { scoreInterval: 0.1 } });
  out = mkdtempSync(join(tmpdir(), 'augur-py-'));
});
afterAll(async () => {
  await plane.dispose();
  rmSync(out, { recursive: true, force: true });
});

describe('a Python client built from proto/', () => {
  it('generates stubs from all four protos, streams samples as an agent, reads the list, routes a payload', async () => {
    // Debian's python3-grpcio and python3-grpc-tools, which npm test's set-up step installs.
    requirePrerequisite('python3-grpc-tools');
    const { stdout } = await run(DEBIAN_PYTHON, [script, PROTO_DIR, out, plane.grpcAddress], {
      timeout: 30_000,
    });
    const seen = JSON.parse(stdout.trim().split('\n').pop()!) as {
      config_seconds: number;
      acked: number;
      errors: Array<{ field: string; code: string }>;
      list: Array<{ id: string; score: number; weight: number; state: string }>;
      presence: { unset: boolean; set_false: boolean; oneof: string };
      route: {
        endpoint_id: string;
        status_code: number;
        body: string;
        attempts: number;
        delivered: Array<{ path: string; body: string; x_from: string }>;
      };
    };
    expect(seen.config_seconds).toBe(1);
    expect(seen.acked).toBe(5);
    expect(seen.errors).toEqual([{ field: 'cpu_usage', code: 'OUT_OF_RANGE' }]);
    expect(seen.list).toHaveLength(1);
    expect(seen.list[0]).toMatchObject({ id: 'py-1', state: 'ENDPOINT_STATE_ACTIVE', weight: 1 });
    expect(seen.list[0]!.score).toBeGreaterThan(0);
    expect(plane.lps.store.get('py-1')!.labels).toEqual({ lang: 'python' });
    // ResponseRouter from the same stubs; an explicit false is set, unset is not.
    expect(seen.presence).toEqual({
      unset: false,
      set_false: true,
      oneof: 'dynamic_routing_enabled',
    });
    expect(seen.route).toEqual({
      endpoint_id: 'py-1',
      status_code: 200,
      body: 'ok',
      attempts: 1,
      delivered: [{ path: '/callback', body: 'hello from python', x_from: 'python' }],
    });
  });
});

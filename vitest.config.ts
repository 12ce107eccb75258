import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

/**
 * Three projects, run together by `npm test` (which first runs test/support/setup.ts, the
 * step that installs or names the Debian packages the tests use):
 * - environment: the repository as a user's machine sees it (the Dockerfile's steps, the
 *   compose file, the README's commands run as written); slow, and they need Debian packages;
 * - integration: real servers, processes, browsers and clients on loopback;
 * - unit: everything else, in-process and fast (`npm run test:unit`).
 * A new test file lands in unit unless it is listed here.
 */
const ENVIRONMENT = ['test/compose/**/*.test.ts', 'test/readme/**/*.test.ts'];
const INTEGRATION = [
  'test/agent/agent-lps.test.ts',
  'test/agent/cli.test.ts',
  'test/agent/probe.test.ts',
  'test/agent/reporter-parts.test.ts',
  'test/bench/cluster.test.ts',
  'test/cluster/**/*.test.ts',
  'test/common/auth.test.ts',
  'test/common/grpc-hardening.test.ts',
  'test/common/lifecycle.test.ts',
  'test/common/security.test.ts',
  'test/common/shared-response.test.ts',
  'test/dashboard/browser.test.ts',
  'test/dashboard/verdicts.test.ts',
  'test/dashboard/frames.test.ts',
  'test/dashboard/scale.test.ts',
  'test/dashboard/sse.test.ts',
  'test/demo/http-load-sampler.test.ts',
  'test/forecast/lstm-persistence.test.ts',
  'test/fuzz/**/*.test.ts',
  'test/forecast/lstm-worker.test.ts',
  'test/forecast/scorer-lstm.test.ts',
  'test/forecast/serve.test.ts',
  'test/lps/**/*.test.ts',
  'test/rrm/dataplane.test.ts',
  'test/rrm/e2e.test.ts',
  'test/rrm/ext-proc.test.ts',
  'test/rrm/ext-proc-limits.test.ts',
  'test/rrm/ext-proc-listener.test.ts',
  'test/rrm/route-response.test.ts',
  'test/rrm/route-response-guard.test.ts',
  'test/rrm/standalone.test.ts',
  'test/serve/**/*.test.ts',
  'test/xds/grpc-lb.test.ts',
  'test/xds/grpc-xds-conformance.test.ts',
  'test/xds/sotw-protocol.test.ts',
];

const project = (
  name: string,
  include: string[],
  exclude: string[] = [],
): TestProjectInlineConfiguration => ({
  extends: true,
  test: { name, include, exclude: ['**/node_modules/**', ...exclude] },
});

export default defineConfig({
  test: {
    // Servers in tests bind real loopback ports; keep files isolated but few at once on 2 cores.
    pool: 'forks',
    maxWorkers: 2,
    // Generous: these bound a hung test, not its speed (a 2-core machine with four other
    // builds on it runs a test ten times slower). Waits inside tests have their own
    // deadlines, derived from the progress they measure.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      project('environment', ENVIRONMENT),
      project('integration', INTEGRATION),
      project('unit', ['test/**/*.test.ts'], [...ENVIRONMENT, ...INTEGRATION]),
    ],
  },
});

// The demo's options and defaults, apart from demo.ts so the CLI can show them without loading it.

export interface DemoOptions {
  grpcListen: string;
  httpListen: string;
  /** The RRM's extra ext_proc address (node:http2), which the data plane asks; '' for none. */
  extProcListen: string;
  /** Where the demo data plane (the stand-in for Envoy) listens. */
  proxyListen: string;
  dataDir: string;
  /** Requests per second the load generator sends through the data plane. */
  rate: number;
  /** Stop after this many seconds; 0 runs until SIGTERM. */
  durationSeconds: number;
  /** Write the live table (false: only the swap lines and the start banner). */
  table: boolean;
  /** Where the table and swap lines go. */
  out: NodeJS.WritableStream;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const DEMO_DEFAULTS: DemoOptions = {
  grpcListen: '127.0.0.1:18000',
  httpListen: '127.0.0.1:18080',
  extProcListen: '127.0.0.1:18001',
  proxyListen: '127.0.0.1:18081',
  dataDir: './.augur/demo',
  rate: 170,
  durationSeconds: 0,
  table: true,
  out: process.stdout,
  logLevel: 'warn',
};

import type { Registry } from 'prom-client';
import { formatHostPort } from '../common/address.js';
import { GrpcHost } from '../common/grpc-host.js';
import { HttpHost, createRegistry } from '../common/http-host.js';
import { createLogger, type Logger } from '../common/logger.js';
import { RemoteListSource } from '../rrm/remote-list-source.js';
import { Rrm } from '../rrm/rrm.js';
import type { AugurConfig } from './config.js';

export interface StandaloneRrm {
  grpcAddress: string;
  httpUrl: string;
  /** The extra ext_proc address (`rrm.extProcListen`), if configured. */
  extProcAddress: string | undefined;
  rrm: Rrm;
  source: RemoteListSource;
  registry: Registry;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * `augur rrm --lps ADDR`: the RRM in its own process, its lists kept by a
 * WatchPrioritizedEndpoints stream to a remote LPS, its own gRPC address (ext_proc,
 * ResponseRouter, health, reflection) and HTTP address (/metrics, /healthz).
 */
export async function startStandaloneRrm(opts: {
  config: AugurConfig;
  lps: string;
  logger?: Logger;
}): Promise<StandaloneRrm> {
  const { config } = opts;
  const logger = opts.logger ?? createLogger('augur-rrm', config.logLevel);
  const registry = createRegistry();
  const source = new RemoteListSource({
    address: opts.lps,
    reconnectInitial: config.rrm.lpsReconnectInitial,
    reconnectMax: config.rrm.lpsReconnectMax,
    logger,
  });
  const rrm = new Rrm({
    config,
    logger,
    registry,
    lists: source,
    monitoring: source,
    lpsDownSinceMs: () => source.downSinceMs(),
  });
  const grpc = new GrpcHost({
    listen: config.grpcListen,
  });
  rrm.register(grpc);
  const http = new HttpHost({
    listen: config.httpListen,
    registry,
    healthChecks: [
      () =>
        rrm.router.mode === 'standard-order'
          ? `LPS ${opts.lps} unreachable for more than ${config.rrm.lpsStandardOrderAfter} s; serving the standard order`
          : undefined,
    ],
  });
  source.start();
  const grpcAddress = formatHostPort(await grpc.start());
  await rrm.listenExtProc();
  const extProcAddress = rrm.extProcAddress;
  await http.start();
  logger.info(
    { grpc: grpcAddress, http: http.url, extProc: extProcAddress, lps: opts.lps },
    `augur rrm listening: ext_proc and ResponseRouter on gRPC ${grpcAddress}` +
      (extProcAddress ? `, ext_proc fast path on ${extProcAddress}` : '') +
      `, metrics on ${http.url}`,
  );
  let stopped: Promise<void> | undefined;
  return {
    grpcAddress,
    httpUrl: http.url,
    extProcAddress,
    rrm,
    source,
    registry,
    logger,
    stop: () =>
      (stopped ??= (async () => {
        source.stop();
        await rrm.stop();
        await grpc.stop();
        await http.stop();
      })()),
  };
}

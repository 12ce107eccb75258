import type { Registry } from 'prom-client';
import { formatHostPort } from '../common/address.js';
import { registerHardeningMetrics } from '../common/grpc-hardening.js';
import { GrpcHost } from '../common/grpc-host.js';
import { HttpHost, createRegistry } from '../common/http-host.js';
import { createLogger, type Logger } from '../common/logger.js';
import { checkPlaintext } from '../common/security.js';
import { clientUsesTls } from '../common/tls.js';
import { checkListenAddresses, clientSecurityOf, trustFrom } from '../common/trust.js';
import { parseHostPort } from '../common/address.js';
import { RemoteListSource } from '../rrm/remote-list-source.js';
import { extProcWorkerCount } from '../rrm/config.js';
import { Rrm } from '../rrm/rrm.js';
import type { AugurConfig } from './config.js';
import { ExtProcWorkers } from './ext-proc-workers.js';

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
  checkListenAddresses(config.security, {
    gRPC: config.grpcListen,
    HTTP: config.httpListen,
    ext_proc: config.rrm.extProcListen,
  });
  const clientSecurity = clientSecurityOf(config.security);
  checkPlaintext({
    what: 'the LPS connection',
    host: parseHostPort(opts.lps, '--lps').host,
    tls: clientUsesTls(clientSecurity),
    insecure: config.security.insecure,
    logger,
  });
  const registry = createRegistry();
  const trust = trustFrom(config.security, registry, logger);
  const source = new RemoteListSource({
    address: opts.lps,
    security: clientSecurity,
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
    trust,
  });
  const grpc = new GrpcHost({
    listen: config.grpcListen,
    tls: trust.tls,
    insecure: trust.insecure,
    authorizer: trust.authorizer,
    logger,
  });
  registerHardeningMetrics(registry);
  rrm.register(grpc);
  let workers: ExtProcWorkers | undefined;
  const http = new HttpHost({
    listen: config.httpListen,
    registry,
    metrics: () => (workers ? workers.metrics() : registry.metrics()),
    tls: trust.tls,
    insecure: trust.insecure,
    authorizer: trust.authorizer,
    allowedHosts: config.http.allowedHosts,
    logger,
    healthChecks: [
      () =>
        rrm.router.mode === 'standard-order'
          ? `LPS ${opts.lps} unreachable for more than ${config.rrm.lpsStandardOrderAfter} s; serving the standard order`
          : undefined,
    ],
  });
  source.start();
  const grpcAddr = await grpc.start();
  const grpcAddress = formatHostPort(grpcAddr);
  const workerCount = extProcWorkerCount(config.rrm);
  if (workerCount > 1) {
    // Each worker watches the LPS itself, as this process does.
    workers = new ExtProcWorkers({ count: workerCount, config, lps: opts.lps, logger, registry });
    try {
      await workers.start();
    } catch (err) {
      source.stop();
      await rrm.stop();
      await grpc.stop();
      throw err;
    }
  } else await rrm.listenExtProc();
  const extProcAddress = workers ? formatHostPort(workers.address) : rrm.extProcAddress;
  await http.start();
  // RouteResponse never delivers to this process's own addresses.
  rrm.addOwnAddress(grpcAddr);
  rrm.addOwnAddress(http.address);
  if (workers) rrm.addOwnAddress(workers.address);
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
        await workers?.stop();
        source.stop();
        await rrm.stop();
        await grpc.stop();
        await http.stop();
        trust.close();
      })()),
  };
}

import type { Registry } from 'prom-client';
import { formatHostPort } from '../common/address.js';
import { registerHardeningMetrics } from '../common/grpc-hardening.js';
import { DEFAULT_MAX_CONCURRENT_STREAMS, GrpcHost } from '../common/grpc-host.js';
import { HttpHost, createRegistry } from '../common/http-host.js';
import type { AttachedPart } from '../common/lifecycle.js';
import { createLogger, type Logger } from '../common/logger.js';
import { checkListenAddresses, trustFrom, workerPrincipal } from '../common/trust.js';
import { Lps } from '../lps/lps.js';
import type { SwapDetector } from '../lps/swaps.js';
import { extProcWorkerCount } from '../rrm/config.js';
import { attachRrm } from '../rrm/rrm.js';
import { attachForecast } from '../lps/forecast/attach.js';
import { attachXds } from '../xds/attach.js';
import { attachDashboard } from '../dashboard/attach.js';
import type { AugurConfig } from './config.js';
import { ExtProcWorkers, reachable } from './ext-proc-workers.js';

export interface ControlPlane {
  /** `host:port` of the one gRPC address that serves every service. */
  grpcAddress: string;
  /** `http://host:port` of /metrics, /healthz and the dashboard. */
  httpUrl: string;
  /** `host:port` of the extra ext_proc address (`rrm.extProcListen`), if configured. */
  extProcAddress: string | undefined;
  config: AugurConfig;
  lps: Lps;
  /** Cuts of endpoints' traffic shares and what followed them (shown on the dashboard). */
  swaps: SwapDetector;
  registry: Registry;
  logger: Logger;
  stop(): Promise<void>;
}

export interface StartControlPlaneOptions {
  config: AugurConfig;
  logger?: Logger;
}

/**
 * `augur serve`: the LPS plus every part that plugs into it, on one gRPC and
 * one HTTP address. This is the composition root: each part says what it needs
 * (its attach function's host interface) and is handed exactly that here; no
 * part imports this file. Parts are attached before the servers start
 * listening, so a client never sees a half-registered server.
 */
export async function startControlPlane({
  config,
  logger: given,
}: StartControlPlaneOptions): Promise<ControlPlane> {
  const logger = given ?? createLogger('augur', config.logLevel);
  checkListenAddresses(config.security, {
    gRPC: config.grpcListen,
    HTTP: config.httpListen,
    ext_proc: config.rrm.extProcListen,
  });
  const registry = createRegistry();
  // The ext_proc workers (rrm.extProcWorkers > 1) watch this process's lists with a token of this run.
  const [workersPrincipal, workerToken] = workerPrincipal();
  const trust = trustFrom(config.security, registry, logger, [workersPrincipal]);
  const grpc = new GrpcHost({
    listen: config.grpcListen,
    maxReceiveMessageLength: config.lps.maxMessageBytes,
    // Report streams (lps.maxStreamsPerConnection, refused by the LPS with a status) and room
    // for the connection's other streams (ext_proc, Watch, ADS) beside them.
    maxConcurrentStreams: Math.max(
      DEFAULT_MAX_CONCURRENT_STREAMS,
      config.lps.maxStreamsPerConnection + 1000,
    ),
    tls: trust.tls,
    insecure: trust.insecure,
    authorizer: trust.authorizer,
    logger,
  });
  // With several ext_proc workers, /metrics serves theirs too (they start once gRPC listens).
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
  });
  registerHardeningMetrics(registry);
  // Cluster mode: every part serves the lists the services' owners replicated through Redis,
  // and what agents send here is passed on to the owner of their service.
  // Loaded only then: single-process mode does not load the Redis client.
  const cluster = config.cluster.redis
    ? new (await import('../cluster/cluster.js')).Cluster({
        config: config.cluster,
        hysteresis: config.xds.hysteresis,
        registry,
        logger: logger.child({ part: 'cluster' }),
      })
    : undefined;
  const lps = new Lps({
    config: config.lps,
    dataDir: config.dataDir,
    registry,
    logger: logger.child({ part: 'lps' }),
    authorizer: trust.authorizer,
    servedLists: cluster?.replicated.lists,
    ingestTap: cluster?.tap,
  });
  lps.register(grpc);

  const parts: AttachedPart[] = [];
  // Parts attach here, in order (each returns what stops it).
  parts.push(
    await attachForecast({
      config: config.forecast,
      dataDir: config.dataDir,
      ringSize: config.lps.ringSize,
      lps,
      registry,
      logger,
    }),
  );
  const rrm = await attachRrm({ config, logger, registry, grpc, lps, trust });
  parts.push(rrm);
  parts.push(
    await attachXds({
      // In cluster mode each service's owner applies the hysteresis, for every replica alike.
      config: cluster ? { ...config.xds, hysteresis: 0 } : config.xds,
      lists: cluster ? cluster.replicated.xdsLists : lps.lists,
      grpc,
      logger,
      registry,
    }),
  );
  const dashboard = await attachDashboard({ config: config.dashboard, lps, http, logger });
  parts.push(dashboard);
  // One line per swap in the log, as `augur demo` prints one in the terminal.
  dashboard.swaps.on('swap', (s) =>
    logger.info(
      {
        swap: s.id,
        service: s.service,
        endpoint: s.endpointId,
        weightBefore: s.weightBefore,
        weightAfter: s.weightAfter,
        predictedUtilization: s.predictedUtilization,
        forecaster: s.forecaster,
      },
      `swap: traffic share of ${s.endpointId} cut from ${(s.weightBefore * 100).toFixed(0)}% to ${(s.weightAfter * 100).toFixed(0)}%`,
    ),
  );
  dashboard.swaps.on('swap-resolved', (s) =>
    logger.info(
      {
        swap: s.id,
        endpoint: s.endpointId,
        outcome: s.outcome,
        overloadAfterSeconds: s.overloadAfterSeconds,
        measuredPeak: s.measuredPeak,
        withoutCutPeak: s.withoutCutPeak,
      },
      `swap of ${s.endpointId} ${s.verdict}`,
    ),
  );

  const stopParts = async (): Promise<unknown[]> => {
    const errors: unknown[] = [];
    for (const part of [...parts].reverse())
      await part.stop().catch((e: unknown) => errors.push(e));
    return errors;
  };
  try {
    await lps.start();
  } catch (err) {
    // The data dir cannot be used: nothing may keep running (the ext_proc listener, the LSTM).
    await stopParts();
    trust.close();
    throw err;
  }
  if (cluster) {
    try {
      await cluster.start(lps, http);
    } catch (err) {
      await stopParts();
      await lps.stop().catch(() => undefined);
      trust.close();
      throw err;
    }
    // Stopped first: its leases are given back while this replica still serves.
    parts.push({ stop: () => cluster.stop() });
  }
  let grpcAddr;
  try {
    grpcAddr = await grpc.start();
  } catch (err) {
    // The address is taken: nothing may keep running.
    await stopParts();
    await lps.stop().catch(() => undefined);
    trust.close();
    throw err;
  }
  const workerCount = extProcWorkerCount(config.rrm);
  if (workerCount > 1) {
    workers = new ExtProcWorkers({
      count: workerCount,
      config,
      lps: formatHostPort(reachable(grpcAddr)),
      logger: logger.child({ part: 'rrm' }),
      registry,
      token: workerToken,
    });
    try {
      await workers.start();
    } catch (err) {
      await stopParts();
      await lps.stop().catch(() => undefined);
      await grpc.stop();
      trust.close();
      throw err;
    }
    parts.push({ stop: () => workers!.stop() });
  }
  try {
    await http.start();
  } catch (err) {
    await stopParts();
    await lps.stop().catch(() => undefined);
    await grpc.stop().catch(() => undefined);
    trust.close();
    throw err;
  }
  // RouteResponse never delivers to this process's own addresses.
  rrm.rrm.addOwnAddress(grpcAddr);
  rrm.rrm.addOwnAddress(http.address);
  if (workers) rrm.rrm.addOwnAddress(workers.address);
  const grpcAddress = formatHostPort(grpcAddr);
  const extProcAddress = workers ? formatHostPort(workers.address) : rrm.rrm.extProcAddress;
  logger.info(
    { grpc: grpcAddress, http: http.url, extProc: extProcAddress, dataDir: config.dataDir },
    `augur control plane listening: gRPC ${grpcAddress}, HTTP ${http.url}` +
      (extProcAddress ? `, ext_proc fast path ${extProcAddress}` : ''),
  );

  let stopped: Promise<void> | undefined;
  return {
    grpcAddress,
    httpUrl: http.url,
    extProcAddress,
    config,
    lps,
    swaps: dashboard.swaps,
    registry,
    logger,
    // Every step runs even if one fails (a state that cannot be saved must not keep the
    // servers open); the first failure is thrown at the end, so `augur serve` exits non-zero.
    stop: () =>
      (stopped ??= (async () => {
        const errors = await stopParts();
        for (const step of [() => lps.stop(), () => grpc.stop(), () => http.stop()]) {
          await step().catch((e: unknown) => errors.push(e));
        }
        trust.close();
        if (errors.length > 0) throw errors[0];
      })()),
  };
}

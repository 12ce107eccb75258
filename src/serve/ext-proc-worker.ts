import cluster from 'node:cluster';
import { createRegistry } from '../common/http-host.js';
import { createLogger } from '../common/logger.js';
import { clientSecurityOf, selfClientSecurity, trustFrom } from '../common/trust.js';
import { RemoteListSource } from '../rrm/remote-list-source.js';
import { Rrm } from '../rrm/rrm.js';
import {
  WORKER_ENV,
  type ExtProcWorkerSpec,
  type FromWorker,
  type ToWorker,
} from './ext-proc-workers.js';

/*
 * One worker process of the ext_proc fast path (see ext-proc-workers.ts): an RRM over a Watch
 * stream to the primary, listening on the port the workers share.
 */

if (!cluster.isWorker || !process.env[WORKER_ENV]) {
  process.stderr.write('ext-proc-worker runs only as a worker of augur serve or augur rrm\n');
  process.exit(2);
}

const spec = JSON.parse(process.env[WORKER_ENV]) as ExtProcWorkerSpec;
const { config } = spec;
const logger = createLogger('augur', config.logLevel).child({ part: 'rrm', worker: spec.index });
const registry = createRegistry();
registry.setDefaultLabels({ worker: String(spec.index) });
const send = (m: FromWorker): void => {
  if (process.connected) process.send!(m);
};

const source = new RemoteListSource({
  address: spec.lps,
  reconnectInitial: config.rrm.lpsReconnectInitial,
  reconnectMax: config.rrm.lpsReconnectMax,
  logger,
  security: spec.token
    ? selfClientSecurity(config.security, spec.token)
    : clientSecurityOf(config.security),
});
const trust = trustFrom(config.security, registry, logger);
const rrm = new Rrm({
  config,
  logger,
  registry,
  lists: source,
  monitoring: source,
  lpsDownSinceMs: () => source.downSinceMs(),
  trust,
});

let stopping: Promise<void> | undefined;
const stop = (): Promise<void> =>
  (stopping ??= (async () => {
    source.stop();
    await rrm.stop().catch((err: unknown) => logger.error({ err }, 'ext_proc worker stop failed'));
    process.exit(0);
  })());

// Signals are the primary's to act on (Ctrl-C reaches the whole process group): it tells each
// worker to stop. A worker whose primary is gone stops by itself.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
process.on('disconnect', () => void stop());
process.on('message', (m: ToWorker) => {
  if (m.type === 'augur:stop') void stop();
  else if (m.type === 'augur:metrics')
    void registry
      .getMetricsAsJSON()
      .then((json) => send({ type: 'augur:metrics', id: m.id, json }));
});

source.start();
rrm.listenExtProc().then(
  (address) => {
    if (address) send({ type: 'augur:listening', host: address.host, port: address.port });
    else send({ type: 'augur:failed', message: 'rrm.extProcListen is empty' });
  },
  (err: unknown) => {
    send({ type: 'augur:failed', message: err instanceof Error ? err.message : String(err) });
    void stop();
  },
);

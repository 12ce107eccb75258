/**
 * A grpc-js-xds channel of its own: `xds:///<service>` with its bootstrap in its channel options
 * (grpc-js-xds's per-channel bootstrap, `grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config`),
 * so one process can talk to two ADS servers and each arm run starts with an xDS client of its
 * own instead of the process-wide one GRPC_XDS_BOOTSTRAP would give; and connections of its own
 * (`grpc.use_local_subchannel_pool`). Which load-balancing policies it can use is the process's
 * business: whoever calls this has registered grpc-js-xds (and augur's policy, or not).
 */
import * as grpc from '@grpc/grpc-js';

export function xdsClient(ads: string, service: string, node: string): grpc.Client {
  const bootstrap = {
    xds_servers: [
      { server_uri: ads, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: node, locality: {} },
  };
  return new grpc.Client(`xds:///${service}`, grpc.credentials.createInsecure(), {
    'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap),
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** Waits until `client` can send; closes it and throws, naming its target, if it cannot in time. */
export async function whenReady(client: grpc.Client, withinMs: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + withinMs, (err) => (err ? reject(err) : resolve())),
    );
  } catch (err) {
    client.close();
    throw new Error(`${client.getChannel().getTarget()} not ready: ${(err as Error).message}`);
  }
}

import * as grpc from '@grpc/grpc-js';

/**
 * A real proxyless gRPC client of augur's xDS: @grpc/grpc-js-xds dialling `xds:///SERVICE`, with
 * a bootstrap naming `server` (plaintext) and `nodeId`. The bootstrap is process-global (read by
 * grpc-js-xds's one xDS client when the first xds:/// channel starts), so a test file makes its
 * clients against one server; vitest's forks pool gives each file its own process.
 */
export async function grpcXdsClient(
  server: string,
  nodeId: string,
  service: string,
): Promise<grpc.Client> {
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [
      { server_uri: server, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: nodeId, locality: {} },
  });
  (await import('@grpc/grpc-js-xds')).register();
  return new grpc.Client(`xds:///${service}`, grpc.credentials.createInsecure());
}

/**
 * Child process of bench/xds.ts: N raw ADS clients subscribed to one service's endpoints, each
 * ACKing every response and reporting when it arrived (absolute ms, comparable across processes
 * on one machine). Run apart from the server so client decoding does not slow the server down.
 */
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';
import { RawAdsClient } from '../src/xds/ads-client.js';
import { TypeUrl } from '../src/xds/types.js';

const [address, countArg, service] = process.argv.slice(2);
const count = Number(countArg);
const { root } = loadEnvoyProtos();
const now = (): number => performance.timeOrigin + performance.now();

const clients: RawAdsClient[] = [];
for (let i = 0; i < count; i++) {
  const c = new RawAdsClient(address!, root);
  clients.push(c);
  c.send({
    node: { id: `bench-${i}`, user_agent_name: 'gRPC Node Pure JS' },
    type_url: TypeUrl.ClusterLoadAssignment,
    resource_names: [service!],
  });
  void (async () => {
    for (;;) {
      let r;
      try {
        r = await c.next(600_000);
      } catch (err) {
        process.stderr.write(`client ${i}: ${(err as Error).message}\n`);
        return;
      }
      const at = now();
      if (process.env.XDS_BENCH_DEBUG) process.stderr.write(`client ${i} got ${r.version_info}\n`);
      c.send({
        type_url: r.type_url,
        resource_names: [service!],
        version_info: r.version_info,
        response_nonce: r.nonce,
      });
      process.send!({
        client: i,
        at,
        version: r.version_info,
        bytes: r.resources.reduce((s, x) => s + x.value.length, 0),
      });
    }
  })();
}
process.send!({ ready: true });
process.on('message', (m: { stop?: boolean }) => {
  if (m.stop) {
    for (const c of clients) c.close();
    process.exit(0);
  }
});

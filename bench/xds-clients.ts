/**
 * Child process of bench/xds.ts: ADS clients `first`..`first+count-1`, subscribed to one
 * service's endpoints, each on an HTTP/2 connection of its own (as each Envoy or gRPC process is)
 * with the default HTTP/2 windows (64 KiB, grpc-js's and the smallest of the common xDS clients'),
 * ACKing every response and reporting when it arrived (absolute ms, comparable across processes on
 * one machine).
 *
 * The clients speak gRPC on `node:http2` directly (a gRPC message is a 5-byte prefix and the
 * protobuf bytes) and read only a response's version, type and nonce, which they need to ACK. A
 * grpc-js client with protobufjs decoding costs about 0.6 ms of CPU per response; 100 of them on
 * this 2-core machine took more CPU than the server and put their own queue into the figures. Real
 * clients are processes on other machines. A response counts as received when its last byte has
 * arrived.
 */
import { connect, constants, type ClientHttp2Stream } from 'node:http2';
import protobuf from 'protobufjs';
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';
import { frameMessage, MessageReader } from '../src/common/grpc-framing.js';
import { ADS_METHOD_PATH, type DiscoveryRequestMessage } from '../src/xds/sotw-server.js';
import { TypeUrl } from '../src/xds/types.js';

const [address, firstArg, countArg, service] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const { root } = loadEnvoyProtos();
const requestType = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const now = (): number => performance.timeOrigin + performance.now();

/** version_info (1), type_url (4) and nonce (5) of a DiscoveryResponse; resources are skipped. */
function head(bytes: Uint8Array): { version: string; typeUrl: string; nonce: string } {
  const r = protobuf.Reader.create(bytes);
  const out = { version: '', typeUrl: '', nonce: '' };
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === 1) out.version = r.string();
    else if (field === 4) out.typeUrl = r.string();
    else if (field === 5) out.nonce = r.string();
    else r.skipType(tag & 7);
  }
  return out;
}

/** One gRPC message: a 0 (not compressed) byte, the length, the protobuf bytes. */
function frame(m: Partial<DiscoveryRequestMessage>): Buffer {
  return frameMessage(requestType.encode(requestType.fromObject(m)).finish());
}

/** Splits a gRPC response stream into messages. */
function onMessages(stream: ClientHttp2Stream, each: (message: Buffer) => void): void {
  const reader = new MessageReader(64 << 20);
  stream.on('data', (chunk: Buffer) => {
    for (const m of reader.push(chunk)) each(m);
  });
}

/** Arrivals go to the parent in batches, one IPC message per turn of the event loop. */
type Arrival = { client: number; at: number; version: string; bytes: number };
let outbox: Arrival[] = [];
function report(a: Arrival): void {
  if (outbox.length === 0)
    setImmediate(() => {
      process.send!({ arrivals: outbox });
      outbox = [];
    });
  outbox.push(a);
}

const sessions: Array<{ close(): void }> = [];
for (let i = first; i < first + count; i++) {
  const session = connect(`http://${address}`);
  sessions.push(session);
  session.on('error', (err) => process.stderr.write(`client ${i}: ${err.message}\n`));
  const stream = session.request(
    {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: ADS_METHOD_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    },
    { endStream: false },
  );
  stream.on('error', (err) => process.stderr.write(`client ${i}: ${err.message}\n`));
  stream.write(
    frame({
      node: { id: `bench-${i}`, user_agent_name: 'gRPC Node Pure JS' },
      type_url: TypeUrl.ClusterLoadAssignment,
      resource_names: [service!],
    }),
  );
  onMessages(stream, (bytes) => {
    const at = now();
    const r = head(bytes);
    stream.write(
      frame({
        type_url: r.typeUrl,
        resource_names: [service!],
        version_info: r.version,
        response_nonce: r.nonce,
      }),
    );
    report({ client: i, at, version: r.version, bytes: bytes.length });
  });
}
const startupCpu = process.cpuUsage();
process.send!({ ready: true });
process.on('message', (m: { stop?: boolean }) => {
  if (m.stop) {
    if (process.env.XDS_BENCH_SPREAD) {
      const c = process.cpuUsage(startupCpu);
      process.stderr.write(
        `clients ${first}-${first + count - 1}: ${((c.user + c.system) / 1000).toFixed(0)} ms CPU\n`,
      );
    }
    for (const s of sessions) s.close();
    process.exit(0);
  }
});

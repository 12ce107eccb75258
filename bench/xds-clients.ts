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
 * arrived; its resources are stepped over as they arrive, never copied (HeadReader).
 */
import { createHash, type Hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, constants } from 'node:http2';
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';
import { frameMessage } from '../src/common/grpc-framing.js';
import { ADS_METHOD_PATH } from '../src/xds/sotw-server.js';
import { TypeUrl } from '../src/xds/types.js';

// `services`: one name, or several separated by commas (client first+k subscribes to the k-th
// modulo their number; bench/cluster.ts).
const [address, firstArg, countArg, services] = process.argv.slice(2);
const serviceNames = services!.split(',');
const first = Number(firstArg);
const count = Number(countArg);
const { root } = loadEnvoyProtos();
const requestType = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const now = (): number => performance.timeOrigin + performance.now();

interface Head {
  version: string;
  typeUrl: string;
  nonce: string;
  /** Bytes of the message (without the gRPC prefix). */
  bytes: number;
  /**
   * With XDS_BENCH_HASH=1 (bench/cluster.ts), a hash of the resources' bytes: it changes when the
   * subscribed resource's content does, not when another service's push changes the version.
   */
  hash?: string;
}

const HASHING = process.env.XDS_BENCH_HASH === '1';

/**
 * Reads DiscoveryResponses off a gRPC stream as their bytes arrive, keeping only version_info
 * (1), type_url (4) and nonce (5) and stepping over the resources (2) without copying them: a
 * 51-529 KiB response per client per push, concatenated, made these processes' garbage
 * collector run often enough to show in the figures. Protobuf allows fields in any order; this
 * reads them in whatever order they come.
 */
class HeadReader {
  private chunks: Buffer[] = [];
  private offset = 0; // into chunks[0]
  private have = 0;
  /** Bytes of the current message not read yet, or -1 between messages. */
  private left = -1;
  private head: Head = { version: '', typeUrl: '', nonce: '', bytes: 0 };
  /** Bytes of a skipped field still to come. */
  private skipping = 0;
  /** The resources' bytes of the current message, as they are stepped over (XDS_BENCH_HASH). */
  private hasher: Hash | undefined;

  push(chunk: Buffer): Head[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Head[] = [];
    for (;;) {
      if (this.left < 0) {
        if (this.have < 5) return out;
        const prefix = this.take(5);
        this.left = prefix.readUInt32BE(1);
        this.head = { version: '', typeUrl: '', nonce: '', bytes: this.left };
        if (HASHING) this.hasher = createHash('md5');
      }
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, this.have);
        if (this.hasher) this.feed(this.hasher, n);
        this.drop(n);
        this.skipping -= n;
        this.left -= n;
        if (this.skipping > 0) return out;
      }
      if (this.left === 0) {
        if (this.hasher) this.head.hash = this.hasher.digest('base64');
        this.hasher = undefined;
        out.push(this.head);
        this.left = -1;
        continue;
      }
      // A field header (tag, length): at most 1 + 5 bytes for these fields.
      if (this.have < Math.min(6, this.left)) return out;
      const [tag, tagSize] = this.peekVarint(0);
      if ((tag & 7) !== 2) throw new Error(`unexpected wire type ${tag & 7}`);
      const [length, lengthSize] = this.peekVarint(tagSize);
      const header = tagSize + lengthSize;
      const field = tag >>> 3;
      if (field === 1 || field === 4 || field === 5) {
        if (this.have < header + length) return out; // a short string split across chunks
        this.drop(header);
        const text = this.take(length).toString('utf8');
        if (field === 1) this.head.version = text;
        else if (field === 4) this.head.typeUrl = text;
        else this.head.nonce = text;
        this.left -= header + length;
      } else {
        this.drop(header);
        this.left -= header;
        this.skipping = length;
      }
    }
  }

  /** Feeds the next n bytes to a hash without consuming them (views of the chunks, no copy). */
  private feed(hash: Hash, n: number): void {
    let k = 0;
    let from = this.offset;
    while (n > 0) {
      const c = this.chunks[k++]!;
      const m = Math.min(n, c.length - from);
      hash.update(c.subarray(from, from + m));
      n -= m;
      from = 0;
    }
  }

  /** The varint at `at` bytes from the read position, and its size; nothing is consumed. */
  private peekVarint(at: number): [number, number] {
    let result = 0;
    for (let size = 1; ; size++) {
      const b = this.byteAt(at + size - 1);
      result += (b & 0x7f) * 2 ** (7 * (size - 1));
      if (b < 0x80) return [result, size];
    }
  }

  private byteAt(i: number): number {
    let k = 0;
    let idx = this.offset + i;
    while (idx >= this.chunks[k]!.length) {
      idx -= this.chunks[k]!.length;
      k++;
    }
    return this.chunks[k]![idx]!;
  }

  /** The next n bytes (a view when they lie in one chunk; n is small here). */
  private take(n: number): Buffer {
    const c = this.chunks[0]!;
    let out: Buffer;
    if (c.length - this.offset >= n) {
      out = c.subarray(this.offset, this.offset + n);
    } else {
      out = Buffer.alloc(n);
      for (let i = 0; i < n; i++) out[i] = this.byteAt(i);
    }
    this.drop(n);
    return out;
  }

  private drop(n: number): void {
    this.have -= n;
    while (n > 0) {
      const rest = this.chunks[0]!.length - this.offset;
      if (n < rest) {
        this.offset += n;
        return;
      }
      n -= rest;
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

/** One gRPC message: a 0 (not compressed) byte, the length, the protobuf bytes. */
/**
 * A DiscoveryRequest (protobufjs's object form, snake_case), encoded with protobufjs: these
 * clients are an implementation of their own, apart from the server's.
 */
interface Request {
  node?: { id: string; user_agent_name: string };
  type_url: string;
  resource_names: string[];
  version_info?: string;
  response_nonce?: string;
}

function frame(m: Request): Buffer {
  return frameMessage(requestType.encode(requestType.fromObject(m)).finish());
}

/** Arrivals go to the parent in batches, one IPC message per turn of the event loop. */
type Arrival = { client: number; at: number; version: string; bytes: number; hash?: string };
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
  const service = serviceNames[(i - first) % serviceNames.length]!;
  // XDS_BENCH_TLS=ca,cert,key: mutual TLS (bench/security.ts), as Envoy's TLS transport socket.
  const tlsFiles = process.env.XDS_BENCH_TLS?.split(',');
  const session = tlsFiles
    ? connect(`https://${address}`, {
        ca: readFileSync(tlsFiles[0]!),
        cert: readFileSync(tlsFiles[1]!),
        key: readFileSync(tlsFiles[2]!),
        servername: 'localhost',
      })
    : connect(`http://${address}`);
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
      resource_names: [service],
    }),
  );
  const reader = new HeadReader();
  stream.on('data', (chunk: Buffer) => {
    for (const r of reader.push(chunk)) {
      const at = now();
      stream.write(
        frame({
          type_url: r.typeUrl,
          resource_names: [service],
          version_info: r.version,
          response_nonce: r.nonce,
        }),
      );
      report({ client: i, at, version: r.version, bytes: r.bytes, hash: r.hash });
    }
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

import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';

/** What the server answers for a name: an IPv4 address (with a TTL), or a failure code. */
export type DnsAnswer = { ipv4: string; ttl: number } | { rcode: 'SERVFAIL' | 'NXDOMAIN' };

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;
const TYPE_A = 1;

/**
 * A real DNS server on 127.0.0.1 (UDP), answering A queries from a table the test changes while it
 * runs: enough of RFC 1035 for a stub resolver (c-ares, which node:dns's Resolver uses) to query it.
 * Every query is recorded with the time it arrived and what it was answered.
 */
export class TestDnsServer {
  private readonly socket: Socket = createSocket('udp4');
  private readonly answers = new Map<string, DnsAnswer>();
  readonly queries: Array<{ name: string; type: number; atMs: number; answered: string }> = [];

  static async start(): Promise<TestDnsServer> {
    const server = new TestDnsServer();
    server.socket.on('message', (msg, from) => {
      const reply = server.answer(msg);
      if (reply) server.socket.send(reply, from.port, from.address);
    });
    await new Promise<void>((resolve) => server.socket.bind(0, '127.0.0.1', resolve));
    return server;
  }

  /** `127.0.0.1:port`, for `lps.hostnames.servers`. */
  get address(): string {
    return `127.0.0.1:${(this.socket.address() as AddressInfo).port}`;
  }

  set(name: string, answer: DnsAnswer): void {
    this.answers.set(name.toLowerCase(), answer);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private answer(query: Buffer): Buffer | undefined {
    if (query.length < 12) return undefined;
    let pos = 12;
    const labels: string[] = [];
    for (;;) {
      const len = query[pos];
      if (len === undefined) return undefined;
      pos++;
      if (len === 0) break;
      labels.push(query.toString('ascii', pos, pos + len));
      pos += len;
    }
    if (pos + 4 > query.length) return undefined;
    const type = query.readUInt16BE(pos);
    const question = query.subarray(12, pos + 4);
    const name = labels.join('.').toLowerCase();
    const found = this.answers.get(name) ?? { rcode: 'NXDOMAIN' };
    const withAddress = 'ipv4' in found && type === TYPE_A;
    const rcode = 'rcode' in found ? RCODE[found.rcode] : RCODE.NOERROR;
    this.queries.push({
      name,
      type,
      atMs: Date.now(),
      answered: withAddress ? found.ipv4 : 'rcode' in found ? found.rcode : 'no data',
    });
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0); // id
    // QR, the query's RD, AA, RA, and the rcode.
    header.writeUInt16BE(0x8000 | 0x0400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(withAddress ? 1 : 0, 6);
    if (!withAddress) return Buffer.concat([header, question]);
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    record.writeUInt16BE(TYPE_A, 2);
    record.writeUInt16BE(1, 4); // class IN
    record.writeUInt32BE(found.ttl, 6);
    record.writeUInt16BE(4, 10);
    found.ipv4.split('.').forEach((octet, i) => record.writeUInt8(Number(octet), 12 + i));
    return Buffer.concat([header, question, record]);
  }
}

/**
 * Envoy's gRPC access log (`envoy.access_loggers.http_grpc`, service
 * envoy.service.accesslog.v3.AccessLogService) as the other way the RRM could learn of
 * responses: what one entry of a routed request weighs, and what a batch costs to read. Used by
 * bench:rrm (the cost) and bench:rrm-picker (the delay: how many entries fill Envoy's buffer).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { loadEnvoyProtos } from '../src/common/envoy-protos.js';

let root: protobuf.Root | undefined;

function alsRoot(): protobuf.Root {
  if (root) return root;
  const { includeDirs } = loadEnvoyProtos();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  r.loadSync(['envoy/service/accesslog/v3/als.proto'], { keepCase: true });
  r.resolveAll();
  return (root = r);
}

/** Envoy's default `buffer_size_bytes` of the gRPC access logger. */
export const ALS_BUFFER_BYTES = 16_384;

const duration = (ms: number) => ({ seconds: 0, nanos: Math.round(ms * 1e6) });
const address = (ip: string, port: number) => ({
  socket_address: { address: ip, port_value: port },
});

/** One HTTPAccessLogEntry as Envoy's http_grpc logger fills it for a routed API request. */
export function httpAccessLogEntry(i: number): Record<string, unknown> {
  return {
    common_properties: {
      downstream_remote_address: address('203.0.113.7', 40000 + (i % 20000)),
      downstream_local_address: address('10.1.0.5', 10000),
      start_time: { seconds: 1796000000 + i, nanos: 123456789 },
      time_to_last_rx_byte: duration(0.05),
      time_to_first_upstream_tx_byte: duration(0.4),
      time_to_last_upstream_tx_byte: duration(0.4),
      time_to_first_upstream_rx_byte: duration(21.3),
      time_to_last_upstream_rx_byte: duration(21.9),
      time_to_first_downstream_tx_byte: duration(21.4),
      time_to_last_downstream_tx_byte: duration(22.0),
      upstream_remote_address: address(`10.0.0.${(i % 250) + 1}`, 8080),
      upstream_local_address: address('10.1.0.5', 50000 + (i % 10000)),
      upstream_cluster: 'shop',
      route_name: 'shop-route',
    },
    protocol_version: 'HTTP11',
    request: {
      request_method: 'GET',
      scheme: 'https',
      authority: 'shop.example.com',
      path: '/api/v1/cart?session=9f2c',
      user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
      request_id: `5b0c9d62-5c6e-4e0e-9f9e-${String(i).padStart(12, '0')}`,
      request_headers_bytes: 412,
    },
    response: {
      response_code: { value: 200 },
      response_headers_bytes: 188,
      response_body_bytes: 512,
      response_code_details: 'via_upstream',
    },
  };
}

/** A StreamAccessLogsMessage carrying `entries` HTTP entries, encoded. */
export function accessLogBatch(entries: number): Uint8Array {
  const type = alsRoot().lookupType('envoy.service.accesslog.v3.StreamAccessLogsMessage');
  const message = {
    http_logs: { log_entry: Array.from({ length: entries }, (_, i) => httpAccessLogEntry(i)) },
  };
  return type.encode(type.fromObject(message)).finish();
}

/** Bytes of one entry in a batch (the batch's size over its entries). */
export function accessLogEntryBytes(): number {
  return accessLogBatch(100).length / 100;
}

/** Entries that fill the logger's default buffer: it sends then, if its interval has not run out. */
export function entriesPerBuffer(): number {
  return Math.floor(ALS_BUFFER_BYTES / accessLogEntryBytes());
}

/**
 * Reads a batch as an RRM would: decodes it and takes each entry's upstream address and time to
 * the last upstream byte. Returns how many entries it read.
 */
export function readAccessLogBatch(bytes: Uint8Array): number {
  const type = alsRoot().lookupType('envoy.service.accesslog.v3.StreamAccessLogsMessage');
  const message = type.decode(bytes) as unknown as {
    http_logs?: {
      log_entry: Array<{
        common_properties?: {
          upstream_remote_address?: { socket_address?: { address: string; port_value: number } };
          time_to_last_upstream_rx_byte?: { seconds: number; nanos: number };
        };
      }>;
    };
  };
  let n = 0;
  for (const e of message.http_logs?.log_entry ?? []) {
    const a = e.common_properties?.upstream_remote_address?.socket_address;
    const t = e.common_properties?.time_to_last_upstream_rx_byte;
    if (a && t) n++;
  }
  return n;
}

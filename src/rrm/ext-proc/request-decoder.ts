import protobuf from 'protobufjs';
import type {
  HeaderValueMessage,
  HttpHeadersMessage,
  ProcessingPhase,
  ProcessingRequestMessage,
  StructMessage,
  ValueMessage,
} from './messages.js';

/*
 * A hand-written decoder of envoy.service.ext_proc.v3.ProcessingRequest for the RRM's request
 * path, beside protobufjs's (`decodeProcessingRequestGeneric`, the reference it is tested
 * against). It decodes what the RRM reads and skips the rest on the wire:
 * - which phase is set (fields 2-7 of the `request` oneof; the last one on the wire wins);
 * - request and response headers (field 2 or 3 → HttpHeaders.headers (1) → HeaderMap.headers
 *   (1) → HeaderValue key (1), value (2), raw_value (3, a view of the input, not a copy)) and
 *   end_of_stream (3);
 * - attributes (field 9, map<string, google.protobuf.Struct>), with each Struct's string, number,
 *   bool and nested struct values (lists are skipped).
 * It is about four times as fast as protobufjs's decoder on a 12-header request (one allocation
 * per header instead of several), which is a fifth of the RRM's own work per request.
 */

const PHASES: Record<number, ProcessingPhase> = {
  2: 'request_headers',
  3: 'response_headers',
  4: 'request_body',
  5: 'response_body',
  6: 'request_trailers',
  7: 'response_trailers',
};

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;

/**
 * protobufjs's reader (varints, skipping, bounds), with the ends of length-delimited fields
 * checked against their message and a string decoder for the short ASCII strings this reads.
 */
class Reader extends protobuf.BufferReader {
  declare buf: Buffer;

  /** The end of a length-delimited field starting here, checked against `limit`. */
  end(limit: number): number {
    const end = this.uint32() + this.pos;
    if (end > limit) throw new Error('truncated ProcessingRequest (field runs past its message)');
    return end;
  }

  /** A UTF-8 string; short ASCII ones (the rule here) are decoded without leaving JavaScript. */
  text(end: number): string {
    const buf = this.buf;
    const start = this.pos;
    const n = end - start;
    this.pos = end;
    if (n > 48) return buf.toString('utf8', start, end);
    const codes = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const c = buf[start + i]!;
      if (c >= 0x80) return buf.toString('utf8', start, end);
      codes[i] = c;
    }
    return String.fromCharCode(...codes);
  }

  skipField(wireType: number, limit: number): void {
    this.skipType(wireType);
    if (this.pos > limit) throw new Error('truncated ProcessingRequest');
  }
}

export function decodeProcessingRequestFast(bytes: Uint8Array): ProcessingRequestMessage {
  try {
    return decode(bytes);
  } catch (err) {
    // protobufjs's reader says "index out of range"; say what was being read.
    if (err instanceof RangeError) throw new Error(`truncated ProcessingRequest (${err.message})`);
    throw err;
  }
}

function decode(bytes: Uint8Array): ProcessingRequestMessage {
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(buf);
  // Maps are objects without a prototype: a key such as "__proto__" is then just a key.
  const out: ProcessingRequestMessage = {
    attributes: Object.create(null) as Record<string, StructMessage>,
  };
  const limit = buf.length;
  while (r.pos < limit) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wireType = tag & 7;
    const phase = PHASES[field];
    if (phase && wireType === LENGTH_DELIMITED) {
      const end = r.end(limit);
      out.request = phase;
      out.request_headers = field === 2 ? httpHeaders(r, end) : undefined;
      out.response_headers = field === 3 ? httpHeaders(r, end) : undefined;
      r.pos = end;
    } else if (field === 9 && wireType === LENGTH_DELIMITED) {
      const end = r.end(limit);
      let key = '';
      let value: StructMessage = { fields: Object.create(null) as Record<string, ValueMessage> };
      while (r.pos < end) {
        const t = r.uint32();
        if (t === ((1 << 3) | LENGTH_DELIMITED)) key = r.text(r.end(end));
        else if (t === ((2 << 3) | LENGTH_DELIMITED)) value = struct(r, r.end(end));
        else r.skipField(t & 7, end);
      }
      out.attributes[key] = value;
      r.pos = end;
    } else {
      r.skipField(wireType, limit);
    }
  }
  return out;
}

function httpHeaders(r: Reader, end: number): HttpHeadersMessage {
  const out: HttpHeadersMessage = { headers: null, end_of_stream: false };
  while (r.pos < end) {
    const t = r.uint32();
    if (t === ((1 << 3) | LENGTH_DELIMITED)) {
      const mapEnd = r.end(end);
      const headers = out.headers?.headers ?? [];
      while (r.pos < mapEnd) {
        const u = r.uint32();
        if (u === ((1 << 3) | LENGTH_DELIMITED)) headers.push(headerValue(r, r.end(mapEnd)));
        else r.skipField(u & 7, mapEnd);
      }
      out.headers = { headers };
    } else if (t === ((3 << 3) | VARINT)) {
      out.end_of_stream = r.uint32() !== 0;
    } else {
      r.skipField(t & 7, end);
    }
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/**
 * A HeaderValue whose key is decoded and whose value and raw_value are read from the input only
 * when asked for: the RRM reads the values of its own few headers and nothing of the others.
 */
class LazyHeaderValue implements HeaderValueMessage {
  key = '';
  private valueStart = -1;
  private valueEnd = -1;
  private rawStart = -1;
  private rawEnd = -1;

  constructor(private readonly buf: Buffer) {}

  setValue(start: number, end: number): void {
    this.valueStart = start;
    this.valueEnd = end;
  }

  setRaw(start: number, end: number): void {
    this.rawStart = start;
    this.rawEnd = end;
  }

  get value(): string {
    return this.valueStart < 0 ? '' : this.buf.toString('utf8', this.valueStart, this.valueEnd);
  }

  get raw_value(): Uint8Array {
    return this.rawStart < 0 ? EMPTY : this.buf.subarray(this.rawStart, this.rawEnd);
  }

  toJSON(): { key: string; value: string; raw_value: Uint8Array } {
    return { key: this.key, value: this.value, raw_value: this.raw_value };
  }
}

function headerValue(r: Reader, end: number): HeaderValueMessage {
  const out = new LazyHeaderValue(r.buf);
  while (r.pos < end) {
    const t = r.uint32();
    if (t === ((1 << 3) | LENGTH_DELIMITED)) out.key = r.text(r.end(end));
    else if (t === ((2 << 3) | LENGTH_DELIMITED)) {
      const e = r.end(end);
      out.setValue(r.pos, e);
      r.pos = e;
    } else if (t === ((3 << 3) | LENGTH_DELIMITED)) {
      const e = r.end(end);
      out.setRaw(r.pos, e);
      r.pos = e;
    } else r.skipField(t & 7, end);
  }
  return out;
}

/** google.protobuf.Struct { map<string, Value> fields = 1 }. */
function struct(r: Reader, end: number): StructMessage {
  const fields = Object.create(null) as Record<string, ValueMessage>;
  while (r.pos < end) {
    const t = r.uint32();
    if (t !== ((1 << 3) | LENGTH_DELIMITED)) {
      r.skipField(t & 7, end);
      continue;
    }
    const entryEnd = r.end(end);
    let key = '';
    let value: ValueMessage = {};
    while (r.pos < entryEnd) {
      const u = r.uint32();
      if (u === ((1 << 3) | LENGTH_DELIMITED)) key = r.text(r.end(entryEnd));
      else if (u === ((2 << 3) | LENGTH_DELIMITED)) value = valueOf(r, r.end(entryEnd));
      else r.skipField(u & 7, entryEnd);
    }
    fields[key] = value;
  }
  r.pos = end;
  return { fields };
}

/** google.protobuf.Value: string (3), number (2), bool (4), struct (5); null and lists skipped. */
function valueOf(r: Reader, end: number): ValueMessage {
  const out: ValueMessage = {};
  while (r.pos < end) {
    const t = r.uint32();
    if (t === ((3 << 3) | LENGTH_DELIMITED)) out.stringValue = r.text(r.end(end));
    else if (t === ((5 << 3) | LENGTH_DELIMITED)) out.structValue = struct(r, r.end(end));
    else if (t === ((2 << 3) | FIXED64)) out.numberValue = r.double();
    else if (t === ((4 << 3) | VARINT)) out.boolValue = r.bool();
    else r.skipField(t & 7, end);
  }
  r.pos = end;
  return out;
}

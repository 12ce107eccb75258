import { crc32 } from 'node:zlib';
import { StateRecord } from '../../gen/augur/storage/v1/lps_state.js';

/*
 * The framing of the LPS's state files: each StateRecord is
 *   u32 little-endian length of the record | u32 little-endian CRC-32 of the record | record
 * A crash in the middle of a write leaves a torn last frame, and a damaged disk a frame whose
 * checksum fails: the reader stops at the first such frame of a file and says how much it left.
 */

const FRAME_HEAD = 8;
/** No record comes near this; a larger length is damage, not data. */
const MAX_RECORD_BYTES = 64 << 20;

/** One record, framed, ready to append to a file. */
export function frame(record: StateRecord): Buffer {
  const body = StateRecord.encode(record).finish();
  const out = Buffer.allocUnsafe(FRAME_HEAD + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32(body), 4);
  out.set(body, FRAME_HEAD);
  return out;
}

export interface ReadFrames {
  records: StateRecord[];
  /** Bytes of whole, checked frames from the start of the file. */
  goodBytes: number;
  /** Why reading stopped before the end of the file; undefined if it reached the end. */
  stoppedBecause: string | undefined;
}

/** Every whole, checked record of a file, up to the first torn or damaged frame. */
export function readFrames(bytes: Uint8Array): ReadFrames {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: StateRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf.length - pos < FRAME_HEAD) {
      return { records, goodBytes: pos, stoppedBecause: 'the last frame is torn (a cut write)' };
    }
    const length = buf.readUInt32LE(pos);
    const checksum = buf.readUInt32LE(pos + 4);
    if (length > MAX_RECORD_BYTES) {
      return { records, goodBytes: pos, stoppedBecause: `a frame claims ${length} bytes` };
    }
    if (buf.length - pos - FRAME_HEAD < length) {
      return { records, goodBytes: pos, stoppedBecause: 'the last frame is torn (a cut write)' };
    }
    const body = buf.subarray(pos + FRAME_HEAD, pos + FRAME_HEAD + length);
    if (crc32(body) !== checksum) {
      return { records, goodBytes: pos, stoppedBecause: 'a frame fails its checksum' };
    }
    try {
      records.push(StateRecord.decode(body));
    } catch (err) {
      return {
        records,
        goodBytes: pos,
        stoppedBecause: `a frame does not decode: ${(err as Error).message}`,
      };
    }
    pos += FRAME_HEAD + length;
  }
  return { records, goodBytes: pos, stoppedBecause: undefined };
}

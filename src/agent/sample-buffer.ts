import type { EndpointData } from '../gen/augur/v1/telemetry.js';

/**
 * The samples the LPS has not acknowledged yet, oldest first, in sequence
 * order. Bounded: pushing into a full buffer drops the oldest sample (the one
 * least worth replaying) and counts it. A fixed-size ring, so steady-state
 * operation allocates nothing beyond the samples themselves.
 */
export class SampleBuffer {
  private readonly slots: Array<EndpointData | undefined>;
  private head = 0;
  private count = 0;
  /** Samples pushed out unacknowledged because the buffer was full. */
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`buffer capacity must be an integer >= 1, got ${capacity}`);
    }
    this.slots = new Array<EndpointData | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Appends a sample (its sequence must exceed every buffered one); returns true if the oldest was dropped. */
  push(sample: EndpointData): boolean {
    let droppedOne = false;
    if (this.count === this.capacity) {
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      this.dropped++;
      droppedOne = true;
    }
    this.slots[(this.head + this.count) % this.capacity] = sample;
    this.count++;
    return droppedOne;
  }

  /** Forgets every sample with sequence <= `sequence` (they are acknowledged). */
  ackThrough(sequence: number): number {
    let removed = 0;
    while (this.count > 0 && this.slots[this.head]!.sequence <= sequence) {
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      removed++;
    }
    return removed;
  }

  /** Forgets one sample, for one the LPS rejected (replaying it would be rejected again). */
  remove(sequence: number): boolean {
    for (let i = 0; i < this.count; i++) {
      const at = (this.head + i) % this.capacity;
      if (this.slots[at]!.sequence !== sequence) continue;
      // Shift the newer samples back by one to close the gap.
      for (let j = i; j < this.count - 1; j++) {
        this.slots[(this.head + j) % this.capacity] =
          this.slots[(this.head + j + 1) % this.capacity];
      }
      this.slots[(this.head + this.count - 1) % this.capacity] = undefined;
      this.count--;
      return true;
    }
    return false;
  }

  /** The buffered samples, oldest first, in chunks of at most `chunk`. */
  *chunks(chunk: number): Generator<EndpointData[]> {
    for (let i = 0; i < this.count; i += chunk) {
      const out: EndpointData[] = [];
      for (let j = i; j < Math.min(this.count, i + chunk); j++)
        out.push(this.slots[(this.head + j) % this.capacity]!);
      yield out;
    }
  }

  /** Sequences of the buffered samples, oldest first (for tests and logs). */
  sequences(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.count; i++)
      out.push(this.slots[(this.head + i) % this.capacity]!.sequence);
    return out;
  }
}

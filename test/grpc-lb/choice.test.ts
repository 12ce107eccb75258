import { describe, expect, it } from 'vitest';
import {
  ExpectedDelayChooser,
  pickerWeights,
  smoothedLatency,
} from '../../src/common/expected-delay.js';
import { AugurBalancerConfig } from '../../src/grpc-lb/balancer.js';
import { EndpointBook, WeightedCandidates, xdsWeights } from '../../src/grpc-lb/state.js';

/** A seeded uniform generator (mulberry32), so draws are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Candidates over fresh stats, keyed by index. */
function candidates(weights: number[], book = new EndpointBook()) {
  const keys = weights.map((_, i) => `e${i}`);
  return new WeightedCandidates(
    keys,
    keys.map((k) => book.of(k)),
    weights,
  );
}

describe('the expected-delay rule (src/common/expected-delay.ts)', () => {
  const chooser = new ExpectedDelayChooser({ sampleSize: 16 });

  it('prefers the endpoint with the lower expected delay: fewer in flight at equal weight and latency', () => {
    const c = candidates([1, 1, 1]);
    c.loads[0]!.inFlight = 3;
    c.loads[1]!.inFlight = 1;
    c.loads[2]!.inFlight = 2;
    expect(chooser.pick(c)).toBe(1);
  });

  it('prefers the faster endpoint at equal weight and load, and weighs latency by its square root', () => {
    const c = candidates([1, 1]);
    for (const l of c.loads) l.inFlight = 1;
    c.loads[0]!.latency = 0.1;
    c.loads[1]!.latency = 0.01;
    expect(chooser.pick(c)).toBe(1);
    // (2+1)·√0.01 = 0.3 against (1+1)·√0.1 ≈ 0.63: one more in flight does not outweigh 10× speed.
    c.loads[1]!.inFlight = 2;
    expect(chooser.pick(c)).toBe(1);
    // (6+1)·√0.01 = 0.7 > 0.63: six in flight do (a linear latency would still say 1).
    c.loads[1]!.inFlight = 6;
    expect(chooser.pick(c)).toBe(0);
  });

  it('respects the weights: an endpoint weighed 3× takes up to 3× the calls in flight', () => {
    const c = candidates([3, 1]);
    const book = new EndpointBook();
    const stats = c.loads;
    // Pick and count each call in flight, never ending any: the queues grow as 3 : 1.
    for (let i = 0; i < 40; i++) book.started(stats[chooser.pick(c)]!);
    expect(stats[0]!.inFlight).toBe(30);
    expect(stats[1]!.inFlight).toBe(10);
  });

  it('with no latency known, is weighted join-the-shortest-queue; one unknown gets the mean', () => {
    const c = candidates([2, 1]);
    expect(chooser.pick(c)).toBe(0);
    c.loads[0]!.inFlight = 2; // 3/2 = 1.5 > (0+1)/1
    expect(chooser.pick(c)).toBe(1);
    // A known latency for one, none for the other: the other is taken to be as fast (the mean).
    const d = candidates([1, 1]);
    d.loads[0]!.latency = 5;
    d.loads[0]!.inFlight = 1;
    expect(chooser.pick(d)).toBe(1);
    d.loads[1]!.inFlight = 1;
    expect(chooser.pick(d)).toBe(0); // a tie: the first
  });

  it('never starves an endpoint the weights put at 0, and treats all-zero or bad weights as equal', () => {
    const w: number[] = [];
    const cum: number[] = [];
    pickerWeights([0, 100, 100], w, cum);
    expect(w[0]).toBeGreaterThan(0);
    expect(w[0]).toBeCloseTo((0.01 * 200) / 3);
    expect(cum[2]).toBeCloseTo(w[0]! + 200);
    pickerWeights([0, 0], w, cum);
    expect(w.slice(0, 2)).toEqual([0.5, 0.5]);
    pickerWeights([Number.NaN, -1, Infinity], w, cum);
    expect(w.slice(0, 3)).toEqual([1 / 3, 1 / 3, 1 / 3]);
    // The floor lets a 0-weight endpoint win once the others are full enough.
    const c = candidates([0, 1]);
    c.loads[1]!.inFlight = 1000;
    expect(chooser.pick(c)).toBe(0);
  });

  it('draws sampleSize candidates by weight beyond that many, never one whose weight is floored away', () => {
    const small = new ExpectedDelayChooser({ sampleSize: 2, random: seeded(7) });
    // Ten endpoints; the heavy pair carries nearly all the weight: the draws find them.
    const c = candidates([1000, 1000, 0, 0, 0, 0, 0, 0, 0, 0]);
    const counts = new Array<number>(10).fill(0);
    const book = new EndpointBook();
    for (let i = 0; i < 500; i++) {
      const k = small.pick(c);
      counts[k]!++;
      book.started(c.loads[k]!);
    }
    expect(counts[0]! + counts[1]!).toBeGreaterThan(480);
    // Counted in flight, the two take turns.
    expect(counts[0]).toBeGreaterThan(200);
    expect(counts[1]).toBeGreaterThan(200);
    expect(() => new ExpectedDelayChooser({ sampleSize: 0 })).toThrow(/sampleSize/);
  });

  it('returns 0 for one candidate (and for none)', () => {
    expect(chooser.pick(candidates([5]))).toBe(0);
    expect(chooser.pick(candidates([]))).toBe(0);
  });
});

describe("a gRPC client's endpoint book (src/grpc-lb/state.ts)", () => {
  it('smooths latency over about ten answers, and leaves it alone on failures', () => {
    const book = new EndpointBook();
    const s = book.of('a');
    book.started(s);
    book.ended(s, 0.1, false);
    expect(s.latency).toBe(0.1);
    expect(s.inFlight).toBe(0);
    book.started(s);
    book.ended(s, 0.2, false);
    expect(s.latency).toBeCloseTo(smoothedLatency(0.1, 0.2));
    expect(s.latency).toBeCloseTo(0.11);
    book.started(s);
    book.ended(s, 0.001, true);
    expect(s.latency).toBeCloseTo(0.11);
    expect([s.responses, s.failures, s.inFlight]).toEqual([3, 1, 0]);
  });

  it('counts a pick in flight at once, uncounts it if its call never starts, recounts it if it starts late', () => {
    const book = new EndpointBook();
    const s = book.of('a');
    const started = book.picked(s);
    const abandoned = book.picked(s);
    const late = book.picked(s);
    expect(s.inFlight).toBe(3);
    expect(book.unsettled).toBe(true);
    book.callStarted(started, 1000);
    book.settle();
    expect(book.unsettled).toBe(false);
    expect(s.inFlight).toBe(1);
    book.callStarted(late, 1010);
    expect(s.inFlight).toBe(2);
    book.callEnded(started, 1050, false);
    expect(s.latency).toBeCloseTo(0.05);
    book.callEnded(late, 1020, false);
    expect(s.inFlight).toBe(0);
    expect(s.latency).toBeCloseTo(0.05 + 0.1 * (0.01 - 0.05));
    // The abandoned pick never ends; nothing is counted twice.
    book.callEnded(started, 2000, false);
    expect(s.inFlight).toBe(0);
    expect(abandoned.counted).toBe(false);
  });

  it('forgets endpoints that left and have nothing in flight, keeps the others', () => {
    const book = new EndpointBook();
    book.started(book.of('busy'));
    book.of('idle');
    book.of('kept');
    book.retain((k) => k === 'kept');
    expect(book.size).toBe(2);
    expect(book.of('busy').inFlight).toBe(1);
  });
});

describe('the weights a gRPC client reads from xDS', () => {
  it("is each locality's weight split by its endpoints' own weights; 1 each without xDS", () => {
    expect(
      xdsWeights([
        { localityKey: 'x', localityWeight: 600, endpointWeight: 600 * 3 },
        { localityKey: 'x', localityWeight: 600, endpointWeight: 600 * 1 },
        { localityKey: 'y', localityWeight: 400, endpointWeight: 400 * 7 },
      ]),
    ).toEqual([450, 150, 400]);
    expect(xdsWeights([{}, {}])).toEqual([1, 1]);
  });

  it('parses the policy config and names what is wrong with a bad one', () => {
    expect(AugurBalancerConfig.createFromJson({}).sampleSize).toBe(16);
    expect(AugurBalancerConfig.createFromJson({ sampleSize: 4 }).sampleSize).toBe(4);
    expect(() => AugurBalancerConfig.createFromJson({ sampleSize: 0 })).toThrow(
      /sampleSize must be an integer in \[1, 1000\], got 0/,
    );
    expect(() => AugurBalancerConfig.createFromJson({ sample_size: 4 })).toThrow(
      /unknown field "sample_size"/,
    );
    expect(() => AugurBalancerConfig.createFromJson([])).toThrow(/must be an object/);
  });
});

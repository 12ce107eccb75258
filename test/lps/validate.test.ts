import { describe, expect, it } from 'vitest';
import {
  MAX_FIRST_STEP,
  MAX_SEQUENCE,
  SEQUENCE_SLACK,
  validateSample,
  type SampleContext,
} from '../../src/lps/validate.js';
import { makeSample } from '../support/raw-agent.js';

const NOW = Date.parse('2026-12-05T08:00:00Z');
const ctx = (over: Partial<SampleContext> = {}): SampleContext => ({
  endpointId: 'ep-1',
  lastSequence: 100,
  lastTimestampMs: NOW - 60_000,
  nowMs: NOW,
  maxSkewMs: 30_000,
  maxAgeMs: 3_600_000,
  ...over,
});

describe('sequence bounds', () => {
  it('lets a sequence run ahead by 100 a second since the last sample, plus slack', () => {
    // 60 s at one sample per 10 ms at most: 6,000 samples, and the slack.
    const most = 100 + 6000 + SEQUENCE_SLACK;
    expect(validateSample(makeSample({ sequence: most, timestamp: new Date(NOW) }), ctx())).toBe(
      undefined,
    );
    const bad = validateSample(makeSample({ sequence: most + 1, timestamp: new Date(NOW) }), ctx());
    expect(bad).toMatchObject({ field: 'sequence', code: 'OUT_OF_RANGE' });
    expect(bad!.message).toMatch(/60\.0 s later may be at most 16000 after it/);
  });

  it('lets the first sample of an endpoint start anywhere up to 2^40, never past 2^50', () => {
    const first = ctx({ lastSequence: 0, lastTimestampMs: NaN });
    const at = (sequence: number) =>
      validateSample(makeSample({ sequence, timestamp: new Date(NOW) }), first);
    expect(at(MAX_FIRST_STEP)).toBeUndefined();
    expect(at(MAX_FIRST_STEP + 1)).toMatchObject({ field: 'sequence', code: 'OUT_OF_RANGE' });
    expect(at(MAX_SEQUENCE + 1)!.message).toMatch(/at most 2\^50/);
    // Room is left for the agent to continue after the highest first sample for ages.
    expect((MAX_SEQUENCE - MAX_FIRST_STEP) / 1000 / 86_400 / 365).toBeGreaterThan(30_000);
  });
});

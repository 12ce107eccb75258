import { describe, expect, it } from 'vitest';
import { AugurError } from '../../src/common/errors.js';
import { parseFraction, parseRamp, rampProfile } from '../../src/demo/profile.js';

describe('demo-backend --ramp', () => {
  it('parses durations with units and optional hold/every', () => {
    expect(parseRamp('at=30s,over=20s,to=0.85')).toEqual({
      at: 30,
      over: 20,
      to: 0.85,
      hold: undefined,
      every: undefined,
    });
    expect(parseRamp('at=1m, over=500ms, to=0.5, hold=10, every=2m')).toEqual({
      at: 60,
      over: 0.5,
      to: 0.5,
      hold: 10,
      every: 120,
    });
  });

  it('says what is wrong with a bad spec', () => {
    const bad = (spec: string, pattern: RegExp) => {
      expect(() => parseRamp(spec)).toThrow(AugurError);
      expect(() => parseRamp(spec)).toThrow(pattern);
    };
    bad('at=30s,over=20s', /needs to=/);
    bad('at=30s,over=20s,to=0.85,speed=2', /"speed=2"/);
    bad('at=30s,over=20s,to=1.5', /fraction/);
    bad('at=soon,over=20s,to=0.5', /ramp at/);
    bad('at=30s,over=20s,to=0.5,every=60s', /needs hold=/);
    bad('at=30s,over=20s,to=0.5,hold=30s,every=60s', /at least 2 × over \+ hold = 70/);
  });

  it('ramps up linearly, holds, ramps down, and repeats', () => {
    const f = rampProfile(0.1, { at: 10, over: 10, to: 0.9, hold: 20, every: 60 });
    expect(f(0)).toBe(0.1);
    expect(f(9.9)).toBe(0.1);
    expect(f(15)).toBeCloseTo(0.5, 10);
    expect(f(20)).toBeCloseTo(0.9, 10);
    expect(f(39)).toBeCloseTo(0.9, 10);
    expect(f(45)).toBeCloseTo(0.5, 10);
    expect(f(55)).toBeCloseTo(0.1, 10);
    expect(f(75)).toBeCloseTo(0.5, 10); // second cycle, 5 s into its ramp
  });

  it('without hold, stays at the peak', () => {
    const f = rampProfile(0.2, { at: 5, over: 0, to: 0.8 });
    expect(f(4.99)).toBe(0.2);
    expect(f(5)).toBe(0.8);
    expect(f(1e6)).toBe(0.8);
  });

  it('takes background fractions in [0, 0.99] only', () => {
    expect(parseFraction('0.3', 'x')).toBe(0.3);
    expect(() => parseFraction('', 'x')).toThrow(AugurError);
    expect(() => parseFraction('1', 'x')).toThrow(/\[0, 0.99\]/);
    expect(() => parseFraction('-0.1', 'x')).toThrow(AugurError);
  });
});

import { describe, expect, it } from 'vitest';
import { PaceWatch } from '../../src/demo/demo.js';

describe('the demo says when it cannot keep its request rate', () => {
  it('warns once when it falls behind, once when it is back, and not during start-up', () => {
    const pace = new PaceWatch(170);
    expect(pace.check(40, 5)).toBeUndefined(); // start-up window
    expect(pace.check(165, 15)).toBeUndefined(); // within 10 %
    expect(pace.check(60, 20)).toBe(
      'BEHIND  only 60 of the 170 requests/s asked went through in the last 5 s: this machine is too busy ' +
        'to keep the rate, so traffic, swaps and latencies are those of a lighter load (try --rate 60)',
    );
    expect(pace.check(50, 25)).toBeUndefined(); // still behind: said once
    expect(pace.check(170, 30)).toBe('BACK    the load generator keeps its 170 requests/s again');
    expect(pace.check(170, 35)).toBeUndefined();
  });
});

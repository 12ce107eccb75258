/** bench:e2e's command line: the work distribution, and the section a run writes. */
import { describe, expect, it } from 'vitest';
import { configsOf, parseOptions } from '../../bench/e2e/options.js';
import { sectionTitle } from '../../bench/e2e/report.js';

describe('bench:e2e options', () => {
  it('takes exponential work by default and fixed work when asked, each in its own section', () => {
    const exponential = parseOptions(['--configs', '1']);
    const fixed = parseOptions(['--configs', '1', '--work', 'fixed']);
    expect(exponential.work).toBe('exponential');
    expect(fixed.work).toBe('fixed');
    const config = configsOf(fixed)[0]!;
    expect(sectionTitle({ config }, exponential)).toBe(
      'Real sockets (bench:e2e): 1 s trace steps, agents every 1 s',
    );
    expect(sectionTitle({ config }, fixed)).toBe(
      'Real sockets (bench:e2e): 1 s trace steps, agents every 1 s, fixed work',
    );
  });

  it('names the option and the value it refuses', () => {
    expect(() => parseOptions(['--work', 'pareto'])).toThrow(
      '--work must be exponential or fixed, got "pareto"',
    );
  });
});

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  DEFAULT_LOAD_SCORE_PARAMS,
  loadScore,
  type LoadScoreInputs,
} from '../../src/lps/score/load-score.js';

const unit = fc.double({ min: 0, max: 1, noNaN: true });
const rt = fc.double({ min: 0, max: 10, noNaN: true });
const inputs = fc.record({
  cpu: unit,
  memory: unit,
  network: unit,
  responseTime: rt,
  available: fc.constant(true),
});

describe('Load Score', () => {
  test('bounded in [0,1], even for out-of-range and missing inputs', () => {
    const wild = fc.oneof(fc.double(), fc.constant(NaN), fc.constant(Infinity), fc.constant(-1));
    fc.assert(
      fc.property(
        wild,
        wild,
        wild,
        wild,
        fc.boolean(),
        (cpu, memory, network, responseTime, available) => {
          const s = loadScore({ cpu, memory, network, responseTime, available }).score;
          expect(s).toBeGreaterThanOrEqual(0);
          expect(s).toBeLessThanOrEqual(1);
        },
      ),
    );
  });

  test('non-increasing in every input', () => {
    const keys = ['cpu', 'memory', 'network', 'responseTime'] as const;
    fc.assert(
      fc.property(
        inputs,
        fc.constantFrom(...keys),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (base, key, delta) => {
          const higher: LoadScoreInputs = { ...base, [key]: base[key] + delta };
          expect(loadScore(higher).score).toBeLessThanOrEqual(loadScore(base).score + 1e-12);
        },
      ),
    );
  });

  test('strictly decreasing in cpu and response time inside their range', () => {
    fc.assert(
      fc.property(
        inputs,
        fc.double({ min: 0.01, max: 0.98, noNaN: true }),
        fc.double({ min: 0.001, max: 0.01, noNaN: true }),
        (base, cpu, d) => {
          const b = { ...base, memory: 0.5, network: 0.5, cpu };
          expect(loadScore({ ...b, cpu: cpu + d }).score).toBeLessThan(loadScore(b).score);
          expect(loadScore({ ...b, responseTime: b.responseTime + d }).score).toBeLessThan(
            loadScore(b).score,
          );
        },
      ),
    );
  });

  test('stable under small noise (Lipschitz bound of the documented formula)', () => {
    const p = DEFAULT_LOAD_SCORE_PARAMS;
    const noise = fc.double({ min: -0.01, max: 0.01, noNaN: true });
    fc.assert(
      fc.property(inputs, noise, noise, noise, noise, (base, dc, dm, dn, dr) => {
        const moved = {
          ...base,
          cpu: base.cpu + dc,
          memory: base.memory + dm,
          network: base.network + dn,
          responseTime: Math.max(0, base.responseTime + dr),
        };
        const bound =
          p.cpuExponent * Math.abs(dc) +
          p.memoryExponent * Math.abs(dm) +
          p.networkExponent * Math.abs(dn) +
          Math.abs(dr) / p.responseTimeReference;
        expect(Math.abs(loadScore(moved).score - loadScore(base).score)).toBeLessThanOrEqual(
          bound + 1e-12,
        );
      }),
    );
  });

  test('0 when unavailable (stale, failing, draining), whatever the forecasts', () => {
    fc.assert(
      fc.property(inputs, (i) => {
        expect(loadScore({ ...i, available: false }).score).toBe(0);
      }),
    );
  });

  test('an idle, fast endpoint scores 1 and a saturated one 0; parts are reported', () => {
    const idle = loadScore({ cpu: 0, memory: 0, network: 0, responseTime: 0, available: true });
    expect(idle).toEqual({ score: 1, utilizationFactor: 1, latencyFactor: 1 });
    const full = loadScore({
      cpu: 1,
      memory: 0.2,
      network: 0.1,
      responseTime: 0.05,
      available: true,
    });
    expect(full.score).toBe(0);
    const slow = loadScore({ cpu: 0, memory: 0, network: 0, responseTime: 0.25, available: true });
    expect(slow.latencyFactor).toBeCloseTo(0.5, 12);
  });
});

import type { EndpointLoad, EndpointLoads } from '../endpoint-load.js';
import type { EndpointEntry, ServiceTable } from '../endpoint-table.js';
import { pickerWeights } from '../../common/expected-delay.js';
import { ExpectedDelayPicker } from './expected-delay.js';
import { CandidateListFilter, FreshFilter, HealthyFilter } from './filters.js';
import { byScore, FirstCandidatePicker } from './pickers.js';
import { LoadScoreScorer } from './scorers.js';
import type {
  CandidateSet,
  EndpointFilter,
  EndpointPicker,
  EndpointScorer,
  PickRequest,
} from './types.js';

/**
 * How a routed request is picked: `expected-delay` (the shortest expected delay from the
 * forecast weights and the in-band signals; ExpectedDelayPicker) or `highest-score` (always the
 * best Load Score).
 */
export type DynamicPickerName = 'expected-delay' | 'highest-score';

/** The stages of a pipeline, in the order a request passes them. */
export interface PipelineStages {
  /** Run in order; each sees what the previous kept. */
  filters: readonly EndpointFilter[];
  /**
   * Orders a routed request's candidates (the order of its fallbacks), best first; undefined:
   * routed requests keep the caller's order like the others.
   */
  scorer: EndpointScorer | undefined;
  /** Picks a routed request's endpoint. */
  dynamicPicker: EndpointPicker;
  /** Picks the endpoint of a request that is not routed (the caller's order). */
  staticPicker: EndpointPicker;
}

/**
 * Filter → score (order) → pick, in the style of the Gateway API Inference Extension's endpoint
 * picker: each stage is a small named unit with one interface, replaceable alone. The first
 * stages depend only on the list version and the request's shape, so the router keeps their
 * result (`candidates`); the picker runs per request.
 */
export class PickerPipeline {
  readonly stages: PipelineStages;
  private readonly loads: EndpointLoads;

  /** @param loads the in-band signals the candidates carry to the picker. */
  constructor(stages: PipelineStages, loads: EndpointLoads) {
    this.stages = stages;
    this.loads = loads;
  }

  /**
   * The candidates of every request of this shape on this table, in fallback order; undefined
   * when no endpoint may take the request. `request.limit` is not applied.
   */
  candidates(table: ServiceTable, request: PickRequest): CandidateSet | undefined {
    const { filters, scorer } = this.stages;
    // A caller's list is looked up (a few map reads) rather than filtered out of the whole
    // service; otherwise start from the order the scorer will most likely keep.
    let entries: readonly EndpointEntry[] = request.candidates
      ? withoutRepeats(table.select(request.candidates))
      : request.dynamic && scorer
        ? table.byScore
        : table.byRegistration;
    for (const f of filters) {
      entries = f.filter(entries, request);
      if (entries.length === 0) return undefined;
    }
    if (request.dynamic && scorer) {
      const scores = new Float64Array(entries.length);
      for (let i = 0; i < entries.length; i++) scores[i] = scorer.score(entries[i]!, request);
      entries = byScore(entries, scores);
    }
    return candidateSet(entries, this.loads);
  }

  /** The picker for a request of this kind. */
  picker(request: PickRequest): EndpointPicker {
    return request.dynamic ? this.stages.dynamicPicker : this.stages.staticPicker;
  }

  /** The endpoints to try for one request, pick first (no memo: tests and one-off calls). */
  run(table: ServiceTable, request: PickRequest): EndpointEntry[] {
    const candidates = this.candidates(table, request);
    if (!candidates) return [];
    return answer(
      candidates.entries,
      this.picker(request).pick(candidates, request),
      request.limit,
    );
  }
}

/** The pick, then the other candidates in order, at most `limit` entries. A new array. */
export function answer(
  entries: readonly EndpointEntry[],
  pick: number,
  limit: number,
): EndpointEntry[] {
  const n = Math.min(Math.max(0, limit), entries.length);
  if (n === 0) return [];
  const out: EndpointEntry[] = [entries[pick]!];
  for (let i = 0; out.length < n; i++) if (i !== pick) out.push(entries[i]!);
  return out;
}

/** The CandidateSet of `entries`: their loads, and their weights as pickers use them. */
export function candidateSet(
  entries: readonly EndpointEntry[],
  loads: EndpointLoads,
): CandidateSet {
  const n = entries.length;
  // Plain arrays: for a caller's few candidates they cost less to make than typed arrays.
  const raw = new Array<number>(n);
  const weights = new Array<number>(n);
  const cumulativeWeights = new Array<number>(n);
  const entryLoads = new Array<EndpointLoad>(n);
  for (let i = 0; i < n; i++) {
    const entry = entries[i]!;
    raw[i] = entry.weight;
    entryLoads[i] = loads.of(entry.destination);
  }
  pickerWeights(raw, weights, cumulativeWeights);
  return { entries, loads: entryLoads, weights, cumulativeWeights };
}

/** `entries` without a second occurrence of an endpoint (a caller may repeat an id). */
function withoutRepeats(entries: EndpointEntry[]): EndpointEntry[] {
  for (let i = 1; i < entries.length; i++) {
    for (let j = 0; j < i; j++) {
      if (entries[j] === entries[i]) {
        const seen = new Set<EndpointEntry>();
        return entries.filter((e) => (seen.has(e) ? false : (seen.add(e), true)));
      }
    }
    // Long lists are rare (maxCandidates bounds them); past a few, look them up in a set.
    if (i >= 16) {
      const seen = new Set(entries.slice(0, i));
      const out = entries.slice(0, i);
      for (let k = i; k < entries.length; k++) {
        const e = entries[k]!;
        if (!seen.has(e)) {
          seen.add(e);
          out.push(e);
        }
      }
      return out;
    }
  }
  return entries;
}

export interface DefaultPipelineOptions {
  maxEndpointStaleness: number;
  dynamicPicker: DynamicPickerName;
  /** ExpectedDelayPicker's sample size (see there). */
  pickSampleSize: number;
  loads: EndpointLoads;
  /** The picker's random source; default Math.random. */
  random?: () => number;
}

/**
 * The RRM's normal pipeline: in the candidate list, healthy, fresh; ordered by Load Score;
 * then the shortest expected delay (default) or the best Load Score picks.
 */
export function defaultPipeline(options: DefaultPipelineOptions): PickerPipeline {
  return new PickerPipeline(
    {
      filters: [
        new CandidateListFilter(),
        new HealthyFilter(),
        new FreshFilter(options.maxEndpointStaleness),
      ],
      scorer: new LoadScoreScorer(),
      dynamicPicker:
        options.dynamicPicker === 'expected-delay'
          ? new ExpectedDelayPicker({ sampleSize: options.pickSampleSize, random: options.random })
          : new FirstCandidatePicker('highest-score'),
      staticPicker: new FirstCandidatePicker('caller-order'),
    },
    options.loads,
  );
}

/**
 * The standard order, used when the LPS has been unreachable so long that its health and
 * scores cannot be trusted: the caller's list (or registration order), nothing filtered out
 * but endpoints outside the caller's list, the first one picked. Envoy walks the list on
 * connection failures.
 */
export function standardOrderPipeline(loads: EndpointLoads): PickerPipeline {
  const first = new FirstCandidatePicker('caller-order');
  return new PickerPipeline(
    {
      filters: [new CandidateListFilter()],
      scorer: undefined,
      dynamicPicker: first,
      staticPicker: first,
    },
    loads,
  );
}

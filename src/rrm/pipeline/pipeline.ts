import type { EndpointEntry, ServiceTable } from '../endpoint-table.js';
import { CandidateListFilter, FreshFilter, HealthyFilter } from './filters.js';
import { CallerOrderPicker, HighestScorePicker } from './pickers.js';
import { LoadScoreScorer } from './scorers.js';
import type {
  EndpointFilter,
  EndpointPicker,
  EndpointScorer,
  PickPlan,
  PickRequest,
} from './types.js';
import { WeightedPrimaryPicker } from './weighted-primary.js';

/**
 * How dynamic routing orders endpoints: `weighted` draws the pick in proportion to the LPS's
 * weights (fallbacks by Load Score); `highest-score` always puts the best Load Score first.
 */
export type DynamicPickerName = 'weighted' | 'highest-score';

/** The stages of a pipeline, in the order a request passes them. */
export interface PipelineStages {
  /** Run in order; each sees what the previous kept. */
  filters: readonly EndpointFilter[];
  /** Rates each remaining endpoint when routing is dynamic. */
  scorer: EndpointScorer;
  /** Orders by score (and weight) when routing is dynamic. */
  dynamicPicker: EndpointPicker;
  /** Orders by the caller's list when routing is not dynamic. */
  staticPicker: EndpointPicker;
}

/**
 * Filter → score → pick, in the style of the Gateway API Inference Extension's endpoint
 * picker: each stage is a small named unit with one interface, replaceable alone.
 */
export class PickerPipeline {
  readonly stages: PipelineStages;

  constructor(stages: PipelineStages) {
    this.stages = stages;
  }

  /** The endpoints to try for one request, pick first; empty when none may take the request. */
  run(table: ServiceTable, request: PickRequest): EndpointEntry[] {
    const plan = this.plan(table, request);
    return plan ? plan.answer(plan.next(), request.limit) : [];
  }

  /**
   * The picker's plan for every request of this shape on this table (filters and scores run
   * once); undefined when no endpoint may take the request. `request.limit` is not applied:
   * `plan.answer` cuts. `previous`: the same shape's plan on the previous list version.
   */
  plan(table: ServiceTable, request: PickRequest, previous?: PickPlan): PickPlan | undefined {
    const { filters, scorer, dynamicPicker, staticPicker } = this.stages;
    // A caller's list is looked up (a few map reads) rather than filtered out of the whole
    // service; otherwise start from the order the picker will most likely keep.
    let entries: readonly EndpointEntry[] = request.candidates
      ? table.select(request.candidates)
      : request.dynamic
        ? table.byScore
        : table.byRegistration;
    for (const f of filters) {
      entries = f.filter(entries, request);
      if (entries.length === 0) return undefined;
    }
    if (!request.dynamic) return staticPicker.plan(entries, undefined, request);
    const scores = new Float64Array(entries.length);
    for (let i = 0; i < entries.length; i++) scores[i] = scorer.score(entries[i]!, request);
    return dynamicPicker.plan(entries, scores, request, previous);
  }
}

/**
 * The RRM's normal pipeline: in the candidate list, healthy, fresh; Load Score; then the pick
 * by weight (default) or the highest score, fallbacks by Load Score.
 */
export function defaultPipeline(options: {
  maxEndpointStaleness: number;
  dynamicPicker: DynamicPickerName;
}): PickerPipeline {
  return new PickerPipeline({
    filters: [
      new CandidateListFilter(),
      new HealthyFilter(),
      new FreshFilter(options.maxEndpointStaleness),
    ],
    scorer: new LoadScoreScorer(),
    dynamicPicker:
      options.dynamicPicker === 'weighted' ? new WeightedPrimaryPicker() : new HighestScorePicker(),
    staticPicker: new CallerOrderPicker(),
  });
}

/**
 * The standard order, used when the LPS has been unreachable so long that its health and
 * scores cannot be trusted: the caller's list (or registration order), nothing filtered out
 * but endpoints outside the caller's list. Envoy walks the list on connection failures.
 */
export function standardOrderPipeline(): PickerPipeline {
  return new PickerPipeline({
    filters: [new CandidateListFilter()],
    scorer: new LoadScoreScorer(),
    dynamicPicker: new CallerOrderPicker(),
    staticPicker: new CallerOrderPicker(),
  });
}

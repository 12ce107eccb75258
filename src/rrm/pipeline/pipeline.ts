import type { EndpointEntry, ServiceTable } from '../endpoint-table.js';
import { CandidateListFilter, FreshFilter, HealthyFilter } from './filters.js';
import { CallerOrderPicker, HighestScorePicker } from './pickers.js';
import { LoadScoreScorer } from './scorers.js';
import type { EndpointFilter, EndpointPicker, EndpointScorer, PickRequest } from './types.js';

/** The stages of a pipeline, in the order a request passes them. */
export interface PipelineStages {
  /** Run in order; each sees what the previous kept. */
  filters: readonly EndpointFilter[];
  /** Rates each remaining endpoint when routing is dynamic. */
  scorer: EndpointScorer;
  /** Orders by score when routing is dynamic. */
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

  /** The endpoints to try, best first; empty when none may take the request. */
  run(table: ServiceTable, request: PickRequest): EndpointEntry[] {
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
      if (entries.length === 0) return [];
    }
    if (!request.dynamic) return staticPicker.pick(entries, undefined, request);
    const scores = new Float64Array(entries.length);
    for (let i = 0; i < entries.length; i++) scores[i] = scorer.score(entries[i]!, request);
    return dynamicPicker.pick(entries, scores, request);
  }
}

/** The RRM's normal pipeline: in the candidate list, healthy, fresh; Load Score; highest first. */
export function defaultPipeline(options: { maxEndpointStaleness: number }): PickerPipeline {
  return new PickerPipeline({
    filters: [
      new CandidateListFilter(),
      new HealthyFilter(),
      new FreshFilter(options.maxEndpointStaleness),
    ],
    scorer: new LoadScoreScorer(),
    dynamicPicker: new HighestScorePicker(),
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

import type { EndpointEntry } from '../endpoint-table.js';
import type { EndpointScorer } from './types.js';

/** The LPS's Load Score of the endpoint, as of its newest prioritized list. */
export class LoadScoreScorer implements EndpointScorer {
  readonly name = 'load-score';

  score(entry: EndpointEntry): number {
    return entry.score < 0 ? 0 : entry.score > 1 ? 1 : entry.score;
  }
}

import { ExpectedDelayChooser } from '../../common/expected-delay.js';
import type { EndpointPicker } from './types.js';

export type { ExpectedDelayOptions } from '../../common/expected-delay.js';

/**
 * The RRM's `expected-delay` picker: the shared rule (src/common/expected-delay.ts, which the gRPC
 * clients' `augur_expected_delay` policy runs too) over a CandidateSet, whose loads are what this
 * RRM counted in flight and the latencies Envoy reported (the response headers of each routed
 * request come back through ext_proc; see RoutedRequests), and whose weights are the LPS's
 * shares, floored (candidateSet). Candidates tie in Load Score order.
 */
export class ExpectedDelayPicker extends ExpectedDelayChooser implements EndpointPicker {
  readonly name = 'expected-delay';
}

import { AugurError } from '../common/errors.js';
import { KeptAliveGetter } from './http-get.js';

/** Requests the endpoint completed since the previous sample, and the sum of their latencies. */
export interface RequestCounts {
  completed: number;
  /** Seconds; undefined when the source has no latency. */
  latencySum?: number;
}

/** Where the agent reads the endpoint's completed requests from. */
export interface RequestSource {
  /** Counts since the previous call; undefined at the first (nothing to count from yet). */
  sample(): Promise<RequestCounts | undefined>;
  /** Releases a kept-alive connection. */
  close?(): void;
}

/** Increase of a counter; one that went down was reset, and its new value is the increase. */
const increase = (prev: number, cur: number): number => (cur >= prev ? cur - prev : cur);

type MatchOp = '=' | '!=' | '=~' | '!~';

/** A metric name with optional label matchers: `http_requests_total{job="api",code=~"2.."}`. */
export interface MetricSelector {
  name: string;
  /** Every matcher must hold; `=~` (`!~`) is a regular expression over the whole value that must (not) match. */
  labels: Array<{ label: string; op: MatchOp; value: string }>;
}

/** Parses `name` or `name{l="v",l2=~"re"}`; a malformed one is an error that shows it. */
export function parseSelector(text: string, flag: string): MetricSelector {
  const m = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$/.exec(text);
  if (!m)
    throw new AugurError(
      'BAD_FLAG',
      `${flag} "${text}" is not a metric name with optional {label="value"} matchers`,
    );
  const labels: MetricSelector['labels'] = [];
  const body = m[2]?.trim() ?? '';
  const matcher = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let at = 0;
  while (at < body.length) {
    matcher.lastIndex = at;
    const l = matcher.exec(body);
    if (!l)
      throw new AugurError(
        'BAD_FLAG',
        `${flag} "${text}": cannot read the label matchers at "${body.slice(at)}"`,
      );
    labels.push({
      label: l[1]!,
      op: l[2] as MatchOp,
      value: l[3]!.replace(/\\(.)/g, '$1'),
    });
    at = matcher.lastIndex;
  }
  return { name: m[1]!, labels };
}

function parseLabels(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text))
    out.set(m[1]!, m[2]!.includes('\\') ? m[2]!.replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/** Compiled `=~` / `!~` patterns, compiled once rather than per series and scrape. */
const patterns = new Map<string, RegExp>();

function matches(sel: MetricSelector, labels: Map<string, string>): boolean {
  return sel.labels.every(({ label, op, value }) => {
    const v = labels.get(label) ?? '';
    if (op === '=') return v === value;
    if (op === '!=') return v !== value;
    let re = patterns.get(value);
    if (!re) {
      re = new RegExp(`^(?:${value})$`);
      patterns.set(value, re);
    }
    return re.test(v) === (op === '=~');
  });
}

/**
 * The sum over every series of the Prometheus text exposition named `name` whose
 * labels match; undefined when none is present. The name is looked for with
 * indexOf, so the page's other lines (a prom-client page is mostly other
 * metrics) are skipped over without being walked line by line, and only the
 * series of the wanted name are taken apart.
 */
export function sumSeries(text: string, sel: MetricSelector, name = sel.name): number | undefined {
  let sum: number | undefined;
  const n = text.length;
  let pos = 0;
  while (pos < n) {
    const lineStart = text.indexOf(name, pos);
    if (lineStart < 0) break;
    let end = text.indexOf('\n', lineStart);
    if (end < 0) end = n;
    // A series line starts with its name; a hit elsewhere (# HELP, a label value) is not one,
    // and the next line that starts with it can only come after this line.
    pos = end + 1;
    if (lineStart > 0 && text.charCodeAt(lineStart - 1) !== 10) continue;
    let at = lineStart + name.length;
    const c = text.charCodeAt(at);
    // `{`, space or tab follow the name; anything else is a longer name.
    if (c !== 123 && c !== 32 && c !== 9) continue;
    if (c === 123) {
      const close = text.lastIndexOf('}', end);
      if (close < at) continue;
      if (sel.labels.length > 0 && !matches(sel, parseLabels(text.slice(at + 1, close)))) continue;
      at = close + 1;
    } else if (sel.labels.length > 0 && !matches(sel, new Map())) continue;
    while (at < end && (text.charCodeAt(at) === 32 || text.charCodeAt(at) === 9)) at++;
    let valueEnd = at;
    while (valueEnd < end) {
      const v = text.charCodeAt(valueEnd);
      if (v === 32 || v === 9 || v === 13) break;
      valueEnd++;
    }
    const value = Number(text.slice(at, valueEnd));
    if (valueEnd > at && Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

export interface PrometheusRequestsOptions {
  url: string;
  /** A counter of completed requests, e.g. `http_requests_total`. */
  requests?: string;
  /**
   * A histogram or summary of request latency in seconds, e.g.
   * `http_request_duration_seconds`: its `_count` counts the requests (when
   * `requests` is not given) and its `_sum` sums their latencies.
   */
  latency?: string;
  timeoutSeconds?: number;
}

/**
 * Completed requests (and their latency) from a Prometheus metrics endpoint:
 * the increase of a counter since the previous scrape, summed over the series
 * the selector matches (a counter that went down was reset: its new value is
 * the increase). One GET per tick.
 */
export class PrometheusRequests implements RequestSource {
  private readonly url: string;
  private readonly getter: KeptAliveGetter;
  private readonly requests: MetricSelector | undefined;
  private readonly latency: MetricSelector | undefined;
  private prevCount = NaN;
  private prevSum = NaN;

  constructor(opts: PrometheusRequestsOptions) {
    try {
      const u = new URL(opts.url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      throw new AugurError(
        'BAD_METRICS_URL',
        `metrics URL "${opts.url}" must be an http:// or https:// URL`,
      );
    }
    if (!opts.requests && !opts.latency)
      throw new AugurError(
        'BAD_FLAG',
        '--metrics-url needs --requests-metric (a counter) or --latency-metric (a histogram)',
      );
    this.url = opts.url;
    this.requests = opts.requests ? parseSelector(opts.requests, '--requests-metric') : undefined;
    this.latency = opts.latency ? parseSelector(opts.latency, '--latency-metric') : undefined;
    this.getter = new KeptAliveGetter(opts.url, {
      what: 'metrics URL',
      timeoutMs: (opts.timeoutSeconds ?? 1) * 1000,
      badUrlCode: 'BAD_METRICS_URL',
    });
  }

  async sample(): Promise<RequestCounts | undefined> {
    let text: string;
    try {
      text = await this.getter.getOk();
    } catch (err) {
      throw new AugurError('METRICS_URL_FAILED', `cannot scrape: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const count = this.requests
      ? sumSeries(text, this.requests)
      : sumSeries(text, this.latency!, `${this.latency!.name}_count`);
    if (count === undefined)
      throw new AugurError(
        'METRICS_MISSING',
        `${this.url} has no series ${this.requests ? this.requests.name : `${this.latency!.name}_count`} matching the selector`,
      );
    const sum = this.latency
      ? sumSeries(text, this.latency, `${this.latency.name}_sum`)
      : undefined;
    const prevCount = this.prevCount;
    const prevSum = this.prevSum;
    this.prevCount = count;
    this.prevSum = sum ?? NaN;
    if (Number.isNaN(prevCount)) return undefined;
    const completed = increase(prevCount, count);
    if (sum === undefined || Number.isNaN(prevSum)) return { completed };
    return { completed, latencySum: increase(prevSum, sum) };
  }

  close(): void {
    this.getter.close();
  }
}

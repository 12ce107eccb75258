import { z } from 'zod';
import { DEFAULT_LOAD_SCORE_PARAMS } from '../score/load-score.js';
import { DEFAULT_COST_PARAMS } from '../score/cost.js';
import { DEFAULT_WEIGHT_PARAMS } from '../score/weight.js';

const s = DEFAULT_LOAD_SCORE_PARAMS;
const w = DEFAULT_WEIGHT_PARAMS;
const c = DEFAULT_COST_PARAMS;

/** Load Score parameters (see src/lps/score/load-score.ts for the formula). */
export const scoreConfigSchema = z
  .object({
    cpuExponent: z.number().positive().default(s.cpuExponent),
    networkExponent: z.number().positive().default(s.networkExponent),
    memoryExponent: z.number().positive().default(s.memoryExponent),
    /** Seconds: the predicted response time that halves the score. */
    responseTimeReference: z.number().positive().default(s.responseTimeReference),
  })
  .strict();

/**
 * The weight: capacity from the forecast background and the learnt cost per request
 * (src/lps/score/weight.ts and cost.ts; src/lps/forecast/README.md, "The weight").
 */
export const weightConfigSchema = z
  .object({
    /** Plan for the background this fraction of the way from its median forecast to its upper bound. */
    uncertainty: z.number().min(0).max(1).default(w.uncertainty),
    /** The planned background is capped here, so that no weight reaches 0. */
    maxBackground: z.number().min(0).lt(1).default(w.maxBackground),
    /** A target within this relative change of the published weight is not published. */
    hysteresis: z.number().min(0).lt(1).default(w.hysteresis),
    /** Fraction of the gap to a higher target closed per sample (drops are cut at once). */
    restore: z.number().gt(0).max(1).default(w.restore),
    /** Seconds from scoring to the data plane using the weight; shifts the forecast horizon. */
    pushDelay: z.number().min(0).max(60).default(w.pushDelay),
    /** Fewest requests an interval must complete for the cost per request to learn from it. */
    minRequests: z.number().int().min(1).default(c.minRequests),
    /** Host CPU at or above which an interval is saturated and the cost does not learn from it. */
    saturation: z.number().gt(0).max(1).default(c.saturation),
    /** Half-life of the cost per request, in learnt intervals. */
    costHalfLife: z.number().positive().default(c.halfLife),
    /** Weight of the service's cost in an endpoint's, in requests (an endpoint that served little borrows it). */
    priorRequests: z.number().min(0).default(c.priorRequests),
  })
  .strict();

/** The LSTM forecaster (trained in a worker thread). */
export const lstmConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Input window, in monitoring intervals. */
    window: z.number().int().min(2).max(256).default(8),
    units: z.number().int().min(2).max(256).default(8),
    /** Samples an endpoint needs before the first fit uses it (window + horizons at least). */
    minHistory: z.number().int().positive().default(120),
    /** Epochs of the first fit and of a retrain on drift. */
    initialEpochs: z.number().int().positive().default(12),
    /** Epochs of each periodic fine-tune. */
    fineTuneEpochs: z.number().int().positive().default(2),
    /** Fine-tune every this many ticks once fitted. */
    fineTuneEvery: z.number().int().positive().default(300),
    /** Retrain from scratch when the LSTM's rolling MASE exceeds the best baseline's by this factor. */
    driftFactor: z.number().min(1).default(1.5),
    /**
     * Rows of history the LSTM's worker keeps to train on, all endpoints together (7 Float32
     * features each: 28 bytes): every endpoint keeps an even share, at most lps.ringSize and at
     * least 2 × (window + maxHorizon). The default holds the whole ring of up to 1,456 endpoints
     * (28 MiB), 209 rows each at 5,000 endpoints and 52 at 20,000: a fit draws maxTrainWindows
     * windows from them, so what a large fleet gives up is only how far back they reach.
     */
    trainingRows: z
      .number()
      .int()
      .positive()
      .default(1 << 20),
    /** Most training windows per fit (sampled, newest favoured). */
    maxTrainWindows: z.number().int().positive().default(4096),
    batchSize: z.number().int().positive().default(64),
    learningRate: z.number().positive().default(0.005),
    /** Quantile of the upper forecast (pinball loss). */
    upperQuantile: z.number().gt(0.5).lt(1).default(0.9),
    /** Nice value of the worker thread on Linux (0 = as the serving thread); training yields the CPU to serving. */
    niceness: z.number().int().min(0).max(19).default(10),
    /** Longest a tick waits for the worker's inference before scoring without it, ms. */
    inferenceTimeoutMs: z.number().int().positive().default(500),
  })
  .strict();

/** Forecasting, the Load Score and the weight: `forecast:` in the config. */
export const forecastConfigSchema = z
  .object({
    /** Forecasts are made for 1..maxHorizon intervals ahead. */
    maxHorizon: z.number().int().min(1).max(32).default(5),
    /** The horizon the Load Score is computed at, intervals. */
    scoreHorizon: z.number().int().min(1).max(32).default(3),
    /** Rolling error window, in scored forecasts. */
    errorWindow: z.number().int().min(2).default(100),
    /** Scored forecasts a forecaster needs before it may be selected. */
    minErrorCount: z.number().int().min(1).default(10),
    score: scoreConfigSchema.default(() => scoreConfigSchema.parse({})),
    weight: weightConfigSchema.default(() => weightConfigSchema.parse({})),
    lstm: lstmConfigSchema.default(() => lstmConfigSchema.parse({})),
  })
  .strict()
  .refine((c) => c.scoreHorizon <= c.maxHorizon, {
    message: 'scoreHorizon must not exceed maxHorizon',
    path: ['scoreHorizon'],
  });

export type ForecastConfig = z.infer<typeof forecastConfigSchema>;
export type LstmConfig = z.infer<typeof lstmConfigSchema>;

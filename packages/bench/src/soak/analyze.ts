/**
 * The soak's figures and bars from the raw measurements (pure functions, no I/O).
 */
import { median } from "../stats.js"
import type { Settings, TokenRequest } from "./protocol.js"

export interface Sample {
  /** Seconds since the soak started. */
  readonly t: number
  readonly heapMiB: number
  /** Live fibers: the least of 20 counts over one second (resident fibers), and the most. */
  readonly fibers: number
  readonly fibersMax: number
  /** This process's event-loop delay since the previous sample (p99 and max, ms). */
  readonly lagP99Ms: number
  readonly lagMaxMs: number
}

export interface FailedCall {
  /** Seconds since the soak started, when the call began. */
  readonly t: number
  readonly inOutage: boolean
  /** The cached token's `expiresAt` minus the call's start, in ms (negative: already expired); null if none known. */
  readonly msToExpiry: number | null
  readonly error: string
}

export interface RevocationResult {
  /** Seconds since the soak started. */
  readonly t: number
  /** Tokens issued in the last lifetime (+ tolerance) that the revocation hit. */
  readonly liveTokens: number
  /** Tool calls whose request got a 401 `Token has been revoked` after this revocation. */
  readonly callsWith401: number
  readonly recovered: number
  readonly failed: number
  /** The last revoked-token 401 seen after it, ms after the revocation (null: none). */
  readonly last401AfterMs: number | null
}

export interface Flatness {
  /** Median of the samples in the second quarter of the run (25–50 %). */
  readonly q2Median: number
  /** Median of the samples in the last quarter (75–100 %). */
  readonly q4Median: number
  /** Allowed: q4 ≤ factor × q2 + slack. */
  readonly limit: number
  /** Least-squares slope over the second half, per minute. */
  readonly slopePerMinute: number
  readonly flat: boolean
}

export interface Bar {
  readonly name: string
  readonly measured: string
  readonly bar: string
  readonly met: boolean
}

const slope = (points: ReadonlyArray<readonly [number, number]>): number => {
  if (points.length < 2) return 0
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? 0 : sxy / sxx
}

/** Heap / fiber flatness: last-quarter median ≤ `factor` × second-quarter median + `slack`. */
export const flatness = (
  samples: ReadonlyArray<Sample>,
  seconds: number,
  pick: (sample: Sample) => number,
  factor: number,
  slack: number
): Flatness => {
  const within = (from: number, to: number) => samples.filter((s) => s.t >= from * seconds && s.t < to * seconds)
  const q2Median = median(within(0.25, 0.5).map(pick))
  const q4Median = median(samples.filter((s) => s.t >= 0.75 * seconds).map(pick))
  const limit = factor * q2Median + slack
  const secondHalf = samples.filter((s) => s.t >= 0.5 * seconds).map((s) => [s.t / 60, pick(s)] as const)
  return {
    q2Median,
    q4Median,
    limit,
    slopePerMinute: slope(secondHalf),
    flat: Number.isFinite(q2Median) && Number.isFinite(q4Median) && q4Median <= limit
  }
}

export interface TokenFigures {
  readonly total: number
  readonly byKind: Readonly<Record<string, number>>
  readonly byOutcome: Readonly<Record<string, number>>
  readonly succeeded: number
  /** Requests that got no token (5xx, reset, outage 503): each may be followed by one retry. */
  readonly failed: number
  readonly inOutage: number
  /** From the first token request to the end of the run. */
  readonly spanSeconds: number
  /** spanSeconds / token lifetime: the figure the issue names. */
  readonly lifetimesElapsed: number
  /**
   * spanSeconds / (lifetime − refresh lead): the refresh periods the documented schedule allows. The lead is
   * `min(token_cache_buffer_seconds, lifetime / 2)`, so with 2 s tokens a token is replaced every ≥ 1 s.
   */
  readonly refreshPeriodsElapsed: number
  /** The bound: refresh periods + retries + revocations + 1 (the cold start). */
  readonly bound: number
}

export const tokenFigures = (
  requests: ReadonlyArray<TokenRequest>,
  settings: Settings,
  endAt: number,
  outage: { readonly from: number; readonly to: number },
  revocations: number,
  bufferSeconds: number
): TokenFigures => {
  const count = (key: (r: TokenRequest) => string) => {
    const out: Record<string, number> = {}
    for (const r of requests) out[key(r)] = (out[key(r)] ?? 0) + 1
    return out
  }
  const succeeded = requests.filter((r) => r.status === 200).length
  const failed = requests.length - succeeded
  const first = requests.length === 0 ? endAt : Math.min(...requests.map((r) => r.at))
  const spanSeconds = Math.max(0, (endAt - first) / 1000)
  const lead = Math.min(bufferSeconds, settings.tokenSeconds / 2)
  const lifetimesElapsed = spanSeconds / settings.tokenSeconds
  const refreshPeriodsElapsed = spanSeconds / (settings.tokenSeconds - lead)
  return {
    total: requests.length,
    byKind: count((r) => r.kind),
    byOutcome: count((r) => r.outcome),
    succeeded,
    failed,
    inOutage: requests.filter((r) => r.at >= outage.from && r.at < outage.to).length,
    spanSeconds,
    lifetimesElapsed,
    refreshPeriodsElapsed,
    bound: Math.ceil(refreshPeriodsElapsed) + failed + revocations + 1
  }
}

export interface CallFigures {
  readonly total: number
  readonly ok: number
  readonly failedOutside: number
  readonly failedOutageValid: number
  readonly failedOutageExpired: number
}

export const bars = (
  calls: CallFigures,
  tokens: TokenFigures,
  heap: Flatness,
  fibers: Flatness,
  flat: { readonly factor: number; readonly heapSlackMiB: number; readonly fiberSlack: number }
): ReadonlyArray<Bar> => [
  {
    name: "failed tool calls outside the outage",
    measured: calls.failedOutside.toLocaleString("en-US"),
    bar: "0",
    met: calls.failedOutside === 0
  },
  {
    name: "failed tool calls in the outage while the cached token was valid",
    measured: calls.failedOutageValid.toLocaleString("en-US"),
    bar: "0",
    met: calls.failedOutageValid === 0
  },
  {
    name: "token requests ≤ refresh periods elapsed + retries (+ revocations + cold start)",
    measured: tokens.total.toLocaleString("en-US"),
    bar: `≤ ${Math.ceil(tokens.refreshPeriodsElapsed)} + ${tokens.failed} + ${
      tokens.bound - Math.ceil(tokens.refreshPeriodsElapsed) - tokens.failed
    } = ${tokens.bound}`,
    met: tokens.total <= tokens.bound
  },
  {
    name: "heap after gc flat from the second half on (last-quarter vs second-quarter median)",
    measured: `${heap.q4Median.toFixed(1)} vs ${heap.q2Median.toFixed(1)} MiB`,
    bar: `≤ ${flat.factor} × q2 + ${flat.heapSlackMiB} MiB = ${heap.limit.toFixed(1)} MiB`,
    met: heap.flat
  },
  {
    name:
      "live fibers (least of 20 counts per sample) flat from the second half on (last-quarter vs second-quarter median)",
    measured: `${fibers.q4Median} vs ${fibers.q2Median}`,
    bar: `≤ ${flat.factor} × q2 + ${flat.fiberSlack} = ${fibers.limit.toFixed(1)}`,
    met: fibers.flat
  }
]

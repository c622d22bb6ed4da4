/**
 * The Fleet scenario (issue 15): what the parent (`plansFleet.ts`) and a worker process (`fleet.ts`) say to each other
 * over IPC. Every worker is a Node process of its own holding one or more Promise-API auths ("slots"); the parent
 * sends commands, the worker answers each by its id.
 */

/** Header every worker adds to its token requests, so the endpoint knows which process sent one. */
export const WORKER_HEADER = "x-fleet-worker"

/** One tool call's outcome, as the worker counts them. */
export interface CallTally {
  readonly ok: number
  readonly failed: number
  /** Calls that got a 401, invalidated the token and succeeded on the retry with a fresh one. */
  readonly retried: number
  /** Longest `getHeaders()` (ms): how long a caller waited for its token. */
  readonly maxHeadersMs: number
  /** The first failures (message), at most 3. */
  readonly errors: ReadonlyArray<string>
}

export type Command =
  /** Creates the auth (`createServiceAccountAuth(config)`) and builds it (`state()`: connects to Redis). */
  | { readonly op: "open"; readonly slot: string; readonly config: Readonly<Record<string, unknown>> }
  /** At `at` (epoch ms): `getToken()`; answers `{ token, ms }` or `{ error, ms }`. */
  | { readonly op: "token"; readonly slot: string; readonly at: number }
  /** At `at`: one tool call per slot (with the 401 → `invalidate` → retry handling); answers a {@link CallTally}. */
  | { readonly op: "call"; readonly slots: ReadonlyArray<string>; readonly at: number; readonly apiUrl: string }
  /** From `at` to `until`: a tool call every `intervalMs` on each slot; answers a {@link CallTally} per slot. */
  | {
    readonly op: "run"
    readonly slots: ReadonlyArray<string>
    readonly at: number
    readonly until: number
    readonly intervalMs: number
    readonly apiUrl: string
  }
  /** `state()` of the slot's auth. */
  | { readonly op: "state"; readonly slot: string }
  /**
   * `mcp_auth_shared_cache_total` of this process, by `provider/outcome`, and why the store failed (`operation:
   * reason`, from the providers' warnings), both cumulative: a {@link Metrics}.
   */
  | { readonly op: "metrics" }
  | { readonly op: "close"; readonly slot: string }
  /**
   * Warm-cache `getHeaders()` cost (T2-style) of two slots in this one process: after warm-up, `reps` interleaved
   * repetitions of `calls` sequential calls on each; answers µs of CPU time per call for each repetition, the medians, and the
   * median of the per-repetition ratios (first slot ÷ second).
   */
  | { readonly op: "micro"; readonly slots: ReadonlyArray<string>; readonly calls: number; readonly reps: number }

export interface Metrics {
  readonly counters: Readonly<Record<string, number>>
  readonly reasons: Readonly<Record<string, number>>
}

export interface Request {
  readonly id: number
  readonly command: Command
}

export type Reply =
  | { readonly type: "ready" }
  | { readonly type: "reply"; readonly id: number; readonly data: unknown }
  | { readonly type: "failed"; readonly id: number; readonly message: string }

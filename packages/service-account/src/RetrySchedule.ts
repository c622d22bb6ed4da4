/**
 * Retries and backoff, written once: capped exponential backoff with full jitter, a server's `Retry-After` in place
 * of the backoff, an attempt limit and an elapsed-time budget, as one `Schedule` for `Effect.retry`. Used by the
 * token fetch, the background refresh and MCP client reconnects.
 *
 * The n-th retry waits `U(0, min(maxBackoff, initialBackoff × 2^(n−1)))` ("full jitter"), so a fleet that failed at
 * the same moment does not come back at the same moment. Random draws go through Effect's `Random` service and
 * time through `Clock`, so `Effect.withRandom` and `TestClock` make a run reproducible.
 *
 * @example
 * ```ts
 * import * as RetrySchedule from "@mcp-auth/service-account/RetrySchedule"
 * import * as Duration from "effect/Duration"
 * import * as Effect from "effect/Effect"
 *
 * interface Unavailable {
 *   readonly _tag: "Unavailable"
 *   readonly retryable: boolean
 *   readonly retryAfter?: Duration.Duration | undefined
 * }
 *
 * declare const request: Effect.Effect<string, Unavailable>
 *
 * // at most 4 requests, backoff ceilings 0.5 s, 1 s, 2 s, and never waiting past 30 s after the first failure
 * const schedule = RetrySchedule.make<Unavailable>(
 *   { maxAttempts: 4, initialBackoff: "500 millis", maxBackoff: "10 seconds", maxElapsed: "30 seconds" },
 *   { while: (error) => error.retryable, retryAfter: (error) => error.retryAfter }
 * )
 *
 * const program: Effect.Effect<string, Unavailable> = Effect.retry(request, schedule)
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import type { RetryPolicy } from "./ServiceAccountConfig.js"

/**
 * A retry policy: attempt limit, backoff ceilings, elapsed budget and jitter.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Policy {
  /** Attempts in total, the first included (retries = maxAttempts − 1). */
  readonly maxAttempts: number
  /** Ceiling of the first retry's delay; it doubles per retry. */
  readonly initialBackoff: Duration.DurationInput
  /** Cap on the ceiling. */
  readonly maxBackoff: Duration.DurationInput
  /** No retry is scheduled whose delay would end later than this after the schedule's first step (optional). */
  readonly maxElapsed?: Duration.DurationInput | undefined
  /** `"full"` (default): delay = U(0, ceiling); `"none"`: delay = ceiling. */
  readonly jitter?: "full" | "none" | undefined
}

/**
 * The policy of a decoded `ServiceAccountConfig`'s `retry` block (`max_attempts`, `initial_backoff_seconds`,
 * `max_backoff_seconds`, `max_elapsed_seconds`), with full jitter.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromRetryConfig = (retry: RetryPolicy): Policy => ({
  maxAttempts: retry.maxAttempts,
  initialBackoff: Duration.seconds(retry.initialBackoffSeconds),
  maxBackoff: Duration.seconds(retry.maxBackoffSeconds),
  maxElapsed: Duration.seconds(retry.maxElapsedSeconds),
  jitter: "full"
})

const millisOf = (input: Duration.DurationInput): number => Duration.toMillis(Duration.decode(input))

/**
 * The backoff ceiling of the n-th retry (n ≥ 1): `min(maxBackoff, initialBackoff × 2^(n−1))`, in milliseconds.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const ceilingMillis = (policy: Policy, retry: number): number => {
  const initial = millisOf(policy.initialBackoff)
  const max = millisOf(policy.maxBackoff)
  if (!(initial > 0) || !(max > 0)) return 0
  return Math.min(max, initial * 2 ** (Math.max(1, Math.floor(retry)) - 1))
}

/**
 * The delay of the n-th retry for a uniform draw `u` ∈ [0, 1): with full jitter `round(u × ceiling)` (never above
 * the ceiling), without jitter the ceiling itself. In milliseconds.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const delayMillis = (policy: Policy, retry: number, u: number): number => {
  const ceiling = ceilingMillis(policy, retry)
  if (policy.jitter === "none") return ceiling
  const draw = Number.isFinite(u) ? Math.min(Math.max(u, 0), 1) : 0
  return Math.min(ceiling, Math.round(draw * ceiling))
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options<E> {
  /** Retry only while this holds for the error (default: every error). */
  readonly while?: ((error: E) => boolean) | undefined
  /** A server-given wait (e.g. `Retry-After`) that replaces the backoff of this retry. */
  readonly retryAfter?: ((error: E) => Duration.Duration | undefined) | undefined
}

interface Step {
  readonly retry: number
  readonly delayMillis: number
  readonly elapsedMillis: number
}

/**
 * The schedule for `Effect.retry`; its input is the error, its output the number of the retry it schedules (1, 2,
 * …). It stops after `maxAttempts − 1` retries, as soon as `while(error)` is false, or when the next delay would end
 * more than `maxElapsed` after the first failure. When `retryAfter(error)` returns a duration, that wait replaces
 * the jittered backoff of this retry (if it ends within the budget; otherwise the schedule stops).
 *
 * Draws come from the `Random` service and time from `Clock`: `Effect.withRandom` and `TestClock` make it
 * deterministic.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = <E>(policy: Policy, options?: Options<E>): Schedule.Schedule<number, E> => {
  const keepGoing = options?.while
  const retryAfter = options?.retryAfter
  const budget = policy.maxElapsed === undefined ? undefined : millisOf(policy.maxElapsed)

  const delayOf = (retry: number, error: E): Effect.Effect<number> => {
    const serverWait = retryAfter?.(error)
    if (serverWait !== undefined) return Effect.succeed(Math.max(0, Duration.toMillis(serverWait)))
    if (policy.jitter === "none") return Effect.succeed(ceilingMillis(policy, retry))
    return Effect.map(Random.next, (u) => delayMillis(policy, retry, u))
  }

  const attempts = Schedule.recurs(Math.max(0, Math.floor(policy.maxAttempts - 1))).pipe(
    Schedule.intersect(Schedule.identity<E>()),
    Schedule.intersect(Schedule.elapsed)
  )
  const steps: Schedule.Schedule<Step, E> = (
    keepGoing === undefined ? attempts : Schedule.whileInput(attempts, keepGoing)
  ).pipe(
    Schedule.mapEffect(([[index, error], elapsed]) =>
      Effect.map(delayOf(index + 1, error), (delay): Step => ({
        retry: index + 1,
        delayMillis: delay,
        elapsedMillis: Duration.toMillis(elapsed)
      }))
    )
  )
  const budgeted = budget === undefined
    ? steps
    : Schedule.check(steps, (_: E, step: Step) => step.elapsedMillis + step.delayMillis <= budget)
  return budgeted.pipe(
    Schedule.modifyDelay((step) => Duration.millis(step.delayMillis)),
    Schedule.map((step) => step.retry)
  )
}

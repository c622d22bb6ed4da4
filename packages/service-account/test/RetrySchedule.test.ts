import { describe, expect, it } from "@effect/vitest"
import * as RetrySchedule from "@mcp-auth/service-account/RetrySchedule"
import { Clock, Duration, Effect, FastCheck as fc, Fiber, Random, Schedule, TestClock } from "effect"

interface Failure {
  readonly retryable: boolean
  readonly retryAfter?: Duration.Duration | undefined
}

const transient: Failure = { retryable: true }

/**
 * Runs an always-failing attempt under `Effect.retry(schedule)` with the TestClock and returns the clock times at
 * which the attempts started. `failures(n)` is the error of the n-th attempt (1-based); `work` is how long an attempt
 * takes before it fails.
 */
const attemptTimes = (
  schedule: RetrySchedule.Policy | ReturnType<typeof RetrySchedule.make<Failure>>,
  failures: (attempt: number) => Failure = () => transient,
  work: Duration.DurationInput = Duration.zero
) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    const attempt = Effect.gen(function*() {
      times.push(yield* Clock.currentTimeMillis)
      yield* Effect.sleep(work)
      return yield* Effect.fail(failures(times.length))
    })
    const retried = Effect.retry(
      attempt,
      "maxAttempts" in schedule ? RetrySchedule.make<Failure>(schedule) : schedule
    )
    const fiber = yield* Effect.fork(retried)
    yield* TestClock.adjust("1 days")
    const exit = yield* Fiber.await(fiber)
    expect(exit._tag).toBe("Failure")
    return times.map((t) => t - times[0]!)
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - times[i]!)

describe("RetrySchedule", () => {
  it.effect("makes maxAttempts attempts in total; without jitter the delays double, then stay capped", () =>
    Effect.gen(function*() {
      const policy: RetrySchedule.Policy = {
        maxAttempts: 6,
        initialBackoff: "100 millis",
        maxBackoff: "250 millis",
        jitter: "none"
      }
      const times = yield* attemptTimes(policy)
      expect(times).toHaveLength(6)
      expect(gaps(times)).toEqual([100, 200, 250, 250, 250])
      expect(yield* attemptTimes({ ...policy, maxAttempts: 1 })).toEqual([0])
      expect(yield* attemptTimes({ ...policy, maxAttempts: 3 })).toHaveLength(3)
    }))

  it.effect("full jitter: each delay is round(u × ceiling) for the Random service's draws, in order", () =>
    Effect.gen(function*() {
      const policy: RetrySchedule.Policy = { maxAttempts: 5, initialBackoff: "1 second", maxBackoff: "3 seconds" }
      const times = yield* attemptTimes(policy).pipe(Effect.withRandom(Random.fixed([0.5, 0.25, 0.999, 0])))
      // ceilings 1000, 2000, 3000 (capped), 3000
      expect(gaps(times)).toEqual([500, 500, 2997, 0])
    }))

  it.effect("full jitter with a seeded Random: every delay lies in [0, ceiling]; the same seed repeats the run", () =>
    Effect.gen(function*() {
      const policy: RetrySchedule.Policy = { maxAttempts: 8, initialBackoff: "200 millis", maxBackoff: "5 seconds" }
      for (const seed of ["a", "b", "c", "d", "e"]) {
        const run = Effect.suspend(() => attemptTimes(policy).pipe(Effect.withRandom(Random.make(seed))))
        const delays = gaps(yield* run)
        expect(delays).toHaveLength(7)
        delays.forEach((delay, i) => {
          expect(delay).toBeGreaterThanOrEqual(0)
          expect(delay).toBeLessThanOrEqual(RetrySchedule.ceilingMillis(policy, i + 1))
        })
        expect(gaps(yield* run)).toEqual(delays)
      }
    }))

  it.effect("a Retry-After replaces the backoff of that retry only", () =>
    Effect.gen(function*() {
      const schedule = RetrySchedule.make<Failure>(
        { maxAttempts: 4, initialBackoff: "100 millis", maxBackoff: "10 seconds", jitter: "none" },
        { retryAfter: (error) => error.retryAfter }
      )
      const times = yield* attemptTimes(
        schedule,
        (n) => n === 2 ? { retryable: true, retryAfter: Duration.seconds(7) } : transient
      )
      expect(gaps(times)).toEqual([100, 7000, 400])
    }))

  it.effect("the elapsed budget: a delay that would end past maxElapsed is not taken", () =>
    Effect.gen(function*() {
      const policy: RetrySchedule.Policy = {
        maxAttempts: 10,
        initialBackoff: "300 millis",
        maxBackoff: "10 seconds",
        maxElapsed: "1 second",
        jitter: "none"
      }
      // 300 (ends at 300), 600 (ends at 900), 1200 would end at 2100 > 1000
      expect(gaps(yield* attemptTimes(policy))).toEqual([300, 600])
      // exactly at the budget is allowed
      expect(gaps(yield* attemptTimes({ ...policy, maxElapsed: "900 millis" }))).toEqual([300, 600])
      expect(gaps(yield* attemptTimes({ ...policy, maxElapsed: "899 millis" }))).toEqual([300])
      // time spent in the attempts counts: failures at 200 (budget start) and 700; 700 - 200 + 600 > 1000
      expect(gaps(yield* attemptTimes(policy, () => transient, "200 millis"))).toEqual([500])
    }))

  it.effect("a Retry-After that does not fit the budget stops the retries", () =>
    Effect.gen(function*() {
      const schedule = RetrySchedule.make<Failure>(
        { maxAttempts: 10, initialBackoff: "100 millis", maxBackoff: "1 second", maxElapsed: "5 seconds" },
        { retryAfter: (error) => error.retryAfter }
      )
      const times = yield* attemptTimes(
        schedule,
        (n) => n === 2 ? { retryable: true, retryAfter: Duration.seconds(6) } : transient
      ).pipe(Effect.withRandom(Random.fixed([0.5])))
      expect(gaps(times)).toEqual([50])
    }))

  it.effect("`while` false stops at once, without waiting", () =>
    Effect.gen(function*() {
      const schedule = RetrySchedule.make<Failure>(
        { maxAttempts: 10, initialBackoff: "100 millis", maxBackoff: "1 second", jitter: "none" },
        { while: (error) => error.retryable }
      )
      expect(yield* attemptTimes(schedule, () => ({ retryable: false }))).toEqual([0])
      expect(yield* attemptTimes(schedule, (n) => ({ retryable: n < 3 }))).toEqual([0, 100, 300])
    }))

  it.effect("outputs the number of the retry it schedules", () =>
    Effect.gen(function*() {
      const outputs: Array<number> = []
      const schedule = RetrySchedule.make<Failure>({
        maxAttempts: 4,
        initialBackoff: "10 millis",
        maxBackoff: "1 second",
        jitter: "none"
      }).pipe(
        Schedule.onDecision((retry, decision) =>
          Effect.sync(() => {
            if (decision._tag === "Continue") outputs.push(retry)
          })
        )
      )
      yield* attemptTimes(schedule)
      expect(outputs).toEqual([1, 2, 3])
    }))

  it("fromRetryConfig reads the decoded retry block in seconds, with full jitter", () => {
    const policy = RetrySchedule.fromRetryConfig({
      maxAttempts: 4,
      initialBackoffSeconds: 0.5,
      maxBackoffSeconds: 10,
      maxElapsedSeconds: 30
    })
    expect(policy.maxAttempts).toBe(4)
    expect(policy.jitter).toBe("full")
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => RetrySchedule.ceilingMillis(policy, n))).toEqual([
      500,
      1000,
      2000,
      4000,
      8000,
      10000,
      10000
    ])
    expect(Duration.toMillis(Duration.decode(policy.maxElapsed!))).toBe(30000)
  })

  it.prop(
    "0 ≤ delayMillis ≤ ceilingMillis ≤ maxBackoff, the ceiling never decreases, and no jitter means the ceiling",
    [
      // milliseconds with microsecond fractions (Duration keeps nanoseconds)
      fc.integer({ min: 0, max: 60_000_000 }).map((micros) => micros / 1000),
      fc.integer({ min: 0, max: 600_000_000 }).map((micros) => micros / 1000),
      fc.integer({ min: 1, max: 2_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
    ],
    ([initialInput, maxInput, retry, u]) => {
      const initial = Duration.toMillis(Duration.millis(initialInput))
      const max = Duration.toMillis(Duration.millis(maxInput))
      const policy: RetrySchedule.Policy = {
        maxAttempts: 5,
        initialBackoff: Duration.millis(initialInput),
        maxBackoff: Duration.millis(maxInput)
      }
      const ceiling = RetrySchedule.ceilingMillis(policy, retry)
      const delay = RetrySchedule.delayMillis(policy, retry, u)
      expect(Number.isFinite(ceiling)).toBe(true)
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThanOrEqual(ceiling)
      expect(ceiling).toBeLessThanOrEqual(max)
      expect(RetrySchedule.ceilingMillis(policy, retry + 1)).toBeGreaterThanOrEqual(ceiling)
      expect(ceiling).toBe(initial === 0 || max === 0 ? 0 : Math.min(max, initial * 2 ** (retry - 1)))
      expect(RetrySchedule.delayMillis({ ...policy, jitter: "none" }, retry, u)).toBe(ceiling)
    },
    { fastCheck: { numRuns: 2000 } }
  )
})

import { describe, expect, it } from "@effect/vitest"
import { FakeHttpClient as FakeTokenEndpoint } from "@mcp-auth/testing"
import { Clock, Duration, Effect, Fiber, Redacted, TestClock } from "effect"
import { settle, setup } from "./utils/provider.js"

const token = FakeTokenEndpoint.token

/** Answers from a script, one reply per request, then fresh tokens; records when each request arrived. */
const scripted = (script: ReadonlyArray<FakeTokenEndpoint.Reply>) => {
  const times: Array<number> = []
  const handler: FakeTokenEndpoint.Handler = (n) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      times.push(now)
      return script[n - 1] ?? token(n)
    })
  return { handler, times }
}

/** Moves the TestClock in steps until `fiber` is done. */
const drive = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, step: Duration.DurationInput = "100 millis", max = 600) =>
  Effect.gen(function*() {
    for (let i = 0; i < max && (yield* fiber.poll)._tag === "None"; i++) {
      yield* TestClock.adjust(step)
      yield* settle
    }
    return yield* Fiber.await(fiber)
  })

describe("token endpoint failure policy", () => {
  it.scoped("retries transient failures (5xx, network, timeout) with backoff until one succeeds", () =>
    Effect.gen(function*() {
      const { handler, times } = scripted([
        { status: 500, body: "" },
        { fail: "ECONNRESET" },
        { status: 502, body: "<html></html>" }
      ])
      const t = yield* setup(handler)
      const exit = yield* drive(yield* Effect.fork(t.provider.get))
      expect(exit._tag).toBe("Success")
      expect(yield* t.fake.calls).toBe(4)
      // full jitter: each wait ≤ the doubling ceiling (0.5 s, 1 s, 2 s)
      const gaps = times.slice(1).map((time, i) => time - times[i]!)
      gaps.forEach((gap, i) => expect(gap).toBeLessThanOrEqual(500 * 2 ** i + 100))
      expect(yield* t.requests("TokenEndpointError")).toBe(2)
      expect(yield* t.requests("NetworkError")).toBe(1)
      expect(yield* t.requests("success")).toBe(1)
    }))

  it.scoped("gives up after max_attempts with the last error", () =>
    Effect.gen(function*() {
      const t = yield* setup(() => Effect.succeed({ status: 503, body: "" }), { retry: { max_attempts: 3 } })
      const exit = yield* drive(yield* Effect.fork(t.provider.get))
      expect(exit).toMatchObject({ _tag: "Failure" })
      expect(yield* t.fake.calls).toBe(3)
    }))

  const permanent: ReadonlyArray<[string, FakeTokenEndpoint.Reply, string]> = [
    ["invalid_client", { status: 401, body: { error: "invalid_client" } }, "InvalidCredentialsError"],
    ["unauthorized_client", { status: 400, body: { error: "unauthorized_client" } }, "InvalidCredentialsError"],
    ["invalid_scope", { status: 400, body: { error: "invalid_scope" } }, "TokenEndpointError"],
    ["a TLS verification failure", { fail: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }, "TlsError"],
    ["a malformed success", { status: 200, body: { access_token: "x", token_type: "mac" } }, "MalformedResponseError"]
  ]
  for (const [name, reply, tag] of permanent) {
    it.scoped(`never retries ${name}`, () =>
      Effect.gen(function*() {
        const t = yield* setup(() => Effect.succeed(reply))
        const exit = yield* drive(yield* Effect.fork(Effect.flip(t.provider.get)))
        expect(exit._tag === "Success" && exit.value._tag).toBe(tag)
        expect(yield* t.fake.calls).toBe(1)
      }))
  }

  it.scoped("honours Retry-After exactly: no request before it ends", () =>
    Effect.gen(function*() {
      const { handler, times } = scripted([{ status: 429, headers: { "retry-after": "2" }, body: "" }])
      const t = yield* setup(handler)
      const fiber = yield* Effect.fork(t.provider.get)
      yield* settle
      yield* TestClock.adjust("1999 millis")
      yield* settle
      expect(yield* t.fake.calls).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(Redacted.value((yield* Fiber.join(fiber)).token)).toBe("tok-2")
      expect(times).toEqual([times[0], times[0]! + 2000])
    }))

  it.scoped("honours retry-after-ms and a 503's Retry-After", () =>
    Effect.gen(function*() {
      const { handler, times } = scripted([
        { status: 429, headers: { "retry-after-ms": "750" }, body: "" },
        { status: 503, headers: { "retry-after": "3" }, body: "" }
      ])
      const t = yield* setup(handler)
      yield* drive(yield* Effect.fork(t.provider.get), "50 millis")
      expect(times.slice(1).map((time, i) => time - times[i]!)).toEqual([750, 3000])
    }))

  it.scoped("a cool-down is shared: callers arriving during it wait without requests of their own", () =>
    Effect.gen(function*() {
      const { handler, times } = scripted([{ status: 429, headers: { "retry-after": "5" }, body: "" }])
      const t = yield* setup(handler)
      const first = yield* Effect.fork(t.provider.get)
      yield* settle
      yield* TestClock.adjust("2 seconds")
      const late = yield* Effect.fork(
        Effect.all(Array.from({ length: 20 }, () => t.provider.get), { concurrency: "unbounded" })
      )
      yield* settle
      expect(yield* t.fake.calls).toBe(1)
      yield* TestClock.adjust("3 seconds")
      yield* settle
      yield* Fiber.join(first)
      expect((yield* Fiber.join(late)).map((tok) => Redacted.value(tok.token))).toEqual(Array(20).fill("tok-2"))
      expect(times).toHaveLength(2)
    }))

  it.scoped("when the wait exceeds what callers may wait, they get RateLimitedError with retryAfter, without requests", () =>
    Effect.gen(function*() {
      const t = yield* setup(
        () => Effect.succeed({ status: 429, headers: { "retry-after": "120" }, body: "" }),
        { retry: { max_elapsed_seconds: 10 } }
      )
      const error = yield* Effect.flip(t.provider.get)
      expect(error).toMatchObject({ _tag: "RateLimitedError", status: 429, retryAfter: Duration.seconds(120) })
      yield* TestClock.adjust("20 seconds")
      const again = yield* Effect.flip(t.provider.get)
      expect(again).toMatchObject({ _tag: "RateLimitedError", retryAfter: Duration.seconds(100) })
      expect(again.message).toContain("retry after 100s")
      expect(yield* t.fake.calls).toBe(1)
      expect((yield* t.provider.state).coolingDownUntil).toBeGreaterThan(0)
    }))

  it.scoped("invalid credentials latch: 100 callers make 1 request, 10 more within the cool-down make none", () =>
    Effect.gen(function*() {
      const t = yield* setup(() => Effect.succeed({ status: 401, body: { error: "invalid_client" } }))
      const first = yield* Effect.all(Array.from({ length: 100 }, () => Effect.flip(t.provider.get)), {
        concurrency: "unbounded"
      })
      expect(yield* t.fake.calls).toBe(1)
      yield* TestClock.adjust("30 seconds")
      const more = yield* Effect.all(Array.from({ length: 10 }, () => Effect.flip(t.provider.get)), {
        concurrency: "unbounded"
      })
      expect(yield* t.fake.calls).toBe(1)
      for (const error of [...first, ...more]) {
        expect(error).toMatchObject({ _tag: "InvalidCredentialsError", error: "invalid_client", status: 401 })
      }
      expect((yield* t.provider.state).latchedUntil).toBeGreaterThan(0)
      yield* TestClock.adjust("31 seconds") // the 60 s cool-down is over: one new attempt
      yield* Effect.flip(t.provider.get)
      expect(yield* t.fake.calls).toBe(2)
    }))

  it.scoped("retries run while the still-valid token keeps being served", () =>
    Effect.gen(function*() {
      let down = false
      const t = yield* setup((n) => Effect.succeed(down ? { status: 503, body: "" } : token(n, 600)))
      yield* t.provider.get
      down = true
      yield* TestClock.adjust("580 seconds") // in the refresh window
      for (let i = 0; i < 15; i++) {
        expect(yield* t.value(t.provider.get)).toBe("tok-1")
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      expect(yield* t.fake.calls).toBeGreaterThan(2)
      expect(yield* t.waiters).toBe(1)
      expect((yield* t.provider.state).status).toBe("degraded")
    }))

  it.scoped("a background refresh that runs out of time before expiry is not restarted by every call", () =>
    Effect.gen(function*() {
      let down = false
      const t = yield* setup((n) => Effect.succeed(down ? { status: 500, body: "" } : token(n, 600)), {
        retry: { max_attempts: 1, initial_backoff_seconds: 60, max_backoff_seconds: 60 }
      })
      yield* t.provider.get
      down = true
      yield* TestClock.adjust("540 seconds") // last minute of the lead window
      for (let i = 0; i < 580; i++) {
        yield* t.provider.get
        yield* settle
        yield* TestClock.adjust("100 millis")
      }
      // a few jittered retries at most, until one's backoff ran past expiry; never one request per call (580 calls)
      expect(yield* t.fake.calls).toBeLessThanOrEqual(10)
      expect((yield* t.provider.state).status).toBe("degraded")
    }))

  it.scoped("a server's refresh_in: 0 cannot turn every call into a token request", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 3600, { refresh_in: 0 })))
      yield* t.provider.get
      yield* Effect.all(Array.from({ length: 50 }, () => t.provider.get), { concurrency: "unbounded" })
      yield* settle
      expect(yield* t.fake.calls).toBe(1)
      const state = yield* t.provider.state
      expect("refreshAt" in state && state.refreshAt).toBe(360_000) // floored at 10 % of the lifetime
    }))

  it.scoped("a token that is dead on arrival (expires_in: 0) is an error, never handed out", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 0)))
      const error = yield* Effect.flip(t.provider.get)
      expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "expires_in" })
      expect(error.message).toContain("the token expired before it arrived")
    }))

  it.scoped("retry.max_elapsed_seconds bounds the whole fetch: an attempt never outlives the caller's budget", () =>
    Effect.gen(function*() {
      const t = yield* setup(
        (n) => n === 1 ? Effect.succeed({ status: 500, body: "" }) : Effect.as(Effect.never, token(n)),
        { timeout_seconds: 30, retry: { max_elapsed_seconds: 10, initial_backoff_seconds: 1, max_backoff_seconds: 1 } }
      )
      const fiber = yield* Effect.fork(Effect.flip(t.provider.get))
      const started = yield* Clock.currentTimeMillis
      const exit = yield* drive(fiber, "100 millis")
      const ended = yield* Clock.currentTimeMillis
      expect(exit._tag === "Success" && exit.value._tag).toBe("TokenTimeoutError")
      expect(ended - started).toBeLessThanOrEqual(10_300)
    }))

  it.scoped("an old refresh loop stops when another fetch has replaced the token", () =>
    Effect.gen(function*() {
      let down = false
      const t = yield* setup((n) => Effect.succeed(down ? { status: 500, body: "" } : token(n, 600)), {
        retry: { max_attempts: 1, initial_backoff_seconds: 20, max_backoff_seconds: 20 }
      })
      const first = yield* t.provider.get
      down = true
      yield* TestClock.adjust("500 seconds")
      yield* t.provider.get // starts the refresh loop, which fails and sleeps up to 20 s
      yield* settle
      const afterFailure = yield* t.fake.calls
      down = false
      yield* TestClock.adjust("2 seconds") // past the 1 s throttle on 401-driven drops
      expect(yield* t.provider.invalidate(first)).toBe(true)
      // the failed refresh left a cool-down: this caller waits it out, then fetches
      const fetched = yield* drive(yield* Effect.fork(t.value(t.provider.get)), "1 second")
      const replaced = fetched._tag === "Success" ? fetched.value : "failed"
      expect(replaced).toMatch(/^tok-\d+$/)
      const calls = yield* t.fake.calls
      yield* TestClock.adjust("30 seconds")
      yield* settle
      expect(yield* t.fake.calls).toBe(calls) // the old loop woke up and did nothing
      expect(yield* t.value(t.provider.get)).toBe(replaced)
      expect(afterFailure).toBe(2)
    }))

  it.scoped("401-driven drops are at most one per second", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n)))
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toBe(true)
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toBe(false) // a server rejecting every token
      yield* TestClock.adjust("1 second")
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toBe(true)
      expect(yield* t.value(t.provider.get)).toBe("tok-3")
    }))
})

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
})

import { describe, expect, it } from "@effect/vitest"
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
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
    it.scoped(`never retries ${name}, and throttles it: 20 sequential gets in its cool-down make 1 request`, () =>
      Effect.gen(function*() {
        const t = yield* setup(() => Effect.succeed(reply))
        const exit = yield* drive(yield* Effect.fork(Effect.flip(t.provider.get)))
        expect(exit._tag === "Success" && exit.value._tag).toBe(tag)
        for (let i = 0; i < 20; i++) {
          expect((yield* Effect.flip(t.provider.get))._tag).toBe(tag)
          yield* TestClock.adjust("1 second")
        }
        expect(yield* t.fake.calls).toBe(1)
        const state = yield* t.provider.state
        expect(state).toMatchObject({ status: "empty", cooldownKind: "permanent", consecutiveFailures: 1 })
        expect(state.lastError?._tag).toBe(tag)
        expect(yield* t.cooldowns("permanent", tag)).toBe(1)
        expect(yield* t.cooldownUntil).toBe(60) // Unix seconds: 60 s after the TestClock's epoch
      }))
  }

  it.scoped("a permanent failure's cool-down doubles while it repeats, up to its cap, and a success resets it", () =>
    Effect.gen(function*() {
      let broken = true
      const { handler, times } = scripted([])
      const t = yield* setup(
        (n, request) =>
          broken ? Effect.succeed({ status: 400, body: { error: "invalid_scope" } }) : handler(n, request),
        { failure_cooldown: { initial_seconds: 10, max_seconds: 40 } }
      )
      const requestsAt: Array<number> = []
      for (let second = 0; second < 200; second++) {
        const before = yield* t.fake.calls
        yield* Effect.either(t.provider.get)
        if ((yield* t.fake.calls) > before) requestsAt.push(second)
        yield* TestClock.adjust("1 second")
      }
      // cool-downs of 10, 20, 40, 40, 40 s: a request at 0, 10, 30, 70, 110, 150, 190
      expect(requestsAt).toEqual([0, 10, 30, 70, 110, 150, 190])
      expect((yield* t.provider.state).consecutiveFailures).toBe(7)
      broken = false
      yield* TestClock.adjust("40 seconds")
      yield* t.provider.get
      const state = yield* t.provider.state
      expect(state.status).toBe("fresh")
      expect(state.consecutiveFailures).toBeUndefined()
      expect(state.coolingDownUntil).toBeUndefined()
      expect(times).toHaveLength(1)
    }))

  it.scoped("failure_cooldown.initial_seconds: 0 turns the cool-down off", () =>
    Effect.gen(function*() {
      const t = yield* setup(() => Effect.succeed({ status: 400, body: { error: "invalid_scope" } }), {
        failure_cooldown: { initial_seconds: 0 }
      })
      for (let i = 0; i < 3; i++) yield* Effect.flip(t.provider.get)
      expect(yield* t.fake.calls).toBe(3)
    }))

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
      expect(yield* t.provider.state).toMatchObject({ coolingDownUntil: 60_000, cooldownKind: "permanent" })
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

  it.scoped("a token that is dead on arrival (expires_in: 0) is an error, never handed out, and throttled", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 0)))
      const error = yield* Effect.flip(t.provider.get)
      expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "expires_in" })
      for (let i = 0; i < 10; i++) expect((yield* Effect.flip(t.provider.get))._tag).toBe("MalformedResponseError")
      expect(yield* t.fake.calls).toBe(1)
    }))

  it.scoped("a token that arrives too late to use never replaces the still-valid one, and is retried, not per get", () =>
    Effect.gen(function*() {
      // every refresh answers a 1 s token after 1.5 s: expired on arrival (an overloaded endpoint)
      const t = yield* setup((n) =>
        n === 1 ? Effect.succeed(token(n, 600)) : Effect.as(Effect.sleep("1500 millis"), token(n, 1))
      )
      const first = yield* t.value(t.provider.get)
      yield* TestClock.adjust("580 seconds") // refresh window
      for (let i = 0; i < 30; i++) { // 15 s, until 595 s: the token stays usable throughout
        expect(yield* t.value(t.provider.get)).toBe(first) // starts the background refresh, then keeps serving
        yield* settle
        yield* TestClock.adjust("500 millis")
      }
      const state = yield* t.provider.state
      expect(state.status === "degraded" || state.status === "refreshing").toBe(true)
      expect(state.lastError).toMatchObject({ _tag: "MalformedResponseError", reason: "arrived_late" })
      expect(state.lastError?.message).toContain("arrived too late to use")
      // retried like any transient failure (4 attempts per fetch, then a backoff), never one request per get
      expect(yield* t.fake.calls).toBeGreaterThan(2)
      expect(yield* t.fake.calls).toBeLessThanOrEqual(1 + 4 * 4)
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

  it.scoped("no redundant refresh: a token replaced during its refresh window is not refreshed", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 600)))
      yield* t.provider.get
      yield* TestClock.adjust("580 seconds") // tok-1 is in its refresh window
      const now = yield* Clock.currentTimeMillis
      yield* t.provider.adopt(AccessToken.make({ token: "adopted", issuedAt: now, expiresInSeconds: 600 }))
      yield* Effect.all(Array.from({ length: 20 }, () => t.provider.get), { concurrency: "unbounded" })
      yield* settle
      expect(yield* t.fake.calls).toBe(1)
      expect(yield* t.value(t.provider.get)).toBe("adopted")
    }))

  it.scoped("a failed background refresh is retried by demand after its backoff, never by a timer", () =>
    Effect.gen(function*() {
      let down = false
      const t = yield* setup((n) => Effect.succeed(down ? { status: 500, body: "" } : token(n, 600)), {
        retry: { max_attempts: 1, initial_backoff_seconds: 20, max_backoff_seconds: 20 }
      })
      yield* t.provider.get
      down = true
      yield* TestClock.adjust("500 seconds")
      yield* t.provider.get // starts the refresh, which fails
      yield* settle
      expect(yield* t.fake.calls).toBe(2)
      yield* TestClock.adjust("60 seconds") // nobody asks: nothing happens
      yield* settle
      expect(yield* t.fake.calls).toBe(2)
      down = false
      yield* t.provider.get // past the backoff: this get starts the next refresh
      yield* settle
      expect(yield* t.fake.calls).toBe(3)
      expect((yield* t.provider.state).status).toBe("fresh")
    }))

  it.scoped("within that second, a token requested before the last drop (revoked in the same event) may still go", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n)))
      yield* t.provider.get // tok-1, requested at 0
      yield* TestClock.adjust("1 second")
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toEqual({ _tag: "Dropped" }) // drop at 1 s
      yield* TestClock.adjust("200 millis")
      // a refresh that was under way when the server revoked tokens delivers one requested at 0.5 s
      const older = AccessToken.make({ token: "requested-before-the-drop", issuedAt: 500, expiresInSeconds: 3600 })
      yield* t.provider.adopt(older)
      expect(yield* t.provider.invalidate(older)).toEqual({ _tag: "Dropped" })
      // a token fetched after that drop and rejected within a second: held back
      const fresh = yield* t.provider.get
      expect(yield* t.provider.invalidate(fresh)).toEqual({ _tag: "Throttled", retryAfterMillis: 1000 })
    }))

  it.scoped("401-driven drops are at most one per second", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n)))
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toEqual({ _tag: "Dropped" })
      yield* TestClock.adjust("400 millis")
      // a server rejecting every token: held back, with the wait
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toEqual({ _tag: "Throttled", retryAfterMillis: 600 })
      yield* TestClock.adjust("600 millis")
      expect(yield* t.provider.invalidate(yield* t.provider.get)).toEqual({ _tag: "Dropped" })
      expect(yield* t.value(t.provider.get)).toBe("tok-3")
    }))
})

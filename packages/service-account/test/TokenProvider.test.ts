import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Metrics from "@mcp-auth/service-account/Metrics"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient as FakeTokenEndpoint } from "@mcp-auth/testing"
import { Cause, Clock, Effect, Exit, Fiber, Metric, Redacted, Scope, TestClock } from "effect"
import { config, gate, settle, setup } from "./utils/provider.js"

const token = FakeTokenEndpoint.token

describe("TokenProvider lifecycle (TestClock)", () => {
  it.scoped("reuses the token until the refresh window", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 3600)))
      expect(yield* t.value(t.provider.get)).toBe("tok-1")
      yield* TestClock.adjust("3299 seconds") // window starts at 3600 - 300 × U(0.8, 1) ≥ 3300 s
      expect(yield* t.value(t.provider.get)).toBe("tok-1")
      yield* settle
      expect(yield* t.fake.calls).toBe(1)
      expect((yield* t.provider.state).status).toBe("fresh")
    }))

  it.scoped("starts one background refresh in the window; callers keep the current token and do not wait", () =>
    Effect.gen(function*() {
      const held = yield* gate
      const t = yield* setup((n) => n === 1 ? Effect.succeed(token(n, 3600)) : Effect.as(held.wait, token(n, 3600)))
      yield* t.provider.get
      yield* TestClock.adjust("3400 seconds") // inside the window whatever the jitter
      const during = yield* Effect.all(Array.from({ length: 50 }, () => t.value(t.provider.get)), {
        concurrency: "unbounded"
      })
      yield* settle
      expect(new Set(during)).toEqual(new Set(["tok-1"]))
      expect(yield* t.fake.calls).toBe(2) // exactly one refresh in flight
      expect((yield* t.provider.state).status).toBe("refreshing")
      expect(yield* t.waiters).toBe(1) // only the cold start waited
      yield* held.open
      yield* settle
      expect(yield* t.value(t.provider.get)).toBe("tok-2")
      expect(yield* t.fake.calls).toBe(2)
      expect((yield* t.provider.state).status).toBe("fresh")
    }))

  it.scoped("after real expiry, callers wait for a new token", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 3600)))
      yield* t.provider.get
      yield* TestClock.adjust("3600 seconds")
      expect((yield* t.provider.state).status).toBe("expired")
      expect(yield* t.value(t.provider.get)).toBe("tok-2")
      expect(yield* t.waiters).toBe(2)
    }))

  it.scoped("never hands out a token inside its last second", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 3600)), { token_cache_buffer_seconds: 0 })
      yield* t.provider.get
      yield* TestClock.adjust("3598 seconds")
      expect(yield* t.value(t.provider.get)).toBe("tok-1") // buffer 0: no early refresh
      yield* TestClock.adjust("1500 millis")
      expect(yield* t.value(t.provider.get)).toBe("tok-2")
    }))

  it.scoped("clamps the buffer to half the lifetime: a 30 s token with a 300 s buffer is fetched about every 15 s", () =>
    Effect.gen(function*() {
      const times: Array<number> = []
      const t = yield* setup((n) => Effect.map(Clock.currentTimeMillis, (now) => (times.push(now), token(n, 30))))
      for (let second = 0; second < 180; second++) {
        yield* t.provider.get
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      const gaps = times.slice(1).map((time, i) => time - times[i]!)
      expect(times.length).toBeGreaterThanOrEqual(180 / 19)
      expect(times.length).toBeLessThanOrEqual(180 / 15 + 1)
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(15_000)
      expect(yield* t.waiters).toBe(1)
    }))

  it.scoped("honours refresh_in when the server sends it", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 3600, { refresh_in: 600 })))
      yield* t.provider.get
      yield* TestClock.adjust("599 seconds")
      yield* t.provider.get
      yield* settle
      expect(yield* t.fake.calls).toBe(1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* t.value(t.provider.get)).toBe("tok-1")
      yield* settle
      expect(yield* t.fake.calls).toBe(2)
      expect(yield* t.value(t.provider.get)).toBe("tok-2")
    }))

  it.scoped("jitters the refresh point: 50 providers started together spread over ≥ 10 % of the lead window", () =>
    Effect.gen(function*() {
      const refreshAts: Array<number> = []
      for (let i = 0; i < 50; i++) {
        const t = yield* setup((n) => Effect.succeed(token(n, 3600)))
        yield* t.provider.get
        const state = yield* t.provider.state
        if (state.status === "fresh") refreshAts.push(state.refreshAt)
      }
      expect(refreshAts).toHaveLength(50)
      const lead = 300_000
      const spread = Math.max(...refreshAts) - Math.min(...refreshAts)
      expect(spread).toBeGreaterThanOrEqual(0.1 * lead)
      for (const at of refreshAts) {
        expect(at).toBeGreaterThanOrEqual(3_600_000 - lead)
        expect(at).toBeLessThanOrEqual(3_600_000 - 0.8 * lead)
      }
    }))

  it.scoped("serves the still-valid token while refreshing fails (degraded), then recovers", () =>
    Effect.gen(function*() {
      let healthy = true
      const t = yield* setup(
        (n) => Effect.succeed(healthy || n === 1 ? token(n, 3600) : { status: 500, body: "" }),
        { retry: { max_attempts: 2, initial_backoff_seconds: 1, max_backoff_seconds: 5 } }
      )
      yield* t.provider.get
      healthy = false
      yield* TestClock.adjust("3400 seconds")
      for (let i = 0; i < 30; i++) {
        expect(yield* t.value(t.provider.get)).toBe("tok-1")
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      const state = yield* t.provider.state
      expect(state.status).toBe("degraded")
      if (state.status === "degraded") {
        expect(state.timeLeftMillis).toBeGreaterThan(0)
        expect(state.lastError?._tag).toBe("TokenEndpointError")
      }
      expect(yield* t.degraded).toBe(1)
      expect(yield* t.requests("TokenEndpointError")).toBeGreaterThanOrEqual(2)
      expect(yield* t.waiters).toBe(1)
      healthy = true
      // no timer retries on its own: the next callers past the backoff start the refresh that recovers
      for (let i = 0; i < 10; i++) {
        expect(yield* t.value(t.provider.get)).toMatch(/^tok-\d+$/)
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      expect((yield* t.provider.state).status).toBe("fresh")
      expect(yield* t.degraded).toBe(0)
      expect(yield* t.value(t.provider.get)).toMatch(/^tok-\d+$/)
      expect(yield* t.value(t.provider.get)).not.toBe("tok-1")
    }))

  it.scoped("after real expiry with the endpoint still failing, callers get the typed error", () =>
    Effect.gen(function*() {
      const t = yield* setup(
        (n) => Effect.succeed(n === 1 ? token(n, 60) : { status: 502, body: "<html>down</html>" }),
        { retry: { max_attempts: 1 } }
      )
      yield* t.provider.get
      yield* TestClock.adjust("61 seconds")
      const error = yield* Effect.flip(t.provider.get)
      expect(error).toMatchObject({ _tag: "TokenEndpointError", status: 502 })
    }))

  it.scoped("in an outage, a token in its last second beats an error; after expiry callers get the error", () =>
    Effect.gen(function*() {
      const t = yield* setup(
        (n) => Effect.succeed(n === 1 ? token(n, 60) : { status: 503, body: "" }),
        { retry: { max_attempts: 1 } }
      )
      yield* t.provider.get
      yield* TestClock.adjust("59500 millis") // past the usable window (59 s), before expiry (60 s)
      expect(yield* t.value(t.provider.get)).toBe("tok-1") // the fetch failed: its waiters get the valid token
      expect(yield* t.value(t.provider.get)).toBe("tok-1") // in the cool-down: served without a request
      const calls = yield* t.fake.calls
      yield* TestClock.adjust("600 millis")
      const error = yield* Effect.flip(t.provider.get)
      expect(error).toMatchObject({ _tag: "TokenEndpointError", status: 503 })
      expect(calls).toBe(2)
    }))

  it.scoped("does not cache a failed fetch as if it were a token", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(n === 1 ? { status: 500, body: "" } : token(n)), {
        retry: { max_attempts: 1 }
      })
      const error = yield* Effect.flip(t.provider.get)
      expect(error).toMatchObject({ _tag: "TokenEndpointError", status: 500 })
      // the next caller waits out the short transient cool-down (≤ 0.5 s), then gets a token
      const next = yield* Effect.fork(t.value(t.provider.get))
      yield* settle
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(next)).toBe("tok-2")
      expect(yield* t.fake.calls).toBe(2)
    }))
})

describe("TokenProvider invalidation and concurrency", () => {
  it.scoped("compare-and-invalidate: only the rejected token is dropped", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n)))
      const first = yield* t.provider.get
      expect(yield* t.provider.invalidate(first)).toEqual({ _tag: "Dropped" })
      const second = yield* t.provider.get
      expect(Redacted.value(second.token)).toBe("tok-2")
      expect(yield* t.provider.invalidate(first)).toEqual({ _tag: "NotCurrent" }) // stale: never drops the current token
      expect(yield* t.value(t.provider.get)).toBe("tok-2")
      expect(yield* t.fake.calls).toBe(2)
    }))

  it.scoped("100 concurrent invalidations with the same token cause exactly one refetch", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n)))
      const current = yield* t.provider.get
      const results: Array<string> = []
      const dropped = yield* Effect.all(
        Array.from({ length: 100 }, () =>
          t.provider.invalidate(current).pipe(
            Effect.tap((result) => results.push(result._tag)),
            Effect.zipRight(t.provider.get)
          )),
        { concurrency: "unbounded" }
      )
      expect(yield* t.fake.calls).toBe(2)
      expect(results.filter((tag) => tag === "Dropped")).toHaveLength(1)
      expect(results.filter((tag) => tag === "NotCurrent")).toHaveLength(99)
      expect(new Set(dropped.map((tok) => Redacted.value(tok.token)))).toEqual(new Set(["tok-2"]))
    }))

  it.scoped("1000 concurrent cold gets make exactly one token request", () =>
    Effect.gen(function*() {
      const held = yield* gate
      const t = yield* setup((n) => Effect.as(held.wait, token(n)))
      const fibers = yield* Effect.fork(
        Effect.all(Array.from({ length: 1000 }, () => t.value(t.provider.get)), { concurrency: "unbounded" })
      )
      yield* settle
      yield* held.open
      const values = yield* Fiber.join(fibers)
      expect(new Set(values)).toEqual(new Set(["tok-1"]))
      expect(yield* t.fake.calls).toBe(1)
    }))

  it.scoped("an interrupted caller neither cancels the shared fetch nor poisons the cache", () =>
    Effect.gen(function*() {
      const held = yield* gate
      const t = yield* setup((n) => Effect.as(held.wait, token(n)))
      const a = yield* Effect.fork(t.provider.get)
      const b = yield* Effect.fork(t.provider.get)
      yield* settle
      yield* Fiber.interrupt(a)
      yield* held.open
      expect(Redacted.value((yield* Fiber.join(b)).token)).toBe("tok-1")
      expect(yield* t.value(t.provider.get)).toBe("tok-1")
      expect(yield* t.fake.calls).toBe(1)
    }))

  it.scoped("a caller's own timeout leaves the fetch running for everyone else", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.as(Effect.sleep("5 seconds"), token(n)))
      const impatient = yield* Effect.fork(Effect.timeout(t.provider.get, "1 second"))
      const patient = yield* Effect.fork(t.provider.get)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.await(impatient))._tag).toBe("Failure")
      yield* TestClock.adjust("4 seconds")
      expect(Redacted.value((yield* Fiber.join(patient)).token)).toBe("tok-1")
      expect(yield* t.fake.calls).toBe(1)
    }))

  it.effect("using a provider after its scope closed is a defect that says how to compose layers", () =>
    Effect.gen(function*() {
      const provider = yield* Effect.scoped(Effect.map(setup((n) => Effect.succeed(token(n))), (t) => t.provider))
      const exit = yield* Effect.exit(provider.get)
      expect(exit._tag === "Failure" && Cause.pretty(exit.cause)).toContain("was used after its scope closed")
    }))

  it.scoped("no caller waits on the token endpoint across 3 lifetimes under steady load", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 120)), { token_cache_buffer_seconds: 30 })
      yield* t.provider.get
      const coldWaiters = yield* t.waiters
      for (let tick = 0; tick < 3 * 120; tick++) {
        yield* Effect.all(Array.from({ length: 3 }, () => t.provider.get), { concurrency: "unbounded" })
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      expect(coldWaiters).toBe(1)
      expect(yield* t.waiters).toBe(1)
      expect(yield* t.fake.calls).toBeGreaterThanOrEqual(4)
    }))
})

describe("TokenProvider.mirror (TestClock)", () => {
  /** A mirror recording every update. */
  const recorder = () => {
    const updates: Array<readonly [string | undefined, number]> = []
    const target: TokenProvider.Mirror & { updates: typeof updates } = {
      hits: 0,
      updates,
      update: (token, until) => {
        updates.push([token === undefined ? undefined : Redacted.value(token.token), until])
      }
    }
    return target
  }
  const hits = (tokenUrl: string) =>
    Effect.map(Metric.value(Metric.tagged(Metrics.cacheHits, "token_url", tokenUrl)), (s) => s.count)

  it.scoped("is told what peek serves, at once and at every change: a token, a refresh under way, a drop, closing", () =>
    Effect.gen(function*() {
      const held = yield* gate
      const scope = yield* Scope.make()
      const t = yield* setup(
        (n) => n === 2 ? Effect.as(held.wait, token(n, 3600)) : Effect.succeed(token(n, 3600))
      ).pipe(Scope.extend(scope))
      const m = recorder()
      const clock = TokenProvider.mirror(t.provider, m)
      expect(clock).toBe(yield* Effect.clock)
      expect(m.updates).toEqual([[undefined, 0]]) // nothing to serve yet
      const first = yield* t.provider.get
      // what peek serves, until the refresh point (jittered in 3300–3360 s)
      expect(m.updates.at(-1)![0]).toBe("tok-1")
      const refreshAt = m.updates.at(-1)![1]
      expect(refreshAt).toBeGreaterThanOrEqual(3_300_000)
      expect(refreshAt).toBeLessThanOrEqual(3_360_000)
      expect(t.provider.peek()).toBe(first)

      // in the window a get starts the refresh: the token is served until it is no longer usable (3599 s)
      yield* TestClock.adjust("3400 seconds")
      yield* t.provider.get
      expect(m.updates.at(-1)).toEqual(["tok-1", 3_599_000])
      yield* held.open
      yield* settle
      expect(m.updates.at(-1)![0]).toBe("tok-2")

      // a 401 drops the token: nothing to serve
      const second = yield* t.provider.get
      expect((yield* t.provider.invalidate(second))._tag).toBe("Dropped")
      expect(m.updates.at(-1)![0]).toBeUndefined()
      yield* t.provider.get
      expect(m.updates.at(-1)![0]).toBe("tok-3")

      yield* Scope.close(scope, Exit.void)
      expect(m.updates.at(-1)![0]).toBeUndefined()
    }))

  it.scoped("the hits a mirror counts reach the cache-hit metric at each update and on flushMirror", () =>
    Effect.gen(function*() {
      // a token endpoint of its own, so that the token_url series is this test's
      const t = yield* setup((n) => Effect.succeed(token(n, 3600)), {
        token_url: "https://idp.example.com/mirror-hits/token"
      })
      const url = "https://idp.example.com/mirror-hits/token"
      const m = recorder()
      TokenProvider.mirror(t.provider, m)
      yield* t.provider.get
      const before = yield* hits(url)
      m.hits = 7
      TokenProvider.flushMirror(t.provider, m)
      expect(m.hits).toBe(0)
      expect(yield* hits(url)).toBe(before + 7)
      m.hits = 5
      const token1 = yield* t.provider.get
      yield* t.provider.invalidate(token1) // an update: the 5 hits are counted first
      expect(m.hits).toBe(0)
      expect(yield* hits(url)).toBeGreaterThanOrEqual(before + 12)
    }))

  it("is not supported by a TokenProvider built elsewhere: undefined, and the target is left alone", () => {
    const fake = { peek: () => undefined } as unknown as TokenProvider.TokenProvider
    const m = recorder()
    expect(TokenProvider.mirror(fake, m)).toBeUndefined()
    expect(m.updates).toEqual([])
  })
})

describe("TokenProvider: the context it was built in", () => {
  it.scoped("token requests run in the provider's context: services its HttpClient reads per request are seen", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      // FetchHttpClient reads its fetch from the context of each request
      const fetch: typeof globalThis.fetch = async (input) => {
        seen.push(String(input instanceof Request ? input.url : input))
        return new Response(JSON.stringify({ access_token: "ctx-tok", token_type: "Bearer", expires_in: 3600 }), {
          status: 200,
          headers: { "content-type": "application/json" }
        })
      }
      const provider = yield* TokenProvider.make(config()).pipe(
        Effect.provide(FetchHttpClient.layer),
        Effect.provideService(FetchHttpClient.Fetch, fetch)
      )
      expect(Redacted.value((yield* provider.get).token)).toBe("ctx-tok")
      expect(seen).toEqual(["https://idp.example.com/token"])
    }))

  it.scoped("a mirror that throws is dropped; the provider keeps working", () =>
    Effect.gen(function*() {
      const t = yield* setup((n) => Effect.succeed(token(n, 3600)))
      let calls = 0
      TokenProvider.mirror(t.provider, {
        hits: 0,
        update: () => {
          if (++calls > 1) throw new Error("a broken mirror")
        }
      })
      const first = yield* t.provider.get // the mirror throws here
      expect(Redacted.value(first.token)).toBe("tok-1")
      expect(t.provider.peek()).toBe(first)
      expect((yield* t.provider.invalidate(first))._tag).toBe("Dropped")
      expect(yield* t.value(t.provider.get)).toBe("tok-2")
      expect(calls).toBe(2) // dropped after it threw
      expect((yield* t.provider.state).status).toBe("fresh")
    }))
})

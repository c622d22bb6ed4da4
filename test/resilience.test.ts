/**
 * Resilience against a real loopback token endpoint: Retry-After herds, the invalid-credentials latch, and
 * stale-while-revalidate with the degraded metric.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Metrics from "@mcp-auth/service-account/Metrics"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FaultTokenEndpoint } from "@mcp-auth/testing"
import { Effect, Layer, Metric, Redacted, TestClock } from "effect"

const provider = (
  endpoint: FaultTokenEndpoint.FaultTokenEndpoint,
  name: string,
  extra: Record<string, unknown> = {}
) => {
  const config = ServiceAccountConfig.decodeSync({
    client_id: "svc-resilience",
    client_secret: "resilience-secret",
    token_url: endpoint.url,
    allow_insecure_http: true,
    ...extra
  })
  // build the HttpClient in the test's scope: it must outlive the provider's construction
  return Effect.flatMap(
    Layer.build(TokenHttpClient.layerFromConfig(config)),
    (context) => TokenProvider.make(config, { name }).pipe(Effect.provide(context))
  )
}

/** Real time, for real IO to happen while the TestClock stands still. */
const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/**
 * Moves the TestClock in 20 ms steps, with 5 ms of real time for IO after each, until `done` holds. Virtual time runs
 * at most 4× real time, so a slow real request meets its (virtual) 60 s timeout only after 15 s of real time.
 */
/** Virtual time in 20 ms steps until `done`; fails with a message after 60 s of virtual time (3 000 steps, 15 s real). */
const driveUntil = <E>(done: Effect.Effect<boolean, E>) =>
  Effect.gen(function*() {
    for (let step = 0; !(yield* done); step++) {
      if (step === 3_000) return yield* Effect.dieMessage("driveUntil: not done after 60 s of virtual time")
      yield* TestClock.adjust("20 millis")
      yield* realSleep(5)
    }
  })

const degradedGauge = (name: string) =>
  Effect.map(Metric.value(Metric.tagged(Metrics.degraded, "provider", name)), (state) => state.value)

describe("resilience (real HTTP)", () => {
  it.scopedLive("429 with Retry-After: 2 for 3 s: 100 cold callers with a 30 s deadline all get a token, ≤ 3 requests", () =>
    Effect.gen(function*() {
      const endpoint = yield* FaultTokenEndpoint.make({
        fallback: FaultTokenEndpoint.rateLimitWindow({ windowMs: 3000, retryAfter: 2 })
      })
      const p = yield* provider(endpoint, "herd-429")
      const tokens = yield* Effect.all(
        Array.from({ length: 100 }, () => Effect.timeout(p.get, "30 seconds")),
        { concurrency: "unbounded" }
      )
      expect(new Set(tokens.map((t) => Redacted.value(t.token))).size).toBe(1)
      expect(endpoint.count).toBeLessThanOrEqual(3)
      const [first, second] = endpoint.requests
      expect(first!.outcome).toBe("reply 429")
      // the wait is a timer, which may fire up to 1 ms early by Date.now
      expect(second!.time - first!.time).toBeGreaterThanOrEqual(1_990)
    }))

  it.scopedLive("invalid_client: 100 concurrent callers make 1 request; 10 more within the cool-down make 0", () =>
    Effect.gen(function*() {
      const endpoint = yield* FaultTokenEndpoint.make({ fallback: FaultTokenEndpoint.invalidClient(401) })
      const p = yield* provider(endpoint, "latch")
      const first = yield* Effect.all(Array.from({ length: 100 }, () => Effect.flip(p.get)), {
        concurrency: "unbounded"
      })
      expect(endpoint.count).toBe(1)
      const more = yield* Effect.all(Array.from({ length: 10 }, () => Effect.flip(p.get)), { concurrency: "unbounded" })
      expect(endpoint.count).toBe(1)
      for (const error of [...first, ...more]) {
        expect(error).toMatchObject({ _tag: "InvalidCredentialsError", status: 401, error: "invalid_client" })
      }
      expect(more[0]).toBe(first[0]) // the latched error itself
    }))

  it.scoped("refresh failing while the token is valid: callers are served, degraded shows it, recovery on heal", () =>
    Effect.gen(function*() {
      // real HTTP, TestClock time: lead = min(600, 3600/2) = 600 s, so the refresh window opens 480–600 s before expiry
      // and the token is usable until 3599 s: from 3200 s the refresh attempts have ~400 s of virtual time
      const endpoint = yield* FaultTokenEndpoint.make({ expiresIn: 3600 })
      const p = yield* provider(endpoint, "degraded-real", {
        token_cache_buffer_seconds: 600,
        timeout_seconds: 60,
        retry: { max_attempts: 1, initial_backoff_seconds: 0.1, max_backoff_seconds: 0.2 }
      })
      const first = Redacted.value((yield* p.get).token)
      endpoint.setFallback({ status: 503, body: "" })
      yield* TestClock.adjust("3200 seconds")
      // callers keep calling: each call past the refresh backoff starts one more (failing) background attempt
      const call = Effect.map(p.get, (token) => Redacted.value(token.token))
      for (let i = 0; i < 10; i++) {
        expect(yield* call).toBe(first)
        const attempts = endpoint.count
        yield* driveUntil(Effect.zipWith(call, Effect.sync(() => endpoint.count > attempts), (served, more) => {
          expect(served).toBe(first)
          return more
        }))
      }
      const state = yield* p.state
      expect(state.status).toBe("degraded")
      expect(yield* degradedGauge("degraded-real")).toBe(1)
      expect(endpoint.count).toBeGreaterThan(10)
      endpoint.setFallback(FaultTokenEndpoint.success())
      yield* driveUntil(Effect.zipRight(p.get, Effect.map(p.state, (s) => s.status === "fresh"))) // the next attempt heals
      expect(yield* degradedGauge("degraded-real")).toBe(0)
      expect(Redacted.value((yield* p.get).token)).not.toBe(first)
    }))
})

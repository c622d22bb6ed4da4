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
import { Effect, Layer, Metric, Redacted } from "effect"

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

const degradedGauge = (name: string) =>
  Effect.map(Metric.value(Metric.tagged(Metrics.degraded, "provider", name)), (state) => state.value)

describe("resilience (real HTTP)", () => {
  it.scopedLive("429 with Retry-After: 2 for 3 s: 100 cold callers with a 10 s deadline all get a token, ≤ 3 requests", () =>
    Effect.gen(function*() {
      const endpoint = yield* FaultTokenEndpoint.make({
        fallback: FaultTokenEndpoint.rateLimitWindow({ windowMs: 3000, retryAfter: 2 })
      })
      const p = yield* provider(endpoint, "herd-429")
      const tokens = yield* Effect.all(
        Array.from({ length: 100 }, () => Effect.timeout(p.get, "10 seconds")),
        { concurrency: "unbounded" }
      )
      expect(new Set(tokens.map((t) => Redacted.value(t.token))).size).toBe(1)
      expect(endpoint.count).toBeLessThanOrEqual(3)
      const [first, second] = endpoint.requests
      expect(first!.outcome).toBe("reply 429")
      expect(second!.time - first!.time).toBeGreaterThanOrEqual(2000)
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

  it.scopedLive("refresh failing while the token is valid: callers are served, degraded shows it, recovery on heal", () =>
    Effect.gen(function*() {
      // lead = min(6, 16/2) = 6 s: refresh 4.8–6 s before expiry at 16 s, usable until 15 s: seconds of slack
      const endpoint = yield* FaultTokenEndpoint.make({ expiresIn: 16 })
      const p = yield* provider(endpoint, "degraded-real", {
        token_cache_buffer_seconds: 6,
        retry: { max_attempts: 1, initial_backoff_seconds: 0.1, max_backoff_seconds: 0.2 }
      })
      const first = Redacted.value((yield* p.get).token)
      endpoint.setFallback({ status: 503, body: "" })
      yield* Effect.sleep("11.5 seconds") // inside the refresh window (from 10–11.2 s)
      for (let i = 0; i < 10; i++) {
        expect(Redacted.value((yield* p.get).token)).toBe(first)
        yield* Effect.sleep("100 millis")
      }
      const state = yield* p.state
      expect(state.status).toBe("degraded")
      expect(yield* degradedGauge("degraded-real")).toBe(1)
      expect(endpoint.count).toBeGreaterThan(2)
      endpoint.setFallback(FaultTokenEndpoint.success())
      yield* Effect.sleep("600 millis")
      yield* p.get
      expect((yield* p.state).status).toBe("fresh")
      expect(yield* degradedGauge("degraded-real")).toBe(0)
      expect(Redacted.value((yield* p.get).token)).not.toBe(first)
    }))
})

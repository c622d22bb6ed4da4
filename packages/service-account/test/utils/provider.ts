import * as Metrics from "@mcp-auth/service-account/Metrics"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient as FakeTokenEndpoint } from "@mcp-auth/testing"
import { Deferred, Effect, Metric, Redacted } from "effect"

export const SECRET = "cl1ent-s3cret-value"

export const config = (extra: Record<string, unknown> = {}) =>
  ServiceAccountConfig.decodeSync({
    client_id: "svc-a",
    client_secret: SECRET,
    token_url: "https://idp.example.com/token",
    scopes: ["mcp:tools"],
    ...extra
  })

let counter = 0

/** A provider (with a unique metric name) over a fake endpoint. Needs a Scope. */
export const setup = (handler: FakeTokenEndpoint.Handler, extra: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const fake = yield* FakeTokenEndpoint.make(handler)
    const name = `test-provider-${++counter}`
    // a token endpoint of its own (the fake answers any URL), so that the series tagged token_url are this test's
    const tokenUrl = `https://idp.example.com/${name}/token`
    const provider = yield* TokenProvider.make(config({ token_url: tokenUrl, ...extra }), { name }).pipe(
      Effect.provide(fake.layer)
    )
    const tagged = (metric: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
      Effect.map(
        Metric.value(Object.entries(tags).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)),
        (state) => state.count
      )
    const counterValue = (metric: Metric.Metric.Counter<number>, tags: Record<string, string> = {}) =>
      tagged(metric, { provider: name, ...tags })
    return {
      fake,
      provider,
      name,
      value: (effect: Effect.Effect<{ readonly token: Redacted.Redacted<string> }, unknown>) =>
        Effect.map(effect, (t) => Redacted.value(t.token)),
      waiters: Effect.zipWith(
        tagged(Metrics.waiters, { token_url: provider.tokenUrl, role: "leader" }),
        tagged(Metrics.waiters, { token_url: provider.tokenUrl, role: "coalesced" }),
        (a, b) => a + b
      ),
      requests: (outcome: string) => counterValue(Metrics.tokenRequests, { outcome }),
      degraded: Effect.map(Metric.value(Metric.tagged(Metrics.degraded, "provider", name)), (s) => s.value),
      cooldownUntil: Effect.map(Metric.value(Metric.tagged(Metrics.cooldownUntil, "provider", name)), (s) => s.value),
      cooldowns: (kind: string, reason: string) => counterValue(Metrics.cooldowns, { kind, reason })
    }
  })

/** Lets forked fibers (background refreshes) run without moving the TestClock. */
export const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** A gate the fake endpoint waits on, so tests can hold a fetch in flight. */
export const gate = Effect.map(Deferred.make<void>(), (d) => ({
  wait: Deferred.await(d),
  open: Deferred.succeed(d, undefined)
}))

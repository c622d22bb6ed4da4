/**
 * Ours inside Effect: `AuthHeaders.forRequest` / `TokenProvider.get` / `invalidate`, every driver running inside
 * fibers of one `ManagedRuntime` built from the layers (kept for as long as the client is used).
 */
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Redacted from "effect/Redacted"
import type { PeerOptions } from "../protocol.js"
import { oursConfig } from "./oursConfig.js"
import type { Drivers, PeerClient, SteadyResult, WaveResult } from "./Peer.js"
import { summarizeSteady } from "./Peer.js"

/** Sum of `mcp_auth_token_waiters_total` over every provider and role in this process. */
export const waitersTotal = (): Promise<number> =>
  Effect.runPromise(Effect.map(Metric.snapshot, (pairs) =>
    pairs.reduce(
      (sum, pair) =>
        pair.metricKey.name === "mcp_auth_token_waiters_total" && MetricState.isCounterState(pair.metricState)
          ? sum + Number(pair.metricState.count)
          : sum,
      0
    )))

const bearer = (set: AuthHeaders.AuthHeaderSet): string => Redacted.value(set.headers[0]![1])

export const makeRuntime = (options: PeerOptions) => {
  const config = ServiceAccountConfig.decodeSync(oursConfig(options))
  const provider = TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layerFromConfig(config)))
  return ManagedRuntime.make(
    AuthHeaders.layer.pipe(
      Layer.provideMerge(Layer.merge(provider, ServiceToken.none)),
      Layer.merge(Logger.minimumLogLevel(LogLevel.Warning))
    )
  )
}

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const runtime = makeRuntime(options)
  const context = RequestContext.make(options.endpoint.serverUrl ?? "http://127.0.0.1/mcp", "POST")
  const forRequest = Effect.flatMap(AuthHeaders.AuthHeaders, (auth) => auth.forRequest(context))
  const run = <A, E>(effect: Effect.Effect<A, E, AuthHeaders.AuthHeaders | TokenProvider.TokenProvider>) =>
    runtime.runPromise(effect)

  const drivers: Drivers = {
    burst: (n, deadlineMs) =>
      run(Effect.gen(function*() {
        const provider = yield* TokenProvider.TokenProvider
        const start = performance.now()
        const results = yield* Effect.all(
          Array.from({ length: n }, () =>
            Effect.either(provider.get.pipe(
              Effect.timeoutFail({
                duration: Duration.millis(deadlineMs),
                onTimeout: () => new Error(`no token within ${deadlineMs} ms`)
              })
            ))),
          { concurrency: "unbounded" }
        )
        const tokens = results.filter(Either.isRight).map((r) => Redacted.value(r.right.token))
        const error = results.find(Either.isLeft)
        return {
          ok: tokens.length,
          failed: n - tokens.length,
          distinctTokens: new Set(tokens).size,
          elapsedMs: performance.now() - start,
          error: error === undefined ? undefined : error.left
        }
      })),
    loop: (n) =>
      run(Effect.gen(function*() {
        const auth = yield* AuthHeaders.AuthHeaders
        let sink = ""
        const start = process.hrtime.bigint()
        for (let i = 0; i < n; i++) sink = bearer(yield* auth.forRequest(context))
        const elapsed = Number(process.hrtime.bigint() - start)
        if (sink.length === 0) return yield* Effect.dieMessage("empty header")
        return elapsed
      })),
    loopSync: (n) =>
      run(Effect.gen(function*() {
        const auth = yield* AuthHeaders.AuthHeaders
        let sink = ""
        const start = process.hrtime.bigint()
        for (let i = 0; i < n; i++) sink = bearer(auth.peek() ?? (yield* auth.forRequest(context)))
        const elapsed = Number(process.hrtime.bigint() - start)
        if (sink.length === 0) return yield* Effect.dieMessage("empty header")
        return elapsed
      })),
    floor: (n) =>
      run(Effect.gen(function*() {
        const cached = bearer(yield* Effect.flatMap(AuthHeaders.AuthHeaders, (auth) => auth.forRequest(context)))
        const nothing = Effect.succeed(cached)
        let sink = ""
        const start = process.hrtime.bigint()
        for (let i = 0; i < n; i++) sink = yield* nothing
        const elapsed = Number(process.hrtime.bigint() - start)
        if (sink.length === 0) return yield* Effect.dieMessage("empty header")
        return elapsed
      })),
    steady: ({ durationMs, intervalMs, slowMs, workers }) =>
      run(Effect.gen(function*() {
        const auth = yield* AuthHeaders.AuthHeaders
        const end = Date.now() + durationMs
        const latencies: Array<number> = []
        const tokens = new Set<string>()
        let failed = 0
        const worker = Effect.gen(function*() {
          while (Date.now() < end) {
            const t0 = performance.now()
            const result = yield* Effect.either(auth.forRequest(context))
            if (Either.isRight(result)) {
              latencies.push(performance.now() - t0)
              tokens.add(bearer(result.right))
            } else {
              failed++
            }
            yield* Effect.sleep(Duration.millis(intervalMs))
          }
        })
        yield* Effect.all(Array.from({ length: workers }, () => worker), { concurrency: "unbounded", discard: true })
        return summarizeSteady(latencies, failed, slowMs, tokens) satisfies SteadyResult
      })),
    rejectWave: (token, n, staggerMs) =>
      run(Effect.gen(function*() {
        const auth = yield* AuthHeaders.AuthHeaders
        const rejected = AccessToken.make({ token, issuedAt: 0, expiresInSeconds: 0 })
        const results = yield* Effect.all(
          Array.from({ length: n }, (_, i) =>
            Effect.sleep(Duration.millis(i * staggerMs)).pipe(
              Effect.zipRight(auth.invalidate(rejected)),
              Effect.zipRight(auth.forRequest(context)),
              Effect.map((set) => Redacted.value(set.token.token)),
              Effect.either
            )),
          { concurrency: "unbounded" }
        )
        const ok = results.filter(Either.isRight).map((r) => r.right)
        return {
          ok: ok.length,
          failed: n - ok.length,
          newToken: ok.filter((t) => t !== token).length,
          distinctTokens: new Set(ok).size
        } satisfies WaveResult
      }))
  }

  return {
    header: () => run(Effect.map(forRequest, bearer)),
    token: () => run(Effect.map(forRequest, (set) => Redacted.value(set.token.token))),
    rejected: (token) =>
      run(Effect.gen(function*() {
        const auth = yield* AuthHeaders.AuthHeaders
        yield* auth.invalidate(AccessToken.make({ token, issuedAt: 0, expiresInSeconds: 0 }))
        return Redacted.value((yield* auth.forRequest(context)).token.token)
      })),
    close: () => runtime.dispose(),
    drivers,
    waiters: waitersTotal,
    refreshLead: () =>
      run(Effect.map(
        Effect.flatMap(TokenProvider.TokenProvider, (p) => p.state),
        (state) => "refreshAt" in state ? state.expiresAt - state.refreshAt : undefined
      ))
  }
}

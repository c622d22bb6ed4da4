import * as HttpClient from "@effect/platform/HttpClient"
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as AccessToken from "../AccessToken.js"
import * as Metrics from "../Metrics.js"
import type { ServiceAccountConfig } from "../ServiceAccountConfig.js"
import type { InvalidCredentialsError } from "../ServiceAccountError.js"
import { isTransient, RateLimitedError, retryAfter, type TokenError } from "../ServiceAccountError.js"
import * as TokenEndpoint from "../TokenEndpoint.js"
import type * as TokenProvider from "../TokenProvider.js"
import { displayUrl } from "./text.js"

/** @internal */
export const TypeId: TokenProvider.TypeId = "~@mcp-auth/service-account/TokenProvider"

/** @internal */
export const tag = Context.GenericTag<TokenProvider.TokenProvider>("@mcp-auth/service-account/TokenProvider")

const KEY = "token" as const

/** When a token is refreshed in the background and when callers stop using it. */
interface Entry {
  readonly token: AccessToken.AccessToken
  readonly refreshAt: number
  readonly usableUntil: number
}

interface State {
  readonly entry: Entry | undefined
  readonly refreshing: boolean
  readonly degraded: { readonly since: number; readonly attempts: number } | undefined
  readonly lastError: TokenError | undefined
  /** Shared cool-down after 429/503: no token request before `until`. */
  readonly cooldown: { readonly until: number; readonly status: number } | undefined
  /** Invalid-credentials latch: callers get `error` without a request before `until`. */
  readonly latch: { readonly until: number; readonly error: InvalidCredentialsError } | undefined
  /** The provider's scope has closed: using it is a bug in how layers are composed. */
  readonly closed: boolean
}

const initial: State = {
  entry: undefined,
  refreshing: false,
  degraded: undefined,
  lastError: undefined,
  cooldown: undefined,
  latch: undefined,
  closed: false
}

/** The blocking window just before expiry: never hand out a token with less than this left. */
const FORCED_WINDOW_MS = 1000

/**
 * Refresh schedule of a token: lead = min(buffer, lifetime / 2); background refresh at `expiresAt - lead × U(0.8, 1)`
 * (or at `refresh_in` when the server sent an earlier one); usable until `expiresAt - min(1 s, lifetime / 4)`, so a
 * token is never handed out in its last second, whatever the buffer.
 *
 * @internal
 */
export const schedule = (token: AccessToken.AccessToken, bufferSeconds: number, u: number): Entry => {
  const lifetime = Math.max(0, AccessToken.lifetimeMillis(token))
  const lead = Math.min(bufferSeconds * 1000, lifetime / 2)
  const jittered = token.expiresAt - lead * (0.8 + 0.2 * u)
  const suggested = token.refreshIn === undefined ? Infinity : token.issuedAt + token.refreshIn * 1000
  const usableUntil = token.expiresAt - Math.min(FORCED_WINDOW_MS, lifetime / 4)
  return { token, refreshAt: Math.min(jittered, suggested, usableUntil), usableUntil }
}

/** Full-jitter exponential backoff: U(0, min(cap, base × 2^(attempt-1))) in milliseconds. */
const backoff = (config: ServiceAccountConfig, attempt: number): Effect.Effect<number> =>
  Effect.map(Random.next, (u) => {
    const ceiling = Math.min(
      config.retry.maxBackoffSeconds,
      config.retry.initialBackoffSeconds * 2 ** Math.max(0, attempt - 1)
    )
    return Math.round(u * ceiling * 1000)
  })

const outcome = (exit: Exit.Exit<unknown, TokenError>): string =>
  Exit.isSuccess(exit)
    ? "success"
    : Option.match(Cause.failureOption(exit.cause), { onNone: () => "interrupted", onSome: (e) => e._tag })

const closedMessage = (name: string) =>
  `TokenProvider ${name} was used after its scope closed: keep its layer provided for as long as clients use it ` +
  "(compose with Layer.provide, or Layer.build it in the scope of the client), not Effect.provide around a constructor"

/** @internal */
export interface MakeOptions {
  readonly name?: string | undefined
}

/** @internal */
export const make = (
  config: ServiceAccountConfig,
  options?: MakeOptions
): Effect.Effect<TokenProvider.TokenProvider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const scope = yield* Effect.scope
    const state = yield* Ref.make(initial)
    yield* Effect.addFinalizer(() => Ref.update(state, (s) => ({ ...s, closed: true })))
    const name = options?.name ?? config.clientId
    const labels = [MetricLabel.make("provider", name)]
    const tokenUrl = displayUrl(config.tokenUrl)
    const tagged = <T, I, O>(metric: Metric.Metric<T, I, O>) => Metric.taggedWithLabels(metric, labels)
    const requests = tagged(Metrics.tokenRequests)
    const hits = tagged(Metrics.cacheHits)
    const degradedGauge = tagged(Metrics.degraded)
    const lifeLeft = tagged(Metrics.tokenLifeLeftSeconds)
    const waitSeconds = tagged(Metrics.waitSeconds)
    const fetchSeconds = tagged(Metrics.fetchSeconds)
    const leader = Metric.tagged(tagged(Metrics.waiters), "role", "leader")
    const coalesced = Metric.tagged(tagged(Metrics.waiters), "role", "coalesced")
    const unauthorized = tagged(Metrics.unauthorizedRefreshes)

    const requestOnce = TokenEndpoint.request(config).pipe(
      Effect.provideService(HttpClient.HttpClient, client),
      Effect.onExit((exit) => Metric.update(Metric.tagged(requests, "outcome", outcome(exit)), 1))
    )

    /** One fetch with the failure policy: latch, shared cool-down, retries with full-jitter backoff. */
    const fetchWithPolicy: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.gen(function*() {
      const deadline = (yield* Clock.currentTimeMillis) + config.retry.maxElapsedSeconds * 1000
      let attempt = 0
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const s = yield* Ref.get(state)
        if (s.latch !== undefined && now < s.latch.until) return yield* Effect.fail(s.latch.error)
        if (s.cooldown !== undefined && now < s.cooldown.until) {
          const wait = s.cooldown.until - now
          if (now + wait > deadline) {
            return yield* new RateLimitedError({
              tokenUrl,
              status: s.cooldown.status,
              retryAfter: Duration.millis(wait)
            })
          }
          yield* Effect.logDebug("Waiting for the token endpoint's cool-down").pipe(
            Effect.annotateLogs({ token_url: tokenUrl, wait_ms: wait })
          )
          yield* Effect.sleep(Duration.millis(wait))
          continue
        }
        attempt++
        yield* Effect.logInfo("Fetching new service account token").pipe(
          Effect.annotateLogs({ token_url: tokenUrl, scopes: config.scopes.join(" "), attempt })
        )
        const result = yield* Effect.either(requestOnce)
        if (Either.isRight(result)) return result.right
        const error = result.left
        const failedAt = yield* Clock.currentTimeMillis
        if (error._tag === "InvalidCredentialsError") {
          const until = failedAt + config.invalidCredentialsCooldownSeconds * 1000
          yield* Ref.update(state, (s) => ({ ...s, latch: { until, error } }))
          yield* Effect.logError("Invalid service account credentials: no new token request until the cool-down ends")
            .pipe(
              Effect.annotateLogs({ token_url: tokenUrl, cooldown_seconds: config.invalidCredentialsCooldownSeconds })
            )
          return yield* Effect.fail(error)
        }
        const requested = retryAfter(error)
        const delay = requested !== undefined ? Duration.toMillis(requested) : yield* backoff(config, attempt)
        const coolsDown = error._tag === "RateLimitedError" ||
          (error._tag === "TokenEndpointError" && error.status === 503)
        if (coolsDown) {
          yield* Ref.update(state, (s) => ({ ...s, cooldown: { until: failedAt + delay, status: error.status } }))
        }
        if (!isTransient(error) || attempt >= config.retry.maxAttempts) return yield* Effect.fail(error)
        if (failedAt + delay > deadline) {
          return yield* Effect.fail(
            error._tag === "RateLimitedError"
              ? new RateLimitedError({ ...error, retryAfter: Duration.millis(delay) })
              : error
          )
        }
        yield* Effect.logWarning("Token request failed; retrying").pipe(
          Effect.annotateLogs({ token_url: tokenUrl, error: error._tag, retry_in_ms: delay, attempt })
        )
        if (!coolsDown) yield* Effect.sleep(Duration.millis(delay))
      }
    })

    const install = (token: AccessToken.AccessToken) =>
      Effect.gen(function*() {
        const entry = schedule(token, config.tokenCacheBufferSeconds, yield* Random.next)
        yield* Ref.update(state, (s) => ({ ...s, entry, degraded: undefined, lastError: undefined }))
        degradedGauge.unsafeUpdate(0, [])
        lifeLeft.unsafeUpdate((token.expiresAt - token.issuedAt) / 1000, [])
        yield* Effect.logInfo(
          `Service account token acquired (expires in ${Math.round(AccessToken.lifetimeMillis(token) / 1000)}s)`
        ).pipe(Effect.annotateLogs({ token_url: tokenUrl }))
      })

    const lookup = (_: typeof KEY) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(fetchWithPolicy)
        fetchSeconds.unsafeUpdate(((yield* Clock.currentTimeMillis) - start) / 1000, [])
        if (Exit.isSuccess(exit)) yield* install(exit.value)
        else {
          const error = Cause.failureOption(exit.cause)
          if (Option.isSome(error)) yield* Ref.update(state, (s) => ({ ...s, lastError: error.value }))
        }
        return exit
      })

    // Single-flight: one lookup per key, shared by every waiter. The lookup never fails (it returns an Exit), and
    // each completed entry is dropped as soon as its waiters have it, so a failure is never served as a token.
    const cache = yield* Cache.makeWith({ capacity: 1, lookup, timeToLive: () => Duration.zero })
    const acquire: Effect.Effect<
      Either.Either<Exit.Exit<AccessToken.AccessToken, TokenError>, Exit.Exit<AccessToken.AccessToken, TokenError>>
    > = cache
      .getEither(KEY).pipe(
        Effect.tap((either) => {
          const exit = Either.merge(either)
          return cache.invalidateWhen(KEY, (value) => value === exit)
        })
      )

    /** Waits for a token. Runs in the provider's scope, so an interrupted caller never cancels the shared fetch. */
    const blocking = (latched: State["latch"], now: number): Effect.Effect<AccessToken.AccessToken, TokenError> =>
      latched !== undefined && now < latched.until
        ? Effect.fail(latched.error)
        : Effect.gen(function*() {
          const either = yield* Fiber.join(yield* Effect.forkIn(acquire, scope))
          const done = yield* Clock.currentTimeMillis
          waitSeconds.unsafeUpdate((done - now) / 1000, [])
          ;(Either.isRight(either) ? leader : coalesced).unsafeUpdate(1, [])
          return yield* Either.merge(either)
        })

    const refreshLoop: Effect.Effect<void> = Effect.gen(function*() {
      let attempt = 0
      while (true) {
        const exit = Either.merge(yield* acquire)
        if (Exit.isSuccess(exit)) return
        const error = Cause.failureOption(exit.cause)
        if (Option.isNone(error)) return
        attempt++
        const now = yield* Clock.currentTimeMillis
        const s = yield* Ref.get(state)
        if (s.entry === undefined || now >= s.entry.usableUntil) return
        yield* Ref.update(state, (s) => ({ ...s, degraded: { since: s.degraded?.since ?? now, attempts: attempt } }))
        degradedGauge.unsafeUpdate(1, [])
        lifeLeft.unsafeUpdate((s.entry.token.expiresAt - now) / 1000, [])
        const wakeAt = Math.max(
          now + (yield* backoff(config, attempt)),
          s.cooldown?.until ?? 0,
          s.latch?.until ?? 0
        )
        yield* Effect.logWarning("Refreshing the service account token failed; serving the still-valid token").pipe(
          Effect.annotateLogs({
            token_url: tokenUrl,
            error: error.value._tag,
            expires_in_seconds: Math.round((s.entry.token.expiresAt - now) / 1000),
            retry_in_ms: wakeAt - now
          })
        )
        if (wakeAt >= s.entry.usableUntil) return
        yield* Effect.sleep(Duration.millis(wakeAt - now))
      }
    }).pipe(Effect.ensuring(Ref.update(state, (s) => ({ ...s, refreshing: false }))))

    const startRefresh = Ref.modify(state, (s) => s.refreshing ? [false, s] : [true, { ...s, refreshing: true }]).pipe(
      Effect.flatMap((start) => start ? Effect.forkIn(refreshLoop, scope) : Effect.void),
      Effect.asVoid
    )

    const get: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.clockWith((clock) =>
      Effect.flatMap(Ref.get(state), (s) => {
        if (s.closed) return Effect.dieMessage(closedMessage(name))
        const now = clock.unsafeCurrentTimeMillis()
        const entry = s.entry
        if (entry !== undefined && now < entry.usableUntil) {
          hits.unsafeUpdate(1, [])
          return now < entry.refreshAt || s.refreshing
            ? Effect.succeed(entry.token)
            : Effect.as(startRefresh, entry.token)
        }
        return blocking(s.latch, now)
      })
    )

    const invalidate = (rejected: AccessToken.AccessToken): Effect.Effect<boolean> =>
      Ref.modify(state, (s) =>
        s.entry !== undefined && AccessToken.sameToken(s.entry.token, rejected)
          ? [true, { ...s, entry: undefined }]
          : [false, s]).pipe(
          Effect.tap((dropped) =>
            dropped
              ? Effect.zipRight(
                Metric.update(unauthorized, 1),
                Effect.logInfo("Dropped the cached service account token after the server rejected it").pipe(
                  Effect.annotateLogs({ token_url: tokenUrl })
                )
              )
              : Effect.void
          )
        )

    const currentState: Effect.Effect<TokenProvider.TokenState> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const s = yield* Ref.get(state)
      const latched = s.latch !== undefined && now < s.latch.until ? s.latch.error : undefined
      const coolingDown = s.cooldown !== undefined && now < s.cooldown.until ? s.cooldown.until : undefined
      const common = {
        ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
        ...(latched !== undefined ? { latchedUntil: s.latch!.until } : {}),
        ...(coolingDown !== undefined ? { coolingDownUntil: coolingDown } : {})
      }
      const entry = s.entry
      if (entry === undefined || now >= entry.usableUntil) {
        return { status: entry === undefined ? "empty" : "expired", ...common } as const
      }
      const timeLeftMillis = entry.token.expiresAt - now
      lifeLeft.unsafeUpdate(timeLeftMillis / 1000, [])
      const token = { expiresAt: entry.token.expiresAt, refreshAt: entry.refreshAt, timeLeftMillis }
      if (s.degraded !== undefined) {
        return {
          status: "degraded",
          ...token,
          degradedSince: s.degraded.since,
          attempts: s.degraded.attempts,
          ...common
        }
      }
      return { status: s.refreshing ? "refreshing" : "fresh", ...token, ...common }
    })

    return {
      [TypeId]: TypeId,
      name,
      tokenUrl,
      get,
      invalidate,
      adopt: install,
      state: currentState
    } satisfies TokenProvider.TokenProvider
  })

/** @internal */
export const layer = (
  config: ServiceAccountConfig,
  options?: MakeOptions
): Layer.Layer<TokenProvider.TokenProvider, never, HttpClient.HttpClient> => Layer.scoped(tag, make(config, options))

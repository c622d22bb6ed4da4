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
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as AccessToken from "../AccessToken.js"
import * as Metrics from "../Metrics.js"
import type { ServiceAccountConfig } from "../ServiceAccountConfig.js"
import {
  type InvalidCredentialsError,
  isTransient,
  MalformedResponseError,
  RateLimitedError,
  retryAfter,
  type TokenError
} from "../ServiceAccountError.js"
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
  /** `Effect.succeed(token)`, built once: the hot path allocates nothing. */
  readonly ready: Effect.Effect<AccessToken.AccessToken>
}

interface State {
  readonly entry: Entry | undefined
  readonly refreshing: boolean
  /** A background refresh that gave up may not start again before this instant (its backoff). */
  readonly refreshNotBefore: number
  readonly degraded: { readonly since: number; readonly attempts: number } | undefined
  readonly lastError: TokenError | undefined
  /**
   * Shared cool-down after a 429/503, or after a fetch exhausted its retries: no token request before `until`. A caller
   * who cannot wait that long gets `error` (with the wait as `retryAfter` for a 429).
   */
  readonly cooldown: { readonly until: number; readonly error: TokenError } | undefined
  /** When a 401 last dropped the token: drops are at most one per second, so a server rejecting every token cannot
   * turn each MCP request into a token request. */
  readonly lastInvalidation: number
  /** Invalid-credentials latch: callers get `error` without a request before `until`. */
  readonly latch: { readonly until: number; readonly error: InvalidCredentialsError } | undefined
  /** The provider's scope has closed: using it is a bug in how layers are composed. */
  readonly closed: boolean
}

const initial: State = {
  entry: undefined,
  refreshing: false,
  refreshNotBefore: 0,
  lastInvalidation: -Infinity,
  degraded: undefined,
  lastError: undefined,
  cooldown: undefined,
  latch: undefined,
  closed: false
}

/** The blocking window just before expiry: never hand out a token with less than this left. */
const FORCED_WINDOW_MS = 1000
/** A retry is not started with less time than this left before the caller's deadline. */
const MIN_ATTEMPT_MS = 250
/** 401-driven drops of the cached token are at most one per this interval. */
const MIN_INVALIDATION_INTERVAL_MS = 1000

/**
 * Refresh schedule of a token: lead = min(buffer, lifetime / 2); background refresh at `expiresAt - lead × U(0.8, 1)`
 * (or at `refresh_in` when the server sent an earlier one, but never before 10 % of the lifetime or 1 s, so a server
 * cannot make every call a token request); usable until `expiresAt - min(1 s, lifetime / 4)`, so a token is never
 * handed out in its last second, whatever the buffer.
 *
 * @internal
 */
export const schedule = (token: AccessToken.AccessToken, bufferSeconds: number, u: number): Entry => {
  const lifetime = Math.max(0, AccessToken.lifetimeMillis(token))
  const lead = Math.min(bufferSeconds * 1000, lifetime / 2)
  const jittered = token.expiresAt - lead * (0.8 + 0.2 * u)
  const suggested = token.refreshIn === undefined
    ? Infinity
    : token.issuedAt + Math.max(token.refreshIn * 1000, lifetime / 10, 1000)
  const usableUntil = token.expiresAt - Math.min(FORCED_WINDOW_MS, lifetime / 4)
  return { token, refreshAt: Math.min(jittered, suggested, usableUntil), usableUntil, ready: Effect.succeed(token) }
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
    const clock = yield* Effect.clock
    const state = yield* Ref.make(initial)
    // A read-only mirror of `state` for the synchronous hot path (`peek`, `get`): written only here, inside the Ref's
    // atomic update, so it always equals the Ref's value.
    let snapshot = initial
    const update = (f: (s: State) => State): Effect.Effect<void> => Ref.update(state, (s) => (snapshot = f(s)))
    const modify = <A>(f: (s: State) => readonly [A, State]): Effect.Effect<A> =>
      Ref.modify(state, (s) => {
        const result = f(s)
        snapshot = result[1]
        return result
      })
    const name = options?.name ?? config.clientId
    const tokenUrl = displayUrl(config.tokenUrl)
    // Stable label arrays: metrics cache their hook per array, which keeps updates cheap on the hot path.
    const labels = [MetricLabel.make("provider", name)]
    const outcomeLabels = new Map<string, Array<MetricLabel.MetricLabel>>()
    const labelsFor = (o: string) => {
      let found = outcomeLabels.get(o)
      if (found === undefined) outcomeLabels.set(o, found = [...labels, MetricLabel.make("outcome", o)])
      return found
    }
    const leader = [...labels, MetricLabel.make("role", "leader")]
    const coalesced = [...labels, MetricLabel.make("role", "coalesced")]
    const gauges = (entry: Entry | undefined, now: number, degraded: boolean) => {
      Metrics.tokenLifeLeftSeconds.unsafeUpdate(
        entry === undefined ? 0 : Math.max(0, entry.token.expiresAt - now) / 1000,
        labels
      )
      Metrics.degraded.unsafeUpdate(degraded ? 1 : 0, labels)
    }
    yield* Effect.addFinalizer(() =>
      Effect.map(update((s) => ({ ...s, closed: true })), () => gauges(undefined, 0, false))
    )

    const requestOnce = (timeoutMillis: number) =>
      TokenEndpoint.request(config, { timeout: Duration.millis(timeoutMillis) }).pipe(
        Effect.provideService(HttpClient.HttpClient, client),
        Effect.onExit((exit) => Effect.sync(() => Metrics.tokenRequests.unsafeUpdate(1, labelsFor(outcome(exit)))))
      )

    /**
     * One fetch with the failure policy: latch, shared cool-down, retries with full-jitter backoff, all within the
     * caller's budget (`retry.max_elapsed_seconds`): an attempt never runs past it.
     */
    const fetchWithPolicy: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      const deadline = started + config.retry.maxElapsedSeconds * 1000
      const timeoutMs = config.timeoutSeconds * 1000
      let attempt = 0
      let last: TokenError | undefined
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const s = yield* Ref.get(state)
        if (s.latch !== undefined && now < s.latch.until) return yield* Effect.fail(s.latch.error)
        if (s.cooldown !== undefined && now < s.cooldown.until) {
          const wait = s.cooldown.until - now
          if (now + wait > deadline) {
            const error = s.cooldown.error
            return yield* Effect.fail(
              error._tag === "RateLimitedError"
                ? new RateLimitedError({ ...error, retryAfter: Duration.millis(wait) })
                : error
            )
          }
          yield* Effect.logDebug("Waiting for the token endpoint's cool-down").pipe(
            Effect.annotateLogs({ token_url: tokenUrl, wait_ms: wait })
          )
          yield* Effect.sleep(Duration.millis(wait))
          continue
        }
        const budget = deadline - now
        if (attempt > 0 && budget < MIN_ATTEMPT_MS) return yield* Effect.fail(last!)
        attempt++
        yield* Effect.logDebug("Fetching new service account token").pipe(
          Effect.annotateLogs({ token_url: tokenUrl, scopes: config.scopes.join(" "), attempt })
        )
        const result = yield* Effect.either(requestOnce(Math.min(timeoutMs, Math.max(budget, MIN_ATTEMPT_MS))))
        if (Either.isRight(result)) return result.right
        const error = result.left
        last = error
        const failedAt = yield* Clock.currentTimeMillis
        if (error._tag === "InvalidCredentialsError") {
          const until = failedAt + config.invalidCredentialsCooldownSeconds * 1000
          yield* update((s) => ({ ...s, latch: { until, error } }))
          yield* Effect.logWarning("Invalid service account credentials: no new token request until the cool-down ends")
            .pipe(
              Effect.annotateLogs({ token_url: tokenUrl, cooldown_seconds: config.invalidCredentialsCooldownSeconds })
            )
          return yield* Effect.fail(error)
        }
        if (!isTransient(error)) return yield* Effect.fail(error)
        const requested = retryAfter(error)
        const delay = requested !== undefined ? Duration.toMillis(requested) : yield* backoff(config, attempt)
        const exhausted = attempt >= config.retry.maxAttempts || failedAt + delay > deadline
        const serverAsked = error._tag === "RateLimitedError" ||
          (error._tag === "TokenEndpointError" && error.status === 503)
        if (serverAsked || exhausted) {
          // every caller of this provider waits this out: no request of their own before it ends
          yield* update((s) => ({ ...s, cooldown: { until: failedAt + delay, error } }))
        }
        if (exhausted) {
          return yield* Effect.fail(
            error._tag === "RateLimitedError"
              ? new RateLimitedError({ ...error, retryAfter: Duration.millis(delay) })
              : error
          )
        }
        yield* Effect.logWarning("Token request failed; retrying").pipe(
          Effect.annotateLogs({ token_url: tokenUrl, error: error._tag, retry_in_ms: delay, attempt })
        )
        if (!serverAsked) yield* Effect.sleep(Duration.millis(delay))
      }
    })

    const install = (token: AccessToken.AccessToken) =>
      Effect.gen(function*() {
        const entry = schedule(token, config.tokenCacheBufferSeconds, yield* Random.next)
        yield* update((s) => ({ ...s, entry, degraded: undefined, lastError: undefined, refreshNotBefore: 0 }))
        gauges(entry, yield* Clock.currentTimeMillis, false)
        yield* Effect.logDebug(
          `Service account token acquired (expires in ${Math.round(AccessToken.lifetimeMillis(token) / 1000)}s)`
        ).pipe(Effect.annotateLogs({ token_url: tokenUrl }))
      })

    const lookup = (_: typeof KEY) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(fetchWithPolicy)
        Metrics.fetchSeconds.unsafeUpdate(((yield* Clock.currentTimeMillis) - start) / 1000, labels)
        if (Exit.isSuccess(exit)) yield* install(exit.value)
        else {
          const error = Cause.failureOption(exit.cause)
          if (Option.isSome(error)) yield* update((s) => ({ ...s, lastError: error.value }))
        }
        return exit
      })

    // Single-flight: one lookup per key, shared by every waiter. The lookup never fails (it returns an Exit), and
    // each completed entry is dropped as soon as its waiters have it, so a failure is never served as a token.
    const cache = yield* Cache.makeWith({ capacity: 1, lookup, timeToLive: () => Duration.zero })
    const acquire = cache.getEither(KEY).pipe(
      Effect.tap((either) => {
        const exit = Either.merge(either)
        return cache.invalidateWhen(KEY, (value) => value === exit)
      })
    )

    /** Waits for a token. Runs in the provider's scope, so an interrupted caller never cancels the shared fetch. */
    const blocking = (s: State, now: number): Effect.Effect<AccessToken.AccessToken, TokenError> =>
      s.latch !== undefined && now < s.latch.until
        ? Effect.fail(s.latch.error)
        : Effect.gen(function*() {
          gauges(undefined, now, false)
          const either = yield* Fiber.join(yield* Effect.forkIn(acquire, scope))
          const done = yield* Clock.currentTimeMillis
          Metrics.waitSeconds.unsafeUpdate((done - now) / 1000, labels)
          Metrics.waiters.unsafeUpdate(1, Either.isRight(either) ? leader : coalesced)
          const token = yield* Either.merge(either)
          if (done >= token.expiresAt) {
            // a lifetime shorter than the request: the server issued a token that was dead on arrival
            return yield* new MalformedResponseError({
              tokenUrl,
              reason: "expires_in",
              detail: `the token expired before it arrived (lifetime ${AccessToken.lifetimeMillis(token)}ms)`
            })
          }
          return token
        })

    /** Refreshes `target` in the background until it is replaced, or can no longer be used. */
    const refreshLoop = (target: AccessToken.AccessToken): Effect.Effect<void> =>
      Effect.gen(function*() {
        let attempt = 0
        while (true) {
          const exit = Either.merge(yield* acquire)
          if (Exit.isSuccess(exit)) return
          const error = Cause.failureOption(exit.cause)
          if (Option.isNone(error)) return
          attempt++
          const now = yield* Clock.currentTimeMillis
          const s = yield* Ref.get(state)
          // someone else replaced or dropped the token meanwhile, or it is no longer usable: not ours to refresh
          if (s.entry === undefined || s.entry.token !== target || now >= s.entry.usableUntil) return
          const entry = s.entry
          yield* update((s) => ({ ...s, degraded: { since: s.degraded?.since ?? now, attempts: attempt } }))
          gauges(entry, now, true)
          const wakeAt = Math.max(now + (yield* backoff(config, attempt)), s.cooldown?.until ?? 0, s.latch?.until ?? 0)
          yield* Effect.logWarning("Refreshing the service account token failed; serving the still-valid token").pipe(
            Effect.annotateLogs({
              token_url: tokenUrl,
              error: error.value._tag,
              expires_in_seconds: Math.round((target.expiresAt - now) / 1000),
              retry_in_ms: wakeAt - now
            })
          )
          if (wakeAt >= entry.usableUntil) {
            // no time left for another attempt: callers will fetch once the token expires
            yield* update((s) => ({ ...s, refreshNotBefore: wakeAt }))
            return
          }
          yield* Effect.sleep(Duration.millis(wakeAt - now))
          const current = yield* Ref.get(state)
          if (current.entry?.token !== target) return
        }
      }).pipe(Effect.ensuring(update((s) => ({ ...s, refreshing: false }))))

    // uninterruptible, so the flag and the fiber are set together
    const startRefresh = (target: AccessToken.AccessToken) =>
      modify((s) => s.refreshing ? [false, s] : [true, { ...s, refreshing: true }]).pipe(
        // the loop itself stays interruptible (a fiber inherits the uninterruptible region it was forked in)
        Effect.flatMap((start) =>
          start ? Effect.forkIn(Effect.interruptible(refreshLoop(target)), scope) : Effect.void
        ),
        Effect.asVoid,
        Effect.uninterruptible
      )

    const hit = (entry: Entry, now: number) => {
      Metrics.cacheHits.unsafeUpdate(1, labels)
      Metrics.tokenLifeLeftSeconds.unsafeUpdate((entry.token.expiresAt - now) / 1000, labels)
    }

    const peek = (): AccessToken.AccessToken | undefined => {
      const s = snapshot
      const entry = s.entry
      if (s.closed || entry === undefined) return undefined
      const now = clock.unsafeCurrentTimeMillis()
      // in the refresh window `get` has a background refresh to start: leave it to `get`
      if (now >= entry.refreshAt) return undefined
      hit(entry, now)
      return entry.token
    }

    const get: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.suspend(() => {
      const s = snapshot
      if (s.closed) return Effect.dieMessage(closedMessage(name))
      const now = clock.unsafeCurrentTimeMillis()
      const entry = s.entry
      if (entry !== undefined && now < entry.usableUntil) {
        hit(entry, now)
        return now < entry.refreshAt || s.refreshing || now < s.refreshNotBefore
          ? entry.ready
          : Effect.as(startRefresh(entry.token), entry.token)
      }
      return blocking(s, now)
    })

    const invalidate = (rejected: AccessToken.AccessToken): Effect.Effect<boolean> =>
      Effect.clockWith((clock) =>
        modify((s) => {
          const now = clock.unsafeCurrentTimeMillis()
          return s.entry !== undefined && AccessToken.sameToken(s.entry.token, rejected) &&
              now - s.lastInvalidation >= MIN_INVALIDATION_INTERVAL_MS
            ? [true, { ...s, entry: undefined, lastInvalidation: now }]
            : [false, s]
        })
      ).pipe(
        Effect.tap((dropped) =>
          dropped
            ? Effect.zipRight(
              Effect.sync(() => Metrics.unauthorizedRefreshes.unsafeUpdate(1, labels)),
              Effect.logDebug("Dropped the cached service account token after the server rejected it").pipe(
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
        gauges(undefined, now, false)
        return { status: entry === undefined ? "empty" : "expired", ...common } as const
      }
      const timeLeftMillis = entry.token.expiresAt - now
      gauges(entry, now, s.degraded !== undefined)
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
      peek,
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

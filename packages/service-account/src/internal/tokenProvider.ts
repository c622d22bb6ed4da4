import * as HttpClient from "@effect/platform/HttpClient"
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import type * as AccessToken from "../AccessToken.js"
import * as Metrics from "../Metrics.js"
import * as RetrySchedule from "../RetrySchedule.js"
import type { ServiceAccountConfig } from "../ServiceAccountConfig.js"
import { isTransient, retryAfter, type TokenError } from "../ServiceAccountError.js"
import * as TokenEndpoint from "../TokenEndpoint.js"
import type * as TokenProvider from "../TokenProvider.js"
import * as Lifecycle from "./lifecycle.js"
import { displayUrl } from "./text.js"

/** @internal */
export const TypeId: TokenProvider.TypeId = Symbol.for(
  "@mcp-auth/service-account/TokenProvider"
) as TokenProvider.TypeId

/** @internal */
export const tag = Context.GenericTag<TokenProvider.TokenProvider>("@mcp-auth/service-account/TokenProvider")

const noLabels: ReadonlyArray<MetricLabel.MetricLabel> = []

/** A retry is not started with less time than this left before the fetch's deadline. */
const MIN_ATTEMPT_MS = 250

const closedMessage = (name: string) =>
  `TokenProvider ${name} was used after its scope closed: keep its layer provided for as long as clients use it ` +
  "(compose with Layer.provide, or Layer.build it in the scope of the client), not Effect.provide around a constructor"

/** The requests of one fetch so far, and the last one's error. */
interface Attempts {
  n: number
  last: TokenError | undefined
}

/**
 * The hot path's view of the state: `Lifecycle.lease`, with the effect that serves its token built once, and the cache
 * hits served from it that the counter has not seen yet.
 */
class Hot {
  served = 0
  constructor(
    readonly token: AccessToken.AccessToken,
    readonly until: number,
    readonly ready: Effect.Effect<AccessToken.AccessToken>
  ) {}
}

/**
 * Cache hits reach the counter in batches of this many, and whenever the hot view changes (at every transition and
 * when the provider closes): counting each hit would cost more than the hit itself once thousands of providers share a
 * process.
 */
const HIT_BATCH = 256

/**
 * The provider object. The hot path is its own methods and fields, so a warm `peek` or `get` touches this object, its
 * `Hot` view and the clock, nothing else: with thousands of providers in a process, each one more object is one more
 * cache miss.
 */
class Provider implements TokenProvider.TokenProvider {
  readonly [TypeId]: TokenProvider.TypeId = TypeId
  hot: Hot | undefined = undefined
  readonly get: Effect.Effect<AccessToken.AccessToken, TokenError>
  constructor(
    readonly name: string,
    readonly tokenUrl: string,
    private readonly clock: Clock.Clock,
    private readonly hits: Metric.Metric.Counter<number>,
    slow: Effect.Effect<AccessToken.AccessToken, TokenError>,
    readonly invalidate: (rejected: AccessToken.AccessToken) => Effect.Effect<TokenProvider.InvalidateResult>,
    readonly adopt: (token: AccessToken.AccessToken) => Effect.Effect<void>,
    readonly state: Effect.Effect<TokenProvider.TokenState>
  ) {
    this.get = Effect.suspend(() => this.lease()?.ready ?? slow)
  }
  /** The hot view when it may serve now (counting the hit), else `undefined`. */
  lease(): Hot | undefined {
    const h = this.hot
    if (h === undefined || this.clock.unsafeCurrentTimeMillis() >= h.until) return undefined
    if (++h.served === HIT_BATCH) this.flush(h)
    return h
  }
  peek(): AccessToken.AccessToken | undefined {
    return this.lease()?.token
  }
  flush(h: Hot): void {
    if (h.served > 0) this.hits.unsafeUpdate(h.served, noLabels)
    h.served = 0
  }
  /** Replaces the hot view (inside the state's atomic update). */
  publish(lease: ReturnType<typeof Lifecycle.lease>): void {
    const h = this.hot
    if (h !== undefined) this.flush(h)
    this.hot = lease === undefined
      ? undefined
      : new Hot(
        lease.token,
        lease.until,
        h !== undefined && h.token === lease.token ? h.ready : Effect.succeed(lease.token)
      )
  }
}

/** @internal */
export interface MakeOptions {
  readonly name?: string | undefined
}

/**
 * The Effect shell of the token lifecycle: one `Ref` holds `Lifecycle.State` and changes only through
 * `Lifecycle.transition`; this module runs the commands it returns (serve, fail, start or join a fetch, log) and keeps
 * the metrics in step with the state.
 *
 * @internal
 */
export const make = (
  config: ServiceAccountConfig,
  options?: MakeOptions
): Effect.Effect<TokenProvider.TokenProvider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const name = options?.name ?? config.clientId
    const tokenUrl = displayUrl(config.tokenUrl)
    const policy = RetrySchedule.fromRetryConfig(config.retry)
    const settings: Lifecycle.Settings = {
      bufferMillis: config.tokenCacheBufferSeconds * 1000,
      backoffMillis: (retry, u) => RetrySchedule.delayMillis(policy, retry, u),
      maxWaitMillis: config.retry.maxElapsedSeconds * 1000,
      cooldownInitialMillis: config.failureCooldown.initialSeconds * 1000,
      cooldownMaxMillis: config.failureCooldown.maxSeconds * 1000,
      tokenUrl
    }
    // stable label arrays: a metric caches its hook per array, which keeps updates on the hot path cheap
    const labels = [MetricLabel.make("provider", name)]
    const outcomeLabels = new Map<string, Array<MetricLabel.MetricLabel>>()
    const labelsFor = (key: string, value: string) => {
      let found = outcomeLabels.get(`${key}=${value}`)
      if (found === undefined) outcomeLabels.set(`${key}=${value}`, found = [...labels, MetricLabel.make(key, value)])
      return found
    }

    // Cache hits and latencies are labelled per identity provider, not per provider: thousands of tenants of one IdP
    // share those series; the per-tenant signals (requests by outcome, waiters, expiry, degraded, cool-downs) keep the
    // provider label.
    const endpointLabels = [MetricLabel.make("token_url", tokenUrl)]
    const hits = Metric.tagged(Metrics.cacheHits, "token_url", tokenUrl)

    const ref = yield* Ref.make(Lifecycle.initial)
    // assigned once the effects it needs exist; every transition publishes its hot view to it
    let self: Provider | undefined

    /** Metrics follow the state: updated here, when it changes, never when it is read. */
    const observe = (before: Lifecycle.State, after: Lifecycle.State) => {
      if (after.entry !== before.entry) {
        Metrics.tokenExpiry.unsafeUpdate(after.entry === undefined ? 0 : after.entry.token.expiresAt / 1000, labels)
      }
      if ((after.degraded === undefined) !== (before.degraded === undefined)) {
        Metrics.degraded.unsafeUpdate(after.degraded === undefined ? 0 : 1, labels)
      }
      if (after.cooldown !== before.cooldown) {
        Metrics.cooldownUntil.unsafeUpdate(after.cooldown === undefined ? 0 : after.cooldown.until / 1000, labels)
        if (after.cooldown !== undefined) {
          Metrics.cooldowns.unsafeUpdate(1, [
            ...labelsFor("kind", after.cooldown.kind),
            MetricLabel.make("reason", after.cooldown.error._tag)
          ])
        }
      }
    }

    /** Runs one transition atomically; the hot path's view is recomputed in the same update. */
    const step = (event: Lifecycle.Event): Effect.Effect<ReadonlyArray<Lifecycle.Command>> =>
      Effect.flatMap(
        Ref.modify(ref, (before) => {
          const next = Lifecycle.transition(before, event, clock.unsafeCurrentTimeMillis(), settings)
          if (next.state !== before) self?.publish(Lifecycle.lease(next.state))
          return [[before, next] as const, next.state]
        }),
        ([before, next]) => {
          if (next.state !== before) observe(before, next.state)
          return logs(next.commands)
        }
      )

    const logs = (commands: ReadonlyArray<Lifecycle.Command>) => {
      const lines = commands.filter((c): c is Extract<Lifecycle.Command, { _tag: "Log" }> => c._tag === "Log")
      if (lines.length === 0) return Effect.succeed(commands)
      return Effect.as(
        Effect.forEach(lines, (line) =>
          (line.level === "Debug" ? Effect.logDebug(line.message) : Effect.logWarning(line.message)).pipe(
            Effect.annotateLogs({ token_url: tokenUrl, ...line.fields })
          ), { discard: true }),
        commands
      )
    }

    /** One token request, its timeout capped by what is left of the fetch's budget. */
    const request = (deadline: number, attempts: Attempts) =>
      Effect.suspend(() => {
        attempts.n++
        const budget = Math.max(deadline - clock.unsafeCurrentTimeMillis(), MIN_ATTEMPT_MS)
        return Effect.logDebug("Fetching new service account token").pipe(
          Effect.annotateLogs({ token_url: tokenUrl, scopes: config.scopes.join(" "), attempt: attempts.n }),
          Effect.zipRight(
            TokenEndpoint.request(config, { timeout: Duration.millis(Math.min(config.timeoutSeconds * 1000, budget)) })
          ),
          // a token that came too late to use fails the attempt, so the schedule retries it
          Effect.flatMap((token) => {
            const late = Lifecycle.arrival(token, clock.unsafeCurrentTimeMillis(), settings)
            return late === undefined ? Effect.succeed(token) : Effect.fail(late)
          }),
          Effect.provideService(HttpClient.HttpClient, client),
          Effect.tapError((error) =>
            Effect.sync(() =>
              attempts.last = error
            )
          ),
          Effect.onExit((exit) =>
            Effect.sync(() =>
              Metrics.tokenRequests.unsafeUpdate(
                1,
                labelsFor("outcome", Exit.isSuccess(exit) ? "success" : exitTag(exit))
              )
            )
          )
        )
      })

    /** One fetch: the token request retried on the shared schedule, its outcome fed to the lifecycle. */
    const lookup = (id: number): Effect.Effect<Lifecycle.TokenOutcome | undefined> =>
      Effect.gen(function*() {
        const fetch = (yield* Ref.get(ref)).fetch
        // an id whose fetch has settled and left the cache: the caller asks again
        if (fetch === undefined || fetch.id !== id) return undefined
        const wait = fetch.notBefore - clock.unsafeCurrentTimeMillis()
        if (wait > 0) {
          yield* Effect.logDebug("Waiting for the token endpoint's cool-down").pipe(
            Effect.annotateLogs({ token_url: tokenUrl, wait_ms: wait })
          )
          yield* Effect.sleep(Duration.millis(wait))
        }
        const started = clock.unsafeCurrentTimeMillis()
        const deadline = started + config.retry.maxElapsedSeconds * 1000
        const attempts: Attempts = { n: 0, last: undefined }
        const exit = yield* Effect.exit(
          request(deadline, attempts).pipe(
            Effect.retry(
              RetrySchedule.make<TokenError>(policy, {
                while: (error) => isTransient(error) && deadline - clock.unsafeCurrentTimeMillis() >= MIN_ATTEMPT_MS,
                retryAfter
              }).pipe(
                Schedule.onDecision((_, decision) =>
                  ScheduleDecision.isContinue(decision)
                    ? Effect.logWarning("Token request failed; retrying").pipe(
                      Effect.annotateLogs({
                        token_url: tokenUrl,
                        error: attempts.last?._tag ?? "?",
                        attempt: attempts.n,
                        retry_in_ms: Math.max(0, Intervals.start(decision.intervals) - clock.unsafeCurrentTimeMillis())
                      })
                    )
                    : Effect.void
                )
              )
            )
          )
        )
        Metrics.fetchSeconds.unsafeUpdate((clock.unsafeCurrentTimeMillis() - started) / 1000, endpointLabels)
        const u = yield* Random.next
        const error = exitError(exit)
        if (Exit.isFailure(exit) && error === undefined) {
          // a defect (or the scope closing): no outcome to settle; every waiter gets the defect
          yield* step({ _tag: "FetchDied", id })
          return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
        }
        const commands = yield* step(
          Exit.isSuccess(exit)
            ? { _tag: "FetchSucceeded", id, token: exit.value, u }
            : { _tag: "FetchFailed", id, error: error!, attempts: attempts.n, u }
        )
        const settled = commands.find((c) => c._tag === "Settle")
        return settled?._tag === "Settle" ? settled.result : undefined
      })

    // Single flight: one lookup per fetch id, shared by every caller that joins it (the lookup never fails).
    const cache = yield* Cache.make({ capacity: 4, timeToLive: Duration.infinity, lookup })

    yield* Effect.addFinalizer(() =>
      Effect.map(step({ _tag: "Close" }), () => {
        Metrics.tokenExpiry.unsafeUpdate(0, labels)
        Metrics.degraded.unsafeUpdate(0, labels)
        Metrics.cooldownUntil.unsafeUpdate(0, labels)
      })
    )

    /** Waits for fetch `id`. Runs in the provider's scope, so an interrupted caller never cancels the shared fetch. */
    const join = (id: number, leader: boolean, since: number): Effect.Effect<AccessToken.AccessToken, TokenError> =>
      Effect.flatMap(Effect.forkIn(cache.get(id), scope), Fiber.join).pipe(
        Effect.flatMap((outcome) => {
          if (outcome === undefined) return get
          Metrics.waitSeconds.unsafeUpdate((clock.unsafeCurrentTimeMillis() - since) / 1000, endpointLabels)
          Metrics.waiters.unsafeUpdate(1, labelsFor("role", leader ? "leader" : "coalesced"))
          return outcome._tag === "Token" ? Effect.succeed(outcome.token) : Effect.fail(outcome.error)
        })
      )

    /** Runs the commands of a `Get`: starts what it says, then answers the caller. */
    const answer = (commands: ReadonlyArray<Lifecycle.Command>): Effect.Effect<AccessToken.AccessToken, TokenError> => {
      let reply: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.dieMessage("no answer")
      let started: Effect.Effect<unknown> = Effect.void
      for (const command of commands) {
        switch (command._tag) {
          case "Serve":
            hits.unsafeUpdate(1, noLabels)
            reply = Effect.succeed(command.token)
            break
          case "Fail":
            reply = Effect.fail(command.error)
            break
          case "Die":
            reply = Effect.dieMessage(closedMessage(name))
            break
          case "Start":
            started = Effect.forkIn(cache.get(command.fetch.id), scope)
            break
          case "Join":
            reply = join(command.id, command.leader, clock.unsafeCurrentTimeMillis())
            break
        }
      }
      return Effect.zipRight(started, reply)
    }

    const get: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.suspend(() => self!.get)
    const slow = Effect.flatMap(step({ _tag: "Get" }), answer)

    const invalidate = (rejected: AccessToken.AccessToken): Effect.Effect<TokenProvider.InvalidateResult> =>
      Effect.map(step({ _tag: "Invalidate", rejected }), (commands) => {
        const reply = commands.find((c) => c._tag === "Reply")
        const result = reply?._tag === "Reply" ? reply.result : { _tag: "NotCurrent" as const }
        if (result._tag === "Dropped") Metrics.unauthorizedRefreshes.unsafeUpdate(1, labels)
        return result
      })

    const adopt = (token: AccessToken.AccessToken): Effect.Effect<void> =>
      Effect.flatMap(Random.next, (u) =>
        Effect.flatMap(step({ _tag: "Adopt", token, u }), (commands) =>
          commands.some((c) =>
              c._tag === "Die"
            )
            ? Effect.dieMessage(closedMessage(name))
            : Effect.void))

    const state: Effect.Effect<TokenProvider.TokenState> = Effect.zipWith(
      Ref.get(ref),
      Clock.currentTimeMillis,
      Lifecycle.describe
    )

    return self = new Provider(name, tokenUrl, clock, hits, slow, invalidate, adopt, state)
  })

const exitError = (exit: Exit.Exit<unknown, TokenError>): TokenError | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const exitTag = (exit: Exit.Exit<unknown, TokenError>): string => exitError(exit)?._tag ?? "interrupted"

/** @internal */
export const layer = (
  config: ServiceAccountConfig,
  options?: MakeOptions
): Layer.Layer<TokenProvider.TokenProvider, never, HttpClient.HttpClient> => Layer.scoped(tag, make(config, options))

import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import type * as AccessToken from "../AccessToken.js"
import * as Metrics from "../Metrics.js"
import * as RetrySchedule from "../RetrySchedule.js"
import * as ServiceAccountConfigModule from "../ServiceAccountConfig.js"
import type { Resolved, ServiceAccountConfig } from "../ServiceAccountConfig.js"
import { type DiscoveryError, isTransient, retryAfter, type TokenError } from "../ServiceAccountError.js"
import type { FunctionLoader } from "../ServiceToken.js"
import * as SharedTokenStore from "../SharedTokenStore.js"
import * as TokenEndpoint from "../TokenEndpoint.js"
import type * as TokenProvider from "../TokenProvider.js"
import * as Discovery from "./discovery.js"
import * as Fleet from "./fleet.js"
import * as Lifecycle from "./lifecycle.js"
import { endpointOf } from "./text.js"

/** @internal */
export const TypeId: TokenProvider.TypeId = Symbol.for(
  "@mcp-auth/service-account/TokenProvider"
) as TokenProvider.TypeId

/** @internal */
export const tag = Context.GenericTag<TokenProvider.TokenProvider>("@mcp-auth/service-account/TokenProvider")

/** A retry is not started with less time than this left before the fetch's deadline. */
const MIN_ATTEMPT_MS = 250

/**
 * Cache hits reach the counter in batches of this many, and whenever the served token changes (at every transition and
 * when the provider closes): counting each hit would cost more than the hit itself once thousands of providers share a
 * process.
 */
const HIT_BATCH = 256

const closedMessage = (name: string) =>
  `TokenProvider ${name} was used after its scope closed: keep its layer provided for as long as clients use it ` +
  "(compose with Layer.provide, or Layer.build it in the scope of the client), not Effect.provide around a constructor"

/** The requests of one fetch so far, and the last one's error. */
interface Attempts {
  n: number
  last: TokenError | undefined
}

/**
 * Labels by token endpoint (`token_url`, and a role), one array per value: a metric caches its hook per label array,
 * so reusing the array keeps updates cheap, and the providers of one identity provider share theirs.
 */
const labelArrays = new Map<string, Array<MetricLabel.MetricLabel>>()
const endpointLabels = (tokenUrl: string, role?: string): Array<MetricLabel.MetricLabel> => {
  const id = role === undefined ? tokenUrl : `${tokenUrl}\u0000${role}`
  let found = labelArrays.get(id)
  if (found === undefined) {
    found = [MetricLabel.make("token_url", tokenUrl)]
    if (role !== undefined) found.push(MetricLabel.make("role", role))
    labelArrays.set(id, found)
  }
  return found
}

/**
 * The Effect shell of the token lifecycle: one `Ref` holds `Lifecycle.State` and changes only through
 * `Lifecycle.transition`; the provider runs the commands it returns (serve, fail, start or join a fetch, log) and keeps
 * the metrics in step with the state.
 *
 * Thousands of providers may share a process, so a provider is one object with its methods on the prototype, and the
 * hot path (`peek`, `get` with a usable token) reads only its own fields: the served token, until when, and the effect
 * that serves it.
 */
class Provider implements TokenProvider.TokenProvider {
  readonly [TypeId]: TokenProvider.TypeId = TypeId
  readonly tokenUrl: string
  /** The token the hot path serves, until when, and the effect that serves it; `undefined` when it may not serve. */
  private token: AccessToken.AccessToken | undefined = undefined
  private until = 0
  private ready: Effect.Effect<AccessToken.AccessToken> | undefined = undefined
  /**
   * The last token served (still held after a 401 dropped it) and the one before it: a token endpoint may echo them,
   * so the errors of the next token requests scrub them. Updated when the served token changes, never on the hot path.
   */
  private latest: AccessToken.AccessToken | undefined = undefined
  private previous: AccessToken.AccessToken | undefined = undefined
  /** Cache hits served from `token` that the counter has not seen yet. */
  private served = 0
  /**
   * Objects told of `token` and `until` (`TokenProvider.mirror`), held weakly: an `AuthHeaders` built per request
   * must not be kept alive by its provider. Those collected are dropped whenever the list has doubled.
   */
  private mirrors: Array<WeakRef<TokenProvider.Mirror>> | undefined = undefined
  private mirrorsPruned = 0
  private readonly labels: Array<MetricLabel.MetricLabel>
  private readonly endpointLabels: Array<MetricLabel.MetricLabel>
  /** `[provider, …]` label arrays of the series every provider updates, made on first use and kept. */
  private successLabels: Array<MetricLabel.MetricLabel> | undefined = undefined
  /** The single flight while a fetch is in flight: see `flights()`. */
  private cache: Cache.Cache<number, Lifecycle.TokenOutcome | undefined> | undefined = undefined
  /** Where the last fetched token came from (with a shared store). */
  private source: Fleet.Source | undefined = undefined
  readonly get: Effect.Effect<AccessToken.AccessToken, TokenError>
  readonly resolved: Effect.Effect<Resolved, DiscoveryError>

  constructor(
    readonly name: string,
    private readonly config: ServiceAccountConfig,
    /** The context the provider was built in (its `HttpClient`, and whatever that client reads per request). */
    private readonly context: Context.Context<HttpClient.HttpClient>,
    private readonly scope: Scope.Scope,
    private readonly clock: Clock.Clock,
    private readonly ref: Ref.Ref<Lifecycle.State>,
    private readonly loadFunction: FunctionLoader | undefined,
    /** The configuration with its token endpoint: itself, or completed by discovery. */
    private readonly resolver: Discovery.Resolver,
    /** The fleet's shared token store, when one is in the context the provider was made in. */
    private readonly fleet: Fleet.Fleet | undefined
  ) {
    this.resolved = resolver.current
    this.tokenUrl = endpointOf(config)
    this.labels = [MetricLabel.make("provider", name)]
    this.endpointLabels = endpointLabels(this.tokenUrl)
    this.get = Effect.suspend(() => this.peek() === undefined ? this.slow() : this.ready!)
  }

  peek(): AccessToken.AccessToken | undefined {
    const token = this.token
    if (token === undefined || this.clock.unsafeCurrentTimeMillis() >= this.until) return undefined
    if (++this.served === HIT_BATCH) this.flush()
    return token
  }

  readonly invalidate = (rejected: AccessToken.AccessToken): Effect.Effect<TokenProvider.InvalidateResult> =>
    Effect.map(this.step({ _tag: "Invalidate", rejected }), (commands) => {
      const reply = commands.find((c) => c._tag === "Reply")
      const result = reply?._tag === "Reply" ? reply.result : { _tag: "NotCurrent" as const }
      if (result._tag === "Dropped") Metrics.unauthorizedRefreshes.unsafeUpdate(1, this.labels)
      return result
    }).pipe(
      // the fleet drops it too, if it is still the stored one: a revocation seen by many processes, one refresh
      Effect.tap((result) =>
        result._tag === "Dropped" && this.fleet !== undefined ? this.fleet.rejected(rejected) : Effect.void
      )
    )

  readonly adopt = (token: AccessToken.AccessToken): Effect.Effect<void> =>
    Effect.flatMap(Random.next, (u) =>
      Effect.flatMap(
        this.step({ _tag: "Adopt", token, u }),
        (commands) => commands.some((c) => c._tag === "Die") ? Effect.dieMessage(closedMessage(this.name)) : Effect.void
      ))

  get state(): Effect.Effect<TokenProvider.TokenState> {
    return Effect.zipWith(Ref.get(this.ref), Clock.currentTimeMillis, (s, now) => {
      const state = Lifecycle.describe(s, now)
      if (this.fleet === undefined) return state
      const since = this.fleet.failingSince()
      return {
        ...state,
        sharedCache: { lastSource: this.source, ...(since === undefined ? {} : { unavailableSince: since }) }
      }
    })
  }

  private flush(): void {
    if (this.served > 0) Metrics.cacheHits.unsafeUpdate(this.served, this.endpointLabels)
    this.served = 0
  }

  mirror(target: TokenProvider.Mirror): Clock.Clock {
    const mirrors = this.mirrors ??= []
    if (mirrors.length >= 2 * this.mirrorsPruned + 8) {
      this.mirrors = mirrors.filter((ref) => ref.deref() !== undefined)
      this.mirrorsPruned = this.mirrors.length
    }
    this.mirrors.push(new WeakRef(target))
    target.update(this.token, this.until)
    return this.clock
  }

  flushMirror(target: TokenProvider.Mirror): void {
    if (target.hits > 0) Metrics.cacheHits.unsafeUpdate(target.hits, this.endpointLabels)
    target.hits = 0
  }

  /** Replaces what the hot path serves (inside the state's atomic update), here and in the mirrors. */
  private publish(lease: ReturnType<typeof Lifecycle.lease>): void {
    this.flush()
    if (lease !== undefined && lease.token !== this.latest) {
      this.previous = this.latest
      this.latest = lease.token
    }
    if (lease === undefined) {
      this.token = this.ready = undefined
    } else {
      if (lease.token !== this.token) this.ready = Effect.succeed(lease.token)
      this.token = lease.token
      this.until = lease.until
    }
    if (this.mirrors === undefined) return
    let failed: Set<WeakRef<TokenProvider.Mirror>> | undefined
    for (const ref of this.mirrors) {
      const target = ref.deref()
      if (target === undefined) continue
      this.flushMirror(target)
      try {
        target.update(this.token, this.until)
      } catch {
        // a mirror that throws must not break the transition under way: it is dropped, never told again
        ;(failed ??= new Set()).add(ref)
      }
    }
    if (failed !== undefined) this.mirrors = this.mirrors.filter((ref) => !failed.has(ref))
  }

  /**
   * `[provider, key=value]`. Those of successful requests are made once and kept, so their metric hook stays cached;
   * those of failed requests are made per use: rare, and nothing to keep per provider.
   */
  private labelsWith(key: string, value: string): Array<MetricLabel.MetricLabel> {
    if (value === "success") return this.successLabels ??= [...this.labels, MetricLabel.make(key, value)]
    return [...this.labels, MetricLabel.make(key, value)]
  }

  /** What the lifecycle needs of the configuration: derived on each (rare) transition rather than kept per provider. */
  private get settings(): Lifecycle.Settings {
    const config = this.config
    const policy = RetrySchedule.fromRetryConfig(config.retry)
    return {
      bufferMillis: config.tokenCacheBufferSeconds * 1000,
      backoffMillis: (retry, u) => RetrySchedule.delayMillis(policy, retry, u),
      maxWaitMillis: config.retry.maxElapsedSeconds * 1000,
      cooldownInitialMillis: config.failureCooldown.initialSeconds * 1000,
      cooldownMaxMillis: config.failureCooldown.maxSeconds * 1000,
      tokenUrl: this.tokenUrl
    }
  }

  /** Runs one transition atomically; the hot path's view is recomputed in the same update. */
  private step(event: Lifecycle.Event): Effect.Effect<ReadonlyArray<Lifecycle.Command>> {
    return Effect.flatMap(
      Ref.modify(this.ref, (before) => {
        const next = Lifecycle.transition(before, event, this.clock.unsafeCurrentTimeMillis(), this.settings)
        if (next.state !== before) this.publish(Lifecycle.lease(next.state))
        return [[before, next] as const, next.state]
      }),
      ([before, next]) => {
        if (next.state !== before) this.observe(before, next.state)
        return this.logs(next.commands)
      }
    )
  }

  /** Metrics follow the state: updated here, when it changes, never when it is read. */
  private observe(before: Lifecycle.State, after: Lifecycle.State): void {
    const labels = this.labels
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
          ...labels,
          MetricLabel.make("kind", after.cooldown.kind),
          MetricLabel.make("reason", after.cooldown.error._tag)
        ])
      }
    }
  }

  private logs(commands: ReadonlyArray<Lifecycle.Command>): Effect.Effect<ReadonlyArray<Lifecycle.Command>> {
    const lines = commands.filter((c): c is Extract<Lifecycle.Command, { _tag: "Log" }> => c._tag === "Log")
    if (lines.length === 0) return Effect.succeed(commands)
    return Effect.as(
      Effect.forEach(
        lines,
        (line) =>
          (line.level === "Debug" ? Effect.logDebug(line.message) : Effect.logWarning(line.message)).pipe(
            Effect.annotateLogs({ token_url: this.tokenUrl, ...line.fields })
          ),
        { discard: true }
      ),
      commands
    )
  }

  /** One token request, its timeout capped by what is left of the fetch's budget. */
  private request(deadline: number, attempts: Attempts): Effect.Effect<AccessToken.AccessToken, TokenError> {
    return Effect.suspend(() => {
      attempts.n++
      const config = this.config
      const budget = Math.max(deadline - this.clock.unsafeCurrentTimeMillis(), MIN_ATTEMPT_MS)
      const send = (resolved: Resolved) =>
        TokenEndpoint.request(resolved, {
          timeout: Duration.millis(Math.min(config.timeoutSeconds * 1000, budget)),
          knownTokens: [this.latest?.token, this.previous?.token],
          loadFunction: this.loadFunction
        })
      return Effect.logDebug("Fetching new service account token").pipe(
        Effect.annotateLogs({ token_url: this.tokenUrl, scopes: config.scopes.join(" "), attempt: attempts.n }),
        Effect.zipRight(this.resolver.resolve),
        Effect.flatMap((resolved) =>
          send(resolved).pipe(
            // discovered metadata may be stale: found again once, and the request sent again if it changed
            Effect.catchIf((error) => suggestsMoved(config, error), (error) =>
              Effect.flatMap(this.resolver.rediscover(resolved), (fresh) =>
                fresh === undefined ? Effect.fail(error) : Effect.logDebug("Token endpoint discovered again").pipe(
                  Effect.annotateLogs({ token_url: endpointOf(fresh), auth_method: fresh.authMethod }),
                  Effect.zipRight(send(fresh))
                )))
          )
        ),
        // a token that came too late to use fails the attempt, so the schedule retries it
        Effect.flatMap((token) => {
          const late = Lifecycle.arrival(token, this.clock.unsafeCurrentTimeMillis(), this.settings)
          return late === undefined ? Effect.succeed(token) : Effect.fail(late)
        }),
        // the single flight's Cache runs lookups in the context it was made in (none): the provider's goes back in here
        Effect.provide(this.context),
        Effect.tapError((error) =>
          Effect.zipRight(
            Effect.sync(() => {
              attempts.last = error
            }),
            // a 429 is shared at once: the fleet waits it out while this fetch's retry sleeps through it
            this.fleet === undefined ? Effect.void : this.fleet.attemptFailed(error)
          )
        ),
        Effect.onExit((exit) =>
          Effect.sync(() =>
            Metrics.tokenRequests.unsafeUpdate(
              1,
              this.labelsWith("outcome", Exit.isSuccess(exit) ? "success" : exitTag(exit))
            )
          )
        )
      )
    })
  }

  /** One fetch (the single flight's lookup): the token request retried on the shared schedule, its outcome settled. */
  private lookup(id: number): Effect.Effect<Lifecycle.TokenOutcome | undefined> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this
    return Effect.gen(function*() {
      const clock = self.clock
      const fetch = (yield* Ref.get(self.ref)).fetch
      // an id whose fetch has settled and left the cache: the caller asks again
      if (fetch === undefined || fetch.id !== id) return undefined
      const wait = fetch.notBefore - clock.unsafeCurrentTimeMillis()
      if (wait > 0) {
        yield* Effect.logDebug("Waiting for the token endpoint's cool-down").pipe(
          Effect.annotateLogs({ token_url: self.tokenUrl, wait_ms: wait })
        )
        yield* Effect.sleep(Duration.millis(wait))
      }
      const started = clock.unsafeCurrentTimeMillis()
      const deadline = started + self.config.retry.maxElapsedSeconds * 1000
      const attempts: Attempts = { n: 0, last: undefined }
      const local = self.request(deadline, attempts).pipe(
        Effect.retry(
          RetrySchedule.make<TokenError>(RetrySchedule.fromRetryConfig(self.config.retry), {
            while: (error) => isTransient(error) && deadline - clock.unsafeCurrentTimeMillis() >= MIN_ATTEMPT_MS,
            retryAfter
          }).pipe(
            Schedule.onDecision((_, decision) =>
              ScheduleDecision.isContinue(decision)
                ? Effect.logWarning("Token request failed; retrying").pipe(
                  Effect.annotateLogs({
                    token_url: self.tokenUrl,
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
      const exit = yield* Effect.exit(
        self.fleet === undefined ?
          local :
          Effect.map(self.fleet.fetch(local, self.latest, deadline), ({ source, token }) => {
            self.source = source
            return token
          })
      )
      Metrics.fetchSeconds.unsafeUpdate((clock.unsafeCurrentTimeMillis() - started) / 1000, self.endpointLabels)
      const u = yield* Random.next
      const error = exitError(exit)
      if (Exit.isFailure(exit) && error === undefined) {
        // a defect (or the scope closing): no outcome to settle; every waiter gets the defect
        yield* self.step({ _tag: "FetchDied", id })
        return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
      }
      const commands = yield* self.step(
        Exit.isSuccess(exit)
          ? { _tag: "FetchSucceeded", id, token: exit.value, u }
          : { _tag: "FetchFailed", id, error: error!, attempts: attempts.n, u }
      )
      const settled = commands.find((c) => c._tag === "Settle")
      return settled?._tag === "Settle" ? settled.result : undefined
    })
  }

  /**
   * The single flight: a `Cache` keyed by fetch id, whose lookup is the fetch, joined by every caller waiting for it.
   * It is made when a fetch starts and let go once no fetch is in flight (see `start`), so a provider between fetches
   * holds nothing for it. A caller that asks for a fetch which has already settled gets `undefined` and asks again.
   */
  private flights(): Cache.Cache<number, Lifecycle.TokenOutcome | undefined> {
    return this.cache ??= Effect.runSync(Cache.make({
      capacity: 4,
      timeToLive: Duration.infinity,
      lookup: (id: number) => this.lookup(id)
    }))
  }

  /** Starts fetch `id` in the provider's scope; afterwards, with no fetch in flight, the single flight is let go. */
  private start(id: number): Effect.Effect<unknown> {
    return Effect.suspend(() => {
      const cache = this.flights()
      return Effect.forkIn(
        Effect.ensuring(
          cache.get(id),
          // atomic with the state: a fetch started since keeps the cache
          Ref.update(this.ref, (s) => {
            if (s.fetch === undefined && this.cache === cache) this.cache = undefined
            return s
          })
        ),
        this.scope
      )
    })
  }

  /** Waits for fetch `id`. Runs in the provider's scope, so an interrupted caller never cancels the shared fetch. */
  private join(id: number, leader: boolean, since: number): Effect.Effect<AccessToken.AccessToken, TokenError> {
    return Effect.flatMap(Effect.forkIn(Effect.suspend(() => this.flights().get(id)), this.scope), Fiber.join).pipe(
      Effect.flatMap((outcome) => {
        if (outcome === undefined) return this.get
        Metrics.waitSeconds.unsafeUpdate((this.clock.unsafeCurrentTimeMillis() - since) / 1000, this.endpointLabels)
        Metrics.waiters.unsafeUpdate(1, endpointLabels(this.tokenUrl, leader ? "leader" : "coalesced"))
        return outcome._tag === "Token" ? Effect.succeed(outcome.token) : Effect.fail(outcome.error)
      })
    )
  }

  /** A `get` that the hot path could not serve: one transition, then what its commands say. */
  private slow(): Effect.Effect<AccessToken.AccessToken, TokenError> {
    return Effect.flatMap(this.step({ _tag: "Get" }), (commands) => {
      let reply: Effect.Effect<AccessToken.AccessToken, TokenError> = Effect.dieMessage("no answer")
      let started: Effect.Effect<unknown> = Effect.void
      for (const command of commands) {
        switch (command._tag) {
          case "Serve":
            Metrics.cacheHits.unsafeUpdate(1, this.endpointLabels)
            reply = Effect.succeed(command.token)
            break
          case "Fail":
            reply = Effect.fail(command.error)
            break
          case "Die":
            reply = Effect.dieMessage(closedMessage(this.name))
            break
          case "Start":
            started = this.start(command.fetch.id)
            break
          case "Join":
            reply = this.join(command.id, command.leader, this.clock.unsafeCurrentTimeMillis())
            break
        }
      }
      return Effect.zipRight(started, reply)
    })
  }

  /** The scope's finalizer: the provider stops serving, and its gauges go back to zero. */
  close(): Effect.Effect<void> {
    return Effect.map(this.step({ _tag: "Close" }), () => {
      Metrics.tokenExpiry.unsafeUpdate(0, this.labels)
      Metrics.degraded.unsafeUpdate(0, this.labels)
      Metrics.cooldownUntil.unsafeUpdate(0, this.labels)
    })
  }
}

/** @internal */
export interface MakeOptions {
  readonly name?: string | undefined
  readonly loadFunction?: FunctionLoader | undefined
  readonly mcpUrl?: string | URL | undefined
}

/** @internal */
export const make = (
  config: ServiceAccountConfig,
  options?: MakeOptions
): Effect.Effect<TokenProvider.TokenProvider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const resolver = yield* Discovery.resolver(config, options?.mcpUrl)
    const store = yield* Effect.serviceOption(SharedTokenStore.SharedTokenStore)
    const name = options?.name ?? config.clientId
    if (Option.isNone(store) && config.sharedCache !== undefined) {
      yield* Effect.logWarning(
        "shared_cache is configured but no SharedTokenStore was provided: this provider does not share its tokens " +
          "(provide SharedTokenStoreRedis.layerFromConfig(config))"
      ).pipe(Effect.annotateLogs({ provider: name }))
    }
    const ref = yield* Ref.make(Lifecycle.initial)
    const provider = new Provider(
      name,
      config,
      yield* Effect.context<HttpClient.HttpClient>(),
      scope,
      yield* Effect.clock,
      ref,
      options?.loadFunction,
      resolver,
      Option.isSome(store) ? fleetOf(config, store.value, name, resolver, Ref.get(ref)) : undefined
    )
    // not Effect.addFinalizer, which keeps a copy of this fiber's FiberRefs per provider
    yield* Scope.addFinalizerExit(scope, () => provider.close())
    return provider
  })

/** @internal */
export const mirror = (
  provider: TokenProvider.TokenProvider,
  target: TokenProvider.Mirror
): Clock.Clock | undefined => provider instanceof Provider ? provider.mirror(target) : undefined

/** @internal */
export const flushMirror = (provider: TokenProvider.TokenProvider, target: TokenProvider.Mirror): void => {
  if (provider instanceof Provider) provider.flushMirror(target)
}

/** The fleet protocol over `store`, with the configuration's `shared_cache` settings (or their defaults). */
const fleetOf = (
  config: ServiceAccountConfig,
  store: SharedTokenStore.Store,
  name: string,
  resolver: Discovery.Resolver,
  state: Effect.Effect<Lifecycle.State>
): Fleet.Fleet => {
  const shared = config.sharedCache ?? ServiceAccountConfigModule.sharedCacheDefaults
  const buffer = config.tokenCacheBufferSeconds * 1000
  const keys = new WeakMap<Resolved, string>()
  const cooldown = config.failureCooldown
  return Fleet.make({
    store,
    // from what the token is requested with: the discovered endpoint, resource and scopes included
    keyOf: Effect.map(resolver.resolve, (resolved) => {
      let key = keys.get(resolved)
      if (key === undefined) {
        key = Fleet.keyOf(shared.keyPrefix, {
          endpoint: resolved.tokenUrl.href,
          clientId: resolved.clientId,
          authMethod: resolved.authMethod,
          scopes: resolved.scopes,
          resource: resolved.resource,
          audience: resolved.audience
        })
        keys.set(resolved, key)
      }
      return key
    }),
    // decoding checked every key: the first encrypts, all decrypt
    codec: Fleet.makeCodec(
      [...(shared.encryptionKey === undefined ? [] : [shared.encryptionKey]), ...shared.previousEncryptionKeys].map(
        (key) => Fleet.parseKey(Redacted.value(key))!
      )
    ),
    owner: Crypto.randomUUID(),
    // never shorter than one fetch may take (its retries included): a second holder would fetch alongside
    leaseMillis: Math.max(shared.lockLeaseSeconds, config.retry.maxElapsedSeconds + config.timeoutSeconds) * 1000,
    waitMillis: shared.waitSeconds * 1000,
    timeoutMillis: shared.timeoutMs,
    leadMillis: (token) => Math.min(buffer, Math.max(0, token.expiresAt - token.issuedAt) / 2),
    // the cool-down this provider would start now: it doubles while the failure repeats (every process counts the
    // fleet's blocks as failures too)
    cooldownMillis: Effect.map(
      state,
      (s) => Math.min(cooldown.initialSeconds * 1000 * 2 ** s.strikes, cooldown.maxSeconds * 1000)
    ),
    labels: [MetricLabel.make("provider", name)]
  })
}

/**
 * A failure that suggests the discovered metadata changed: the token endpoint is gone (404, 405, 410), or the server
 * refused the client authentication that was chosen from its metadata.
 */
const suggestsMoved = (config: ServiceAccountConfig, error: TokenError): boolean => {
  if (config.discovery === undefined) return false
  if (error._tag === "TokenEndpointError" && [404, 405, 410].includes(error.status)) return true
  return config.discovery.chooseAuthMethod &&
    (error._tag === "InvalidCredentialsError" ||
      (error._tag === "TokenEndpointError" &&
        (error.error === "unauthorized_client" || error.error === "invalid_request")))
}

const exitError = (exit: Exit.Exit<unknown, TokenError>): TokenError | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const exitTag = (exit: Exit.Exit<unknown, TokenError>): string => exitError(exit)?._tag ?? "interrupted"

/** @internal */
export const layer = (
  config: ServiceAccountConfig,
  options?: MakeOptions
): Layer.Layer<TokenProvider.TokenProvider, never, HttpClient.HttpClient> => Layer.scoped(tag, make(config, options))

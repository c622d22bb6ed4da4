/**
 * The bearer token: acquired with the client-credentials grant, cached in memory, refreshed before it expires.
 *
 * - Single-flight: however many fibers ask at once, one token request is made (Effect `Cache`).
 * - Refresh window: lead = `min(token_cache_buffer_seconds, lifetime / 2)`, so short tokens stay cached; the refresh
 *   point is jittered (`lead × U(0.8, 1.0)` before expiry) or the server's `refresh_in`.
 * - Proactive refresh: in the window one background refresh runs while callers keep the still-valid token. Callers
 *   only wait when no usable token is left.
 * - Stale-while-revalidate: if that refresh fails, the valid token keeps being served (state `degraded`) and the
 *   refresh is retried with backoff; after expiry callers get the typed error.
 * - Failure policy: transient failures (network, timeouts, 5xx, 429) are retried on the shared `RetrySchedule` (full
 *   jitter, `Retry-After`, an elapsed budget); when a fetch still fails, a cool-down shared by every caller starts.
 *   Every permanent failure (invalid credentials, `invalid_scope` and other OAuth errors, TLS, malformed responses)
 *   starts a cool-down too (`failure_cooldown`, doubling while it repeats, capped): callers get the same error without
 *   a request, so a misconfigured fleet cannot hammer its identity provider. Cool-downs show in {@link TokenState} and
 *   the metrics.
 * - `invalidate(rejected)` is compare-and-invalidate and says what it did; interrupted callers never cancel the
 *   shared fetch.
 *
 * Every decision lives in one pure transition function (`internal/lifecycle.ts`: state, event, now → state,
 * commands); the provider is the thin Effect shell that runs its commands. The design card's "a Layer backed by Cache
 * and Ref": the lifecycle state is one `Ref`, updated only by that function; the `Cache` is the single flight, one
 * lookup per fetch, joined by every waiter, made when a fetch starts and let go when none is in flight (a provider
 * between fetches holds none, unless a caller that came too late for the last one made a new one, kept until the next
 * fetch); background work is forked into the layer's scope.
 *
 * Many providers in one process: a provider is one object with its methods on its prototype (about 6 KiB with its
 * metric series, see the many-providers table in `packages/bench/BENCHMARKS.md`), idle providers hold no timers, and
 * its warm `peek` reads only its own fields; {@link mirror} lets a holder of one object per provider read even less.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { AccessToken } from "./AccessToken.js"
import * as internal from "./internal/tokenProvider.js"
import * as ServiceAccountConfig from "./ServiceAccountConfig.js"
import type { DiscoveryError, TokenError } from "./ServiceAccountError.js"
import type * as ServiceToken from "./ServiceToken.js"

/**
 * @since 0.1.0
 * @category Type IDs
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category Type IDs
 */
export type TypeId = typeof TypeId

/**
 * What the provider is doing, for health checks and metrics.
 *
 * - `empty`: no token yet; the next `get` fetches one.
 * - `fresh`: a token is cached and not yet in its refresh window (or the window has started but nobody asked yet).
 * - `refreshing`: a background refresh is running; callers get the current token.
 * - `degraded`: refreshing fails; the still-valid token is served (`timeLeftMillis`), retries continue.
 * - `expired`: the cached token can no longer be used; the next `get` waits for a fetch.
 *
 * @since 0.1.0
 * @category Models
 */
export type TokenState =
  | ({ readonly status: "empty" | "expired" } & Diagnostics)
  | ({ readonly status: "fresh" | "refreshing" } & TokenTiming & Diagnostics)
  | (
    & { readonly status: "degraded"; readonly degradedSince: number; readonly attempts: number }
    & TokenTiming
    & Diagnostics
  )

/**
 * @since 0.1.0
 * @category Models
 */
export interface TokenTiming {
  readonly expiresAt: number
  readonly refreshAt: number
  readonly timeLeftMillis: number
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Diagnostics {
  /** The last fetch failure since the last success. */
  readonly lastError?: TokenError | undefined
  /** Set while a cool-down runs: no token request before this instant (epoch ms). */
  readonly coolingDownUntil?: number | undefined
  /**
   * Set while a cool-down runs. `permanent`: a failure retrying cannot fix (invalid credentials, an OAuth error such
   * as `invalid_scope`, TLS, a malformed response); callers get `lastError` at once. `transient`: the server asked
   * for a pause (429/503 `Retry-After`) or a fetch ran out of retries; callers that can wait that long (within
   * `retry.max_elapsed_seconds`) wait, the others get `lastError`.
   */
  readonly cooldownKind?: "transient" | "permanent" | undefined
  /** Permanent failures in a row since the last success: each doubles the next cool-down, up to its cap. */
  readonly consecutiveFailures?: number | undefined
  /**
   * With a shared token store (`shared_cache`): where the last fetched token came from (`fleet`: another process
   * published it; `endpoint`: this process requested it), and since when the store has been failing (the provider
   * then works alone: fail open).
   */
  readonly sharedCache?: {
    readonly lastSource: "fleet" | "endpoint" | undefined
    readonly unavailableSince?: number | undefined
  } | undefined
}

/**
 * What {@link TokenProvider.invalidate} did.
 *
 * - `Dropped`: the cached token was the rejected one and is gone; the next `get` fetches a new token.
 * - `NotCurrent`: the cache does not hold the rejected token (another caller dropped it already, or it was replaced):
 *   nothing to do, `get` returns the current token.
 * - `Throttled`: the rejected token is current, but it was fetched after a drop less than a second ago. Such drops are
 *   at most one per second, so a resource server that rejects every token cannot turn each request into a token
 *   request. Treat it as the server refusing the client (wrong audience or scopes), not as a stale token; retry after
 *   `retryAfterMillis` if you must. (A token requested before the last drop, e.g. by a refresh under way when the
 *   server revoked tokens, is dropped.)
 *
 * @since 0.1.0
 * @category Models
 */
export type InvalidateResult =
  | { readonly _tag: "Dropped" }
  | { readonly _tag: "NotCurrent" }
  | { readonly _tag: "Throttled"; readonly retryAfterMillis: number }

/**
 * @since 0.1.0
 * @category Models
 */
export interface TokenProvider {
  readonly [TypeId]: TypeId
  /** The provider's name (metric tag and logs); by default the `client_id`. */
  readonly name: string
  /** The token endpoint, without query or user info. */
  readonly tokenUrl: string
  /** The current token; waits for a fetch only when no usable token is cached. */
  readonly get: Effect.Effect<AccessToken, TokenError>
  /**
   * The synchronous accessor: the cached token, read without running an effect, whenever `get` would return it without
   * deciding anything (the token is usable, and either not in its refresh window or a refresh is already running or
   * backing off); otherwise `undefined`. Supported for hot paths that resolve headers on every request outside a
   * fiber (`AuthHeaders`, the client package's `createServiceAccountAuth`): try `peek()` first and fall back to `get`
   * when it returns `undefined`. Never use `peek` alone: only `get` fetches a token and starts the background refresh.
   * Counts as a cache hit in the metrics, like `get`. A method: call it on the provider (`provider.peek()`).
   */
  peek(): AccessToken | undefined
  /**
   * Drops the cached token if, and only if, it is `rejected` (e.g. after a 401), at most once per second, and says
   * what it did ({@link InvalidateResult}). N concurrent calls with the same token drop it once; a call with an older
   * token does nothing.
   */
  readonly invalidate: (rejected: AccessToken) => Effect.Effect<InvalidateResult>
  /**
   * Installs a token obtained outside this provider as the current one, replacing the cached token, with the usual
   * refresh schedule from its expiry. Supported for bridges where another component runs the token request itself:
   * the client package's `OAuthClientProvider` adapter adopts what the MCP SDK's `saveTokens` hands it, so the SDK
   * and `get` share one cache. The token must come from the same client and token endpoint as the provider's
   * configuration; later refreshes use that configuration.
   */
  readonly adopt: (token: AccessToken) => Effect.Effect<void>
  /** A snapshot of the lifecycle for health checks ({@link TokenState}): a pure read, it changes nothing. */
  readonly state: Effect.Effect<TokenState>
  /**
   * The configuration with its token endpoint: the configured one, or the one discovery found for the last token
   * request (discovered now if there was none), with what discovery completed (`issuer`, `resource`, `scopes`,
   * `authMethod`). Token requests discover again once the metadata's `max-age` has passed; this never does.
   */
  readonly resolved: Effect.Effect<ServiceAccountConfig.Resolved, DiscoveryError>
}

/**
 * @since 0.1.0
 * @category Tags
 */
export const TokenProvider: Context.Tag<TokenProvider, TokenProvider> = internal.tag

/**
 * @since 0.1.0
 * @category Models
 */
export interface MakeOptions {
  /** Name used as the `provider` metric tag and in logs (default: the client id). */
  readonly name?: string | undefined
  /**
   * Resolves a `client_assertion.function` given as `"<module>#<export>"` (the workflow package passes one that
   * imports relative to the workflow file); a function given as a value needs none.
   */
  readonly loadFunction?: ServiceToken.FunctionLoader | undefined
  /**
   * The MCP server whose protected-resource metadata names the authorization server, for a configuration that
   * discovers its token endpoint from the MCP server (`discover`, `allowed_issuers`).
   */
  readonly mcpUrl?: string | URL | undefined
}

/**
 * Builds a provider whose background work lives in the current scope.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (
  config: ServiceAccountConfig.ServiceAccountConfig,
  options?: MakeOptions
) => Effect.Effect<TokenProvider, never, HttpClient.HttpClient | Scope.Scope> = internal.make

/**
 * An object of yours that the provider tells what `peek` serves, for hot paths that hold one object per provider and
 * resolve headers on every request (the client package's `createServiceAccountAuth`). With thousands of providers in a
 * process, each object a warm call touches is a likely cache miss; a mirror lets that call read only the object it
 * already holds.
 *
 * `update(token, until)` is called at once and in every transition that changes what `peek` serves (a new token, a
 * refresh under way, a drop after a 401, closing): serve `token` while the provider's clock reads less than `until`
 * (epoch milliseconds), else fall back to `get`; `token` `undefined` means nothing may be served. Add one to `hits`
 * per token served; the provider adds them to the cache-hit metric at every update, and {@link flushMirror} does it
 * in between (call it every few hundred hits). `update` runs inside the provider's transition: it must only record
 * what it is told (no effects, no calls back into the provider); one that throws is dropped and never told again.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Mirror {
  readonly update: (token: AccessToken | undefined, until: number) => void
  hits: number
}

/**
 * Makes the provider keep `target` told of what `peek` serves (see {@link Mirror}), for as long as both live (the
 * provider holds `target` weakly): register each holder once. Returns the provider's clock,
 * which `until` is read against, or `undefined`, without calling `target`, for a `TokenProvider` not built by this
 * module (a fake, say): use `peek` then.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const mirror: (provider: TokenProvider, target: Mirror) => Clock.Clock | undefined = internal.mirror

/**
 * Adds the hits a mirror has counted to the cache-hit metric, and resets them.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const flushMirror: (provider: TokenProvider, target: Mirror) => void = internal.flushMirror

/**
 * The provider as a layer: one token cache whose background refresh lives as long as the layer. `HttpClient` is left
 * to the user: `TokenHttpClient.layerFromConfig(config)` (undici, honours `ca_file`), `NodeHttpClient.layerUndici`,
 * `FetchHttpClient.layer`, or a fake in tests.
 *
 * @example
 * ```ts
 * import { ServiceAccountConfig, TokenProvider } from "@mcp-auth/service-account"
 * import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const config = ServiceAccountConfig.decodeSync({
 *   client_id: "svc-reports",
 *   client_secret: process.env.SERVICE_ACCOUNT_CLIENT_SECRET,
 *   token_url: "https://idp.example.com/oauth2/token",
 *   scopes: ["mcp:tools"]
 * })
 * const TokenLive = TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layerFromConfig(config)))
 *
 * const program = Effect.gen(function*() {
 *   const provider = yield* TokenProvider.TokenProvider
 *   const token = yield* provider.get // cached; one request however many fibers ask
 *   return `Bearer ${Redacted.value(token.token)}`
 * })
 *
 * program.pipe(
 *   Effect.provide(TokenLive),
 *   Effect.catchTag("InvalidCredentialsError", (e) => Effect.die(e)) // page someone: the secret is wrong
 * )
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer: (
  config: ServiceAccountConfig.ServiceAccountConfig,
  options?: MakeOptions
) => Layer.Layer<TokenProvider, never, HttpClient.HttpClient> = internal.layer

/**
 * The provider from an Effect `Config`, by default {@link ServiceAccountConfig.fromEnv}
 * (`SERVICE_ACCOUNT_CLIENT_ID`, `SERVICE_ACCOUNT_CLIENT_SECRET`, `SERVICE_ACCOUNT_TOKEN_URL`, …).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  config: Config.Config<ServiceAccountConfig.ServiceAccountConfig> = ServiceAccountConfig.fromEnv,
  options?: MakeOptions
): Layer.Layer<TokenProvider, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Config.map(config, (c) => internal.layer(c, options)))

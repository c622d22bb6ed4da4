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
 * - Failure policy: transient failures are retried with full-jitter backoff; `Retry-After` is honoured and starts a
 *   cool-down shared by every caller; invalid credentials latch for a cool-down so a bad secret cannot hammer the
 *   identity provider.
 * - `invalidate(rejected)` is compare-and-invalidate; interrupted callers never cancel the shared fetch.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { AccessToken } from "./AccessToken.js"
import * as internal from "./internal/tokenProvider.js"
import * as ServiceAccountConfig from "./ServiceAccountConfig.js"
import type { TokenError } from "./ServiceAccountError.js"

/**
 * @since 0.1.0
 * @category Type IDs
 */
export const TypeId: TypeId = internal.TypeId

/**
 * @since 0.1.0
 * @category Type IDs
 */
export type TypeId = "~@mcp-auth/service-account/TokenProvider"

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
  /** Set while invalid credentials are latched: no token request before this instant (epoch ms). */
  readonly latchedUntil?: number | undefined
  /** Set while a 429/503 cool-down runs: no token request before this instant (epoch ms). */
  readonly coolingDownUntil?: number | undefined
}

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
   * The cached token, read synchronously without running an effect, when it is usable and not yet in its refresh
   * window; otherwise `undefined`. Supported for hot paths that resolve headers on every request outside a fiber
   * (`AuthHeaders`, the client package's `createServiceAccountAuth`): try `peek()` first and fall back to `get` when
   * it returns `undefined`. Never use `peek` alone: only `get` fetches a token and starts the background refresh, so
   * a caller that only peeks would see `undefined` once the refresh window opens. Counts as a cache hit in the
   * metrics, like `get`.
   */
  readonly peek: () => AccessToken | undefined
  /**
   * Drops the cached token if, and only if, it is `rejected` (e.g. after a 401). Returns whether it did. N concurrent
   * calls with the same token drop it once; a call with an older token does nothing.
   */
  readonly invalidate: (rejected: AccessToken) => Effect.Effect<boolean>
  /**
   * Installs a token obtained outside this provider as the current one, replacing the cached token, with the usual
   * refresh schedule from its expiry. Supported for bridges where another component runs the token request itself:
   * the client package's `OAuthClientProvider` adapter adopts what the MCP SDK's `saveTokens` hands it, so the SDK
   * and `get` share one cache. The token must come from the same client and token endpoint as the provider's
   * configuration; later refreshes use that configuration.
   */
  readonly adopt: (token: AccessToken) => Effect.Effect<void>
  /** A snapshot of the lifecycle for health checks ({@link TokenState}). */
  readonly state: Effect.Effect<TokenState>
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

/**
 * The headers one request needs: `Authorization: Bearer …` first, then the service header (dual pattern), values
 * `Redacted` until the moment they are written; plus an `HttpClient` middleware that applies them and recovers once
 * from a 401, for Effect users calling HTTP APIs directly.
 *
 * `AuthHeaders.layer` needs a `TokenProvider` (the bearer token) and a `ServiceToken` (`ServiceToken.none` for the
 * single pattern, `layerStatic`, `layerFunction`, or `layerFromConfig` for what the configuration says).
 *
 * @example
 * ```ts
 * import {
 *   AuthHeaders,
 *   RequestContext,
 *   ServiceAccountConfig,
 *   ServiceToken,
 *   TokenProvider
 * } from "@mcp-auth/service-account"
 * import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
 * import { Effect, Layer } from "effect"
 *
 * const config = ServiceAccountConfig.decodeSync({
 *   client_id: "svc-reports",
 *   client_secret: process.env.SERVICE_ACCOUNT_CLIENT_SECRET,
 *   token_url: "https://idp.example.com/oauth2/token",
 *   service_token: { token: process.env.JIRA_SERVICE_TOKEN, header: "X-Jira-Service-Token" }
 * })
 * const AuthLive = AuthHeaders.layer.pipe(
 *   Layer.provide(ServiceToken.layerFromConfig(config)),
 *   Layer.provide(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layerFromConfig(config))))
 * )
 *
 * // the headers of one request: Authorization first, then X-Jira-Service-Token
 * const headers = Effect.gen(function*() {
 *   const auth = yield* AuthHeaders.AuthHeaders
 *   const set = yield* auth.forRequest(RequestContext.make("https://mcp.example.com/mcp", "POST"))
 *   return AuthHeaders.toRecord(set)
 * }).pipe(Effect.provide(AuthLive))
 * ```
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as AccessToken from "./AccessToken.js"
import * as RequestContext from "./RequestContext.js"
import type { ServiceTokenError, TokenError } from "./ServiceAccountError.js"
import * as ServiceToken from "./ServiceToken.js"
import { flushMirror, type InvalidateResult, type Mirror, mirror, TokenProvider } from "./TokenProvider.js"

/**
 * The headers for one request and the bearer token they carry (needed to invalidate it after a 401).
 *
 * @since 0.1.0
 * @category Models
 */
export interface AuthHeaderSet {
  readonly token: AccessToken.AccessToken
  /** In order: `Authorization`, then the service header if any. */
  readonly headers: ReadonlyArray<readonly [name: string, value: Redacted.Redacted<string>]>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface AuthHeaders {
  readonly forRequest: (
    request: RequestContext.RequestContext
  ) => Effect.Effect<AuthHeaderSet, TokenError | ServiceTokenError>
  /**
   * The synchronous accessor: the headers `forRequest` would return, read without running an effect, when they do
   * not depend on the request (the single pattern, or a static service token) and the bearer token can be served
   * without a decision (see `TokenProvider.peek`); otherwise `undefined`. For hot paths that cannot afford an effect
   * per request: call `peek()` first and fall back to `forRequest` when it returns `undefined` (only `forRequest`
   * fetches tokens and starts refreshes). A method: call it on the object (`auth.peek()`).
   */
  peek(): AuthHeaderSet | undefined
  /**
   * `peek`, in clear: a new record of the headers (`toRecord` of the set `peek` returns), or `undefined` when `peek`
   * would. For the one place that writes them, on hot paths with thousands of providers: it reads only this object,
   * where `toRecord(peek())` also reads the set and its `Redacted` values. A method, like `peek`.
   */
  peekRecord(): Record<string, string> | undefined
  /** Compare-and-invalidate the bearer token a request was rejected with (see `TokenProvider.invalidate`). */
  readonly invalidate: (rejected: AccessToken.AccessToken) => Effect.Effect<InvalidateResult>
}

/**
 * @since 0.1.0
 * @category Tags
 */
export const AuthHeaders: Context.Tag<AuthHeaders, AuthHeaders> = Context.GenericTag<AuthHeaders>(
  "@mcp-auth/service-account/AuthHeaders"
)

const bearerHeader = (token: AccessToken.AccessToken): readonly [string, Redacted.Redacted<string>] =>
  ["Authorization", Redacted.make(AccessToken.authorization(token))] as const

const headerSet = (
  token: AccessToken.AccessToken,
  service: Option.Option<ServiceToken.ServiceHeader>
): AuthHeaderSet => ({
  token,
  headers: Option.isNone(service)
    ? [bearerHeader(token)]
    : [bearerHeader(token), [service.value.name, service.value.value]]
})

/** Cache hits counted by a `Headers` reach the metric in batches of this many (and at every change of token). */
const HIT_BATCH = 256

/**
 * One object per provider, methods on the prototype: with thousands of providers in a process, every closure would be
 * paid thousands of times. With a request-independent service header (or none) the warm `forRequest` runs one ready
 * effect, `peek` returns the set built once per token and `peekRecord` a copy of its record: nothing else is allocated
 * per call. The token provider keeps this object told of what it serves (`TokenProvider.mirror`), so the warm `peek`
 * and `peekRecord` read this object only (each object a call touches is a likely cache miss when thousands of
 * providers take turns).
 */
class Headers implements AuthHeaders, Mirror {
  /**
   * The warm path (request-independent headers only), kept by the provider (`update`) and `cached`: `serving` when the
   * provider serves the token of the cached set, until `untilSeconds` (whole seconds, rounded down: a small integer
   * held in this object rather than a boxed number). First: they share a cache line.
   */
  private serving = false
  private untilSeconds = 0
  hits = 0
  private clock: Clock.Clock | undefined = undefined
  /**
   * The headers of the cached set in clear, kept private (never printed with this object): `Authorization`'s value,
   * and the service header's name and value, if any.
   */
  #bearer = ""
  #service: readonly [name: string, value: string] | undefined = undefined
  /** What the provider serves now (`update`). */
  private current: AccessToken.AccessToken | undefined = undefined
  /** The set of the last token, and the effect that serves it. */
  private token: AccessToken.AccessToken | undefined = undefined
  private set: AuthHeaderSet | undefined = undefined
  private ready: Effect.Effect<AuthHeaderSet> | undefined = undefined
  private readonly hot: Effect.Effect<AuthHeaderSet, TokenError> | undefined
  /** The service header when it does not depend on the request (`Option.none()` without one). */
  private readonly constant: Option.Option<ServiceToken.ServiceHeader> | undefined
  readonly invalidate: (rejected: AccessToken.AccessToken) => Effect.Effect<InvalidateResult>

  constructor(private readonly provider: TokenProvider, private readonly serviceToken: ServiceToken.ServiceToken) {
    this.invalidate = provider.invalidate
    const constant = this.constant = serviceToken.constant
    if (constant === undefined) {
      this.hot = undefined
      return
    }
    this.clock = mirror(provider, this)
    this.hot = Effect.suspend(() => {
      if (this.warm()) return this.ready!
      const token = this.provider.peek()
      if (token === undefined) return Effect.map(this.provider.get, (token) => this.cached(token, constant))
      this.cached(token, constant)
      return this.ready!
    })
  }

  readonly forRequest = (request: RequestContext.RequestContext) =>
    this.hot ??
      Effect.flatMap(
        this.provider.get,
        (token) => Effect.map(this.serviceToken.get(request), (service) => headerSet(token, service))
      )

  peek(): AuthHeaderSet | undefined {
    const constant = this.constant
    if (constant === undefined) return undefined
    if (this.warm()) return this.set
    const token = this.provider.peek()
    return token === undefined ? undefined : this.cached(token, constant)
  }

  peekRecord(): Record<string, string> | undefined {
    if (this.constant === undefined || (!this.warm() && this.peek() === undefined)) return undefined
    const service = this.#service
    return service === undefined
      ? { Authorization: this.#bearer }
      : { Authorization: this.#bearer, [service[0]]: service[1] }
  }

  /** The provider's call (`TokenProvider.Mirror`): what it serves now, and until when. */
  update(token: AccessToken.AccessToken | undefined, until: number): void {
    this.current = token
    this.untilSeconds = Math.floor(until / 1000)
    this.serving = token !== undefined && token === this.token
  }

  /** Whether the cached set may be served now, read from this object alone (counting the hit). */
  private warm(): boolean {
    if (!this.serving || this.clock!.unsafeCurrentTimeMillis() >= this.untilSeconds * 1000) return false
    if (++this.hits === HIT_BATCH) flushMirror(this.provider, this)
    return true
  }

  private cached(token: AccessToken.AccessToken, constant: Option.Option<ServiceToken.ServiceHeader>): AuthHeaderSet {
    if (this.token !== token) {
      const set = headerSet(token, constant)
      this.token = token
      this.set = set
      this.#bearer = Redacted.value(set.headers[0]![1])
      const service = set.headers[1]
      this.#service = service === undefined ? undefined : [service[0], Redacted.value(service[1])]
      this.ready = Effect.succeed(set)
    }
    this.serving = this.clock !== undefined && token === this.current
    return this.set!
  }
}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make: Effect.Effect<AuthHeaders, never, TokenProvider | ServiceToken.ServiceToken> = Effect.zipWith(
  TokenProvider,
  ServiceToken.ServiceToken,
  (provider, serviceToken): AuthHeaders => new Headers(provider, serviceToken)
)

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer: Layer.Layer<AuthHeaders, never, TokenProvider | ServiceToken.ServiceToken> = Layer.effect(
  AuthHeaders,
  make
)

/**
 * The header values in clear, for the one place that writes them onto a request.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const toRecord = (set: AuthHeaderSet): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of set.headers) out[name] = Redacted.value(value)
  return out
}

const apply = (request: HttpClientRequest.HttpClientRequest, set: AuthHeaderSet) =>
  HttpClientRequest.setHeaders(request, toRecord(set))

const contextOf = (request: HttpClientRequest.HttpClientRequest): RequestContext.RequestContext =>
  RequestContext.make(request.url, request.method)

/**
 * Wraps an `HttpClient` so every request carries the auth headers. On a 401 the rejected token is invalidated
 * (compare-and-invalidate) and the request is sent once more with a fresh token, when its body can be replayed
 * (not a stream) and the drop was not throttled (`TokenProvider.invalidate`). Token and service-token failures reach the caller as typed errors.
 *
 * @example
 * ```ts
 * import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
 * import * as HttpClient from "@effect/platform/HttpClient"
 * import { AuthHeaders } from "@mcp-auth/service-account"
 * import { Effect } from "effect"
 *
 * // needs AuthHeaders (see the module example) and an HttpClient for the API itself
 * const issue = Effect.gen(function*() {
 *   const client = yield* AuthHeaders.withAuthHeaders(yield* HttpClient.HttpClient)
 *   const response = yield* client.get("https://jira.example.com/rest/api/2/issue/OCSW-2116")
 *   return yield* response.json
 * }).pipe(Effect.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withAuthHeaders = <E, R>(
  client: HttpClient.HttpClient.With<E, R>
): Effect.Effect<HttpClient.HttpClient.With<E | TokenError | ServiceTokenError, R>, never, AuthHeaders> =>
  Effect.map(AuthHeaders, (auth) =>
    HttpClient.makeWith(
      (requestEffect: Effect.Effect<HttpClientRequest.HttpClientRequest>) =>
        Effect.flatMap(requestEffect, (request) =>
          Effect.gen(function*() {
            const context = contextOf(request)
            const first = yield* auth.forRequest(context)
            const response = yield* client.execute(apply(request, first))
            if (response.status !== 401 || request.body._tag === "Stream") return response
            // held back by the once-a-second limit, the cache still holds the rejected token: no replay with it
            if ((yield* auth.invalidate(first.token))._tag === "Throttled") return response
            return yield* client.execute(apply(request, yield* auth.forRequest(context)))
          })),
      Effect.succeed
    ))

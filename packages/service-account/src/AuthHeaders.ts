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
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as AccessToken from "./AccessToken.js"
import * as RequestContext from "./RequestContext.js"
import type { ServiceTokenError, TokenError } from "./ServiceAccountError.js"
import * as ServiceToken from "./ServiceToken.js"
import { type InvalidateResult, TokenProvider } from "./TokenProvider.js"

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
   * fetches tokens and starts refreshes).
   */
  readonly peek: () => AuthHeaderSet | undefined
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

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make: Effect.Effect<AuthHeaders, never, TokenProvider | ServiceToken.ServiceToken> = Effect.gen(
  function*() {
    const provider = yield* TokenProvider
    const serviceToken = yield* ServiceToken.ServiceToken
    const resolve = (request: RequestContext.RequestContext) =>
      Effect.flatMap(
        provider.get,
        (token) => Effect.map(serviceToken.get(request), (service) => headerSet(token, service))
      )
    const constant = serviceToken.constant
    if (constant === undefined) {
      return { forRequest: resolve, peek: () => undefined, invalidate: provider.invalidate }
    }
    // hot path: with a request-independent service header, one effect serves every request (nothing is allocated
    // per call), and the set of the token `peek` returns is built once per token
    let last: {
      readonly token: AccessToken.AccessToken
      readonly set: AuthHeaderSet
      readonly ready: Effect.Effect<AuthHeaderSet>
    } | undefined
    const cached = (token: AccessToken.AccessToken) => {
      if (last === undefined || last.token !== token) {
        const set = headerSet(token, constant)
        last = { token, set, ready: Effect.succeed(set) }
      }
      return last
    }
    const slow = Effect.map(provider.get, (token) => cached(token).set)
    const hot: Effect.Effect<AuthHeaderSet, TokenError> = Effect.suspend(() => {
      const token = provider.peek()
      return token === undefined ? slow : cached(token).ready
    })
    const peek = () => {
      const token = provider.peek()
      return token === undefined ? undefined : cached(token).set
    }
    return { forRequest: () => hot, peek, invalidate: provider.invalidate }
  }
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

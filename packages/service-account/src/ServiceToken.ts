/**
 * The service token: the optional SECOND header of the dual pattern (`X-Service-Account-Token` by default), next to
 * `Authorization: Bearer …`. It comes from nothing (single pattern), a static value, an `Effect`, or a user function
 * `(kwargs, context) => token | [header, token]` (sync or async) called on every request, as NAT does.
 *
 * An empty token, an invalid or reserved header name, or a throwing function is a typed `ServiceTokenError`,
 * never a silently dropped header. A static token from a configuration is checked when the configuration is decoded
 * (`service_token.token`: a `ConfigurationError`); one passed to {@link layerStatic} that an HTTP header cannot carry
 * is a `ServiceTokenError` with reason `invalid_token`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import { isHeaderName, isHeaderValue, redactJwts, reservedHeaderReason, scrub } from "./internal/text.js"
import * as Metrics from "./Metrics.js"
import type { RequestContext } from "./RequestContext.js"
import {
  DEFAULT_SERVICE_TOKEN_HEADER,
  type ServiceAccountConfig,
  type ServiceTokenFunction,
  type ServiceTokenResult
} from "./ServiceAccountConfig.js"
import { ServiceTokenError } from "./ServiceAccountError.js"

/**
 * One header to send: its name and its `Redacted` value.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ServiceHeader {
  readonly name: string
  readonly value: Redacted.Redacted<string>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface ServiceToken {
  /** The service header for one request, or `None` in the single pattern. */
  readonly get: (request: RequestContext) => Effect.Effect<Option.Option<ServiceHeader>, ServiceTokenError>
  /**
   * Set when the header does not depend on the request (the `none` and `layerStatic` layers): the value `get` always
   * succeeds with. Supported for consumers that resolve headers on every request (`AuthHeaders`, the client package's
   * `createServiceAccountAuth`): when it is set they build the header set once per bearer token instead of running
   * `get`. Leave it `undefined` in your own implementations unless `get` ignores its request and never fails.
   */
  readonly constant?: Option.Option<ServiceHeader> | undefined
}

/**
 * @since 0.1.0
 * @category Tags
 */
export const ServiceToken: Context.Tag<ServiceToken, ServiceToken> = Context.GenericTag<ServiceToken>(
  "@mcp-auth/service-account/ServiceToken"
)

const noHeader = Effect.succeed(Option.none<ServiceHeader>())

/**
 * The single pattern: no service header.
 *
 * @since 0.1.0
 * @category Layers
 */
export const none: Layer.Layer<ServiceToken> = Layer.succeed(ServiceToken, {
  get: () => noHeader,
  constant: Option.none()
})

const checkHeader = (header: string): Either.Either<string, ServiceTokenError> =>
  !isHeaderName(header)
    ? Either.left(
      new ServiceTokenError({
        reason: "invalid_header",
        detail: `${JSON.stringify(scrub(header, [], 64))} is not a valid HTTP header name`
      })
    )
    : reservedHeaderReason(header) !== undefined
    ? Either.left(
      new ServiceTokenError({
        reason: "invalid_header",
        header,
        detail: `${header} is reserved (${reservedHeaderReason(header)}); use e.g. ${DEFAULT_SERVICE_TOKEN_HEADER}`
      })
    )
    : Either.right(header)

/** Per outcome, a stable label array (metrics cache their hook per array). */
const outcomeLabels = (provider: string | undefined) => {
  const base = provider === undefined ? [] : [MetricLabel.make("provider", provider)]
  const cache = new Map<string, Array<MetricLabel.MetricLabel>>()
  return (outcome: string) => {
    let labels = cache.get(outcome)
    if (labels === undefined) cache.set(outcome, labels = [...base, MetricLabel.make("outcome", outcome)])
    return labels
  }
}

/**
 * Turns what a function or effect produced (or a static value: `from: "static"`) into a header: a token (sent under
 * `header`) or `[headerName, token]`.
 */
const normalize = (
  result: unknown,
  header: string,
  from: "function" | "static" = "function"
): Either.Either<ServiceHeader, ServiceTokenError> => {
  let name = header
  let value: unknown = result
  if (Array.isArray(result)) {
    if (result.length !== 2 || typeof result[0] !== "string") {
      return Either.left(
        new ServiceTokenError({
          reason: "invalid_result",
          detail: `expected a token or a [header, token] pair, got an array of ${result.length}`
        })
      )
    }
    const checked = checkHeader(result[0])
    if (Either.isLeft(checked)) {
      // never echo what the function returned: a [token, header] mix-up would print the token
      return Either.left(
        new ServiceTokenError({
          reason: "invalid_header",
          detail: "the function returned an invalid or reserved header name as the first element of [header, token]" +
            " (Authorization and transport headers are reserved; did it return [token, header]?)"
        })
      )
    }
    name = checked.right
    value = result[1]
  }
  const token = typeof value === "string" ? value : Redacted.isRedacted(value) ? Redacted.value(value) : undefined
  if (typeof token !== "string") {
    return Either.left(
      new ServiceTokenError({
        reason: "invalid_result",
        header: name,
        detail: `expected a string token or a [header, token] pair, got ${value === null ? "null" : typeof value}`
      })
    )
  }
  if (token.trim().length === 0) {
    return Either.left(
      new ServiceTokenError({
        reason: "empty_token",
        header: name,
        detail: "the token is empty (is the variable or vault entry behind it set?)"
      })
    )
  }
  if (!isHeaderValue(token)) {
    const detail = "the token contains a line break (CR or LF), NUL, another control character or a character " +
      "above U+00FF, which an HTTP header cannot carry"
    return Either.left(
      new ServiceTokenError({ reason: from === "static" ? "invalid_token" : "invalid_result", header: name, detail })
    )
  }
  return Either.right({
    name,
    value: Redacted.isRedacted(value) ? value as Redacted.Redacted<string> : Redacted.make(token)
  })
}

/**
 * A static service token.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerStatic = (
  token: string | Redacted.Redacted<string>,
  header: string = DEFAULT_SERVICE_TOKEN_HEADER
): Layer.Layer<ServiceToken, ServiceTokenError> =>
  Layer.effect(
    ServiceToken,
    Effect.map(
      Either.flatMap(checkHeader(header), (h) => normalize(token, h, "static")),
      (serviceHeader) => {
        const constant = Option.some(serviceHeader)
        const result = Effect.succeed(constant)
        return { get: () => result, constant }
      }
    )
  )

const describe = (cause: unknown): string =>
  scrub(
    redactJwts(
      cause instanceof Error ? `${cause.name === "Error" ? "" : `${cause.name}: `}${cause.message}` : String(cause)
    ),
    []
  )

const called = <E, R>(
  get: (request: RequestContext) => Effect.Effect<ServiceTokenResult, E, R>,
  header: string,
  timeout: Duration.Duration,
  provider: string | undefined
) => {
  const labels = outcomeLabels(provider)
  return (request: RequestContext): Effect.Effect<Option.Option<ServiceHeader>, ServiceTokenError, R> =>
    get(request).pipe(
      Effect.mapError((cause) =>
        cause instanceof ServiceTokenError
          ? cause
          : new ServiceTokenError({ reason: "function_failed", detail: describe(cause), cause })
      ),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new ServiceTokenError({
            reason: "function_failed",
            header,
            detail: `no token within ${
              Duration.format(timeout)
            } (raise service_token.timeout_seconds or fix the function)`
          })
      }),
      Effect.flatMap((result) => normalize(result, header)),
      Effect.tapBoth({
        onFailure: (e) => Effect.sync(() => Metrics.serviceTokenCalls.unsafeUpdate(1, labels(e.reason))),
        onSuccess: () => Effect.sync(() => Metrics.serviceTokenCalls.unsafeUpdate(1, labels("success")))
      }),
      Effect.map(Option.some)
    )
}

/**
 * A service token produced by an `Effect` for each request. A failure that is not already a `ServiceTokenError`
 * becomes one (`function_failed`), with the original kept as `cause`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerEffect = <E, R>(
  get: (request: RequestContext) => Effect.Effect<ServiceTokenResult, E, R>,
  options?: {
    readonly header?: string | undefined
    readonly timeout?: Duration.DurationInput | undefined
    /** The provider's name, for the `provider` tag of `mcp_auth_service_token_calls_total`. */
    readonly name?: string | undefined
  }
): Layer.Layer<ServiceToken, ServiceTokenError, R> =>
  Layer.effect(
    ServiceToken,
    Effect.gen(function*() {
      const header = yield* checkHeader(options?.header ?? DEFAULT_SERVICE_TOKEN_HEADER)
      const context = yield* Effect.context<R>()
      const resolve = called(get, header, Duration.decode(options?.timeout ?? "10 seconds"), options?.name)
      return { get: (request) => Effect.provide(resolve(request), context) }
    })
  )

/**
 * Calls a user function for a request: `fn(kwargs, request)`, sync or async (anything returning a thenable is
 * awaited); a throw or a rejection is the failure.
 */
const callFunction = (
  fn: ServiceTokenFunction,
  kwargs: Readonly<Record<string, unknown>>,
  request: RequestContext
): Effect.Effect<ServiceTokenResult, unknown> =>
  Effect.suspend(() => {
    let result: ReturnType<ServiceTokenFunction>
    try {
      result = fn(kwargs, request)
    } catch (cause) {
      return Effect.fail(cause)
    }
    return Predicate.isPromiseLike(result)
      ? Effect.tryPromise({ try: () => Promise.resolve(result), catch: (cause) => cause })
      : Effect.succeed(result)
  })

/**
 * A user function called on every request, NAT-style: `(kwargs, request) => token | [header, token]`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFunction = (
  fn: ServiceTokenFunction,
  options?: {
    readonly header?: string | undefined
    readonly kwargs?: Readonly<Record<string, unknown>> | undefined
    readonly timeout?: Duration.DurationInput | undefined
    readonly name?: string | undefined
  }
): Layer.Layer<ServiceToken, ServiceTokenError> =>
  layerEffect((request) => callFunction(fn, options?.kwargs ?? {}, request), options)

/**
 * Resolves a `service_token.function` given as a string (`"<module>#<export>"`). The workflow loader supplies one that
 * resolves modules relative to the config file.
 *
 * @since 0.1.0
 * @category Models
 */
export type FunctionLoader = (reference: string) => Effect.Effect<ServiceTokenFunction, ServiceTokenError>

const noLoader: FunctionLoader = (reference) =>
  Effect.fail(
    new ServiceTokenError({
      reason: "load_failed",
      detail:
        `${reference}: a function reference needs a loader (load the config with @mcp-auth/workflow) or pass the function itself`
    })
  )

/**
 * The service token a configuration describes: none, static or function.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFromConfig = (
  config: ServiceAccountConfig,
  options?: {
    readonly loadFunction?: FunctionLoader | undefined
    /** The provider's name for metrics (default: the client id, as `TokenProvider` uses). */
    readonly name?: string | undefined
  }
): Layer.Layer<ServiceToken, ServiceTokenError> => {
  const st = config.serviceToken
  if (st === undefined) return none
  if (st._tag === "Static") return layerStatic(st.token, st.header)
  const fn = st.function
  const settings = {
    header: st.header,
    kwargs: st.kwargs,
    timeout: Duration.seconds(st.timeoutSeconds),
    name: options?.name ?? config.clientId
  }
  return typeof fn === "function"
    ? layerFunction(fn, settings)
    : Layer.unwrapEffect(
      Effect.map((options?.loadFunction ?? noLoader)(fn), (loaded) => layerFunction(loaded, settings))
    )
}

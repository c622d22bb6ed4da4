/**
 * The token request and the validation of its response, behind `TokenEndpoint.request`. Pure helpers, tested
 * directly; not part of the public API.
 *
 * @internal
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as AccessToken from "../AccessToken.js"
import type { ServiceAccountConfig } from "../ServiceAccountConfig.js"
import {
  InvalidCredentialsError,
  MalformedResponseError,
  NetworkError,
  RateLimitedError,
  TlsError,
  TokenEndpointError,
  type TokenError
} from "../ServiceAccountError.js"
import { displayUrl, scrub } from "./text.js"

/**
 * `application/x-www-form-urlencoded` encoding of one value, as RFC 6749 §2.3.1 requires for the client id and secret
 * before they are joined and base64-encoded.
 *
 * @internal
 */
export const formEncode = (value: string): string => new URLSearchParams([["", value]]).toString().slice(1)

/**
 * The `client_secret_basic` credential: `base64(formEncode(id) ":" formEncode(secret))`. (The platform's
 * `HttpClientRequest.basicAuth` skips the form-encoding and throws on non-Latin-1 characters.)
 *
 * @internal
 */
export const basicCredential = (clientId: string, clientSecret: Redacted.Redacted<string>): Redacted.Redacted<string> =>
  Redacted.make(btoa(`${formEncode(clientId)}:${formEncode(Redacted.value(clientSecret))}`))

/**
 * The token request for a configuration.
 *
 * @internal
 */
export const makeRequest = (config: ServiceAccountConfig): HttpClientRequest.HttpClientRequest => {
  const params: Array<[string, string]> = [["grant_type", "client_credentials"]]
  if (config.scopes.length > 0) params.push(["scope", config.scopes.join(" ")])
  if (config.audience !== undefined) params.push(["audience", config.audience])
  if (config.resource !== undefined) params.push(["resource", config.resource])
  const request = HttpClientRequest.post(config.tokenUrl).pipe(HttpClientRequest.acceptJson)
  if (config.authMethod === "client_secret_post") {
    params.push(["client_id", config.clientId], ["client_secret", Redacted.value(config.clientSecret)])
    return HttpClientRequest.bodyUrlParams(request, params)
  }
  return request.pipe(
    HttpClientRequest.setHeader(
      "authorization",
      `Basic ${Redacted.value(basicCredential(config.clientId, config.clientSecret))}`
    ),
    HttpClientRequest.bodyUrlParams(params)
  )
}

/**
 * The raw pieces of a token endpoint response that validation needs.
 *
 * @internal
 */
export interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: string
}

const MAX_BODY = 1024 * 1024
const MAX_RETRY_AFTER_MS = 3600_000

/**
 * The server's requested wait: `retry-after-ms`, or `Retry-After` as delta-seconds or an HTTP-date (capped at 1 h).
 *
 * @internal
 */
export const parseRetryAfter = (
  headers: Readonly<Record<string, string | undefined>>,
  nowMillis: number
): Duration.Duration | undefined => {
  const clamp = (ms: number) => Duration.millis(Math.min(Math.max(0, Math.ceil(ms)), MAX_RETRY_AFTER_MS))
  const ms = headers["retry-after-ms"]?.trim()
  if (ms && /^\d+(\.\d+)?$/.test(ms)) return clamp(Number(ms))
  const value = headers["retry-after"]?.trim()
  if (!value) return undefined
  if (/^\d+$/.test(value)) return clamp(Number(value) * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : clamp(date - nowMillis)
}

const numeric = (u: unknown): number | undefined => {
  const n = typeof u === "number" ? u : typeof u === "string" && /^\s*\d+(\.\d+)?\s*$/.test(u) ? Number(u) : NaN
  return Number.isFinite(n) && n >= 0 ? n : undefined
}

/** `expires_in` as a number: a JSON number or a numeric string, negative values included (rejected with their own hint). */
const seconds = (u: unknown): number | undefined => {
  const n = typeof u === "number" ? u : typeof u === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(u) ? Number(u) : NaN
  return Number.isFinite(n) ? n : undefined
}

const parseJson = (body: string): unknown => {
  try {
    return JSON.parse(body)
  } catch {
    return undefined
  }
}

const kindOf = (u: unknown): string => Array.isArray(u) ? "an array" : u === null ? "null" : `a ${typeof u}`

/**
 * Validates a token endpoint response. Pure: `issuedAt` is the instant just before the request was sent and `now` the
 * instant the response arrived (for HTTP-date `Retry-After`, and to reject a token that is expired on arrival: an
 * `expires_in` ≤ 0, or a lifetime no longer than the request took, is a `MalformedResponseError` with reason
 * `"expires_in"`, so such a token is never stored).
 *
 * @internal
 */
export const parseResponse = (
  config: ServiceAccountConfig,
  response: RawResponse,
  issuedAt: number,
  now: number
): Either.Either<AccessToken.AccessToken, TokenError> => {
  const tokenUrl = displayUrl(config.tokenUrl)
  const secrets = [
    Redacted.value(config.clientSecret),
    Redacted.value(basicCredential(config.clientId, config.clientSecret))
  ]
  const tooLarge = response.body.length > MAX_BODY
  const json = tooLarge ? undefined : parseJson(response.body)
  const object = typeof json === "object" && json !== null && !Array.isArray(json)
    ? json as Record<string, unknown>
    : undefined

  if (response.status !== 200) {
    const error = typeof object?.error === "string" && object.error.length > 0
      ? scrub(object.error, secrets, 64)
      : undefined
    const errorDescription = error !== undefined && typeof object?.error_description === "string"
      ? scrub(object.error_description, secrets)
      : undefined
    const oauth = { ...(error ? { error } : {}), ...(errorDescription ? { errorDescription } : {}) }
    const retryAfter = parseRetryAfter(response.headers, now)
    if (error === "invalid_client" || error === "unauthorized_client" || response.status === 401) {
      return Either.left(new InvalidCredentialsError({ tokenUrl, status: response.status, ...oauth }))
    }
    if (response.status === 429) {
      return Either.left(new RateLimitedError({ tokenUrl, status: 429, ...(retryAfter ? { retryAfter } : {}) }))
    }
    return Either.left(
      new TokenEndpointError({ tokenUrl, status: response.status, ...oauth, ...(retryAfter ? { retryAfter } : {}) })
    )
  }

  const malformed = (reason: MalformedResponseError["reason"], detail: string) =>
    Either.left(new MalformedResponseError({ tokenUrl, reason, detail: scrub(detail, secrets) }))
  /** Our own text (server values already scrubbed where they are interpolated): not truncated, not scrubbed again. */
  const expired = (detail: string) =>
    Either.left(new MalformedResponseError({ tokenUrl, reason: "expires_in", detail }))
  const late = (detail: string) => Either.left(new MalformedResponseError({ tokenUrl, reason: "arrived_late", detail }))

  if (tooLarge) {
    return malformed("too_large", `the response body is larger than ${MAX_BODY} bytes`)
  }
  if (json === undefined) {
    const type = response.headers["content-type"] ?? "no content-type"
    return malformed("not_json", `the response is not JSON (${type}, ${response.body.length} bytes)`)
  }
  if (object === undefined) {
    return malformed("not_object", `the response is ${kindOf(json)}, expected a JSON object`)
  }
  const accessToken = object.access_token
  if (typeof accessToken !== "string" || accessToken.length === 0) {
    return malformed(
      "missing_access_token",
      accessToken === undefined ? "the response has no access_token" : "access_token must be a non-empty string"
    )
  }
  secrets.push(accessToken)
  const tokenType = object.token_type
  if (typeof tokenType !== "string" || tokenType.toLowerCase() !== "bearer") {
    return malformed(
      "token_type",
      tokenType === undefined
        ? "token_type is missing (expected Bearer)"
        : `token_type ${scrub(JSON.stringify(tokenType), secrets, 40)} is not supported: only Bearer tokens can be sent`
    )
  }
  let expiresIn = config.defaultExpiresInSeconds
  if (object.expires_in !== undefined && object.expires_in !== null) {
    const n = seconds(object.expires_in)
    if (n === undefined) {
      return malformed(
        "expires_in",
        `expires_in must be a number of seconds > 0, got ${scrub(JSON.stringify(object.expires_in), secrets, 40)}`
      )
    }
    if (n <= 0) {
      return expired(
        `expires_in is ${scrub(String(n), secrets, 40)}: the identity provider issued a token that is already ` +
          "expired; give the client a positive access token lifetime at the identity provider"
      )
    }
    expiresIn = n
  } else if (expiresIn <= 0) {
    return expired(
      `the response has no expires_in and default_expires_in_seconds is ${expiresIn}` +
        ": set default_expires_in_seconds to the lifetime of the identity provider's tokens"
    )
  }
  let scopes = config.scopes
  if (object.scope !== undefined && object.scope !== null) {
    if (typeof object.scope !== "string") {
      return malformed("scope", `scope must be a space-delimited string, got ${kindOf(object.scope)}`)
    }
    scopes = object.scope.split(/\s+/).filter((s) => s.length > 0)
  }
  const token = AccessToken.make({
    token: accessToken,
    scopes,
    issuedAt,
    expiresInSeconds: expiresIn,
    refreshIn: numeric(object.refresh_in)
  })
  if (token.expiresAt <= now) {
    return late(
      `the token expired before its response arrived: its lifetime is ${AccessToken.lifetimeMillis(token)} ms ` +
        `but the request took ${now - issuedAt} ms; give the client a longer access token lifetime at the ` +
        "identity provider, or find why the token endpoint answers so slowly"
    )
  }
  return Either.right(token)
}

const TLS_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
  "EPROTO"
])

const isTlsCode = (code: string) => TLS_CODES.has(code) || code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL")

interface Failure {
  readonly code?: string
  readonly message: string
}

/** The innermost error with a code, walking `cause` (TLS codes sit at `e.cause`, or `e.cause.cause` with fetch). */
const rootFailure = (error: unknown): Failure => {
  let current: unknown = error
  let found: Failure | undefined
  for (let depth = 0; depth < 6 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    const message = (current as { message?: unknown }).message
    if (typeof code === "string") {
      found = { code, message: typeof message === "string" ? message : code }
      if (isTlsCode(code)) return found
    }
    current = (current as { cause?: unknown }).cause
  }
  return found ?? { message: "transport error" }
}

/**
 * Maps a platform HTTP client failure to a typed error. The request (which holds the Basic credential) is dropped;
 * only the innermost error's code and message are kept.
 *
 * @internal
 */
export const fromHttpClientError = (
  config: ServiceAccountConfig,
  error: HttpClientError.HttpClientError
): TlsError | NetworkError => {
  const url = displayUrl(config.tokenUrl)
  const root = rootFailure(error.cause)
  const reason = scrub(root.message, [Redacted.value(config.clientSecret)])
  if (root.code !== undefined && isTlsCode(root.code)) return new TlsError({ url, code: root.code, reason })
  return new NetworkError({
    url,
    reason: error._tag === "ResponseError" ? `the response failed: ${reason}` : reason,
    ...(root.code !== undefined ? { code: root.code } : {})
  })
}

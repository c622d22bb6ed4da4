/**
 * The token request and the validation of its response, behind `TokenEndpoint.request`. Pure helpers, tested
 * directly; not part of the public API.
 *
 * @internal
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as AccessToken from "../AccessToken.js"
import type { Resolved } from "../ServiceAccountConfig.js"
import {
  InvalidCredentialsError,
  MalformedResponseError,
  NetworkError,
  RateLimitedError,
  TlsError,
  TokenEndpointError,
  type TokenError
} from "../ServiceAccountError.js"
import * as ClientAuth from "./clientAuth.js"
import { displayUrl, scrub } from "./text.js"

export { basicCredential, formEncode } from "./clientAuth.js"

/**
 * The token request for a configuration, with what `ClientAuth.authenticate` read and signed for it.
 *
 * @internal
 */
export const makeRequest = (
  config: Resolved,
  auth: { readonly params: ReadonlyArray<[string, string]>; readonly authorization?: string | undefined }
): HttpClientRequest.HttpClientRequest => {
  const params: Array<[string, string]> = [[
    "grant_type",
    config.grantType === "jwt_bearer" ? ClientAuth.JWT_BEARER_GRANT : "client_credentials"
  ]]
  if (config.scopes.length > 0) params.push(["scope", config.scopes.join(" ")])
  if (config.audience !== undefined) params.push(["audience", config.audience])
  if (config.resource !== undefined) params.push(["resource", config.resource])
  params.push(...auth.params)
  const request = HttpClientRequest.post(config.tokenUrl).pipe(HttpClientRequest.acceptJson)
  return HttpClientRequest.bodyUrlParams(
    auth.authorization === undefined
      ? request
      : HttpClientRequest.setHeader(request, "authorization", auth.authorization),
    params
  )
}

/**
 * The raw pieces of a token endpoint response that validation needs. `tooLarge`: the body passed {@link MAX_BODY}
 * bytes and reading stopped there (`body` is then empty).
 *
 * @internal
 */
export interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: string
  readonly tooLarge?: boolean | undefined
}

/** The largest token response body read: 1 MiB. @internal */
export const MAX_BODY = 1024 * 1024

/** The longest `access_token` accepted: 16 KiB. @internal */
export const MAX_ACCESS_TOKEN = 16 * 1024

/**
 * Reads a response body chunk by chunk, at most `limit` bytes: as soon as the total passes it, reading stops and the
 * stream is interrupted (which closes the connection), so memory stays near the limit whatever the server sends.
 *
 * @internal
 */
export const readBody = (
  response: HttpClientResponse.HttpClientResponse,
  limit: number = MAX_BODY
): Effect.Effect<RawResponse, HttpClientError.ResponseError> =>
  Effect.map(
    Stream.runFoldWhile(
      response.stream,
      { chunks: [] as Array<Uint8Array>, size: 0, over: false },
      (read) => !read.over,
      (read, chunk) => {
        read.size += chunk.length
        if (read.size > limit) {
          read.over = true
          read.chunks = []
        } else {
          read.chunks.push(chunk)
        }
        return read
      }
    ),
    (read): RawResponse => {
      const headers = response.headers
      if (read.over) return { status: response.status, headers, body: "", tooLarge: true }
      const bytes = new Uint8Array(read.size)
      let offset = 0
      for (const chunk of read.chunks) {
        bytes.set(chunk, offset)
        offset += chunk.length
      }
      return { status: response.status, headers, body: new TextDecoder().decode(bytes) }
    }
  )

/**
 * Every secret a token response may echo, each removed from server text in all its forms (`Scrub.forms`): what the
 * request carried (`requestSecrets`: a secret read from its file, the Basic credential, the assertion), the configured
 * client secret and its Basic credential, the proxy URL and key passphrase, and the tokens the caller knows (the
 * provider's current and previous).
 *
 * @internal
 */
export const secretsOf = (
  config: Resolved,
  knownTokens: ReadonlyArray<Redacted.Redacted<string> | undefined> = [],
  requestSecrets: ReadonlyArray<string> = []
): Array<string> => {
  const secrets = [...requestSecrets, ...ClientAuth.connectionSecrets(config)]
  if (config.clientSecret !== undefined) {
    secrets.push(
      Redacted.value(config.clientSecret),
      Redacted.value(ClientAuth.basicCredential(config.clientId, config.clientSecret))
    )
  }
  for (const token of knownTokens) if (token !== undefined) secrets.push(Redacted.value(token))
  return secrets
}
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

/** A decimal number, exponent allowed (`3600`, `3600.5`, `1e20`, `-5`). */
const DECIMAL = /^\s*-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/

/**
 * A number of seconds: a JSON number or a numeric string, negative values included (rejected with their own hint).
 * An overflowing literal (`1e400`, which JSON.parse reads as `Infinity`) counts as a very large number and is clamped
 * by the caller; only non-numbers are `undefined`.
 */
const seconds = (u: unknown): number | undefined => {
  const n = typeof u === "number" ? u : typeof u === "string" && DECIMAL.test(u) ? Number(u) : NaN
  return Number.isNaN(n) ? undefined : n
}

/** A value from the response as it may appear in a message: numbers as such, strings quoted, anything else by kind. */
const shown = (u: unknown, secrets: ReadonlyArray<string>): string =>
  typeof u === "number"
    ? String(u)
    : typeof u === "string"
    ? JSON.stringify(scrub(u, secrets, 40))
    : kindOf(u)

/** RFC 6749 §3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/** RFC 6750 b64token is a subset of this: a token outside it could not be sent in an `Authorization` header. */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/

/** What is wrong with an access token, in words that never quote it. */
const describeBadToken = (token: string): string => {
  if (token.length > MAX_ACCESS_TOKEN) {
    return `access_token is ${token.length} characters long, more than the ${MAX_ACCESS_TOKEN} accepted`
  }
  // eslint-disable-next-line no-control-regex
  const kind = /[\u0000-\u001f\u007f]/.test(token)
    ? "a control character (such as NUL, CR or LF)"
    : /[^\u0020-\u007e]/.test(token)
    ? "a non-ASCII character"
    : "a space"
  return `access_token contains ${kind}: a bearer token must be visible ASCII (RFC 6750) to be sent in a header`
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
 * A validated token, and the lifetime the server asked for when it was clamped to `max_token_lifetime_seconds`.
 *
 * @internal
 */
export interface Parsed {
  readonly token: AccessToken.AccessToken
  readonly clampedFrom?: number | undefined
}

/**
 * Validates a token endpoint response. Pure: `issuedAt` is the instant just before the request was sent and `now` the
 * instant the response arrived (for HTTP-date `Retry-After`, and to reject a token that is expired on arrival: an
 * `expires_in` ≤ 0, or a lifetime no longer than the request took, is a `MalformedResponseError` with reason
 * `"expires_in"`, so such a token is never stored). An `expires_in` above `max_token_lifetime_seconds` is clamped to it,
 * `refresh_in` to the lifetime. Server text in an error is scrubbed of `secrets` (see {@link secretsOf}) and of the
 * response's own `access_token`.
 *
 * @internal
 */
export const parse = (
  config: Resolved,
  response: RawResponse,
  issuedAt: number,
  now: number,
  knownSecrets: ReadonlyArray<string> = secretsOf(config)
): Either.Either<Parsed, TokenError> => {
  const tokenUrl = displayUrl(config.tokenUrl)
  const secrets = [...knownSecrets]
  const tooLarge = response.tooLarge === true || response.body.length > MAX_BODY
  const json = tooLarge ? undefined : parseJson(response.body)
  const object = typeof json === "object" && json !== null && !Array.isArray(json)
    ? json as Record<string, unknown>
    : undefined
  // whatever else is wrong, the token in the body is never printed (it may be echoed in another field)
  if (typeof object?.access_token === "string" && object.access_token.length > 0) secrets.push(object.access_token)

  if (response.status !== 200) {
    const error = typeof object?.error === "string" && object.error.length > 0
      ? scrub(object.error, secrets, 64)
      : undefined
    const errorDescription = error !== undefined && typeof object?.error_description === "string"
      ? scrub(object.error_description, secrets)
      : undefined
    const oauth = { ...(error ? { error } : {}), ...(errorDescription ? { errorDescription } : {}) }
    const retryAfter = parseRetryAfter(response.headers, now)
    const bearer = config.grantType === "jwt_bearer"
    if (
      error === "invalid_client" || error === "unauthorized_client" || response.status === 401 ||
      // the assertion is the credential of the jwt-bearer grant (RFC 7523 §3.1)
      (bearer && error === "invalid_grant")
    ) {
      return Either.left(
        new InvalidCredentialsError({
          tokenUrl,
          status: response.status,
          ...oauth,
          // the secret methods keep the default hint
          ...(bearer ? { authMethod: "jwt_bearer" } : config.authMethod.startsWith("client_secret") ? {} : {
            authMethod: config.authMethod
          })
        })
      )
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
    return malformed("too_large", `the response body is larger than ${MAX_BODY} bytes (reading stopped there)`)
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
  if (accessToken.length > MAX_ACCESS_TOKEN || !VISIBLE_ASCII.test(accessToken)) {
    // our own words only: nothing of the token, not even a part, reaches the error
    return Either.left(
      new MalformedResponseError({ tokenUrl, reason: "access_token", detail: describeBadToken(accessToken) })
    )
  }
  const tokenType = object.token_type
  if (typeof tokenType !== "string" || tokenType.toLowerCase() !== "bearer") {
    return malformed(
      "token_type",
      tokenType === undefined
        ? "token_type is missing (expected Bearer)"
        : `token_type ${shown(tokenType, secrets)} is not supported: only Bearer tokens can be sent`
    )
  }
  const max = config.maxTokenLifetimeSeconds
  let expiresIn = config.defaultExpiresInSeconds
  if (object.expires_in !== undefined && object.expires_in !== null) {
    const n = seconds(object.expires_in)
    if (n === undefined) {
      return malformed(
        "expires_in",
        `expires_in must be a number of seconds > 0, got ${shown(object.expires_in, secrets)}`
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
  const clampedFrom = expiresIn > max ? expiresIn : undefined
  expiresIn = Math.min(expiresIn, max)
  let scopes = config.scopes
  if (object.scope !== undefined && object.scope !== null) {
    if (typeof object.scope !== "string") {
      return malformed("scope", `scope must be a space-delimited string, got ${kindOf(object.scope)}`)
    }
    scopes = object.scope.split(/\s+/).filter((s) => s.length > 0)
    if (!scopes.every((scope) => SCOPE_TOKEN.test(scope))) {
      return malformed(
        "scope",
        "scope holds characters outside RFC 6749 §3.3 (visible ASCII without quotes or backslashes): control or " +
          "non-ASCII characters in a granted scope are refused rather than printed"
      )
    }
  }
  const refreshIn = seconds(object.refresh_in)
  const token = AccessToken.make({
    token: accessToken,
    scopes,
    issuedAt,
    expiresInSeconds: expiresIn,
    refreshIn: refreshIn === undefined || refreshIn < 0 ? undefined : Math.min(refreshIn, expiresIn)
  })
  if (token.expiresAt <= now) {
    return late(
      `the token expired before its response arrived: its lifetime is ${AccessToken.lifetimeMillis(token)} ms ` +
        `but the request took ${now - issuedAt} ms; give the client a longer access token lifetime at the ` +
        "identity provider, or find why the token endpoint answers so slowly"
    )
  }
  return Either.right(clampedFrom === undefined ? { token } : { token, clampedFrom })
}

/**
 * {@link parse}, the token only.
 *
 * @internal
 */
export const parseResponse = (
  config: Resolved,
  response: RawResponse,
  issuedAt: number,
  now: number,
  knownSecrets?: ReadonlyArray<string>
): Either.Either<AccessToken.AccessToken, TokenError> =>
  Either.map(parse(config, response, issuedAt, now, knownSecrets), (parsed) => parsed.token)

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
 * only the innermost error's code and message are kept, scrubbed of `secrets` (see {@link secretsOf}).
 *
 * @internal
 */
export const fromHttpClientError = (
  config: Resolved,
  error: HttpClientError.HttpClientError,
  secrets: ReadonlyArray<string> = secretsOf(config)
): TlsError | NetworkError => {
  const url = displayUrl(config.tokenUrl)
  const root = rootFailure(error.cause)
  const reason = scrub(root.message, secrets)
  if (root.code !== undefined && isTlsCode(root.code)) return new TlsError({ url, code: root.code, reason })
  return new NetworkError({
    url,
    reason: error._tag === "ResponseError" ? `the response failed: ${reason}` : reason,
    ...(root.code !== undefined ? { code: root.code } : {})
  })
}

/**
 * Every failure mcp-auth reports, as typed errors a worker can act on.
 *
 * Each error's `message` says what happened and what to do. No error carries the client secret, an access token, a
 * service token, the Basic credential or a raw response body: fields hold only URLs (without user info or query),
 * status codes, OAuth error codes and bounded, scrubbed server descriptions.
 *
 * Every error is a Schema class whose encoded form is plain JSON: `Schema.encodeSync(ServiceAccountError)` then
 * `JSON.stringify`, and back with `JSON.parse` then `Schema.decodeUnknownSync(ServiceAccountError)` (durations
 * encode as `{ _tag: "Millis", millis }`, a `cause` as its name and message).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category Type IDs
 */
export const TypeId: unique symbol = Symbol.for("@mcp-auth/service-account/ServiceAccountError")

/**
 * @since 0.1.0
 * @category Type IDs
 */
export type TypeId = typeof TypeId

const seconds = (d: Duration.Duration): string => {
  const ms = Duration.toMillis(d)
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`
}

const oauthDetail = (error: string | undefined, description: string | undefined): string =>
  error === undefined ? "" : description ? `${error}: ${description}` : error

/**
 * The token endpoint rejected the client: HTTP 401, or `invalid_client` / `unauthorized_client` (RFC 6749 §5.2).
 * Retrying will not help; fix `client_id` / `client_secret` (or the client's grants at the identity provider).
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidCredentialsError extends Schema.TaggedError<InvalidCredentialsError>(
  "@mcp-auth/service-account/InvalidCredentialsError"
)("InvalidCredentialsError", {
  tokenUrl: Schema.String,
  status: Schema.Number,
  error: Schema.optional(Schema.String),
  errorDescription: Schema.optional(Schema.String),
  /** How the client authenticated (`auth_method`, or `jwt_bearer` for that grant), to say what to check. */
  authMethod: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const detail = oauthDetail(this.error, this.errorDescription)
    return `Invalid service account credentials (${
      detail ? `${detail}, ` : ""
    }HTTP ${this.status} from ${this.tokenUrl}): ${credentialHint(this.authMethod)}`
  }
}

const credentialHint = (method: string | undefined): string => {
  switch (method) {
    case "private_key_jwt":
      return "check client_id, and that the identity provider holds the public key of this client's private key " +
        "(key_id, signing_algorithm) or trusts the issuer of its client_assertion"
    case "tls_client_auth":
    case "self_signed_tls_client_auth":
      return "check client_id, and that the identity provider registered this client's TLS certificate " +
        "(tls_client_certificate_file)"
    case "jwt_bearer":
      return "check the assertion: the identity provider must trust its issuer for the jwt-bearer grant, and its " +
        "subject, audience and lifetime must be what it expects"
    default:
      return "check client_id and client_secret, and that the client may use the client_credentials grant"
  }
}

/**
 * The token endpoint is rate limiting this client (HTTP 429). `retryAfter` is the server's `Retry-After`
 * (delta-seconds, HTTP-date or `retry-after-ms`) when it sent one, or the time left in the shared cool-down.
 *
 * @since 0.1.0
 * @category Errors
 */
export class RateLimitedError extends Schema.TaggedError<RateLimitedError>(
  "@mcp-auth/service-account/RateLimitedError"
)("RateLimitedError", {
  tokenUrl: Schema.String,
  status: Schema.Number,
  retryAfter: Schema.optional(Schema.Duration)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const wait = this.retryAfter ? `retry after ${seconds(this.retryAfter)}` : "wait before retrying"
    return `Service account rate limit exceeded (HTTP ${this.status} from ${this.tokenUrl}): ${wait}`
  }
}

/**
 * The TLS handshake with the token endpoint failed, typically certificate verification. `code` is Node's certificate
 * error code (`SELF_SIGNED_CERT_IN_CHAIN`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `DEPTH_ZERO_SELF_SIGNED_CERT`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, …).
 *
 * @since 0.1.0
 * @category Errors
 */
export class TlsError extends Schema.TaggedError<TlsError>("@mcp-auth/service-account/TlsError")("TlsError", {
  url: Schema.String,
  code: Schema.String,
  reason: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const hint = this.code === "ERR_TLS_CERT_ALTNAME_INVALID"
      ? "the certificate does not name this host: use the host name the certificate was issued for"
      : "if the server uses an internal certificate authority, set ca_file to its PEM bundle"
    return `TLS certificate verification failed for ${this.url} (${this.code}: ${this.reason}): ${hint}`
  }
}

/**
 * The client could not authenticate before any request was sent: a key, certificate, secret or assertion file that
 * cannot be read or does not hold what it should, or a `client_assertion.function` that failed or returned no JWT.
 * Names the configuration `field` and the `file`; never their contents. Not retried: it starts the failure
 * cool-down, like other permanent failures (fix the file or the function; the next fetch after the cool-down reads
 * it again).
 *
 * @since 0.3.0
 * @category Errors
 */
export class ClientCredentialError extends Schema.TaggedError<ClientCredentialError>(
  "@mcp-auth/service-account/ClientCredentialError"
)("ClientCredentialError", {
  tokenUrl: Schema.String,
  field: Schema.String,
  file: Schema.optional(Schema.String),
  reason: Schema.String
}) {
  /**
   * @since 0.3.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.3.0
   */
  override get message(): string {
    const where = this.file === undefined ? this.field : `${this.field} (${this.file})`
    return `Cannot authenticate to ${this.tokenUrl}: ${where} ${this.reason}`
  }
}

/**
 * Why discovery failed.
 *
 * @since 0.3.0
 * @category Errors
 */
export const DiscoveryReason = Schema.Literal(
  "not_found",
  "unreachable",
  "invalid_metadata",
  "issuer_mismatch",
  "issuer_not_trusted",
  "resource_mismatch",
  "insecure_endpoint",
  "auth_method_unsupported",
  "tls"
)

/**
 * @since 0.3.0
 * @category Errors
 */
export type DiscoveryReason = typeof DiscoveryReason.Type

/**
 * Finding the token endpoint failed (RFC 8414 / RFC 9728 discovery): `reason`, the URL of the step that failed and
 * what to configure. No credentials were sent. Only `unreachable` is transient.
 *
 * @since 0.3.0
 * @category Errors
 */
export class DiscoveryError extends Schema.TaggedError<DiscoveryError>(
  "@mcp-auth/service-account/DiscoveryError"
)("DiscoveryError", {
  reason: DiscoveryReason,
  url: Schema.String,
  detail: Schema.String
}) {
  /**
   * @since 0.3.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.3.0
   */
  override get message(): string {
    return `Discovery failed at ${this.url} (${this.reason}): ${this.detail}`
  }
}

/**
 * The token request did not complete within `timeout_seconds`.
 *
 * @since 0.1.0
 * @category Errors
 */
export class TokenTimeoutError extends Schema.TaggedError<TokenTimeoutError>(
  "@mcp-auth/service-account/TokenTimeoutError"
)("TokenTimeoutError", {
  tokenUrl: Schema.String,
  timeout: Schema.Duration
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Service account token request timed out after ${seconds(this.timeout)} (${this.tokenUrl})` +
      ": check that the token endpoint is reachable, or raise timeout_seconds"
  }
}

/**
 * The token endpoint could not be reached (DNS, refused or reset connection, …).
 *
 * @since 0.1.0
 * @category Errors
 */
export class NetworkError extends Schema.TaggedError<NetworkError>("@mcp-auth/service-account/NetworkError")(
  "NetworkError",
  {
    url: Schema.String,
    code: Schema.optional(Schema.String),
    reason: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Service account token request failed: could not reach ${this.url} (${this.code ?? this.reason})` +
      ": check token_url, DNS, proxies and firewalls"
  }
}

/**
 * Why a successful (HTTP 200) token response was rejected. `arrived_late` is the one that retrying may fix: the token
 * was fine, but the response took so long that too little of its lifetime was left to use it (a slow or overloaded
 * token endpoint); every other reason is the identity provider's configuration or a bug, and retrying cannot help.
 * `access_token`: the token is not visible ASCII (it could not be sent in a header) or is longer than 16 KiB;
 * `too_large`: the body passed 1 MiB (reading stopped there).
 *
 * @since 0.1.0
 * @category Models
 */
export const MalformedReason = Schema.Literal(
  "not_json",
  "not_object",
  "missing_access_token",
  "access_token",
  "token_type",
  "expires_in",
  "scope",
  "too_large",
  "arrived_late"
)

/**
 * @since 0.1.0
 * @category Models
 */
export type MalformedReason = typeof MalformedReason.Type

/**
 * The token endpoint answered 200 with a body that is not a valid RFC 6749 §5.1 token response. `detail` never
 * contains the body itself.
 *
 * @since 0.1.0
 * @category Errors
 */
export class MalformedResponseError extends Schema.TaggedError<MalformedResponseError>(
  "@mcp-auth/service-account/MalformedResponseError"
)("MalformedResponseError", {
  tokenUrl: Schema.String,
  reason: MalformedReason,
  detail: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    switch (this.reason) {
      case "missing_access_token":
        return `Access token not found in token response from ${this.tokenUrl}: ${this.detail}`
      case "arrived_late":
        return `The token from ${this.tokenUrl} arrived too late to use: ${this.detail}`
      default:
        return `Malformed token response from ${this.tokenUrl}: ${this.detail}`
    }
  }
}

/**
 * The token endpoint answered with an error status: an RFC 6749 §5.2 error (`error`, `errorDescription`) when the body
 * carried one (for example `invalid_scope`), otherwise just the status. `retryAfter` is set when the server sent
 * `Retry-After` (typically with 503).
 *
 * @since 0.1.0
 * @category Errors
 */
export class TokenEndpointError extends Schema.TaggedError<TokenEndpointError>(
  "@mcp-auth/service-account/TokenEndpointError"
)("TokenEndpointError", {
  tokenUrl: Schema.String,
  status: Schema.Number,
  error: Schema.optional(Schema.String),
  errorDescription: Schema.optional(Schema.String),
  retryAfter: Schema.optional(Schema.Duration)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const detail = oauthDetail(this.error, this.errorDescription)
    const what = detail ? `OAuth error ${detail}` : "no OAuth error in the response body"
    return `Service account token request failed: HTTP ${this.status} from ${this.tokenUrl} (${what})` +
      `: ${hintFor(this.status, this.error)}`
  }
}

const hintFor = (status: number, error: string | undefined): string => {
  switch (error) {
    case "invalid_scope":
      return "check scopes against what the client is allowed to request"
    case "invalid_target":
      return "check resource / audience"
    case "unsupported_grant_type":
      return "enable the client_credentials grant for this client"
    case "invalid_request":
      return "check auth_method and the other token request parameters"
  }
  return status >= 500 ? "the identity provider failed; it is retried automatically" : "check token_url"
}

/** A thrown value as it may be encoded: an `Error` as its name and message, a primitive as text, nothing else. */
const encodeCause = (u: unknown): unknown =>
  u instanceof Error
    ? { name: u.name, message: u.message }
    : u === null || (typeof u !== "object" && typeof u !== "function")
    ? String(u)
    : `a non-Error ${Array.isArray(u) ? "array" : typeof u} was thrown`

/**
 * `Schema.Defect`, except that a value that is neither an `Error` nor a primitive encodes as a description of its kind,
 * never as its JSON: whatever a service token function throws, its properties (a token, a vault response) are not
 * serialised.
 */
const SafeDefect = Schema.transform(Schema.Unknown, Schema.Unknown, {
  strict: true,
  decode: (i) => Schema.decodeUnknownSync(Schema.Defect)(i),
  encode: encodeCause
})

/**
 * The service token (the second header of the dual pattern) could not be produced. `cause` is the original failure;
 * it encodes (and `JSON.stringify`s) as its name and message only.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ServiceTokenError extends Schema.TaggedError<ServiceTokenError>(
  "@mcp-auth/service-account/ServiceTokenError"
)("ServiceTokenError", {
  reason: Schema.Literal(
    "function_failed",
    "empty_token",
    "invalid_header",
    "invalid_result",
    "invalid_token",
    "load_failed"
  ),
  detail: Schema.String,
  header: Schema.optional(Schema.String),
  cause: Schema.optional(SafeDefect)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * The fields, with `cause` as its name and message only (the encoded form): a user function may throw any value,
   * and its own properties must not reach a log as JSON.
   *
   * @since 0.2.0
   */
  override toJSON(): unknown {
    return {
      _tag: this._tag,
      reason: this.reason,
      detail: this.detail,
      ...(this.header !== undefined ? { header: this.header } : {}),
      ...(this.cause !== undefined ? { cause: encodeCause(this.cause) } : {}),
      message: this.message
    }
  }
  /**
   * @since 0.1.0
   */
  override get message(): string {
    switch (this.reason) {
      case "load_failed":
        return `Failed to load service token function ${this.detail}`
      case "function_failed":
        return `Failed to get service token from function: ${this.detail}`
      case "empty_token":
        return `Service token for header ${this.header ?? "?"} is empty: ${this.detail}`
      case "invalid_header":
        return `Invalid service token header: ${this.detail}`
      case "invalid_result":
        return `Service token function returned an unusable value: ${this.detail}`
      case "invalid_token":
        return `Service token for header ${this.header ?? "?"} cannot be sent: ${this.detail}`
    }
  }
}

/**
 * One problem found in a configuration, with the path of the offending key and what to do.
 *
 * @since 0.1.0
 * @category Models
 */
export class ConfigIssue extends Schema.Class<ConfigIssue>("@mcp-auth/service-account/ConfigIssue")({
  path: Schema.String,
  message: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  override toString(): string {
    return this.path ? `${this.path}: ${this.message}` : this.message
  }
}

/**
 * A configuration was rejected. `issues` lists every problem at once.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ConfigurationError extends Schema.TaggedError<ConfigurationError>(
  "@mcp-auth/service-account/ConfigurationError"
)("ConfigurationError", {
  issues: Schema.Array(ConfigIssue)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const n = this.issues.length
    return `Invalid service account configuration (${n} problem${n === 1 ? "" : "s"}):\n` +
      this.issues.map((issue) => `  - ${issue.toString()}`).join("\n")
  }
}

/**
 * Every way getting a bearer token can fail.
 *
 * @since 0.1.0
 * @category Errors
 */
export type TokenError =
  | InvalidCredentialsError
  | RateLimitedError
  | TlsError
  | TokenTimeoutError
  | NetworkError
  | MalformedResponseError
  | TokenEndpointError
  | ClientCredentialError
  | DiscoveryError

/**
 * @since 0.1.0
 * @category Schemas
 */
export const TokenError: Schema.Union<[
  typeof InvalidCredentialsError,
  typeof RateLimitedError,
  typeof TlsError,
  typeof TokenTimeoutError,
  typeof NetworkError,
  typeof MalformedResponseError,
  typeof TokenEndpointError,
  typeof ClientCredentialError,
  typeof DiscoveryError
]> = Schema.Union(
  InvalidCredentialsError,
  RateLimitedError,
  TlsError,
  TokenTimeoutError,
  NetworkError,
  MalformedResponseError,
  TokenEndpointError,
  ClientCredentialError,
  DiscoveryError
)

/**
 * @since 0.1.0
 * @category Errors
 */
export type ServiceAccountError = TokenError | ServiceTokenError | ConfigurationError

/**
 * @since 0.1.0
 * @category Schemas
 */
export const ServiceAccountError: Schema.Union<[
  typeof InvalidCredentialsError,
  typeof RateLimitedError,
  typeof TlsError,
  typeof TokenTimeoutError,
  typeof NetworkError,
  typeof MalformedResponseError,
  typeof TokenEndpointError,
  typeof ClientCredentialError,
  typeof DiscoveryError,
  typeof ServiceTokenError,
  typeof ConfigurationError
]> = Schema.Union(...TokenError.members, ServiceTokenError, ConfigurationError)

/**
 * @since 0.1.0
 * @category Guards
 */
export const isServiceAccountError = (u: unknown): u is ServiceAccountError => Predicate.hasProperty(u, TypeId)

const tokenErrorTags: ReadonlySet<string> = new Set([
  "InvalidCredentialsError",
  "RateLimitedError",
  "TlsError",
  "TokenTimeoutError",
  "NetworkError",
  "MalformedResponseError",
  "TokenEndpointError",
  "ClientCredentialError",
  "DiscoveryError"
])

/**
 * @since 0.1.0
 * @category Guards
 */
export const isTokenError = (u: unknown): u is TokenError => isServiceAccountError(u) && tokenErrorTags.has(u._tag)

/**
 * Whether retrying the token request may succeed: network failures, timeouts, 5xx, 429, and a token that arrived too
 * late to use (`MalformedResponseError` with reason `arrived_late`), an unreachable discovery document. Never invalid credentials, other OAuth errors, TLS
 * failures or malformed successes.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isTransient = (error: TokenError): boolean => {
  switch (error._tag) {
    case "NetworkError":
    case "TokenTimeoutError":
    case "RateLimitedError":
      return true
    case "TokenEndpointError":
      return error.status >= 500 || error.status === 408
    case "MalformedResponseError":
      return error.reason === "arrived_late"
    case "DiscoveryError":
      return error.reason === "unreachable"
    default:
      return false
  }
}

/**
 * How the token core treats a failure: `"transient"` failures (exactly those {@link isTransient} accepts: network
 * failures, timeouts, 429, 408 and 5xx) are retried with backoff; `"permanent"` ones (invalid credentials, other 4xx
 * OAuth errors such as `invalid_scope`, TLS failures, malformed 200 responses, including a token that is expired on
 * arrival) are not retried and start the `failure_cooldown`, during which callers get the same error without a new
 * token request. Pure.
 *
 * @since 0.1.0
 * @category Guards
 */
export const failureKind = (error: TokenError): "transient" | "permanent" =>
  isTransient(error) ? "transient" : "permanent"

/**
 * The server-requested wait carried by an error, if any.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const retryAfter = (error: TokenError): Duration.Duration | undefined =>
  error._tag === "RateLimitedError" || error._tag === "TokenEndpointError" ? error.retryAfter : undefined

/**
 * The `mcp_service_account` provider block, exactly as NeMo Agent toolkit (NAT) users write it, plus mcp-auth's own
 * options; decoded into a typed camelCase model whose secrets are `Redacted`.
 *
 * Decoding reports every problem at once, each with its path and what to do.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as AccessToken from "./AccessToken.js"
import * as ConfigSchema from "./ConfigSchema.js"
import * as ClientAuth from "./internal/clientAuth.js"
import * as Fleet from "./internal/fleet.js"
import * as internal from "./internal/text.js"
import type { RequestContext } from "./RequestContext.js"
import { type ConfigIssue, ConfigurationError } from "./ServiceAccountError.js"

/**
 * A user function producing the service token for one request: the token, or `[headerName, token]` to override the
 * configured header. It may be sync or async, and receives the configured `kwargs` and the request context.
 *
 * @since 0.1.0
 * @category Models
 */
export type ServiceTokenFunction = (
  kwargs: Readonly<Record<string, unknown>>,
  context: RequestContext
) => ServiceTokenResult | PromiseLike<ServiceTokenResult>

/**
 * @since 0.1.0
 * @category Models
 */
export type ServiceTokenResult =
  | string
  | Redacted.Redacted<string>
  | readonly [string, string | Redacted.Redacted<string>]

/**
 * The default header of the service token (NAT's default).
 *
 * @since 0.1.0
 * @category Constants
 */
export const DEFAULT_SERVICE_TOKEN_HEADER = "X-Service-Account-Token"

// ---------------------------------------------------------------------------------------------------------------------
// Field schemas
// ---------------------------------------------------------------------------------------------------------------------

const nonEmpty = ConfigSchema.nonEmptyString
const Secret = ConfigSchema.secret
const NonNegativeInt = (field: string) => ConfigSchema.number(field, { min: 0, integer: true, unit: "seconds" })
const PositiveSeconds = (field: string) => ConfigSchema.number(field, { min: 0, exclusiveMin: true, unit: "seconds" })
const NonNegativeSeconds = (field: string) => ConfigSchema.number(field, { min: 0, unit: "seconds" })
const Bool = ConfigSchema.boolean
const withDefault = ConfigSchema.withDefault

/** One of a few strings, with a message listing them. */
const choice = <const L extends ReadonlyArray<string>>(field: string, values: L) =>
  Schema.Literal(...values).annotations({
    message: (issue) => ({
      message: `${field} must be ${
        values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(", ")}`
      }, got ${JSON.stringify(issue.actual)}`,
      override: true
    })
  })

const ScopeToken = Schema.String.pipe(
  Schema.filter((s) => /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s), {
    message: (issue) =>
      `${JSON.stringify(issue.actual)} is not a valid scope (RFC 6749 §3.3: no spaces, quotes or backslashes)`
  })
)

const Issuers = Schema.transform(
  Schema.Union(Schema.Array(Schema.String), Schema.String).annotations({
    message: () => ({
      message: "allowed_issuers must be a list of issuer URLs (or one space-delimited string)",
      override: true
    })
  }),
  Schema.Array(Schema.String),
  {
    strict: true,
    decode: (input) => typeof input === "string" ? input.split(/[\s,]+/).filter((s) => s.length > 0) : input,
    encode: (issuers) => issuers
  }
)

const Scopes = Schema.transform(
  Schema.Union(Schema.Array(Schema.String), Schema.String).annotations({
    message: () => ({ message: "scopes must be a list of strings or one space-delimited string", override: true })
  }),
  Schema.Array(ScopeToken),
  {
    strict: true,
    decode: (input) => typeof input === "string" ? input.split(/\s+/).filter((s) => s.length > 0) : input,
    encode: (scopes) => scopes
  }
)

const HeaderName = ConfigSchema.headerName

const FunctionRef = Schema.declare((u): u is ServiceTokenFunction => Predicate.isFunction(u), {
  identifier: "function"
})

const ServiceTokenFields = {
  token: Schema.optional(Schema.NullOr(
    Secret("service_token.token", "is the environment variable behind it set?", { headerValue: true })
  )).annotations({
    description: "Static service token value (mutually exclusive with function); checked when the configuration " +
      "is loaded: no line breaks or other characters an HTTP header cannot carry"
  }),
  function: Schema.optional(Schema.NullOr(
    Schema.Union(nonEmpty("service_token.function", "give a module and export, e.g. ./tokens.ts#getToken"), FunctionRef)
  )).annotations({
    description:
      "Function returning the token or [header, token], called on every request: \"<module>#<export>\" (relative to the config file) or a JS function (mutually exclusive with token)"
  }),
  header: withDefault(
    HeaderName("service_token.header"),
    DEFAULT_SERVICE_TOKEN_HEADER,
    "HTTP header name for service token"
  ),
  timeout_seconds: withDefault(
    PositiveSeconds("service_token.timeout_seconds"),
    10,
    "Longest one call of the function may take"
  ),
  kwargs: withDefault(
    Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
      message: () => "service_token.kwargs must be a map of names to values"
    }),
    {},
    "Keyword arguments passed to the function"
  )
}

/**
 * The nested `service_token` block.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ServiceTokenInput = Schema.Struct(ServiceTokenFields).annotations({
  identifier: "ServiceTokenConfig",
  message: () => "service_token must be a map with token or function, header and kwargs"
})

const RetryFields = {
  max_attempts: withDefault(
    ConfigSchema.number("retry.max_attempts", { min: 1, integer: true }),
    4,
    "Token requests per fetch, the first included"
  ),
  initial_backoff_seconds: withDefault(
    NonNegativeSeconds("retry.initial_backoff_seconds"),
    0.5,
    "First backoff ceiling; doubles per attempt, full jitter"
  ),
  max_backoff_seconds: withDefault(NonNegativeSeconds("retry.max_backoff_seconds"), 10, "Cap on one backoff"),
  max_elapsed_seconds: withDefault(
    PositiveSeconds("retry.max_elapsed_seconds"),
    30,
    "Longest a waiting caller is kept for one fetch, retries and Retry-After waits included"
  )
}

/**
 * The nested `retry` block (mcp-auth's token endpoint failure policy).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RetryInput = Schema.Struct(RetryFields).annotations({
  identifier: "RetryConfig",
  message: () => "retry must be a map (max_attempts, initial_backoff_seconds, max_backoff_seconds, max_elapsed_seconds)"
})

const FailureCooldownFields = {
  initial_seconds: withDefault(
    NonNegativeSeconds("failure_cooldown.initial_seconds"),
    60,
    "First cool-down after a permanent token endpoint failure; 0 disables the cool-down"
  ),
  max_seconds: withDefault(
    NonNegativeSeconds("failure_cooldown.max_seconds"),
    900,
    "Cap on the cool-down, which doubles while the same failure repeats"
  )
}

/**
 * The nested `failure_cooldown` block: how long callers get the same error, without a token request, after a
 * permanent token endpoint failure.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const FailureCooldownInput = Schema.Struct(FailureCooldownFields).annotations({
  identifier: "FailureCooldownConfig",
  message: () => "failure_cooldown must be a map (initial_seconds, max_seconds)"
})

const SharedCacheFields = {
  url: Schema.optional(
    Secret("shared_cache.url", "give the Redis URL, e.g. rediss://user:${REDIS_PASSWORD}@redis.internal:6379/0")
  ).annotations({
    description: "Redis URL: redis:// or rediss:// (TLS, trusting ca_file), ACL user and password, database number " +
      "(redis://user:password@host:6379/2); without it the program passes its own store or ioredis client"
  }),
  key_prefix: withDefault(
    nonEmpty("shared_cache.key_prefix", "give a prefix for the keys, e.g. mcp-auth"),
    "mcp-auth",
    "Prefix of every key; each credential's keys share one {hash tag} (one Redis Cluster slot)"
  ),
  encryption_key: Schema.optional(
    Secret("shared_cache.encryption_key", "give 32 random bytes, base64 or hex (openssl rand -base64 32)")
  ).annotations({
    description: "AES-256-GCM key (32 bytes, base64 or hex) encrypting tokens at rest; without it tokens are stored " +
      "in clear"
  }),
  previous_encryption_keys: withDefault(
    Schema.Array(Secret("shared_cache.previous_encryption_keys", "give the keys as base64 or hex")),
    [],
    "Keys that still decrypt (not encrypt), for rotating encryption_key"
  ),
  lock_lease_seconds: withDefault(
    PositiveSeconds("shared_cache.lock_lease_seconds"),
    30,
    "Longest one process holds the fetch lock; a crashed holder is replaced when it ends"
  ),
  wait_seconds: withDefault(
    PositiveSeconds("shared_cache.wait_seconds"),
    5,
    "Longest a process waits for the lock holder's token before it requests one itself (below lock_lease_seconds)"
  ),
  timeout_ms: withDefault(
    ConfigSchema.number("shared_cache.timeout_ms", { min: 0, exclusiveMin: true, integer: true }),
    200,
    "A store reply slower than this counts as a failure: the provider goes on without the fleet (fail open)"
  ),
  ca_file: Schema.optional(nonEmpty("shared_cache.ca_file", "give the path of a PEM bundle")).annotations({
    description: "Extra PEM CA bundle trusted for rediss://"
  })
}

/**
 * The nested `shared_cache` block: a token cache shared by a fleet of processes, on Redis.
 *
 * @since 0.3.0
 * @category Schemas
 */
export const SharedCacheInput = Schema.Struct(SharedCacheFields).annotations({
  identifier: "SharedCacheConfig",
  message: () =>
    "shared_cache must be a map (url, key_prefix, encryption_key, previous_encryption_keys, lock_lease_seconds, " +
    "wait_seconds, timeout_ms, ca_file)"
})

/**
 * The client authentication methods (RFC 6749 §2.3.1, OpenID Connect Core §9, RFC 7523, RFC 8705).
 *
 * @since 0.3.0
 * @category Constants
 */
export const AUTH_METHODS = [
  "client_secret_basic",
  "client_secret_post",
  "client_secret_jwt",
  "private_key_jwt",
  "tls_client_auth",
  "self_signed_tls_client_auth"
] as const

/**
 * @since 0.3.0
 * @category Models
 */
export type AuthMethod = typeof AUTH_METHODS[number]

/**
 * The algorithms `private_key_jwt` signs with.
 *
 * @since 0.3.0
 * @category Constants
 */
export const SIGNING_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"] as const

/**
 * @since 0.3.0
 * @category Models
 */
export type SigningAlgorithm = typeof SIGNING_ALGORITHMS[number]

/**
 * A user function producing the client assertion (a JWT) for one token request, e.g. by asking the CI platform for
 * an OIDC token. It receives the configured `kwargs` and the token request's context (its URL and the audience a
 * signed assertion would carry). Sync or async.
 *
 * @since 0.3.0
 * @category Models
 */
export type ClientAssertionFunction = (
  kwargs: Readonly<Record<string, unknown>>,
  context: { readonly tokenUrl: URL; readonly audience: string }
) => string | Redacted.Redacted<string> | PromiseLike<string | Redacted.Redacted<string>>

const AssertionFunctionRef = Schema.declare((u): u is ClientAssertionFunction => Predicate.isFunction(u), {
  identifier: "function"
})

const ClientAssertionFields = {
  file: Schema.optional(
    nonEmpty("client_assertion.file", "give the path of the token file, e.g. a projected service account token")
  ).annotations({
    description: "File holding the JWT, read again before every token request (Kubernetes projected service " +
      "account tokens and SPIFFE JWT-SVIDs rotate on disk)"
  }),
  token: Schema.optional(
    Secret("client_assertion.token", "is the environment variable behind it set?")
  ).annotations({ description: "The JWT itself, e.g. from ${VAR}" }),
  function: Schema.optional(
    Schema.Union(
      nonEmpty("client_assertion.function", "give a module and export, e.g. ./oidc.ts#githubToken"),
      AssertionFunctionRef
    )
  ).annotations({
    description: "Function returning the JWT, called before every token request: \"<module>#<export>\" or a JS " +
      "function"
  }),
  kwargs: withDefault(
    Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
      message: () => "client_assertion.kwargs must be a map of names to values"
    }),
    {},
    "Keyword arguments passed to the function"
  ),
  timeout_seconds: withDefault(
    PositiveSeconds("client_assertion.timeout_seconds"),
    10,
    "Longest one call of the function may take"
  )
}

/**
 * The nested `client_assertion` block (workload identity).
 *
 * @since 0.3.0
 * @category Schemas
 */
export const ClientAssertionInput = Schema.Struct(ClientAssertionFields).annotations({
  identifier: "ClientAssertionConfig",
  message: () => "client_assertion must be a map with one of file, token or function"
})

const fields = {
  _type: Schema.optional(
    Schema.Literal("mcp_service_account").annotations({
      message: (issue) => `_type must be mcp_service_account, got ${JSON.stringify(issue.actual)}`
    })
  ).annotations({ description: "The type of the object" }),
  client_id: Schema.propertySignature(
    nonEmpty("client_id", "set it in the config or via ${SERVICE_ACCOUNT_CLIENT_ID}")
  ).annotations({
    description: "OAuth2 client identifier",
    missingMessage: () => "client_id is required: set it in the config or via ${SERVICE_ACCOUNT_CLIENT_ID}"
  }),
  client_secret: Schema.optional(
    Secret("client_secret", "set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it")
  ).annotations({
    description:
      "OAuth2 client secret (client_secret_basic, client_secret_post, client_secret_jwt; or client_secret_file)"
  }),
  client_secret_file: Schema.optional(
    nonEmpty("client_secret_file", "give the path of a file holding the secret, e.g. a mounted Kubernetes Secret")
  ).annotations({
    description: "File holding the client secret, read again before every token request: a rotated secret is used " +
      "without a restart (instead of client_secret)"
  }),
  token_url: Schema.optional(nonEmpty("token_url", "set it to the OAuth2 token endpoint URL")).annotations({
    description: "OAuth2 token endpoint URL (https; http only for loopback hosts with allow_insecure_http); without " +
      "it, the token endpoint is discovered from issuer's metadata or from the MCP server (discover)"
  }),
  discover: Schema.optional(Bool("discover")).annotations({
    description: "Find the authorization server from the MCP server's protected-resource metadata (RFC 9728); it " +
      "must be issuer or one of allowed_issuers. On when neither token_url nor issuer is set"
  }),
  allowed_issuers: withDefault(
    Issuers,
    [],
    "Authorization servers (issuer URLs) that an MCP server may name in discovery; credentials go to no other"
  ),
  scopes: withDefault(
    Scopes,
    [],
    "List of OAuth2 scopes (will be joined with spaces for OAuth2 request); a space-delimited string works"
  ),
  service_token: Schema.optional(Schema.NullOr(ServiceTokenInput)).annotations({
    description:
      "Optional service token configuration for dual authentication patterns. Provide either a static token or a dynamic function that returns the token at runtime"
  }),
  token_cache_buffer_seconds: withDefault(
    NonNegativeInt("token_cache_buffer_seconds"),
    300,
    "Seconds before token expiry to refresh, clamped to half the token lifetime"
  ),
  auth_method: withDefault(
    choice("auth_method", AUTH_METHODS),
    "client_secret_basic",
    "How the client authenticates to the token endpoint: a client secret (RFC 6749 §2.3.1, or as an HS256 JWT), a " +
      "JWT assertion (RFC 7523, private_key or client_assertion) or a TLS client certificate (RFC 8705)"
  ),
  grant_type: withDefault(
    choice("grant_type", ["client_credentials", "jwt_bearer"] as const),
    "client_credentials",
    "client_credentials (RFC 6749 §4.4), or jwt_bearer (RFC 7523 §2.1, workload identity): the assertion is the " +
      "grant and no client authentication is sent"
  ),
  private_key: Schema.optional(
    Secret("private_key", "give a PEM private key or a JWK as JSON, e.g. via ${SERVICE_ACCOUNT_PRIVATE_KEY}")
  ).annotations({
    description: "private_key_jwt: the client's private key, PEM (PKCS#8, PKCS#1 or SEC1) or a JWK as JSON"
  }),
  private_key_file: Schema.optional(nonEmpty("private_key_file", "give the path of a PEM or JWK file")).annotations({
    description: "private_key_jwt: file holding the private key (instead of private_key), read before every token " +
      "request"
  }),
  key_id: Schema.optional(nonEmpty("key_id", "remove it or give the key's kid")).annotations({
    description: "private_key_jwt: the JWS kid header (default: the JWK's kid, if any)"
  }),
  signing_algorithm: Schema.optional(
    choice("signing_algorithm", SIGNING_ALGORITHMS)
  ).annotations({
    description: "private_key_jwt: RS256 (default for RSA keys), PS256, ES256 (default for P-256 keys) or EdDSA " +
      "(Ed25519)"
  }),
  certificate_file: Schema.optional(nonEmpty("certificate_file", "give the path of the key's PEM certificate"))
    .annotations({
      description: "private_key_jwt: the key's certificate (PEM); its SHA-256 thumbprint is sent as x5t#S256"
    }),
  assertion_lifetime_seconds: withDefault(
    ConfigSchema.number("assertion_lifetime_seconds", { min: 0, exclusiveMin: true, max: 3600, unit: "seconds" }),
    60,
    "Lifetime of each signed client assertion (exp - iat); a new assertion is signed for every request"
  ),
  assertion_audience: withDefault(
    choice("assertion_audience", ["token_endpoint", "issuer"] as const),
    "token_endpoint",
    "The aud claim of signed assertions: the token endpoint URL, or the issuer (needs issuer)"
  ),
  issuer: Schema.optional(nonEmpty("issuer", "give the authorization server's issuer URL")).annotations({
    description: "The authorization server's issuer identifier (RFC 8414): without token_url, the token endpoint is " +
      "discovered from its metadata; trusted in discovery from the MCP server; the aud of signed assertions with " +
      "assertion_audience: issuer"
  }),
  client_assertion: Schema.optional(ClientAssertionInput).annotations({
    description: "A JWT issued to this workload by its platform (Kubernetes, SPIFFE, GitHub Actions OIDC): sent as " +
      "the client assertion (private_key_jwt), or as the grant (grant_type: jwt_bearer); exactly one of file, token, " +
      "function"
  }),
  tls_client_certificate_file: Schema.optional(
    nonEmpty("tls_client_certificate_file", "give the path of the client's PEM certificate")
  ).annotations({
    description: "TLS client certificate (PEM) presented to the token endpoint and the MCP server " +
      "(tls_client_auth, self_signed_tls_client_auth; RFC 8705)"
  }),
  tls_client_key_file: Schema.optional(
    nonEmpty("tls_client_key_file", "give the path of the certificate's PEM private key")
  ).annotations({ description: "Private key (PEM) of tls_client_certificate_file" }),
  tls_client_key_passphrase: Schema.optional(
    Secret("tls_client_key_passphrase", "set it via an environment variable, e.g. ${TLS_CLIENT_KEY_PASSPHRASE}")
  ).annotations({ description: "Passphrase of an encrypted tls_client_key_file" }),
  proxy_url: Schema.optional(
    Secret("proxy_url", "give the proxy's URL, e.g. http://proxy.internal:3128")
  ).annotations({
    description: "HTTP(S) proxy for the token endpoint and the MCP server, credentials allowed " +
      "(http://user:password@host:port); overrides HTTPS_PROXY, HTTP_PROXY and NO_PROXY, which are honoured otherwise"
  }),
  audience: Schema.optional(nonEmpty("audience", "remove it or give the API identifier")).annotations({
    description: "audience parameter sent with the token request (Auth0, Okta, …)"
  }),
  resource: Schema.optional(nonEmpty("resource", "remove it or give an absolute URI")).annotations({
    description: "RFC 8707 resource indicator sent with the token request, usually the MCP server URL"
  }),
  timeout_seconds: withDefault(PositiveSeconds("timeout_seconds"), 30, "Timeout of one token request"),
  ca_file: Schema.optional(nonEmpty("ca_file", "give the path of a PEM bundle")).annotations({
    description: "Extra PEM CA bundle trusted for the token endpoint, in addition to the system roots"
  }),
  allow_insecure_http: withDefault(
    Bool("allow_insecure_http"),
    false,
    "Allow an http:// token_url (and issuer, discovered endpoints); only accepted for loopback hosts (tests)"
  ),
  default_expires_in_seconds: withDefault(
    PositiveSeconds("default_expires_in_seconds"),
    3600,
    "Token lifetime assumed when the response has no expires_in"
  ),
  max_token_lifetime_seconds: withDefault(
    ConfigSchema.number("max_token_lifetime_seconds", {
      min: 0,
      exclusiveMin: true,
      max: AccessToken.MAX_LIFETIME_SECONDS,
      unit: "seconds"
    }),
    86400,
    "Longest token lifetime believed: a larger expires_in (or default_expires_in_seconds) is clamped to it, and " +
      "refresh_in to the lifetime; must be greater than token_cache_buffer_seconds"
  ),
  retry: Schema.optional(RetryInput).annotations({
    description: "Retries of transient token endpoint failures (5xx, network, timeout, 429 with Retry-After)"
  }),
  failure_cooldown: Schema.optional(FailureCooldownInput).annotations({
    description: "After a permanent token endpoint failure (invalid credentials, invalid_scope and other 4xx OAuth " +
      "errors, TLS errors, malformed responses), callers get the same error without a token request for a cool-down"
  }),
  shared_cache: Schema.optional(SharedCacheInput).annotations({
    description: "Share tokens with the other processes of a fleet through Redis: one token request per lifetime " +
      "for the fleet (see the README, Running a fleet)"
  }),
  preflight_auth: withDefault(
    Bool("preflight_auth"),
    false,
    "When true, a token is fetched at start-up rather than on first use"
  )
}

/** Renamed keys by dotted path, with what replaces them: decoding names the replacement, not "unknown key". */
const renamedKeys: Readonly<Record<string, string>> = {
  invalid_credentials_cooldown_seconds: "failure_cooldown.initial_seconds"
}

/**
 * The provider block as written in YAML (snake_case, NAT field names).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ServiceAccountConfigInput = Schema.Struct(fields).annotations({
  identifier: "mcp_service_account",
  description: "OAuth2 client-credentials service account for headless MCP clients"
})

/**
 * @since 0.1.0
 * @category Models
 */
export type ServiceAccountConfigInput = typeof ServiceAccountConfigInput.Encoded

// ---------------------------------------------------------------------------------------------------------------------
// Decoded model
// ---------------------------------------------------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category Models
 */
export type ServiceTokenConfig =
  | { readonly _tag: "Static"; readonly token: Redacted.Redacted<string>; readonly header: string }
  | {
    readonly _tag: "Function"
    readonly function: string | ServiceTokenFunction
    readonly header: string
    readonly kwargs: Readonly<Record<string, unknown>>
    readonly timeoutSeconds: number
  }

/**
 * @since 0.1.0
 * @category Models
 */
export interface RetryPolicy {
  readonly maxAttempts: number
  readonly initialBackoffSeconds: number
  readonly maxBackoffSeconds: number
  readonly maxElapsedSeconds: number
}

/**
 * The fleet's shared token cache (`shared_cache`). `encryptionKey` encrypts (and decrypts); `previousEncryptionKeys`
 * only decrypt; without `encryptionKey` tokens are stored in clear.
 *
 * @since 0.3.0
 * @category Models
 */
export interface SharedCache {
  readonly url?: Redacted.Redacted<string> | undefined
  readonly keyPrefix: string
  readonly encryptionKey?: Redacted.Redacted<string> | undefined
  readonly previousEncryptionKeys: ReadonlyArray<Redacted.Redacted<string>>
  readonly lockLeaseSeconds: number
  readonly waitSeconds: number
  readonly timeoutMs: number
  readonly caFile?: string | undefined
}

/**
 * The cool-down after a permanent token endpoint failure: `initialSeconds` after the first, doubling while the same
 * failure repeats, capped at `maxSeconds`. `initialSeconds: 0` disables it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface FailureCooldownPolicy {
  readonly initialSeconds: number
  readonly maxSeconds: number
}

/**
 * @since 0.1.0
 * @category Models
 */
export type ClientAssertionSource =
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Token"; readonly token: Redacted.Redacted<string> }
  | {
    readonly _tag: "Function"
    readonly function: string | ClientAssertionFunction
    readonly kwargs: Readonly<Record<string, unknown>>
    readonly timeoutSeconds: number
  }

/**
 * @since 0.3.0
 * @category Models
 */
export interface TlsClientCertificate {
  readonly certificateFile: string
  readonly keyFile: string
  readonly passphrase?: Redacted.Redacted<string> | undefined
}

/**
 * The decoded configuration. Exactly the credential fields of `authMethod` are set (decoding refuses the others):
 * `clientSecret` or `clientSecretFile` for the `client_secret_*` methods; `privateKey`, `privateKeyFile` or
 * `clientAssertion` for `private_key_jwt` and for `grantType: "jwt_bearer"` (whose `authMethod` is `"none"`);
 * `tlsClientCertificate` for the `tls_client_auth` methods (it may also be set with another method, to present a
 * certificate anyway).
 *
 * @since 0.1.0
 * @category Models
 */
export interface ServiceAccountConfig {
  readonly clientId: string
  readonly clientSecret?: Redacted.Redacted<string> | undefined
  readonly clientSecretFile?: string | undefined
  readonly grantType: "client_credentials" | "jwt_bearer"
  readonly privateKey?: Redacted.Redacted<string> | undefined
  readonly privateKeyFile?: string | undefined
  readonly keyId?: string | undefined
  readonly signingAlgorithm?: SigningAlgorithm | undefined
  readonly certificateFile?: string | undefined
  readonly assertionLifetimeSeconds: number
  readonly assertionAudience: "token_endpoint" | "issuer"
  readonly issuer?: string | undefined
  readonly clientAssertion?: ClientAssertionSource | undefined
  readonly tlsClientCertificate?: TlsClientCertificate | undefined
  /** The proxy for the token endpoint and the MCP server, overriding the proxy environment variables. */
  readonly proxyUrl?: Redacted.Redacted<string> | undefined
  /** The token endpoint; `undefined` exactly when it is discovered (`discovery`). */
  readonly tokenUrl?: URL | undefined
  /** How the token endpoint is found when `token_url` is not configured. */
  readonly discovery?: DiscoverySettings | undefined
  /** Authorization servers an MCP server may name in discovery (`allowed_issuers`). */
  readonly allowedIssuers: ReadonlyArray<string>
  readonly scopes: ReadonlyArray<string>
  readonly tokenCacheBufferSeconds: number
  readonly serviceToken?: ServiceTokenConfig | undefined
  /** `"none"` exactly for `grantType: "jwt_bearer"`, which sends no client authentication. */
  readonly authMethod: AuthMethod | "none"
  readonly audience?: string | undefined
  readonly resource?: string | undefined
  readonly timeoutSeconds: number
  readonly caFile?: string | undefined
  readonly allowInsecureHttp: boolean
  readonly defaultExpiresInSeconds: number
  /** A token endpoint's `expires_in` (or `defaultExpiresInSeconds`) above it is clamped to it. */
  readonly maxTokenLifetimeSeconds: number
  readonly retry: RetryPolicy
  readonly failureCooldown: FailureCooldownPolicy
  readonly preflightAuth: boolean
  /** Set when `shared_cache` is configured. */
  readonly sharedCache?: SharedCache | undefined
}

/**
 * Discovery of the token endpoint, for a configuration without `token_url`.
 *
 * @since 0.3.0
 * @category Models
 */
export interface DiscoverySettings {
  /**
   * `"issuer"`: the metadata of `issuer` (RFC 8414, then OpenID Connect discovery). `"mcp_server"`: the MCP server's
   * protected-resource metadata (RFC 9728) names the authorization server, which must be one of `trusted`.
   */
  readonly from: "issuer" | "mcp_server"
  /** The authorization servers trusted with the credentials: `issuer` and `allowed_issuers`. */
  readonly trusted: ReadonlyArray<string>
  /** `auth_method` was not configured: use the first secret method the server supports (basic, post, jwt). */
  readonly chooseAuthMethod: boolean
  /** `scopes` were not configured: use the MCP server's (its 401's `scope`, else `scopes_supported`). */
  readonly chooseScopes: boolean
}

/**
 * A configuration whose token endpoint is known: configured, or found by discovery.
 *
 * @since 0.3.0
 * @category Models
 */
export interface Resolved extends ServiceAccountConfig {
  readonly tokenUrl: URL
}

/**
 * Whether the token endpoint is known without discovery.
 *
 * @since 0.3.0
 * @category Guards
 */
export const isResolved = (config: ServiceAccountConfig): config is Resolved => config.tokenUrl !== undefined

// a missing block is decoded like an empty one: every default comes from the Schema
const retryDefaults = Schema.decodeUnknownSync(RetryInput)({})
const sharedCacheModel = (input: typeof SharedCacheInput.Type): SharedCache => ({
  url: input.url,
  keyPrefix: input.key_prefix,
  encryptionKey: input.encryption_key,
  previousEncryptionKeys: input.previous_encryption_keys,
  lockLeaseSeconds: input.lock_lease_seconds,
  waitSeconds: input.wait_seconds,
  timeoutMs: input.timeout_ms,
  caFile: input.ca_file
})

/**
 * The `shared_cache` settings of a program that provides a shared store without configuring the block.
 *
 * @since 0.3.0
 * @category Constants
 */
export const sharedCacheDefaults: SharedCache = sharedCacheModel(Schema.decodeUnknownSync(SharedCacheInput)({}))
const failureCooldownDefaults = Schema.decodeUnknownSync(FailureCooldownInput)({})

const discoveryOf = (
  input: typeof ServiceAccountConfigInput.Type,
  raw: Record<string, unknown>
): DiscoverySettings | undefined => {
  if (input.token_url !== undefined) return undefined
  const given = (key: string) => raw[key] !== undefined && raw[key] !== null
  return {
    from: input.discover === true || input.issuer === undefined ? "mcp_server" : "issuer",
    trusted: [...(input.issuer === undefined ? [] : [input.issuer.trim()]), ...input.allowed_issuers],
    chooseAuthMethod: !given("auth_method") && input.grant_type === "client_credentials" &&
      input.client_assertion === undefined && input.tls_client_certificate_file === undefined,
    chooseScopes: !given("scopes")
  }
}

const toModel = (input: typeof ServiceAccountConfigInput.Type, raw: Record<string, unknown>): ServiceAccountConfig => {
  const st = input.service_token
  const ca = input.client_assertion
  const retry = input.retry ?? retryDefaults
  const cooldown = input.failure_cooldown ?? failureCooldownDefaults
  return {
    clientId: input.client_id.trim(),
    clientSecret: input.client_secret,
    clientSecretFile: input.client_secret_file,
    grantType: input.grant_type,
    privateKey: input.private_key,
    privateKeyFile: input.private_key_file,
    keyId: input.key_id,
    signingAlgorithm: input.signing_algorithm,
    certificateFile: input.certificate_file,
    assertionLifetimeSeconds: input.assertion_lifetime_seconds,
    assertionAudience: input.assertion_audience,
    issuer: input.issuer,
    clientAssertion: ca === undefined
      ? undefined
      : ca.file !== undefined
      ? { _tag: "File", path: ca.file }
      : ca.token !== undefined
      ? { _tag: "Token", token: ca.token }
      : { _tag: "Function", function: ca.function!, kwargs: ca.kwargs, timeoutSeconds: ca.timeout_seconds },
    tlsClientCertificate: input.tls_client_certificate_file === undefined || input.tls_client_key_file === undefined
      ? undefined
      : {
        certificateFile: input.tls_client_certificate_file,
        keyFile: input.tls_client_key_file,
        passphrase: input.tls_client_key_passphrase
      },
    proxyUrl: input.proxy_url,
    tokenUrl: input.token_url === undefined ? undefined : new URL(input.token_url.trim()),
    discovery: discoveryOf(input, raw),
    allowedIssuers: input.allowed_issuers,
    scopes: input.scopes,
    tokenCacheBufferSeconds: input.token_cache_buffer_seconds,
    serviceToken: st == null
      ? undefined
      : st.token != null
      ? { _tag: "Static", token: st.token, header: st.header }
      : {
        _tag: "Function",
        function: st.function!,
        header: st.header,
        kwargs: st.kwargs,
        timeoutSeconds: st.timeout_seconds
      },
    authMethod: input.grant_type === "jwt_bearer" ? "none" : input.auth_method,
    audience: input.audience,
    resource: input.resource,
    timeoutSeconds: input.timeout_seconds,
    caFile: input.ca_file,
    allowInsecureHttp: input.allow_insecure_http,
    defaultExpiresInSeconds: input.default_expires_in_seconds,
    maxTokenLifetimeSeconds: input.max_token_lifetime_seconds,
    retry: {
      maxAttempts: retry.max_attempts,
      initialBackoffSeconds: retry.initial_backoff_seconds,
      maxBackoffSeconds: retry.max_backoff_seconds,
      maxElapsedSeconds: retry.max_elapsed_seconds
    },
    failureCooldown: { initialSeconds: cooldown.initial_seconds, maxSeconds: cooldown.max_seconds },
    preflightAuth: input.preflight_auth,
    sharedCache: input.shared_cache === undefined ? undefined : sharedCacheModel(input.shared_cache)
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Decoding with every problem at once
// ---------------------------------------------------------------------------------------------------------------------

const isRecord = ConfigSchema.isRecord

/**
 * `block.high` must be ≥ `block.low`, compared as decoded: numbers may arrive as strings, and a missing key takes its
 * default. A value that does not decode is reported by the Schema, not here.
 */
const notBelow = <K extends string, A extends Readonly<Record<K, number>>, I>(
  input: Record<string, unknown>,
  block: string,
  schema: Schema.Schema<A, I>,
  low: K,
  high: K
): Array<ConfigSchema.Problem> => {
  const value = input[block]
  if (!isRecord(value)) return []
  // only these two keys: a problem elsewhere in the block must not hide this one
  const decoded = Schema.decodeUnknownEither(schema)({ [low]: value[low], [high]: value[high] })
  return Either.isRight(decoded) && decoded.right[high] < decoded.right[low]
    ? [{ path: `${block}.${high}`, message: `${block}.${high} must be ≥ ${block}.${low}` }]
    : []
}

/**
 * An endpoint or issuer URL: https (http only on a loopback host with `allow_insecure_http`), no user info, no
 * fragment. The value is never echoed: it may hold credentials (https://user:password@…).
 */
const endpointIssues = (key: string, value: unknown, insecure: boolean): Array<ConfigSchema.Problem> => {
  const issues: Array<ConfigSchema.Problem> = []
  if (typeof value !== "string" || value.trim().length === 0) return issues
  let url: URL | undefined
  try {
    url = new URL(value.trim())
  } catch {
    issues.push({ path: key, message: `${key} is not a valid URL: use https://host/path` })
    return issues
  }
  const loopback = internal.isLoopbackHost(url.hostname)
  if (url.protocol === "http:") {
    if (!loopback) {
      issues.push({ path: key, message: `${key} must use https: http is allowed only for loopback hosts` })
    } else if (!insecure) {
      issues.push({
        path: key,
        message: `${key} must use https: for a loopback test server set allow_insecure_http: true`
      })
    }
  } else if (url.protocol !== "https:") {
    issues.push({ path: key, message: `${key} must use https, got ${url.protocol.slice(0, -1)}` })
  }
  if (url.username || url.password) {
    issues.push({ path: key, message: `${key} must not contain credentials: use client_id and client_secret` })
  }
  if (url.hash) issues.push({ path: key, message: `${key} must not have a #fragment` })
  if (insecure && !loopback) {
    issues.push({
      path: "allow_insecure_http",
      message: `allow_insecure_http is only accepted for loopback hosts, not ${url.hostname}`
    })
  }
  return issues
}

/** Where the token endpoint comes from: `token_url`, or discovery through `issuer` or the MCP server. */
const discoveryIssues = (input: Record<string, unknown>): Array<ConfigSchema.Problem> => {
  const given = (key: string) => input[key] !== undefined && input[key] !== null
  const discover = input.discover === true || input.discover === "true"
  const allowed = Array.isArray(input.allowed_issuers)
    ? input.allowed_issuers.length > 0
    : typeof input.allowed_issuers === "string" && /[^\s,]/.test(input.allowed_issuers)
  if (given("token_url")) {
    if (discover) {
      return [{
        path: "discover",
        message: "discover: true finds the token endpoint from the MCP server: remove token_url, or remove discover"
      }]
    }
    return allowed
      ? [{
        path: "allowed_issuers",
        message: "allowed_issuers applies to discovery from the MCP server: remove it, or remove token_url"
      }]
      : []
  }
  if (input.discover === false || input.discover === "false") {
    return given("issuer") ? [] : [{
      path: "token_url",
      message: "token_url is required with discover: false: set it to the OAuth2 token endpoint URL, or set issuer"
    }]
  }
  if (!given("issuer") && !allowed) {
    return [{
      path: "token_url",
      message: "token_url is required: set it to the OAuth2 token endpoint URL (https://…/token), or set issuer " +
        "(its metadata names the token endpoint), or allowed_issuers (the authorization servers an MCP server may " +
        "name in discovery)"
    }]
  }
  if (!discover && given("issuer") && allowed) {
    return [{
      path: "allowed_issuers",
      message: "allowed_issuers applies to discovery from the MCP server: set discover: true, or remove it"
    }]
  }
  return []
}

const crossFieldIssues = (input: Record<string, unknown>): Array<ConfigSchema.Problem> => {
  const issues: Array<ConfigSchema.Problem> = []
  const insecure = input.allow_insecure_http === true || input.allow_insecure_http === "true"
  issues.push(...endpointIssues("token_url", input.token_url, insecure))
  issues.push(...endpointIssues("issuer", input.issuer, insecure))
  // each issuer checked as decoded: a list, or one string (the only form a variable has) split into its entries
  const issuers = Array.isArray(input.allowed_issuers)
    ? input.allowed_issuers
    : typeof input.allowed_issuers === "string"
    ? input.allowed_issuers.split(/[\s,]+/).filter((s) => s.length > 0)
    : []
  issuers.forEach((issuer, i) => issues.push(...endpointIssues(`allowed_issuers.${i}`, issuer, insecure)))
  if (typeof input.allowed_issuers === "string" && issuers.length === 0 && input.allowed_issuers.length > 0) {
    issues.push({ path: "allowed_issuers", message: "allowed_issuers names no issuer: give issuer URLs, or remove it" })
  }
  issues.push(...discoveryIssues(input))
  if (typeof input.resource === "string" && input.resource.trim().length > 0) {
    try {
      if (new URL(input.resource).hash) throw new Error("fragment")
    } catch {
      issues.push({
        path: "resource",
        message: "resource must be an absolute URI without a #fragment (RFC 8707), e.g. the MCP server URL"
      })
    }
  }
  const st = input.service_token
  if (st != null && !isRecord(st)) {
    issues.push({
      path: "service_token",
      message: "service_token must be a map with token or function (early NAT drafts' flat `service_token: <token>` " +
        "is not supported: write `service_token: { token: ${JIRA_SERVICE_TOKEN} }`)"
    })
  }
  if (isRecord(st)) {
    const hasToken = st.token != null
    const hasFunction = st.function != null
    if (!hasToken && !hasFunction) {
      issues.push({
        path: "service_token",
        message: "Either 'token' or 'function' must be provided in service_token config"
      })
    } else if (hasToken && hasFunction) {
      issues.push({
        path: "service_token",
        message: "Cannot specify both 'token' and 'function' in service_token config. Choose one."
      })
    }
  }
  issues.push(...credentialIssues(input))
  const lifetime = Schema.decodeUnknownEither(Schema.Struct({
    max_token_lifetime_seconds: fields.max_token_lifetime_seconds,
    token_cache_buffer_seconds: fields.token_cache_buffer_seconds
  }))({
    max_token_lifetime_seconds: input.max_token_lifetime_seconds,
    token_cache_buffer_seconds: input.token_cache_buffer_seconds
  })
  if (
    Either.isRight(lifetime) &&
    lifetime.right.max_token_lifetime_seconds <= lifetime.right.token_cache_buffer_seconds
  ) {
    issues.push({
      path: "max_token_lifetime_seconds",
      message: `max_token_lifetime_seconds (${lifetime.right.max_token_lifetime_seconds}) must be greater than ` +
        `token_cache_buffer_seconds (${lifetime.right.token_cache_buffer_seconds}): a token would be refreshed ` +
        "before it was issued"
    })
  }
  issues.push(
    ...notBelow(input, "retry", RetryInput, "initial_backoff_seconds", "max_backoff_seconds"),
    ...notBelow(input, "failure_cooldown", FailureCooldownInput, "initial_seconds", "max_seconds")
  )
  return issues
}

/** `shared_cache`: a redis URL, usable keys, a wait below the lease. Values are never quoted. */
const sharedCacheIssues = (block: unknown): Array<ConfigSchema.Problem> => {
  if (!isRecord(block)) return []
  const issues: Array<ConfigSchema.Problem> = []
  const url = textOf(block.url)
  if (url !== undefined && url.trim().length > 0) {
    const protocol = URL.canParse(url.trim()) ? new URL(url.trim()).protocol : undefined
    if (protocol !== "redis:" && protocol !== "rediss:") {
      issues.push({
        path: "shared_cache.url",
        message: "shared_cache.url must be a redis:// or rediss:// URL, e.g. rediss://user:password@redis:6379/0"
      })
    }
  }
  const keys = [
    ["shared_cache.encryption_key", block.encryption_key] as const,
    ...(Array.isArray(block.previous_encryption_keys) ? block.previous_encryption_keys : []).map((key, i) =>
      [`shared_cache.previous_encryption_keys.${i}`, key] as const
    )
  ]
  for (const [path, key] of keys) {
    const text = textOf(key)
    if (text !== undefined && text.trim().length > 0 && Fleet.parseKey(text) === undefined) {
      issues.push({
        path,
        message: `${path} must be 32 bytes as base64 or hex: generate one with openssl rand -base64 32`
      })
    }
  }
  const decoded = Schema.decodeUnknownEither(Schema.Struct({
    lock_lease_seconds: SharedCacheFields.lock_lease_seconds,
    wait_seconds: SharedCacheFields.wait_seconds
  }))({ lock_lease_seconds: block.lock_lease_seconds, wait_seconds: block.wait_seconds })
  if (Either.isRight(decoded) && decoded.right.wait_seconds >= decoded.right.lock_lease_seconds) {
    issues.push({
      path: "shared_cache.wait_seconds",
      message: "shared_cache.wait_seconds must be below shared_cache.lock_lease_seconds: a process waiting for a " +
        "crashed lock holder must give up before the lease ends"
    })
  }
  return issues
}

/** A string value, plain or `Redacted`. */
const textOf = (u: unknown): string | undefined => {
  const value = Redacted.isRedacted(u) ? Redacted.value(u) : u
  return typeof value === "string" ? value : undefined
}

const SECRET_KEYS = ["client_secret", "client_secret_file"] as const
const KEY_KEYS = ["private_key", "private_key_file"] as const
const SIGNING_KEYS = ["key_id", "signing_algorithm", "certificate_file"] as const
const TLS_KEYS = ["tls_client_certificate_file", "tls_client_key_file"] as const

/**
 * The credential rules: exactly one credential source for the method, nothing another method uses, complete pairs;
 * an inline private key must parse and suit `signing_algorithm`. Messages never quote a value.
 */
const credentialIssues = (input: Record<string, unknown>): Array<ConfigSchema.Problem> => {
  const issues: Array<ConfigSchema.Problem> = []
  const given = (key: string) => input[key] !== undefined && input[key] !== null
  const refuse = (keys: ReadonlyArray<string>, why: string) => {
    for (const key of keys) if (given(key)) issues.push({ path: key, message: `${key} ${why}` })
  }
  const one = (keys: ReadonlyArray<string>, path: string, missing: string) => {
    const present = keys.filter(given)
    if (present.length === 0) issues.push({ path, message: missing })
    if (present.length > 1) {
      issues.push({ path: present[1]!, message: `give only one of ${present.join(" and ")}` })
    }
  }
  const bearer = input.grant_type === "jwt_bearer"
  const method = typeof input.auth_method === "string" && (AUTH_METHODS as ReadonlyArray<string>).includes(
      input.auth_method
    )
    ? input.auth_method as AuthMethod
    : input.auth_method === undefined || input.auth_method === null
    ? "client_secret_basic"
    : undefined
  const signs = KEY_KEYS.some(given)
  if (bearer) {
    if (given("auth_method")) {
      issues.push({
        path: "auth_method",
        message:
          "grant_type: jwt_bearer sends no client authentication (the assertion is the grant): remove auth_method"
      })
    }
    refuse(SECRET_KEYS, "is not used with grant_type: jwt_bearer, which sends no client authentication: remove it")
    one(
      [...KEY_KEYS, "client_assertion"],
      "grant_type",
      "grant_type: jwt_bearer needs an assertion: set client_assertion (file, token or function), or private_key / " +
        "private_key_file to sign one"
    )
  } else if (method !== undefined && method.startsWith("client_secret")) {
    const other = `is not used with auth_method: ${method}: remove it, or set auth_method: private_key_jwt`
    refuse([...KEY_KEYS, "client_assertion", ...SIGNING_KEYS], other)
    one(
      SECRET_KEYS,
      "client_secret",
      "client_secret is required: set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it (or set " +
        "client_secret_file to a file holding it)"
    )
  } else if (method === "private_key_jwt") {
    refuse(
      SECRET_KEYS,
      "is not used with auth_method: private_key_jwt, which authenticates with a signed JWT instead of a secret: " +
        "remove it"
    )
    one(
      [...KEY_KEYS, "client_assertion"],
      "private_key",
      "auth_method: private_key_jwt needs the client's key: set private_key or private_key_file (or client_assertion " +
        "for a JWT issued by the platform)"
    )
  } else if (method === "tls_client_auth" || method === "self_signed_tls_client_auth") {
    refuse(
      [...SECRET_KEYS, ...KEY_KEYS, "client_assertion", ...SIGNING_KEYS],
      `is not used with auth_method: ${method}, which authenticates with the TLS client certificate: remove it`
    )
    for (const key of TLS_KEYS) {
      if (!given(key)) issues.push({ path: key, message: `auth_method: ${method} needs ${key}` })
    }
  }
  if (method !== undefined && method !== "tls_client_auth" && method !== "self_signed_tls_client_auth") {
    // a certificate for the connection alone (RFC 8705 §3 binding): both halves or neither
    const present = TLS_KEYS.filter(given)
    if (present.length === 1) {
      const missing = TLS_KEYS.find((key) => !given(key))!
      issues.push({ path: missing, message: `${present[0]} needs ${missing}` })
    }
  }
  if (given("tls_client_key_passphrase") && !given("tls_client_key_file")) {
    issues.push({ path: "tls_client_key_passphrase", message: "tls_client_key_passphrase needs tls_client_key_file" })
  }
  if ((bearer || method === "private_key_jwt") && !signs) {
    refuse(SIGNING_KEYS, "applies to an assertion signed with private_key or private_key_file: remove it")
  }
  if (input.assertion_audience === "issuer" && !given("issuer")) {
    issues.push({
      path: "issuer",
      message: "assertion_audience: issuer needs issuer (the authorization server's issuer URL)"
    })
  }
  if (typeof input.issuer === "string" && input.issuer.trim().length > 0 && !URL.canParse(input.issuer.trim())) {
    issues.push({ path: "issuer", message: "issuer must be an absolute URL, e.g. https://idp.example.com" })
  }
  const assertion = input.client_assertion
  if (assertion !== undefined && assertion !== null && !isRecord(assertion)) {
    issues.push({
      path: "client_assertion",
      message: "client_assertion must be a map with one of file, token or function"
    })
  }
  if (isRecord(assertion)) {
    const sources = ["file", "token", "function"].filter((key) =>
      assertion[key] !== undefined && assertion[key] !== null
    )
    if (sources.length === 1 && sources[0] !== "function") {
      for (const key of ["kwargs", "timeout_seconds"]) {
        if (assertion[key] !== undefined && assertion[key] !== null) {
          issues.push({
            path: `client_assertion.${key}`,
            message: `client_assertion.${key} applies to client_assertion.function only: remove it`
          })
        }
      }
    }
    if (sources.length !== 1) {
      issues.push({
        path: "client_assertion",
        message: sources.length === 0
          ? "client_assertion needs one of file, token or function"
          : `client_assertion takes one of file, token or function, not ${sources.join(" and ")}`
      })
    }
  }
  const key = input.private_key
  const keyText = textOf(key)
  if (keyText !== undefined && keyText.trim().length > 0) {
    const parsed = ClientAuth.parsePrivateKey(keyText)
    if (Either.isLeft(parsed)) {
      issues.push({ path: "private_key", message: `private_key ${parsed.left}` })
    } else {
      const wanted = (SIGNING_ALGORITHMS as ReadonlyArray<unknown>).includes(input.signing_algorithm)
        ? input.signing_algorithm as SigningAlgorithm
        : undefined
      const algorithm = ClientAuth.algorithmFor(parsed.right.key, wanted)
      if (Either.isLeft(algorithm)) {
        issues.push({
          path: wanted === undefined ? "private_key" : "signing_algorithm",
          message: `private_key ${algorithm.left}`
        })
      }
    }
  }
  issues.push(...sharedCacheIssues(input.shared_cache))
  const proxy = input.proxy_url
  const proxyText = textOf(proxy)
  if (proxyText !== undefined && proxyText.trim().length > 0) {
    let url: URL | undefined
    try {
      url = new URL(proxyText.trim())
    } catch {
      // not echoed: it may hold the proxy's password
    }
    if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
      issues.push({
        path: "proxy_url",
        message: "proxy_url must be an http:// or https:// URL, e.g. http://user:password@proxy.internal:3128"
      })
    }
  }
  return issues
}

/**
 * Options for {@link decode}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface DecodeOptions {
  /** Prefix for issue paths, e.g. `authentication.jira_service_account`. */
  readonly path?: string | undefined
}

/**
 * What decoding `I` gives: a {@link Resolved} configuration when the input is known to have a `token_url`.
 *
 * @since 0.3.0
 * @category Models
 */
export type DecodedFrom<I> = I extends { readonly token_url: string } ? Resolved : ServiceAccountConfig

/**
 * Decodes a provider block, reporting every problem at once.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const decodeEither = <I>(
  input: I,
  options?: DecodeOptions
): Either.Either<DecodedFrom<I>, ConfigurationError> => {
  const problems = isRecord(input)
    ? [
      // a flat service_token gets its own, more helpful message below
      ...ConfigSchema.problems(ServiceAccountConfigInput, input, { renamed: renamedKeys }).filter((p) =>
        !(p.path === "service_token" && p.message.endsWith("must be a map of keys to values"))
      ),
      ...crossFieldIssues(input)
    ]
    : [{ path: "", message: "the service account config must be a map of keys to values" }]
  if (problems.length > 0) {
    return Either.left(new ConfigurationError({ issues: ConfigSchema.toIssues(problems, options?.path) }))
  }
  return Either.right(
    toModel(
      Schema.decodeUnknownSync(ServiceAccountConfigInput)(input),
      input as Record<string, unknown>
    ) as DecodedFrom<I>
  )
}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const decode = <I>(
  input: I,
  options?: DecodeOptions
): Effect.Effect<DecodedFrom<I>, ConfigurationError> => decodeEither(input, options)

/**
 * @since 0.1.0
 * @category Constructors
 */
export const decodeSync = <I>(input: I, options?: DecodeOptions): DecodedFrom<I> =>
  Either.getOrThrowWith(decodeEither(input, options), (e) => e)

const nested = {
  retry: RetryFields,
  failure_cooldown: FailureCooldownFields,
  shared_cache: SharedCacheFields
} as const

/** Nested keys read from the environment too (kwargs and function values cannot be written there). */
const envNested = {
  retry: RetryFields,
  failure_cooldown: FailureCooldownFields,
  shared_cache: Object.fromEntries(
    Object.entries(SharedCacheFields).filter(([key]) => key !== "previous_encryption_keys")
  ) as Omit<typeof SharedCacheFields, "previous_encryption_keys">,
  client_assertion: { file: ClientAssertionFields.file, token: ClientAssertionFields.token }
} as const

const variableOf = (key: string) => `SERVICE_ACCOUNT_${key.replaceAll(".", "_").toUpperCase()}`

/**
 * The environment variable each key is read from by {@link fromEnv}: `SERVICE_ACCOUNT_<KEY IN UPPER CASE>`, a nested
 * key with `_` for the dot (`SERVICE_ACCOUNT_RETRY_MAX_ATTEMPTS`, `SERVICE_ACCOUNT_FAILURE_COOLDOWN_INITIAL_SECONDS`),
 * plus `SERVICE_ACCOUNT_SERVICE_TOKEN` and `SERVICE_ACCOUNT_SERVICE_TOKEN_HEADER` for a static service token.
 *
 * @since 0.1.0
 * @category Constants
 */
export const envVariables: ReadonlyArray<{ readonly key: string; readonly variable: string }> = Object.keys(fields)
  .filter((key) => key !== "_type" && key !== "service_token")
  .flatMap((key) =>
    key in envNested ? Object.keys(envNested[key as keyof typeof envNested]).map((k) => `${key}.${k}`) : [key]
  )
  .map((key) => ({ key, variable: variableOf(key) }))

const secretKeys: ReadonlySet<string> = new Set([
  "client_secret",
  "private_key",
  "tls_client_key_passphrase",
  "proxy_url"
])

// renamed keys are read too, so that a variable still set under its old name is reported rather than ignored
const envKeys = [
  ...envVariables,
  ...Object.keys(renamedKeys).map((key) => ({ key, variable: variableOf(key) }))
]

const envMessage = (issue: ConfigIssue): string => {
  if (Object.hasOwn(renamedKeys, issue.path)) {
    return `${variableOf(issue.path)} has been renamed: use ${variableOf(renamedKeys[issue.path]!)}`
  }
  return issue.path in fields
    ? issue.message.replace(/\$\{[A-Z_]+\}/, variableOf(issue.path))
    : issue.message
}

/**
 * The configuration read from environment variables (`SERVICE_ACCOUNT_CLIENT_ID`, `SERVICE_ACCOUNT_CLIENT_SECRET`,
 * `SERVICE_ACCOUNT_TOKEN_URL`, `SERVICE_ACCOUNT_SCOPES`, …; see {@link envVariables}) through Effect's `Config`, so
 * any `ConfigProvider` works. Validated exactly like a YAML block.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromEnv: Config.Config<ServiceAccountConfig> = Config.all({
  values: Config.all(
    Object.fromEntries(envKeys.map(({ key, variable }) => [key, Config.option(Config.string(variable))]))
  ),
  serviceToken: Config.option(Config.redacted("SERVICE_ACCOUNT_SERVICE_TOKEN")),
  serviceTokenHeader: Config.option(Config.string("SERVICE_ACCOUNT_SERVICE_TOKEN_HEADER"))
}).pipe(
  Config.mapOrFail(({ serviceToken, serviceTokenHeader, values }) => {
    const input: Record<string, unknown> = {}
    for (const { key } of envKeys) {
      const value = values[key]
      if (value === undefined || Option.isNone(value)) continue
      const [parent, child] = key.split(".") as [string, string | undefined]
      if (child === undefined) {
        input[key] = secretKeys.has(key) ? Redacted.make(value.value) : value.value
      } else {
        input[parent] = { ...(isRecord(input[parent]) ? input[parent] : {}), [child]: value.value }
      }
    }
    if (Option.isSome(serviceToken)) {
      input.service_token = {
        token: serviceToken.value,
        ...(Option.isSome(serviceTokenHeader) ? { header: serviceTokenHeader.value } : {})
      }
    }
    return Either.mapLeft(
      decodeEither(input),
      (error) => ConfigError.InvalidData([], error.issues.map(envMessage).join("; "))
    )
  })
)

/**
 * @since 0.1.0
 * @category Models
 */
export type FieldDoc = ConfigSchema.FieldDoc

/**
 * Every field, nested ones included, in Schema order, read from the Schema itself so it cannot drift (used by
 * `mcp-auth info components`).
 *
 * @since 0.1.0
 * @category Models
 */
export const fieldDocs: ReadonlyArray<FieldDoc> = ConfigSchema.describeFields(fields, {
  service_token: ServiceTokenFields,
  client_assertion: ClientAssertionFields,
  ...nested
})

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
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as internal from "./internal/text.js"
import type { RequestContext } from "./RequestContext.js"
import { ConfigIssue, ConfigurationError } from "./ServiceAccountError.js"

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

const typed = <S extends Schema.Schema.AnyNoContext>(schema: S, field: string, what: string): S =>
  schema.annotations({ message: (issue) => `${field} must be ${what}, got ${JSON.stringify(issue.actual)}` }) as S

const nonEmpty = (field: string, hint: string) =>
  Schema.String.annotations({ message: () => `${field} must be a string` }).pipe(
    Schema.filter((s) => s.trim().length > 0, { message: () => `${field} must not be empty: ${hint}` })
  )

/** A secret: a string or an already `Redacted` string. Its value never appears in an error message. */
const Secret = (field: string, hint: string) =>
  Schema.transformOrFail(Schema.Unknown, Schema.RedactedFromSelf(Schema.String), {
    strict: true,
    decode: (u, _, ast) => {
      const value = typeof u === "string" ? u : Redacted.isRedacted(u) ? Redacted.value(u) : undefined
      if (typeof value !== "string") {
        return ParseResult.fail(new ParseResult.Type(ast, "<redacted>", `${field} must be a string`))
      }
      if (value.trim().length === 0) {
        return ParseResult.fail(new ParseResult.Type(ast, "<redacted>", `${field} must not be empty: ${hint}`))
      }
      return ParseResult.succeed(Redacted.isRedacted(u) ? u as Redacted.Redacted<string> : Redacted.make(value))
    },
    encode: ParseResult.succeed
  }).annotations({ identifier: "SecretStr" })

const NonNegativeInt = (field: string) =>
  typed(Schema.Number, field, "a number").pipe(
    Schema.filter((n) => Number.isInteger(n) && n >= 0, {
      message: (issue) => `${field} must be a whole number of seconds ≥ 0, got ${String(issue.actual)}`
    })
  ).annotations({ identifier: "int" })

const PositiveSeconds = (field: string) =>
  typed(Schema.Number, field, "a number").pipe(
    Schema.filter((n) => Number.isFinite(n) && n > 0, {
      message: (issue) => `${field} must be a number of seconds > 0, got ${String(issue.actual)}`
    })
  )

const NonNegativeSeconds = (field: string) =>
  typed(Schema.Number, field, "a number").pipe(
    Schema.filter((n) => Number.isFinite(n) && n >= 0, {
      message: (issue) => `${field} must be a number of seconds ≥ 0, got ${String(issue.actual)}`
    })
  )

const Bool = (field: string) => typed(Schema.Boolean, field, "true or false")

const ScopeToken = Schema.String.pipe(
  Schema.filter((s) => /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s), {
    message: (issue) =>
      `${JSON.stringify(issue.actual)} is not a valid scope (RFC 6749 §3.3: no spaces, quotes or backslashes)`
  })
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

const HeaderName = (field: string) =>
  Schema.String.annotations({ message: () => `${field} must be a string` }).pipe(
    Schema.filter((h) => internal.isHeaderName(h), {
      message: (issue) => `${field} ${JSON.stringify(issue.actual)} is not a valid HTTP header name`
    }),
    Schema.filter((h) => !internal.reservedHeaders.has(h.toLowerCase()), {
      message: (issue) =>
        `${field} must not be ${
          JSON.stringify(issue.actual)
        }: that header is reserved (Authorization carries the bearer token); use e.g. X-Service-Account-Token`
    })
  )

const FunctionRef = Schema.declare((u): u is ServiceTokenFunction => Predicate.isFunction(u), {
  identifier: "function"
})

const ServiceTokenFields = {
  token: Schema.optional(Schema.NullOr(
    Secret("service_token.token", "is the environment variable behind it set?")
  )).annotations({ description: "Static service token value (mutually exclusive with function)" }),
  function: Schema.optional(Schema.NullOr(
    Schema.Union(nonEmpty("service_token.function", "give a module and export, e.g. ./tokens.ts#getToken"), FunctionRef)
  )).annotations({
    description:
      "Function returning the token or [header, token], called on every request: \"<module>#<export>\" (relative to the config file) or a JS function (mutually exclusive with token)"
  }),
  header: Schema.optionalWith(HeaderName("service_token.header"), { default: () => DEFAULT_SERVICE_TOKEN_HEADER })
    .annotations({ description: "HTTP header name for service token", default: DEFAULT_SERVICE_TOKEN_HEADER }),
  timeout_seconds: Schema.optionalWith(PositiveSeconds("service_token.timeout_seconds"), { default: () => 10 })
    .annotations({ description: "Longest one call of the function may take", default: 10 }),
  kwargs: Schema.optionalWith(
    Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
      message: () => "service_token.kwargs must be a map of names to values"
    }),
    { default: () => ({}) }
  ).annotations({ description: "Keyword arguments passed to the function", default: {} })
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
  max_attempts: Schema.optionalWith(
    typed(Schema.Number, "retry.max_attempts", "a number").pipe(Schema.filter((n) => Number.isInteger(n) && n >= 1, {
      message: (issue) => `retry.max_attempts must be a whole number ≥ 1, got ${String(issue.actual)}`
    })).annotations({ identifier: "int" }),
    { default: () => 4 }
  ).annotations({ description: "Token requests per fetch, the first included", default: 4 }),
  initial_backoff_seconds: Schema.optionalWith(NonNegativeSeconds("retry.initial_backoff_seconds"), {
    default: () => 0.5
  }).annotations({ description: "First backoff ceiling; doubles per attempt, full jitter", default: 0.5 }),
  max_backoff_seconds: Schema.optionalWith(NonNegativeSeconds("retry.max_backoff_seconds"), { default: () => 10 })
    .annotations({ description: "Cap on one backoff", default: 10 }),
  max_elapsed_seconds: Schema.optionalWith(NonNegativeSeconds("retry.max_elapsed_seconds"), { default: () => 30 })
    .annotations({
      description: "Longest a waiting caller is kept for one fetch, retries and Retry-After waits included",
      default: 30
    })
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
  client_secret: Schema.propertySignature(
    Secret("client_secret", "set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it")
  ).annotations({
    description: "OAuth2 client secret",
    missingMessage: () => "client_secret is required: set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it"
  }),
  token_url: Schema.propertySignature(nonEmpty("token_url", "set it to the OAuth2 token endpoint URL")).annotations({
    description: "OAuth2 token endpoint URL (https; http only for loopback hosts with allow_insecure_http)",
    missingMessage: () => "token_url is required: set it to the OAuth2 token endpoint URL (https://…/token)"
  }),
  scopes: Schema.optionalWith(Scopes, { default: () => [] }).annotations({
    description:
      "List of OAuth2 scopes (will be joined with spaces for OAuth2 request); a space-delimited string works",
    default: []
  }),
  service_token: Schema.optional(Schema.NullOr(ServiceTokenInput)).annotations({
    description:
      "Optional service token configuration for dual authentication patterns. Provide either a static token or a dynamic function that returns the token at runtime"
  }),
  token_cache_buffer_seconds: Schema.optionalWith(NonNegativeInt("token_cache_buffer_seconds"), { default: () => 300 })
    .annotations({
      description: "Seconds before token expiry to refresh, clamped to half the token lifetime",
      default: 300
    }),
  auth_method: Schema.optionalWith(
    Schema.Literal("client_secret_basic", "client_secret_post").annotations({
      message: (issue) => ({
        message: `auth_method must be client_secret_basic or client_secret_post, got ${JSON.stringify(issue.actual)}`,
        override: true
      })
    }),
    { default: () => "client_secret_basic" as const }
  ).annotations({
    description: "How the client authenticates to the token endpoint (RFC 6749 §2.3.1)",
    default: "client_secret_basic"
  }),
  audience: Schema.optional(nonEmpty("audience", "remove it or give the API identifier")).annotations({
    description: "audience parameter sent with the token request (Auth0, Okta, …)"
  }),
  resource: Schema.optional(nonEmpty("resource", "remove it or give an absolute URI")).annotations({
    description: "RFC 8707 resource indicator sent with the token request, usually the MCP server URL"
  }),
  timeout_seconds: Schema.optionalWith(PositiveSeconds("timeout_seconds"), { default: () => 30 }).annotations({
    description: "Timeout of one token request",
    default: 30
  }),
  ca_file: Schema.optional(nonEmpty("ca_file", "give the path of a PEM bundle")).annotations({
    description: "Extra PEM CA bundle trusted for the token endpoint, in addition to the system roots"
  }),
  allow_insecure_http: Schema.optionalWith(Bool("allow_insecure_http"), { default: () => false }).annotations({
    description: "Allow an http:// token_url; only accepted for loopback hosts (tests)",
    default: false
  }),
  default_expires_in_seconds: Schema.optionalWith(NonNegativeSeconds("default_expires_in_seconds"), {
    default: () => 3600
  }).annotations({ description: "Token lifetime assumed when the response has no expires_in", default: 3600 }),
  invalid_credentials_cooldown_seconds: Schema.optionalWith(
    NonNegativeSeconds("invalid_credentials_cooldown_seconds"),
    { default: () => 60 }
  ).annotations({
    description: "After invalid credentials, callers get the same error without a new request for this long",
    default: 60
  }),
  retry: Schema.optional(RetryInput).annotations({
    description: "Retries of transient token endpoint failures (5xx, network, timeout, 429 with Retry-After)"
  }),
  preflight_auth: Schema.optionalWith(Bool("preflight_auth"), { default: () => false }).annotations({
    description: "When true, a token is fetched at start-up rather than on first use",
    default: false
  })
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
 * @since 0.1.0
 * @category Models
 */
export interface ServiceAccountConfig {
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted<string>
  readonly tokenUrl: URL
  readonly scopes: ReadonlyArray<string>
  readonly tokenCacheBufferSeconds: number
  readonly serviceToken?: ServiceTokenConfig | undefined
  readonly authMethod: "client_secret_basic" | "client_secret_post"
  readonly audience?: string | undefined
  readonly resource?: string | undefined
  readonly timeoutSeconds: number
  readonly caFile?: string | undefined
  readonly allowInsecureHttp: boolean
  readonly defaultExpiresInSeconds: number
  readonly invalidCredentialsCooldownSeconds: number
  readonly retry: RetryPolicy
  readonly preflightAuth: boolean
}

const defaultRetry: RetryPolicy = {
  maxAttempts: 4,
  initialBackoffSeconds: 0.5,
  maxBackoffSeconds: 10,
  maxElapsedSeconds: 30
}

const toModel = (input: typeof ServiceAccountConfigInput.Type): ServiceAccountConfig => {
  const st = input.service_token
  return {
    clientId: input.client_id.trim(),
    clientSecret: input.client_secret,
    tokenUrl: new URL(input.token_url.trim()),
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
    authMethod: input.auth_method,
    audience: input.audience,
    resource: input.resource,
    timeoutSeconds: input.timeout_seconds,
    caFile: input.ca_file,
    allowInsecureHttp: input.allow_insecure_http,
    defaultExpiresInSeconds: input.default_expires_in_seconds,
    invalidCredentialsCooldownSeconds: input.invalid_credentials_cooldown_seconds,
    retry: input.retry === undefined ? defaultRetry : {
      maxAttempts: input.retry.max_attempts,
      initialBackoffSeconds: input.retry.initial_backoff_seconds,
      maxBackoffSeconds: input.retry.max_backoff_seconds,
      maxElapsedSeconds: input.retry.max_elapsed_seconds
    },
    preflightAuth: input.preflight_auth
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Decoding with every problem at once
// ---------------------------------------------------------------------------------------------------------------------

const keysAt: Record<string, ReadonlyArray<string>> = {
  "": Object.keys(fields),
  service_token: Object.keys(ServiceTokenFields),
  retry: Object.keys(RetryFields)
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const schemaIssues = (input: unknown): Array<{ path: string; message: string }> => {
  const result = Schema.decodeUnknownEither(ServiceAccountConfigInput)(input, {
    errors: "all",
    onExcessProperty: "error"
  })
  if (Either.isRight(result)) return []
  const issues = ParseResult.ArrayFormatter.formatErrorSync(result.left)
    // an optional or nullable field fails on every union member; the "undefined"/"null" members add only noise
    .filter((issue) => !/^Expected (undefined|null), actual/.test(issue.message))
  return issues.map((issue) => {
    const path = issue.path.map(String)
    const key = path.join(".")
    if (issue._tag === "Unexpected") {
      const parent = path.slice(0, -1).join(".")
      const name = path[path.length - 1] ?? ""
      const suggestion = internal.closest(name, keysAt[parent] ?? [])
      const where = parent ? ` in ${parent}` : ""
      return {
        path: key,
        message: `unknown key ${JSON.stringify(name)}${where}` +
          (suggestion ? `: did you mean ${JSON.stringify(suggestion)}?` : ": remove it")
      }
    }
    if (issue._tag === "Missing" && issue.message === "is missing") {
      return { path: key, message: `${key} is required` }
    }
    return { path: key, message: issue.message }
  })
}

const crossFieldIssues = (input: Record<string, unknown>): Array<{ path: string; message: string }> => {
  const issues: Array<{ path: string; message: string }> = []
  const insecure = input.allow_insecure_http === true
  if (typeof input.token_url === "string" && input.token_url.trim().length > 0) {
    let url: URL | undefined
    try {
      url = new URL(input.token_url.trim())
    } catch {
      issues.push({
        path: "token_url",
        message: `token_url ${JSON.stringify(input.token_url)} is not a valid URL: use https://host/path`
      })
    }
    if (url !== undefined) {
      const loopback = internal.isLoopbackHost(url.hostname)
      if (url.protocol === "http:") {
        if (!loopback) {
          issues.push({
            path: "token_url",
            message: "token_url must use https: http is allowed only for loopback hosts"
          })
        } else if (!insecure) {
          issues.push({
            path: "token_url",
            message: "token_url must use https: for a loopback test server set allow_insecure_http: true"
          })
        }
      } else if (url.protocol !== "https:") {
        issues.push({ path: "token_url", message: `token_url must use https, got ${url.protocol.slice(0, -1)}` })
      }
      if (url.username || url.password) {
        issues.push({
          path: "token_url",
          message: "token_url must not contain credentials: use client_id and client_secret"
        })
      }
      if (url.hash) issues.push({ path: "token_url", message: "token_url must not have a #fragment" })
      if (insecure && !loopback) {
        issues.push({
          path: "allow_insecure_http",
          message: `allow_insecure_http is only accepted for loopback hosts, not ${url.hostname}`
        })
      }
    }
  }
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
  const retry = input.retry
  if (
    isRecord(retry) && typeof retry.initial_backoff_seconds === "number" &&
    typeof retry.max_backoff_seconds === "number" && retry.max_backoff_seconds < retry.initial_backoff_seconds
  ) {
    issues.push({
      path: "retry.max_backoff_seconds",
      message: "retry.max_backoff_seconds must be ≥ retry.initial_backoff_seconds"
    })
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
 * Decodes a provider block, reporting every problem at once.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const decodeEither = (
  input: unknown,
  options?: DecodeOptions
): Either.Either<ServiceAccountConfig, ConfigurationError> => {
  const prefix = options?.path ? `${options.path}.` : ""
  const fail = (issues: ReadonlyArray<{ path: string; message: string }>) =>
    Either.left(
      new ConfigurationError({
        issues: issues.map((i) =>
          new ConfigIssue({ path: `${prefix}${i.path}`.replace(/\.$/, ""), message: i.message })
        )
      })
    )
  if (!isRecord(input)) {
    return fail([{ path: "", message: "the service account config must be a map of keys to values" }])
  }
  const issues = [...schemaIssues(input), ...crossFieldIssues(input)]
  if (issues.length > 0) {
    const seen = new Set<string>()
    return fail(issues.filter((i) => {
      const k = `${i.path}\u0000${i.message}`
      return seen.has(k) ? false : (seen.add(k), true)
    }))
  }
  const decoded = Schema.decodeUnknownSync(ServiceAccountConfigInput)(input)
  return Either.right(toModel(decoded))
}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const decode = (
  input: unknown,
  options?: DecodeOptions
): Effect.Effect<ServiceAccountConfig, ConfigurationError> => decodeEither(input, options)

/**
 * @since 0.1.0
 * @category Constructors
 */
export const decodeSync = (input: unknown, options?: DecodeOptions): ServiceAccountConfig =>
  Either.getOrThrowWith(decodeEither(input, options), (e) => e)

/**
 * The environment variable each top-level key is read from by {@link fromEnv}:
 * `SERVICE_ACCOUNT_<KEY IN UPPER CASE>`, plus `SERVICE_ACCOUNT_SERVICE_TOKEN` and
 * `SERVICE_ACCOUNT_SERVICE_TOKEN_HEADER` for a static service token.
 *
 * @since 0.1.0
 * @category Constants
 */
export const envVariables: ReadonlyArray<{ readonly key: string; readonly variable: string }> = Object.keys(fields)
  .filter((key) => key !== "_type" && key !== "service_token" && key !== "retry")
  .map((key) => ({ key, variable: `SERVICE_ACCOUNT_${key.toUpperCase()}` }))

const typeName = (ast: SchemaAST.AST): string => {
  const identifier = SchemaAST.getIdentifierAnnotation(ast)
  if (Option.isSome(identifier) && ast._tag !== "Literal") return identifier.value
  switch (ast._tag) {
    case "StringKeyword":
      return "str"
    case "NumberKeyword":
      return "float"
    case "BooleanKeyword":
      return "bool"
    case "Literal":
      return ast.literal === null ? "None" : JSON.stringify(ast.literal)
    case "TupleType":
      return "list"
    case "TypeLiteral":
      return ast.indexSignatures.length > 0 ? "dict" : "object"
    case "UnknownKeyword":
      return "any"
    case "Declaration":
      return "object"
    case "Refinement":
      return typeName(ast.from)
    case "Transformation":
      return typeName(ast.from)
    case "Union":
      return [...new Set(ast.types.flatMap((t) => typeName(t).split(" | ")))].join(" | ")
    case "UndefinedKeyword":
      return "None"
    default:
      return ast._tag
  }
}

const fieldInfo = (field: Schema.Struct.Fields[string]): {
  readonly type: SchemaAST.AST
  readonly annotations: SchemaAST.Annotations
  readonly isOptional: boolean
} => {
  if (!Schema.isPropertySignature(field)) {
    return { type: field.ast, annotations: field.ast.annotations, isOptional: false }
  }
  const ast = field.ast
  return ast._tag === "PropertySignatureDeclaration"
    ? { type: ast.type, annotations: ast.annotations, isOptional: ast.isOptional }
    : {
      // a field with a default: describe the decoded side, which is never undefined
      type: ast.to.type,
      annotations: { ...ast.from.annotations, ...ast.to.annotations },
      isOptional: ast.from.isOptional
    }
}

const parseScalar = (key: string, raw: string): unknown => {
  const type = typeName(fieldInfo(fields[key as keyof typeof fields]).type)
  const text = raw.trim()
  if (type.startsWith("bool")) return text === "true" ? true : text === "false" ? false : raw
  if ((type.startsWith("float") || type.startsWith("int")) && text !== "" && !Number.isNaN(Number(text))) {
    return Number(text)
  }
  return raw
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
    Object.fromEntries(envVariables.map(({ key, variable }) => [key, Config.option(Config.string(variable))]))
  ),
  serviceToken: Config.option(Config.redacted("SERVICE_ACCOUNT_SERVICE_TOKEN")),
  serviceTokenHeader: Config.option(Config.string("SERVICE_ACCOUNT_SERVICE_TOKEN_HEADER"))
}).pipe(
  Config.mapOrFail(({ serviceToken, serviceTokenHeader, values }) => {
    const input: Record<string, unknown> = {}
    for (const { key } of envVariables) {
      const value = values[key]
      if (value !== undefined && Option.isSome(value)) {
        input[key] = key === "client_secret" ? Redacted.make(value.value) : parseScalar(key, value.value)
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
      (error) =>
        ConfigError.InvalidData(
          [],
          error.issues.map((i) =>
            i.path in fields ? i.message.replace(/\$\{[A-Z_]+\}/, `SERVICE_ACCOUNT_${i.path.toUpperCase()}`) : i.message
          ).join("; ")
        )
    )
  })
)

/**
 * A description of every field, nested ones included, derived from the Schema (used by `mcp-auth info`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface FieldDoc {
  readonly name: string
  readonly type: string
  readonly description: string
  readonly required: boolean
  readonly default?: unknown
}

const nestedFields: Record<string, Schema.Struct.Fields> = { service_token: ServiceTokenFields, retry: RetryFields }

const describeFields = (structFields: Schema.Struct.Fields, prefix: string): Array<FieldDoc> =>
  Object.entries(structFields).flatMap(([key, field]) => {
    const { annotations, isOptional, type } = fieldInfo(field)
    const name = `${prefix}${key}`
    const doc: FieldDoc = {
      name,
      type: typeName(type),
      description: String(annotations[SchemaAST.DescriptionAnnotationId] ?? ""),
      required: !isOptional,
      ...(SchemaAST.DefaultAnnotationId in annotations ? { default: annotations[SchemaAST.DefaultAnnotationId] } : {})
    }
    const nested = nestedFields[key]
    return nested && prefix === "" ? [doc, ...describeFields(nested, `${name}.`)] : [doc]
  })

/**
 * Every field, nested ones included, in Schema order, read from the Schema itself so it cannot drift.
 *
 * @since 0.1.0
 * @category Models
 */
export const fieldDocs: ReadonlyArray<FieldDoc> = describeFields(fields, "")

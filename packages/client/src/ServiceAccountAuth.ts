/**
 * The Promise API, for code that does not use Effect:
 *
 * ```ts
 * import { createServiceAccountAuth } from "@mcp-auth/client"
 * import { Client } from "@modelcontextprotocol/sdk/client/index.js"
 * import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
 *
 * const serverUrl = "https://mcp.example.com/mcp"
 * const auth = createServiceAccountAuth({
 *   client_id: process.env.SERVICE_ACCOUNT_CLIENT_ID,
 *   client_secret: process.env.SERVICE_ACCOUNT_CLIENT_SECRET,
 *   token_url: "https://idp.example.com/oauth2/token",
 *   scopes: "mcp:tools"
 * }, { serverUrl })
 * const client = new Client({ name: "reports-agent", version: "1.0.0" })
 * await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { fetch: auth.fetch }))
 * await client.close()
 * await auth.close()
 * ```
 *
 * Errors are the same typed errors as the Effect API (real `Error` subclasses with a `_tag`:
 * `InvalidCredentialsError`, `RateLimitedError`, `TlsError`, …), thrown as-is.
 *
 * Quiet by default: nothing is ever written to stdout (a stdio MCP server or a CLI piping JSON stays intact);
 * warnings and errors go to stderr. `logLevel` and `logger` change that (see {@link Options}).
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import type { ConfigurationError, ServiceTokenError } from "@mcp-auth/service-account/ServiceAccountError"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as EffectLogger from "effect/Logger"
import * as EffectLogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import type * as Runtime from "effect/Runtime"
import * as AuthenticatedFetch from "./AuthenticatedFetch.js"
import * as OAuthProviderAdapter from "./OAuthProviderAdapter.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The MCP endpoint `fetch` authenticates (requests elsewhere pass through untouched). */
  readonly serverUrl?: URL | string | undefined
  /** The fetch to delegate to, e.g. one trusting an internal CA (see `TrustedFetch`). */
  readonly fetch?: AuthenticatedFetch.FetchLike | undefined
  /** Static headers for MCP requests; auth headers win. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Provider name for metrics and logs (default: the client id). */
  readonly name?: string | undefined
  /** Resolves `service_token.function` references given as strings. */
  readonly loadFunction?: ServiceToken.FunctionLoader | undefined
  /** The HTTP client for the token endpoint (default: undici trusting the system roots plus `ca_file`). */
  readonly httpClient?: Layer.Layer<HttpClient.HttpClient, ConfigurationError> | undefined
  /**
   * The least severe level logged (default `"warning"`: retries, degraded serving, latched credentials). Routine
   * events (token fetched, acquired, dropped after a 401) are `"debug"`; `"none"` logs nothing. Nothing is logged at
   * `"error"`: failures reach you as rejected promises. No log line holds a secret or a token.
   */
  readonly logLevel?: LogLevel | undefined
  /**
   * Where log lines go (default: stderr, one logfmt line each; never stdout). Any object with `debug`, `info`,
   * `warn` and `error` methods taking `(message, fields?)`, e.g. `console` or a winston logger. `fields` holds the
   * line's annotations (`token_url`, `attempt`, `error` tag, …); it is omitted when there are none. Exceptions thrown
   * by the logger are ignored.
   */
  readonly logger?: Logger | undefined
}

/**
 * Log levels of the Promise API, least verbose first. `"fatal"` and `"trace"` exist for completeness (the library
 * logs neither).
 *
 * @since 0.1.0
 * @category Models
 */
export type LogLevel = "none" | "fatal" | "error" | "warning" | "info" | "debug" | "trace" | "all"

/**
 * A logger of your own for {@link Options.logger}: console-compatible (`console` itself is one). Fatal lines go to
 * `error`, trace lines to `debug`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Logger {
  readonly debug: (message: string, fields?: Readonly<Record<string, unknown>>) => void
  readonly info: (message: string, fields?: Readonly<Record<string, unknown>>) => void
  readonly warn: (message: string, fields?: Readonly<Record<string, unknown>>) => void
  readonly error: (message: string, fields?: Readonly<Record<string, unknown>>) => void
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface TokenInfo {
  readonly accessToken: string
  readonly tokenType: "Bearer"
  readonly expiresAt: Date
  readonly scopes: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface ServiceAccountAuth {
  /** A fetch for the SDK's transports, authenticating requests to `serverUrl` only. */
  readonly fetch: AuthenticatedFetch.FetchLike
  /** The ordered auth headers for one request (`Authorization`, then the service header). */
  readonly getHeaders: (request?: {
    readonly url?: URL | string | undefined
    readonly method?: string | undefined
    readonly mcpMethod?: string | undefined
  }) => Promise<Record<string, string>>
  /** The current bearer token. Keep it in memory only. */
  readonly getToken: () => Promise<TokenInfo>
  /** Drops the cached token if it is `accessToken` (after a 401 from an API you call yourself). */
  readonly invalidate: (accessToken: string) => Promise<boolean>
  readonly state: () => Promise<TokenProvider.TokenState>
  /** The SDK `OAuthClientProvider` adapter over the same token cache (see its limits). */
  readonly authProvider: (serverUrl?: URL | string) => OAuthClientProvider
  /** Stops background refreshes and closes connections. */
  readonly close: () => Promise<void>
}

interface Services {
  readonly provider: TokenProvider.TokenProvider
  readonly serviceToken: ServiceToken.ServiceToken
  readonly auth: AuthHeaders.AuthHeaders
  readonly runtime: Runtime.Runtime<TokenProvider.TokenProvider | ServiceToken.ServiceToken>
}

/**
 * Creates the auth for one service account. `config` is the provider block as NAT users write it (snake_case keys);
 * it is validated at once and a `ConfigurationError` listing every problem is thrown if it is wrong.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const createServiceAccountAuth = (config: unknown, options: Options = {}): ServiceAccountAuth => {
  const logLayer = logging(options)
  const decoded = ServiceAccountConfig.decodeSync(config)
  const layer = Layer.merge(
    TokenProvider.layer(decoded, { name: options.name }).pipe(
      Layer.provide(options.httpClient ?? TokenHttpClient.layerFromConfig(decoded))
    ),
    ServiceToken.layerFromConfig(decoded, { loadFunction: options.loadFunction, name: options.name })
  )
  const runtime = ManagedRuntime.make(Layer.provide(layer, logLayer))
  const run = <A, E>(effect: Effect.Effect<A, E, TokenProvider.TokenProvider | ServiceToken.ServiceToken>) =>
    runtime.runPromiseExit(effect).then((exit) =>
      Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
    )

  let closed = false
  const closedError = () => new Error("createServiceAccountAuth: this auth was closed; create a new one")

  // Resolved once; the hot paths then read the token synchronously with TokenProvider.peek.
  let ready: Services | undefined
  const services = run(Effect.gen(function*() {
    const provider = yield* TokenProvider.TokenProvider
    const serviceToken = yield* ServiceToken.ServiceToken
    const auth = yield* AuthHeaders.make
    const rt = yield* Effect.runtime<TokenProvider.TokenProvider | ServiceToken.ServiceToken>()
    return (ready = { provider, serviceToken, auth, runtime: rt })
  }))
  // surfaced by the first call; never an unhandled rejection
  services.catch(() => undefined)

  const serverFetch = services.then(({ auth, runtime: rt }) =>
    options.serverUrl === undefined
      ? undefined
      : AuthenticatedFetch.makeWith(auth, rt, {
        serverUrl: options.serverUrl,
        fetch: options.fetch,
        headers: options.headers
      })
  )
  serverFetch.catch(() => undefined)

  const tokenInfo = (token: AccessToken.AccessToken): TokenInfo => ({
    accessToken: Redacted.value(token.token),
    tokenType: "Bearer",
    expiresAt: new Date(token.expiresAt),
    scopes: [...token.scopes]
  })

  // header records per bearer token when the service header does not depend on the request
  const recordFor = new WeakMap<AccessToken.AccessToken, Record<string, string>>()
  const defaultContext = RequestContext.make(options.serverUrl ?? decoded.tokenUrl, "POST")

  const slowHeaders = async (request: Parameters<ServiceAccountAuth["getHeaders"]>[0]) => {
    const { auth, serviceToken } = await services
    const context = request === undefined
      ? defaultContext
      : RequestContext.make(request.url ?? options.serverUrl ?? decoded.tokenUrl, request.method ?? "POST", {
        mcpMethod: request.mcpMethod
      })
    const set = await run(auth.forRequest(context) as Effect.Effect<AuthHeaders.AuthHeaderSet, ServiceTokenError>)
    const headers = AuthHeaders.toRecord(set)
    if (serviceToken.constant !== undefined) recordFor.set(set.token, headers)
    return { ...headers }
  }

  return {
    fetch: async (url, init) => {
      if (closed) throw closedError()
      const f = await serverFetch
      if (f === undefined) {
        throw new Error(
          "createServiceAccountAuth: pass options.serverUrl to use fetch (it authenticates that server only)"
        )
      }
      return f(url, init)
    },
    getHeaders: (request) => {
      if (closed) return Promise.reject(closedError())
      if (ready !== undefined && ready.serviceToken.constant !== undefined) {
        const token = ready.provider.peek()
        const cached = token === undefined ? undefined : recordFor.get(token)
        if (cached !== undefined) return Promise.resolve({ ...cached })
      }
      return slowHeaders(request)
    },
    getToken: () => {
      if (closed) return Promise.reject(closedError())
      const token = ready?.provider.peek()
      return token !== undefined
        ? Promise.resolve(tokenInfo(token))
        : services.then(({ provider }) => run(provider.get)).then(tokenInfo)
    },
    invalidate: (accessToken) =>
      run(Effect.flatMap(
        TokenProvider.TokenProvider,
        (p) => p.invalidate(AccessToken.make({ token: accessToken, issuedAt: 0, expiresInSeconds: 0 }))
      )),
    state: async () => run(Effect.flatMap(TokenProvider.TokenProvider, (p) => p.state)),
    authProvider: (serverUrl) =>
      OAuthProviderAdapter.makeWith(decoded, run, { serverUrl: serverUrl ?? options.serverUrl }),
    close: () => {
      closed = true
      return runtime.dispose()
    }
  }
}

const levels: Readonly<Record<LogLevel, EffectLogLevel.LogLevel>> = {
  none: EffectLogLevel.None,
  fatal: EffectLogLevel.Fatal,
  error: EffectLogLevel.Error,
  warning: EffectLogLevel.Warning,
  info: EffectLogLevel.Info,
  debug: EffectLogLevel.Debug,
  trace: EffectLogLevel.Trace,
  all: EffectLogLevel.All
}

const text = (part: unknown): string => {
  if (typeof part === "string") return part
  if (part instanceof Error) return part.message
  try {
    return JSON.stringify(part) ?? String(part)
  } catch {
    return String(part)
  }
}

/** Effect log lines to a {@link Logger}. */
const toLogger = (target: Logger): EffectLogger.Logger<unknown, void> =>
  EffectLogger.make(({ annotations, cause, logLevel, message }) => {
    const fields: Record<string, unknown> = {}
    for (const [key, value] of HashMap.toEntries(annotations)) fields[key] = value
    if (!Cause.isEmpty(cause)) fields.cause = Cause.pretty(cause)
    const line = Array.isArray(message) ? message.map(text).join(" ") : text(message)
    const method = logLevel.ordinal >= EffectLogLevel.Error.ordinal
      ? target.error
      : logLevel.ordinal >= EffectLogLevel.Warning.ordinal
      ? target.warn
      : logLevel.ordinal >= EffectLogLevel.Info.ordinal
      ? target.info
      : target.debug
    try {
      if (Object.keys(fields).length === 0) method.call(target, line)
      else method.call(target, line, fields)
    } catch {
      // a logger that throws must not break token requests
    }
  })

/**
 * The runtime's logging: Effect's default logger (which prints to stdout) is replaced by a stderr logger or the
 * user's, behind the minimum level. Wrong options throw at once, like a wrong config.
 */
const logging = (options: Options): Layer.Layer<never> => {
  const level = options.logLevel === undefined
    ? EffectLogLevel.Warning
    : Object.hasOwn(levels, options.logLevel)
    ? levels[options.logLevel]
    : undefined
  if (level === undefined) {
    throw new TypeError(
      `createServiceAccountAuth: options.logLevel must be one of ${Object.keys(levels).join(", ")}, got ${
        JSON.stringify(options.logLevel)
      }`
    )
  }
  const target = options.logger
  if (
    target !== undefined &&
    (["debug", "info", "warn", "error"] as const).some((method) => typeof target[method] !== "function")
  ) {
    throw new TypeError("createServiceAccountAuth: options.logger needs debug, info, warn and error methods")
  }
  return Layer.merge(
    EffectLogger.replace(
      EffectLogger.defaultLogger,
      target === undefined ? EffectLogger.withConsoleError(EffectLogger.logfmtLogger) : toLogger(target)
    ),
    EffectLogger.minimumLogLevel(level)
  )
}

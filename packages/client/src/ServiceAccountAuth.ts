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
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import type { ServiceTokenError } from "@mcp-auth/service-account/ServiceAccountError"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import * as SharedTokenStoreRedis from "@mcp-auth/service-account/SharedTokenStoreRedis"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as EffectLogger from "effect/Logger"
import * as EffectLogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as AuthenticatedFetch from "./AuthenticatedFetch.js"
import * as OAuthProviderAdapter from "./OAuthProviderAdapter.js"
import * as TrustedFetch from "./TrustedFetch.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The MCP endpoint `fetch` authenticates (requests elsewhere pass through untouched). */
  readonly serverUrl?: URL | string | undefined
  /**
   * The fetch to delegate to. Default: undici with the provider's connection settings (as for its token endpoint):
   * `ca_file`, the TLS client certificate (so certificate-bound tokens, RFC 8705, are accepted) and `proxy_url`, else
   * `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` as they were when the auth was created. For an MCP server trusting
   * another CA, pass `TrustedFetch.fromConfig(config, { caFile })`'s fetch.
   */
  readonly fetch?: AuthenticatedFetch.FetchLike | undefined
  /** Static headers for MCP requests; auth headers win. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Provider name for metrics and logs (default: the client id). */
  readonly name?: string | undefined
  /** Resolves `service_token.function` and `client_assertion.function` references given as strings. */
  readonly loadFunction?: ServiceToken.FunctionLoader | undefined
  /**
   * The HTTP client for the token endpoint (default: undici trusting the system roots plus `ca_file`, presenting the
   * TLS client certificate, through `proxy_url` or the proxy variables).
   */
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
  /**
   * The fleet's shared token store (`shared_cache`): a store you made (for example one
   * `SharedTokenStoreRedis.make` shared by many auths), or the ioredis client to use. Default, with `shared_cache.url`:
   * a connection of this auth's own.
   */
  readonly sharedStore?: SharedTokenStore.Store | SharedTokenStoreRedis.RedisClient | undefined
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
  /**
   * The ordered auth headers for one request (`Authorization`, then the service header). A method, the hot path of
   * every request: call it on the auth (`auth.getHeaders()`), or bind it (`() => auth.getHeaders()`) to pass it on.
   * Every other member may be passed on as it is (`{ fetch: auth.fetch }`, `auth.close`).
   */
  getHeaders(request?: HeadersRequest): Promise<Record<string, string>>
  /** The current bearer token. Keep it in memory only. */
  readonly getToken: () => Promise<TokenInfo>
  /**
   * Drops the cached token if it is `accessToken` (after a 401 from an API you call yourself), and says what it did:
   *
   * - `{ _tag: "Dropped" }`: it was the cached token and is gone; the next call fetches a new one. Retry your request
   *   with a fresh `getHeaders()`.
   * - `{ _tag: "NotCurrent" }`: the cache no longer holds it (another caller's 401 dropped it, or it was refreshed);
   *   retry with a fresh `getHeaders()`, which returns the current token.
   * - `{ _tag: "Throttled", retryAfterMillis }`: it is the cached token, but a token was dropped less than a second
   *   ago, and drops are at most one per second (so a server that rejects every token cannot turn each request into a
   *   token request). A second 401 this soon means the server rejects the new token too (wrong audience or scopes):
   *   treat it as the server refusing this client, or wait `retryAfterMillis` before invalidating again.
   */
  readonly invalidate: (accessToken: string) => Promise<TokenProvider.InvalidateResult>
  readonly state: () => Promise<TokenProvider.TokenState>
  /** The SDK `OAuthClientProvider` adapter over the same token cache (see its limits). */
  readonly authProvider: (serverUrl?: URL | string) => OAuthClientProvider
  /**
   * Stops this provider's background refresh and closes its scope; the connections to the token endpoint close with
   * the last provider sharing them (see {@link createServiceAccountAuth}). Every later call rejects.
   */
  readonly close: () => Promise<void>
}

/**
 * The request `getHeaders` resolves headers for (a service-token function may depend on it).
 *
 * @since 0.1.0
 * @category Models
 */
export interface HeadersRequest {
  readonly url?: URL | string | undefined
  readonly method?: string | undefined
  readonly mcpMethod?: string | undefined
}

interface Services {
  readonly provider: TokenProvider.TokenProvider
  readonly serviceToken: ServiceToken.ServiceToken
  readonly auth: AuthHeaders.AuthHeaders
  /** The shared runtime. */
  readonly base: Runtime.Runtime<HttpClient.HttpClient>
}

/** The service token of every provider without one. */
const noServiceToken: ServiceToken.ServiceToken = Context.get(
  Effect.runSync(Effect.scoped(Layer.build(ServiceToken.none))),
  ServiceToken.ServiceToken
)

/**
 * What providers in one process share: one runtime holding the token endpoint's HTTP client (one connection pool, also
 * used by `fetch` for the MCP server) and the logging, per distinct HTTP client (`options.httpClient`, else the
 * connection settings: `ca_file`, the TLS client certificate and key files and passphrase, `proxy_url` or the proxy
 * variables, see {@link connectionKey}) and logging (`logger`, `logLevel`). Providers whose options differ in any of
 * those get their own, so each keeps its own behaviour. The runtime lives while a provider uses it: the last
 * `close()` disposes of it (its connections close). Metrics go to Effect's one global registry, shared anyway.
 */
interface Shared {
  readonly runtime: ManagedRuntime.ManagedRuntime<HttpClient.HttpClient, ConfigurationError>
  readonly path: readonly [client: unknown, logger: unknown, level: EffectLogLevel.LogLevel]
  users: number
}

/** client key → logger (or undefined) → level → shared runtime */
const shared = new Map<unknown, Map<unknown, Map<EffectLogLevel.LogLevel, Shared>>>()

const lookupShared = (path: Shared["path"]): Shared | undefined => shared.get(path[0])?.get(path[1])?.get(path[2])

const forgetShared = (entry: Shared): void => {
  const [client, logger, level] = entry.path
  const byLogger = shared.get(client)
  const byLevel = byLogger?.get(logger)
  if (byLevel?.get(level) !== entry) return
  byLevel.delete(level)
  if (byLevel.size === 0) byLogger!.delete(logger)
  if (byLogger!.size === 0) shared.delete(client)
}

const acquireShared = (
  path: Shared["path"],
  make: () => Layer.Layer<HttpClient.HttpClient, ConfigurationError>
): Shared => {
  let entry = lookupShared(path)
  if (entry === undefined) {
    const created: Shared = { runtime: ManagedRuntime.make(make()), path, users: 0 }
    const [client, logger, level] = path
    let byLogger = shared.get(client)
    if (byLogger === undefined) shared.set(client, byLogger = new Map())
    let byLevel = byLogger.get(logger)
    if (byLevel === undefined) byLogger.set(logger, byLevel = new Map())
    byLevel.set(level, created)
    // a runtime that failed to build (e.g. an unreadable ca_file) is not handed to later providers: they try again
    created.runtime.runtime().catch(() => forgetShared(created))
    entry = created
  }
  entry.users++
  return entry
}

const releaseShared = (entry: Shared): Promise<void> => {
  entry.users--
  if (entry.users > 0) return Promise.resolve()
  forgetShared(entry)
  return entry.runtime.dispose()
}

/** Keys the connection keys are HMACs with: secrets in them cannot be recovered from the key, even offline. */
let connectionKeySecret: Buffer | undefined

const PROXY_ENV = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"] as const

/**
 * What the default HTTP client of a provider depends on, as one opaque string: the CA bundle, the client certificate
 * (files and passphrase), `proxy_url`, and the environment the dispatcher reads when it is made (the proxy variables
 * and `NODE_EXTRA_CA_CERTS`). Secret values (passphrase, proxy credentials) enter only through a keyed hash.
 */
const connectionKey = (config: ServiceAccountConfig.ServiceAccountConfig): string => {
  const tls = config.tlsClientCertificate
  const parts = [
    config.caFile ?? null,
    config.caFile === undefined ? null : process.env.NODE_EXTRA_CA_CERTS ?? null,
    tls?.certificateFile ?? null,
    tls?.keyFile ?? null,
    tls?.passphrase === undefined ? null : Redacted.value(tls.passphrase),
    config.proxyUrl === undefined ? null : Redacted.value(config.proxyUrl),
    config.proxyUrl === undefined ? PROXY_ENV.map((name) => process.env[name] ?? null) : null
  ]
  connectionKeySecret ??= Crypto.randomBytes(32)
  return `connection:${
    Crypto.createHmac("sha256", connectionKeySecret).update(JSON.stringify(parts)).digest("base64url")
  }`
}

/**
 * The default HTTP client of a provider, with its dispatcher kept in the context: `fetch` sends MCP requests through
 * the same connection settings (and pool).
 */
const defaultHttpClient = (
  config: ServiceAccountConfig.ServiceAccountConfig
): Layer.Layer<HttpClient.HttpClient | NodeHttpClient.Dispatcher, ConfigurationError> =>
  NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
    Layer.provideMerge(
      Layer.scoped(
        NodeHttpClient.Dispatcher,
        TokenHttpClient.makeDispatcher(TokenHttpClient.optionsFromConfig(config))
      )
    )
  )

/** The shared token store: the one given, one over the client given, or a connection to `shared_cache.url`. */
const sharedStoreOf = (
  decoded: ServiceAccountConfig.ServiceAccountConfig,
  given: Options["sharedStore"]
): Effect.Effect<SharedTokenStore.Store | undefined, ConfigurationError, Scope.Scope> => {
  if (given !== undefined && "tryLock" in given) return Effect.succeed(given)
  if (given === undefined && decoded.sharedCache?.url === undefined) return Effect.succeed(undefined)
  return SharedTokenStoreRedis.make({
    url: decoded.sharedCache?.url,
    caFile: decoded.sharedCache?.caFile,
    client: given
  })
}

/** This provider's token provider, service token and header builder, in its own scope. */
const build = (
  decoded: ServiceAccountConfig.ServiceAccountConfig,
  options: Options,
  scope: Scope.Scope
): Effect.Effect<Omit<Services, "base">, ServiceTokenError | ConfigurationError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const store = yield* sharedStoreOf(decoded, options.sharedStore).pipe(Scope.extend(scope))
    const provider = yield* TokenProvider.make(decoded, {
      name: options.name,
      loadFunction: options.loadFunction,
      mcpUrl: options.serverUrl
    })
      .pipe(
        store === undefined ? identity : Effect.provideService(SharedTokenStore.SharedTokenStore, store),
        Scope.extend(scope)
      )
    const serviceToken = decoded.serviceToken === undefined
      ? noServiceToken
      : Context.get(
        yield* Layer.buildWithScope(
          ServiceToken.layerFromConfig(decoded, { loadFunction: options.loadFunction, name: options.name }),
          scope
        ),
        ServiceToken.ServiceToken
      )
    const auth = yield* AuthHeaders.make.pipe(
      Effect.provideService(TokenProvider.TokenProvider, provider),
      Effect.provideService(ServiceToken.ServiceToken, serviceToken)
    )
    return { provider, serviceToken, auth }
  })

const settle = <A>(exit: Exit.Exit<A, unknown>): A | Promise<never> =>
  Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))

/** Cache hits counted here reach the metric in batches of this many (and at every change of token). */
const HIT_BATCH = 256

/**
 * What every method of a closed auth rejects with (and a call in flight when `close()` ended it): `close()` was
 * called on this auth; create a new one.
 *
 * @since 0.2.0
 * @category Errors
 */
export class AuthClosedError extends Error {
  /**
   * @since 0.2.0
   */
  readonly _tag = "AuthClosedError" as const
  constructor() {
    super("createServiceAccountAuth: this auth was closed (close() was called); create a new one")
    this.name = "AuthClosedError"
  }
}

const closedError = () => new AuthClosedError()

/** A call that `close()` interrupted rejects with `AuthClosedError`, not with Effect's interruption. */
const settleOrClosed = (closed: () => boolean) => <A>(exit: Exit.Exit<A, unknown>): A | Promise<never> =>
  Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) && closed()
    ? Promise.reject(closedError())
    : settle(exit)

const tokenInfo = (token: AccessToken.AccessToken): TokenInfo => ({
  accessToken: Redacted.value(token.token),
  tokenType: "Bearer",
  expiresAt: new Date(token.expiresAt),
  scopes: [...token.scopes]
})

/**
 * One provider of the Promise API. Thousands may share a process, so it is one object, and the runtime, the HTTP
 * client and the logging are the shared entry's. Its public members are bound (callers pass `auth.fetch` and
 * `auth.close` around) except `getHeaders`, a prototype method: a warm call reads this object only (the token
 * provider keeps its mirror here), which keeps it cheap when thousands of providers take turns (each object a call
 * touches is a likely cache miss).
 */
class Auth implements ServiceAccountAuth, TokenProvider.Mirror {
  /**
   * The warm path, kept by the token provider (`TokenProvider.mirror`) and `slowHeaders`. `serving`: the provider may
   * serve the token `#lastBearer` was built from; `untilSeconds`: until when (whole seconds, rounded down, so the check
   * reads a small integer held in this object rather than a boxed number). `#lastHeaders`: without a service header
   * `undefined` (the warm path builds `{ Authorization }`, cheaper than copying a record), else the whole record. A new
   * object per call: callers may change what they get. These fields come first: they share a cache line.
   */
  private serving = false
  private untilSeconds = 0
  hits = 0
  private closed = false
  #lastBearer = ""
  #lastHeaders: Record<string, string> | undefined = undefined
  private clock: Clock.Clock | undefined = undefined
  /** What the provider serves, and the token of `#lastBearer` (request-independent headers only). */
  private current: AccessToken.AccessToken | undefined = undefined
  private lastToken: AccessToken.AccessToken | undefined = undefined
  private closing: Promise<void> | undefined = undefined
  /** Set once built; the hot paths then read the token synchronously with `TokenProvider.peek`. */
  private provider: TokenProvider.TokenProvider | undefined = undefined
  private readonly services: Promise<Services>
  /** Built on first use: most providers never call `fetch`. */
  private serverFetch: Promise<AuthenticatedFetch.FetchLike | undefined> | undefined = undefined

  constructor(
    private readonly decoded: ServiceAccountConfig.ServiceAccountConfig,
    private readonly options: Options,
    private readonly entry: Shared,
    /** This provider's token cache, background refresh and service token live here. */
    private readonly scope: Scope.CloseableScope
  ) {
    this.services = entry.runtime.runtime().then((base) =>
      Runtime.runPromise(base, build(decoded, options, scope)).then((built) => {
        this.provider = built.provider
        this.clock = TokenProvider.mirror(built.provider, this)
        return { ...built, base }
      })
    )
    // surfaced by the first call; never an unhandled rejection
    this.services.catch(() => undefined)
  }

  /** Runs an effect in the shared runtime (its logging), with this provider's services. */
  private run<A, E>(effect: Effect.Effect<A, E, TokenProvider.TokenProvider | ServiceToken.ServiceToken>): Promise<A> {
    return this.services.then(({ base, provider, serviceToken }) =>
      Runtime.runPromiseExit(
        base,
        effect.pipe(
          Effect.provideService(TokenProvider.TokenProvider, provider),
          Effect.provideService(ServiceToken.ServiceToken, serviceToken)
        )
      )
    ).then(settleOrClosed(() => this.closed))
  }

  /**
   * The fetch MCP requests go through: `options.fetch`, else the shared runtime's dispatcher (the token endpoint's
   * connection settings), else (a custom `httpClient`) a dispatcher with the provider's connection settings in this
   * provider's scope.
   */
  private async baseFetch(base: Runtime.Runtime<HttpClient.HttpClient>): Promise<AuthenticatedFetch.FetchLike> {
    if (this.options.fetch !== undefined) return this.options.fetch
    const dispatcher = Context.getOption(base.context, NodeHttpClient.Dispatcher)
    if (Option.isSome(dispatcher)) return TrustedFetch.fromDispatcher(dispatcher.value)
    return Runtime.runPromiseExit(base, Scope.extend(TrustedFetch.fromConfig(this.decoded), this.scope)).then(settle)
  }

  readonly fetch: AuthenticatedFetch.FetchLike = async (url, init) => {
    if (this.closed) throw closedError()
    const f =
      await (this.serverFetch ??= this.services.then(async ({ auth, base, provider, serviceToken }) =>
        this.options.serverUrl === undefined
          ? undefined
          : AuthenticatedFetch.makeWith(
            auth,
            Runtime.make({
              context: base.context.pipe(
                Context.add(TokenProvider.TokenProvider, provider),
                Context.add(ServiceToken.ServiceToken, serviceToken)
              ),
              fiberRefs: base.fiberRefs,
              runtimeFlags: base.runtimeFlags
            }),
            { serverUrl: this.options.serverUrl, fetch: await this.baseFetch(base), headers: this.options.headers }
          )
      ))
    if (f === undefined) {
      throw new Error(
        "createServiceAccountAuth: pass options.serverUrl to use fetch (it authenticates that server only)"
      )
    }
    return f(url, init)
  }

  /** The provider's call (`TokenProvider.Mirror`): what it serves now, and until when. */
  update(token: AccessToken.AccessToken | undefined, until: number): void {
    this.current = token
    this.untilSeconds = Math.floor(until / 1000)
    this.serving = token !== undefined && token === this.lastToken
  }

  getHeaders(request?: HeadersRequest): Promise<Record<string, string>> {
    if (this.closed) return Promise.reject(closedError())
    if (this.serving && this.clock!.unsafeCurrentTimeMillis() < this.untilSeconds * 1000) {
      if (++this.hits === HIT_BATCH) TokenProvider.flushMirror(this.provider!, this)
      const headers = this.#lastHeaders
      return Promise.resolve(headers === undefined ? { Authorization: this.#lastBearer } : { ...headers })
    }
    return this.slowHeaders(request)
  }

  private async slowHeaders(request: HeadersRequest | undefined): Promise<Record<string, string>> {
    const { auth, provider, serviceToken } = await this.services
    const serverUrl = this.options.serverUrl ?? this.decoded.tokenUrl ?? (await this.run(provider.resolved)).tokenUrl
    const context = request === undefined
      ? RequestContext.make(serverUrl, "POST")
      : RequestContext.make(request.url ?? serverUrl, request.method ?? "POST", { mcpMethod: request.mcpMethod })
    const set = await this.run(auth.forRequest(context) as Effect.Effect<AuthHeaders.AuthHeaderSet, ServiceTokenError>)
    const headers = AuthHeaders.toRecord(set)
    if (serviceToken.constant !== undefined) {
      this.#lastHeaders = Object.keys(headers).length === 1 ? undefined : headers
      this.#lastBearer = headers.Authorization!
      this.lastToken = set.token
      this.serving = this.clock !== undefined && set.token === this.current
    }
    return { ...headers }
  }

  readonly getToken = (): Promise<TokenInfo> => {
    if (this.closed) return Promise.reject(closedError())
    const token = this.provider?.peek()
    return token !== undefined
      ? Promise.resolve(tokenInfo(token))
      : this.services.then(({ provider }) => this.run(provider.get)).then(tokenInfo)
  }

  readonly invalidate = (accessToken: string): Promise<TokenProvider.InvalidateResult> => {
    if (this.closed) return Promise.reject(closedError())
    return this.services.then(({ provider }) =>
      this.run(provider.invalidate(AccessToken.make({ token: accessToken, issuedAt: 0, expiresInSeconds: 0 })))
    )
  }

  readonly state = (): Promise<TokenProvider.TokenState> => {
    if (this.closed) return Promise.reject(closedError())
    return this.services.then(({ provider }) => this.run(provider.state))
  }

  readonly authProvider = (serverUrl?: URL | string): OAuthClientProvider => {
    return OAuthProviderAdapter.makeWith(this.decoded, (effect) => this.run(effect), {
      serverUrl: serverUrl ?? this.options.serverUrl,
      loadFunction: this.options.loadFunction
    })
  }

  readonly close = (): Promise<void> => {
    this.closed = true
    // once this provider is built (or has failed to build), its scope closes in the shared runtime (its finalizers log
    // through the same logger); the shared runtime is disposed of with its last provider
    return this.closing ??= this.services.then(() => undefined, () => undefined)
      .then(() => this.entry.runtime.runPromise(Scope.close(this.scope, Exit.void)))
      .catch(() => undefined)
      .then(() => releaseShared(this.entry))
  }
}

/**
 * Creates the auth for one service account. `config` is the provider block as NAT users write it (snake_case keys);
 * it is validated at once and a `ConfigurationError` listing every problem is thrown if it is wrong.
 *
 * Many providers in one process are cheap: providers created with the same `httpClient` (else the same connection
 * settings: `ca_file`, TLS client certificate, `proxy_url` or proxy variables), `logger` and `logLevel` share one
 * runtime, one HTTP connection pool and the metrics registry; each keeps its own token cache, refresh schedule and
 * scope, closed by its own `close()`.
 *
 * Every client authentication works here (`client_secret_file`, `private_key_jwt`, `client_assertion`, the TLS
 * methods, the `jwt_bearer` grant); a `client_assertion.function` given as `"module#export"` needs
 * `options.loadFunction` (a function value needs none). A key, secret or assertion file that cannot be read when a
 * token is needed rejects with `ClientCredentialError`, like the other token errors.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const createServiceAccountAuth = (config: unknown, options: Options = {}): ServiceAccountAuth => {
  const level = logLevelOf(options)
  checkLogger(options)
  const decoded = ServiceAccountConfig.decodeSync(config)
  if (decoded.sharedCache !== undefined && decoded.sharedCache.url === undefined && options.sharedStore === undefined) {
    throw new ConfigurationError({
      issues: [
        new ConfigIssue({
          path: "shared_cache.url",
          message: "shared_cache needs url (the Redis URL), or pass options.sharedStore (a store or an ioredis client)"
        })
      ]
    })
  }
  if (decoded.discovery?.from === "mcp_server" && options.serverUrl === undefined) {
    throw new ConfigurationError({
      issues: [
        new ConfigIssue({
          path: "token_url",
          message: "the token endpoint is discovered from the MCP server: pass options.serverUrl (or set token_url " +
            "or issuer)"
        })
      ]
    })
  }
  const entry = acquireShared(
    [options.httpClient ?? connectionKey(decoded), options.logger, level],
    () => Layer.merge(options.httpClient ?? defaultHttpClient(decoded), logging(options, level))
  )
  return new Auth(decoded, options, entry, Effect.runSync(Scope.make()))
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

/** The minimum level of `options.logLevel`; a wrong one throws at once, like a wrong config. */
const logLevelOf = (options: Options): EffectLogLevel.LogLevel => {
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
  return level
}

/**
 * The runtime's logging: Effect's default logger (which prints to stdout) is replaced by a stderr logger or the
 * user's, behind the minimum level. Wrong options throw at once, like a wrong config.
 */
const checkLogger = (options: Options): void => {
  const target = options.logger
  if (
    target !== undefined &&
    (["debug", "info", "warn", "error"] as const).some((method) => typeof target[method] !== "function")
  ) {
    throw new TypeError("createServiceAccountAuth: options.logger needs debug, info, warn and error methods")
  }
}

const logging = (options: Options, level: EffectLogLevel.LogLevel): Layer.Layer<never> => {
  const target = options.logger
  return Layer.merge(
    EffectLogger.replace(
      EffectLogger.defaultLogger,
      target === undefined ? EffectLogger.withConsoleError(EffectLogger.logfmtLogger) : toLogger(target)
    ),
    EffectLogger.minimumLogLevel(level)
  )
}

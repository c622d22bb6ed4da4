/**
 * Discovery of the token endpoint: RFC 9728 protected-resource metadata of an MCP server, RFC 8414
 * authorization-server metadata (OpenID Connect discovery as the fallback), each validated, with the authorization
 * server pinned by the configuration before any request reaches it; and {@link resolver}, which turns a configuration
 * without `token_url` into one with it, for the token provider.
 *
 * Safety:
 * - The metadata's `issuer` must equal the issuer it was fetched for (RFC 8414 §3.3), and a protected resource's
 *   `resource` the MCP server URL (RFC 9728 §3.3).
 * - {@link fromMcpServer} contacts only an authorization server the caller pinned (`allowedIssuers`): an MCP server
 *   naming another one gets `issuer_not_trusted` and no request at all goes to what it named.
 * - A token endpoint must be https, or http on a loopback host when `allowInsecureHttp`.
 * - Responses are read up to 256 KiB, each request bounded by `timeout`.
 *
 * @internal
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as ServiceAccountConfig from "../ServiceAccountConfig.js"
import type { DiscoveryError } from "../ServiceAccountError.js"
import { DiscoveryError as DiscoveryErrorClass } from "../ServiceAccountError.js"
import { displayUrl, isLoopbackHost, scrub } from "./text.js"
import { readBody } from "./tokenEndpoint.js"

/** @internal */
export interface AuthorizationServerMetadata {
  readonly issuer: string
  readonly tokenEndpoint: URL
  readonly authMethods: ReadonlyArray<string> | undefined
  readonly grantTypes: ReadonlyArray<string> | undefined
  readonly scopesSupported: ReadonlyArray<string> | undefined
}

/** @internal */
export interface ProtectedResourceMetadata {
  readonly resource: string
  readonly authorizationServers: ReadonlyArray<string>
  readonly scopesSupported: ReadonlyArray<string> | undefined
}

/** A fetched document and how long it may be cached (`Cache-Control: max-age`, else the default). @internal */
export interface Fetched<A> {
  readonly value: A
  readonly maxAge: Duration.Duration
}

/** @internal */
export interface Options {
  readonly timeout?: Duration.DurationInput | undefined
  readonly allowInsecureHttp?: boolean | undefined
  /** How long metadata without `Cache-Control: max-age` is kept (default one hour). */
  readonly defaultMaxAge?: Duration.DurationInput | undefined
}

/** A discovery failure; its URL shown without user info or query (`Scrub.url`): they may hold secrets. */
const failure = (
  fields: { readonly reason: DiscoveryError["reason"]; readonly url: string | URL; readonly detail: string }
): DiscoveryError =>
  new DiscoveryErrorClass({
    ...fields,
    url: URL.canParse(String(fields.url)) ? displayUrl(fields.url) : scrub(String(fields.url), [], 100)
  })

/** Why `url` may not be fetched: not https, and not http on a loopback host with `allowInsecureHttp`. */
const insecureUrl = (url: string, options: Options | undefined): string | undefined => {
  if (!URL.canParse(url)) return "is not a URL"
  const parsed = new URL(url)
  if (parsed.protocol === "https:") return undefined
  return parsed.protocol === "http:" && isLoopbackHost(parsed.hostname) && options?.allowInsecureHttp === true
    ? undefined
    : "must use https (http only for loopback hosts with allow_insecure_http)"
}

/** Certificate failures (a wrong `ca_file`, an expired or self-signed certificate): not transient. */
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME|ALTNAME/

/** The largest metadata document read. @internal */
export const MAX_METADATA_BYTES = 256 * 1024

const DEFAULT_TIMEOUT = Duration.seconds(10)
const DEFAULT_MAX_AGE = Duration.hours(1)

/**
 * Where a well-known document of `base` lives: inserted between the host and the path (RFC 8414 §3.1, RFC 9728
 * §3.1), the path's trailing slash dropped.
 *
 * @internal
 */
export const wellKnown = (base: URL | string, name: string): URL => {
  const url = new URL(base)
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "")
  return new URL(`/.well-known/${name}${path}`, url.origin)
}

/**
 * The authorization-server metadata URLs to try for an issuer, in order: RFC 8414, then OpenID Connect discovery
 * (appended to the issuer, as OIDC Discovery §4 says).
 *
 * @internal
 */
export const metadataUrls = (issuer: string): ReadonlyArray<URL> => [
  wellKnown(issuer, "oauth-authorization-server"),
  new URL(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`)
]

/**
 * `resource_metadata`, `scope` and `error` of a `WWW-Authenticate: Bearer …` challenge (RFC 9728 §5.1, RFC 6750 §3).
 *
 * @internal
 */
export const parseChallenge = (
  header: string | undefined
): { readonly resourceMetadata?: string; readonly scope?: string; readonly error?: string } => {
  if (header === undefined || !/^\s*bearer\b/i.test(header)) return {}
  const param = (name: string) => {
    const match = new RegExp(`(?:^|[\\s,])${name}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^\\s",]+))`, "i").exec(header)
    return match === null ? undefined : (match[1] ?? match[2])!.replace(/\\(.)/g, "$1")
  }
  const resourceMetadata = param("resource_metadata")
  const scope = param("scope")
  const error = param("error")
  return {
    ...(resourceMetadata ? { resourceMetadata } : {}),
    ...(scope ? { scope } : {}),
    ...(error ? { error } : {})
  }
}

const maxAgeOf = (cacheControl: string | undefined, fallback: Duration.Duration): Duration.Duration => {
  if (cacheControl === undefined) return fallback
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(cacheControl)) return Duration.zero
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl)
  return match === null ? fallback : Duration.seconds(Math.min(Number(match[1]), 86_400))
}

/** A JSON object from `url`, bounded in size and time. */
const fetchObject = (
  url: URL,
  options: Options | undefined
): Effect.Effect<Fetched<Record<string, unknown>> | undefined, DiscoveryError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const where = url.href
    const raw = yield* client.execute(HttpClientRequest.get(url).pipe(HttpClientRequest.acceptJson)).pipe(
      // a redirect is a failure, never followed: it could lead to a document another server wrote
      Effect.provideService(FetchHttpClient.RequestInit, { redirect: "manual" }),
      Effect.flatMap((response) => readBody(response, MAX_METADATA_BYTES)),
      Effect.timeoutFail({
        duration: options?.timeout ?? DEFAULT_TIMEOUT,
        onTimeout: () => failure({ reason: "unreachable", url: where, detail: "no answer in time" })
      }),
      Effect.catchTags({
        RequestError: (error) => {
          const cause = error.cause as { readonly message?: unknown; readonly code?: unknown; readonly cause?: unknown }
          const inner = cause?.cause as { readonly message?: unknown; readonly code?: unknown } | undefined
          const code = [cause?.code, inner?.code].find((c): c is string => typeof c === "string")
          const message = scrub(String(inner?.message ?? cause?.message ?? "?"), [], 80)
          return Effect.fail(
            code !== undefined && CERTIFICATE_ERROR.test(code)
              ? failure({
                reason: "tls",
                url: where,
                detail: `the certificate was refused (${code}): if the server uses an internal CA, set ca_file`
              })
              : failure({ reason: "unreachable", url: where, detail: `the request failed (${message})` })
          )
        },
        ResponseError: () => Effect.fail(failure({ reason: "unreachable", url: where, detail: "the response failed" }))
      })
    )
    if (raw.status === 404 || raw.status === 410) return undefined
    if (raw.status !== 200) {
      return yield* Effect.fail(
        failure({ reason: "not_found", url: where, detail: `HTTP ${raw.status}, expected 200` })
      )
    }
    let json: unknown
    try {
      json = raw.tooLarge === true ? undefined : JSON.parse(raw.body)
    } catch {
      json = undefined
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* Effect.fail(
        failure({
          reason: "invalid_metadata",
          url: where,
          detail: raw.tooLarge === true
            ? `the document is larger than ${MAX_METADATA_BYTES} bytes`
            : "the document is not a JSON object"
        })
      )
    }
    return {
      value: json as Record<string, unknown>,
      maxAge: maxAgeOf(raw.headers["cache-control"], Duration.decode(options?.defaultMaxAge ?? DEFAULT_MAX_AGE))
    }
  })

const strings = (u: unknown): ReadonlyArray<string> | undefined =>
  Array.isArray(u) && u.every((s) => typeof s === "string") ? u : undefined

/** Same identifier: compared as URLs (origin, path without a trailing slash, query), else as text. @internal */
export const sameUrl = (a: string, b: string): boolean => {
  const norm = (s: string) => {
    try {
      const url = new URL(s)
      return `${url.origin}${url.pathname.replace(/\/$/, "")}${url.search}`
    } catch {
      return s
    }
  }
  return norm(a) === norm(b)
}

/**
 * The authorization server's metadata for a pinned `issuer`: RFC 8414, then OpenID Connect discovery. The document's
 * `issuer` must be `issuer`; its `token_endpoint` https (or loopback http with `allowInsecureHttp`).
 *
 * @internal
 */
export const authorizationServer = (
  issuer: string,
  options?: Options
): Effect.Effect<Fetched<AuthorizationServerMetadata>, DiscoveryError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const insecure = insecureUrl(issuer, options)
    if (insecure !== undefined) {
      return yield* Effect.fail(failure({ reason: "insecure_endpoint", url: issuer, detail: `issuer ${insecure}` }))
    }
    let found: { readonly url: URL; readonly fetched: Fetched<Record<string, unknown>> } | undefined
    for (const url of metadataUrls(issuer)) {
      const fetched = yield* fetchObject(url, options)
      if (fetched !== undefined) {
        found = { url, fetched }
        break
      }
    }
    if (found === undefined) {
      return yield* Effect.fail(
        failure({
          reason: "not_found",
          url: issuer,
          detail: "neither /.well-known/oauth-authorization-server nor /.well-known/openid-configuration exists: " +
            "check issuer, or set token_url"
        })
      )
    }
    const doc = found.fetched.value
    const where = found.url.href
    const invalid = (detail: string) => Effect.fail(failure({ reason: "invalid_metadata", url: where, detail }))
    if (typeof doc.issuer !== "string" || !sameUrl(doc.issuer, issuer)) {
      return yield* Effect.fail(
        failure({
          reason: "issuer_mismatch",
          url: where,
          detail: `the metadata names another issuer (${
            typeof doc.issuer === "string" ? JSON.stringify(scrub(doc.issuer, [], 100)) : "none"
          }); RFC 8414 §3.3 requires it to be the issuer it was fetched for: check issuer`
        })
      )
    }
    if (typeof doc.token_endpoint !== "string" || !URL.canParse(doc.token_endpoint)) {
      return yield* invalid("token_endpoint is missing or not a URL")
    }
    const tokenEndpoint = new URL(doc.token_endpoint)
    const loopbackHttp = tokenEndpoint.protocol === "http:" && isLoopbackHost(tokenEndpoint.hostname) &&
      options?.allowInsecureHttp === true
    if (tokenEndpoint.protocol !== "https:" && !loopbackHttp) {
      return yield* Effect.fail(
        failure({
          reason: "insecure_endpoint",
          url: where,
          detail: "token_endpoint must use https (http only for loopback hosts with allow_insecure_http)"
        })
      )
    }
    if (tokenEndpoint.username || tokenEndpoint.password || tokenEndpoint.hash) {
      return yield* invalid("token_endpoint must have no user info and no #fragment")
    }
    return {
      value: {
        issuer,
        tokenEndpoint,
        authMethods: strings(doc.token_endpoint_auth_methods_supported),
        grantTypes: strings(doc.grant_types_supported),
        scopesSupported: strings(doc.scopes_supported)
      },
      maxAge: found.fetched.maxAge
    }
  })

/**
 * An MCP server's protected-resource metadata (RFC 9728): at `metadataUrl` (from the 401's `resource_metadata`), else
 * at the well-known URL of `mcpUrl`. Its `resource` must be `mcpUrl`.
 *
 * @internal
 */
export const protectedResource = (
  mcpUrl: string,
  metadataUrl: string | undefined,
  options?: Options
): Effect.Effect<Fetched<ProtectedResourceMetadata>, DiscoveryError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const url = metadataUrl !== undefined && URL.canParse(metadataUrl)
      ? new URL(metadataUrl)
      : wellKnown(mcpUrl, "oauth-protected-resource")
    // only on the MCP server's own origin: a 401 must not send the client (and its certificate) anywhere else
    if (url.origin !== new URL(mcpUrl).origin) {
      return yield* Effect.fail(
        failure({
          reason: "invalid_metadata",
          url: mcpUrl,
          detail: "the 401's resource_metadata is on another origin than the MCP server: not fetched"
        })
      )
    }
    const fetched = yield* fetchObject(url, options)
    if (fetched === undefined) {
      return yield* Effect.fail(
        failure({
          reason: "not_found",
          url: url.href,
          detail: "the MCP server publishes no protected-resource metadata (RFC 9728): set issuer or token_url"
        })
      )
    }
    const doc = fetched.value
    if (typeof doc.resource !== "string" || !sameUrl(doc.resource, mcpUrl)) {
      return yield* Effect.fail(
        failure({
          reason: "resource_mismatch",
          url: url.href,
          detail: `the metadata is for another resource (${
            typeof doc.resource === "string" ? JSON.stringify(scrub(doc.resource, [], 100)) : "none"
          }); RFC 9728 §3.3 requires the MCP server URL: check the server's url`
        })
      )
    }
    const servers = strings(doc.authorization_servers)
    if (servers === undefined || servers.length === 0) {
      return yield* Effect.fail(
        failure({
          reason: "invalid_metadata",
          url: url.href,
          detail: "authorization_servers is missing or empty: set issuer or token_url"
        })
      )
    }
    return {
      value: { resource: doc.resource, authorizationServers: servers, scopesSupported: strings(doc.scopes_supported) },
      maxAge: fetched.maxAge
    }
  })

/**
 * What discovery from an MCP server found.
 *
 * @internal
 */
export interface Discovered {
  readonly resource: ProtectedResourceMetadata
  readonly server: AuthorizationServerMetadata
  /** The MCP spec's scope selection: the 401's `scope`, else the resource's `scopes_supported`. */
  readonly scopes: ReadonlyArray<string> | undefined
  /** How long both documents may be cached: the shorter `max-age`. */
  readonly maxAge: Duration.Duration
}

/**
 * From an MCP server to its token endpoint: an unauthenticated request for the 401's challenge, the protected-resource
 * metadata, the first of its authorization servers that `allowedIssuers` pins, and that server's metadata. An
 * authorization server that is not pinned is never contacted.
 *
 * @internal
 */
export const fromMcpServer = (
  mcpUrl: string,
  allowedIssuers: ReadonlyArray<string>,
  options?: Options
): Effect.Effect<Discovered, DiscoveryError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    // an initialize without credentials: a protected server answers 401 with its challenge
    const probe = yield* client.execute(
      HttpClientRequest.post(mcpUrl).pipe(
        HttpClientRequest.setHeader("accept", "application/json, text/event-stream"),
        HttpClientRequest.bodyUnsafeJson({ jsonrpc: "2.0", id: 0, method: "ping" })
      )
    ).pipe(
      Effect.map((response) => ({ status: response.status, challenge: response.headers["www-authenticate"] })),
      Effect.timeout(options?.timeout ?? DEFAULT_TIMEOUT),
      Effect.orElseSucceed(() => ({ status: 0, challenge: undefined }))
    )
    const challenge = probe.status === 401 ? parseChallenge(probe.challenge) : {}
    const resource = yield* protectedResource(mcpUrl, challenge.resourceMetadata, options)
    const pinned = resource.value.authorizationServers.find((server) =>
      allowedIssuers.some((issuer) => sameUrl(issuer, server))
    )
    if (pinned === undefined) {
      return yield* Effect.fail(
        failure({
          reason: "issuer_not_trusted",
          url: mcpUrl,
          detail: `the MCP server names ${
            resource.value.authorizationServers.map((s) => JSON.stringify(scrub(s, [], 100))).join(", ")
          } as its authorization server, which the configuration does not pin; no credentials were sent: add it ` +
            "to allowed_issuers (or set issuer) if you trust it"
        })
      )
    }
    const server = yield* authorizationServer(pinned, options)
    const scopes = challenge.scope !== undefined
      ? challenge.scope.split(/\s+/).filter((s) => s.length > 0)
      : resource.value.scopesSupported
    return {
      resource: resource.value,
      server: server.value,
      scopes,
      maxAge: Duration.min(resource.maxAge, server.maxAge)
    }
  })

/**
 * The `auth_method` to use when none is configured: the first the server supports among those the configuration can
 * make, in order of preference (`available`); `undefined` when the server lists none of them.
 *
 * @internal
 */
export const chooseAuthMethod = (
  supported: ReadonlyArray<string> | undefined,
  available: ReadonlyArray<string>
): string | undefined =>
  supported === undefined
    ? available.includes("client_secret_basic") ? "client_secret_basic" : available[0]
    : available.find((method) => supported.includes(method))

/** The client-secret methods, in order of preference, when `auth_method` is chosen from the metadata. */
const SECRET_METHODS = ["client_secret_basic", "client_secret_post", "client_secret_jwt"] as const

/**
 * The configuration completed from what discovery found: the token endpoint; the issuer (for `assertion_audience:
 * issuer`) and, from an MCP server, `resource` and `scopes` when not configured; `auth_method` when not configured.
 */
const complete = (
  config: ServiceAccountConfig.ServiceAccountConfig,
  settings: ServiceAccountConfig.DiscoverySettings,
  server: AuthorizationServerMetadata,
  fromServer: Discovered | undefined
): Effect.Effect<ServiceAccountConfig.Resolved, DiscoveryError> => {
  let authMethod = config.authMethod
  if (settings.chooseAuthMethod) {
    const chosen = chooseAuthMethod(server.authMethods, SECRET_METHODS)
    if (chosen === undefined) {
      return Effect.fail(
        failure({
          reason: "auth_method_unsupported",
          url: server.issuer,
          detail: `the authorization server accepts ${
            (server.authMethods ?? []).map((m) => scrub(m, [], 40)).join(", ")
          } (token_endpoint_auth_methods_supported), none of them a client secret: set auth_method and its ` +
            "credential"
        })
      )
    }
    authMethod = chosen as ServiceAccountConfig.AuthMethod
  }
  return Effect.succeed({
    ...config,
    tokenUrl: server.tokenEndpoint,
    // the server discovery found (and the configuration pins): the audience of issuer-bound assertions, the
    // adapter's binding
    issuer: server.issuer,
    authMethod,
    resource: config.resource ?? fromServer?.resource.resource,
    scopes: settings.chooseScopes && fromServer?.scopes !== undefined ? fromServer.scopes : config.scopes
  })
}

/**
 * The token endpoint of a configuration, found once and kept for the documents' `max-age`.
 *
 * @internal
 */
export interface Resolver {
  /** For a token request: the configuration with its token endpoint, kept while the metadata may be cached. */
  readonly resolve: Effect.Effect<ServiceAccountConfig.Resolved, DiscoveryError>
  /**
   * The configuration last resolved (what the current token was requested with), without a request; discovered now
   * when there is none yet.
   */
  readonly current: Effect.Effect<ServiceAccountConfig.Resolved, DiscoveryError>
  /**
   * After a token request failed in a way that suggests the metadata changed: discovers again (once per kept
   * result) and returns the new configuration if the token endpoint or the auth method changed.
   */
  readonly rediscover: (
    stale: ServiceAccountConfig.Resolved
  ) => Effect.Effect<ServiceAccountConfig.Resolved | undefined, DiscoveryError>
}

/**
 * A {@link Resolver} for `config`. A configuration with `token_url` resolves to itself and never fetches. From an MCP
 * server, `mcpUrl` is the server whose protected-resource metadata names the authorization server.
 *
 * @internal
 */
export const resolver = (
  config: ServiceAccountConfig.ServiceAccountConfig,
  mcpUrl: string | URL | undefined
): Effect.Effect<Resolver, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const settings = config.discovery
    if (config.tokenUrl !== undefined || settings === undefined) {
      const resolved = Effect.succeed(config as ServiceAccountConfig.Resolved)
      return { resolve: resolved, current: resolved, rediscover: () => Effect.succeed(undefined) }
    }
    const options: Options = {
      timeout: Duration.seconds(config.timeoutSeconds),
      allowInsecureHttp: config.allowInsecureHttp
    }
    const discover: Effect.Effect<
      { readonly config: ServiceAccountConfig.Resolved; readonly maxAge: Duration.Duration },
      DiscoveryError,
      HttpClient.HttpClient
    > = Effect.suspend(() => {
      if (settings.from === "issuer") {
        return Effect.flatMap(
          authorizationServer(config.issuer!, options),
          (fetched) =>
            Effect.map(
              complete(config, settings, fetched.value, undefined),
              (c) => ({ config: c, maxAge: fetched.maxAge })
            )
        )
      }
      if (mcpUrl === undefined) {
        return Effect.fail(
          failure({
            reason: "not_found",
            url: settings.trusted.join(", "),
            detail: "discovery from the MCP server needs the server's URL (no function group uses this provider, or " +
              "none was given): set token_url or issuer"
          })
        )
      }
      return Effect.flatMap(
        fromMcpServer(String(mcpUrl), settings.trusted, options),
        (found) =>
          Effect.map(complete(config, settings, found.server, found), (c) => ({ config: c, maxAge: found.maxAge }))
      )
    })
    const context = yield* Effect.context<HttpClient.HttpClient>()
    const cache = yield* Cache.makeWith({
      capacity: 1,
      lookup: (_: "resolved") => Effect.provide(discover, context),
      timeToLive: (exit) => Exit.isSuccess(exit) ? exit.value.maxAge : Duration.zero
    })
    let last: ServiceAccountConfig.Resolved | undefined
    /** Results a rediscovery confirmed unchanged: the next failure with them discovers nothing again. */
    const confirmed = new WeakSet<ServiceAccountConfig.Resolved>()
    const resolve = Effect.map(cache.get("resolved"), (r) => {
      last = r.config
      return r.config
    })
    return {
      resolve,
      current: Effect.suspend(() => last === undefined ? resolve : Effect.succeed(last)),
      rediscover: (stale) =>
        Effect.gen(function*() {
          if (confirmed.has(stale)) return undefined
          const kept = yield* cache.getOption("resolved")
          // someone else has already rediscovered since `stale` was resolved: use theirs
          if (kept._tag === "Some" && kept.value.config !== stale) return changed(stale, kept.value.config)
          yield* cache.invalidate("resolved")
          const fresh = yield* resolve
          const result = changed(stale, fresh)
          if (result === undefined) confirmed.add(fresh)
          return result
        })
    }
  })

const changed = (
  stale: ServiceAccountConfig.Resolved,
  fresh: ServiceAccountConfig.Resolved
): ServiceAccountConfig.Resolved | undefined =>
  stale.tokenUrl.href !== fresh.tokenUrl.href || stale.authMethod !== fresh.authMethod ? fresh : undefined

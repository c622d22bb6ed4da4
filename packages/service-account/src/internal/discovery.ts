/**
 * Discovery of the token endpoint (issue 14, first part): RFC 9728 protected-resource metadata of an MCP server, RFC
 * 8414 authorization-server metadata (OpenID Connect discovery as the fallback), each validated, with the
 * authorization server pinned by the caller before any request reaches it.
 *
 * Not wired into the configuration yet (`token_url` is still required): the next step makes `token_url` optional
 * when `issuer` is set or `discover: true`, maps {@link DiscoveryFailure} to a public `DiscoveryError`, and refetches on
 * a token-endpoint 404.
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
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Cache from "effect/Cache"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { isLoopbackHost, scrub } from "./text.js"
import { readBody } from "./tokenEndpoint.js"

/** @internal */
export type Reason =
  | "not_found"
  | "unreachable"
  | "invalid_metadata"
  | "issuer_mismatch"
  | "issuer_not_trusted"
  | "resource_mismatch"
  | "insecure_endpoint"

/**
 * A discovery step that failed: why, at which URL, and what to configure.
 *
 * @internal
 */
export class DiscoveryFailure extends Data.TaggedError("DiscoveryFailure")<{
  readonly reason: Reason
  readonly url: string
  readonly detail: string
}> {
  override get message(): string {
    return `Discovery failed at ${this.url} (${this.reason}): ${this.detail}`
  }
}

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
  const param = (name: string) => new RegExp(`(?:^|[\\s,])${name}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(header)?.[1]
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
): Effect.Effect<Fetched<Record<string, unknown>> | undefined, DiscoveryFailure, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const where = url.href
    const raw = yield* client.execute(HttpClientRequest.get(url).pipe(HttpClientRequest.acceptJson)).pipe(
      Effect.flatMap((response) => readBody(response, MAX_METADATA_BYTES)),
      Effect.timeoutFail({
        duration: options?.timeout ?? DEFAULT_TIMEOUT,
        onTimeout: () => new DiscoveryFailure({ reason: "unreachable", url: where, detail: "no answer in time" })
      }),
      Effect.catchTags({
        RequestError: (error) =>
          Effect.fail(
            new DiscoveryFailure({
              reason: "unreachable",
              url: where,
              detail: `the request failed (${
                scrub(String((error.cause as Error | undefined)?.message ?? "?"), [], 80)
              })`
            })
          ),
        ResponseError: () =>
          Effect.fail(new DiscoveryFailure({ reason: "unreachable", url: where, detail: "the response failed" }))
      })
    )
    if (raw.status === 404 || raw.status === 410) return undefined
    if (raw.status !== 200) {
      return yield* Effect.fail(
        new DiscoveryFailure({ reason: "not_found", url: where, detail: `HTTP ${raw.status}, expected 200` })
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
        new DiscoveryFailure({
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
): Effect.Effect<Fetched<AuthorizationServerMetadata>, DiscoveryFailure, HttpClient.HttpClient> =>
  Effect.gen(function*() {
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
        new DiscoveryFailure({
          reason: "not_found",
          url: issuer,
          detail: "neither /.well-known/oauth-authorization-server nor /.well-known/openid-configuration exists: " +
            "check issuer, or set token_url"
        })
      )
    }
    const doc = found.fetched.value
    const where = found.url.href
    const invalid = (detail: string) =>
      Effect.fail(new DiscoveryFailure({ reason: "invalid_metadata", url: where, detail }))
    if (typeof doc.issuer !== "string" || !sameUrl(doc.issuer, issuer)) {
      return yield* Effect.fail(
        new DiscoveryFailure({
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
        new DiscoveryFailure({
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
): Effect.Effect<Fetched<ProtectedResourceMetadata>, DiscoveryFailure, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const url = metadataUrl !== undefined && URL.canParse(metadataUrl)
      ? new URL(metadataUrl)
      : wellKnown(mcpUrl, "oauth-protected-resource")
    const fetched = yield* fetchObject(url, options)
    if (fetched === undefined) {
      return yield* Effect.fail(
        new DiscoveryFailure({
          reason: "not_found",
          url: url.href,
          detail: "the MCP server publishes no protected-resource metadata (RFC 9728): set issuer or token_url"
        })
      )
    }
    const doc = fetched.value
    if (typeof doc.resource !== "string" || !sameUrl(doc.resource, mcpUrl)) {
      return yield* Effect.fail(
        new DiscoveryFailure({
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
        new DiscoveryFailure({
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
): Effect.Effect<Discovered, DiscoveryFailure, HttpClient.HttpClient> =>
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
        new DiscoveryFailure({
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
    return { resource: resource.value, server: server.value, scopes }
  })

/**
 * Authorization-server metadata by issuer, kept for each document's `Cache-Control: max-age` (default one hour); a
 * failure is not kept. `invalidate(issuer)` drops an entry (e.g. after a 404 at the token endpoint).
 *
 * @internal
 */
export const makeCache = (
  options?: Options
): Effect.Effect<Cache.Cache<string, AuthorizationServerMetadata, DiscoveryFailure>, never, HttpClient.HttpClient> =>
  Effect.flatMap(Effect.context<HttpClient.HttpClient>(), (context) => {
    const ages = new Map<string, Duration.Duration>()
    return Cache.makeWith({
      capacity: 64,
      lookup: (issuer: string) =>
        authorizationServer(issuer, options).pipe(
          Effect.tap((fetched) => Effect.sync(() => ages.set(issuer, fetched.maxAge))),
          Effect.map((fetched) => fetched.value),
          Effect.provide(context)
        ),
      timeToLive: (exit) => Exit.isSuccess(exit) ? ages.get(exit.value.issuer) ?? DEFAULT_MAX_AGE : Duration.zero
    })
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

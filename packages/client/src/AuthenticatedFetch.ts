/**
 * A `fetch` for the MCP SDK's `StreamableHTTPClientTransport` / `SSEClientTransport` that adds the auth headers to
 * every request to the MCP endpoint (POST, the GET stream and its reconnects, DELETE), and to nothing else.
 *
 * On a 401 from the MCP server the rejected token is invalidated (compare-and-invalidate: concurrent 401s carrying
 * one token cause one refresh) and the request is replayed with a fresh token, so the SDK never sees the 401 and its
 * own re-auth paths never run. The replays stop when the drop is held back (a token fetched after the last drop was
 * rejected within a second: the server refuses this client; that 401 is thrown) and after three requests (a replay can
 * meet a token revoked in the same event as the first). A 403 is not retried. Token and service-token failures are thrown as their typed
 * errors and come out of `client.connect()` / `client.callTool()` unchanged.
 *
 * The `error` and `error_description` of a 401/403 `WWW-Authenticate` challenge reach the typed errors scrubbed
 * (`Scrub.text`): the bearer tokens and service tokens sent lately are removed in every form, control characters
 * too. A server URL with user info (`https://user:pass@host/…`) is refused: credentials belong in the auth config.
 *
 * @since 0.1.0
 */
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ConfigSchema from "@mcp-auth/service-account/ConfigSchema"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import { parseChallenge } from "./internal/challenge.js"
import * as SecretRing from "./internal/secrets.js"
import { userInfoError } from "./internal/serverUrl.js"
import { McpForbiddenError, McpUnauthorizedError } from "./McpClientError.js"

/** Requests per call at most: the first and up to two replays after 401s. */
const MAX_SENDS = 3

/**
 * @since 0.1.0
 * @category Models
 */
export type { FetchLike }

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The MCP endpoint. Only requests to its origin and path (or below) get auth headers. */
  readonly serverUrl: URL | string
  /** The fetch to delegate to (default: the global `fetch`), e.g. one trusting an internal CA. */
  readonly fetch?: FetchLike | undefined
  /** Static headers for MCP requests (NAT's `custom_headers`); auth headers win over same-named ones. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /**
   * Which requests get the auth headers: `endpoint` (default), the server URL's path and below; `origin`, any path
   * on its origin (the deprecated SSE transport posts to an endpoint the server announces, e.g. `/messages`).
   */
  readonly scope?: "endpoint" | "origin" | undefined
}

/** Runs an effect, rejecting with the typed error itself (not a wrapper), so callers can match its `_tag`. */
const runWith = <R>(runtime: Runtime.Runtime<R>) => <A, E>(effect: Effect.Effect<A, E, R>): Promise<A> =>
  Runtime.runPromiseExit(runtime)(effect).then((exit) =>
    Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
  )

const inScope = (base: URL, scope: Options["scope"]) => {
  const prefix = base.pathname.endsWith("/") ? base.pathname : `${base.pathname}/`
  return (url: URL) =>
    url.origin === base.origin &&
    (scope === "origin" || url.pathname === base.pathname || url.pathname.startsWith(prefix))
}

/** The JSON-RPC method (and tool) a request body carries, for the service-token function's request context. */
const mcpInfo = (body: unknown): { mcpMethod?: string; toolName?: string } | undefined => {
  if (typeof body !== "string" || body.length > 1_000_000) return undefined
  try {
    const parsed = JSON.parse(body)
    const message = Array.isArray(parsed) ? parsed[0] : parsed
    if (typeof message?.method !== "string") return undefined
    const toolName = message.method === "tools/call" && typeof message.params?.name === "string"
      ? message.params.name
      : undefined
    return toolName === undefined ? { mcpMethod: message.method } : { mcpMethod: message.method, toolName }
  } catch {
    return undefined
  }
}

const replayable = (body: unknown): boolean =>
  body === undefined || body === null || typeof body === "string" || body instanceof URLSearchParams ||
  body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof Blob

/**
 * Builds the fetch from an `AuthHeaders` service and the runtime to run it in. Throws a `ConfigurationError` for a
 * server URL that is neither https nor http on a loopback host, or that carries user info.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeWith = <R>(
  auth: AuthHeaders.AuthHeaders,
  runtime: Runtime.Runtime<R>,
  options: Options
): FetchLike => {
  const run = runWith(runtime)
  const server = new URL(options.serverUrl)
  const userInfo = userInfoError(server)
  if (userInfo !== undefined) throw userInfo
  if (server.protocol !== "https:" && !(server.protocol === "http:" && ConfigSchema.isLoopbackHost(server.hostname))) {
    throw new ConfigurationError({
      issues: [
        new ConfigIssue({
          path: "server.url",
          message:
            `refusing to send credentials to ${server.protocol}//${server.host}: use https (http only for loopback hosts)`
        })
      ]
    })
  }
  const matches = inScope(server, options.scope)
  const base: FetchLike = options.fetch ?? ((url, init) => globalThis.fetch(url, init))
  const display = Scrub.url(server)
  const secrets = SecretRing.make()

  const send = (url: URL, init: RequestInit | undefined, set: AuthHeaders.AuthHeaderSet) => {
    const headers = new Headers(options.headers)
    new Headers(init?.headers).forEach((value, name) => headers.set(name, value))
    secrets.remember([
      Redacted.value(set.token.token),
      ...set.headers.slice(1).map(([, value]) => Redacted.value(value))
    ])
    for (const [name, value] of Object.entries(AuthHeaders.toRecord(set))) headers.set(name, value)
    // redirects are never followed here: the caller sees the 3xx and a hop is scope-checked again on its own
    return base(url, { ...init, headers, redirect: "manual" })
  }

  const refused = async (response: Response) => {
    const raw = parseChallenge(response.headers.get("www-authenticate"))
    const error = raw.error === undefined ? "" : Scrub.text(raw.error, secrets.values(), { max: 100 })
    const errorDescription = raw.errorDescription === undefined
      ? ""
      : Scrub.text(raw.errorDescription, secrets.values())
    const challenge = { ...(error ? { error } : {}), ...(errorDescription ? { errorDescription } : {}) }
    await response.body?.cancel().catch(() => undefined)
    return response.status === 403
      ? new McpForbiddenError({ url: display, ...challenge })
      : new McpUnauthorizedError({ url: display, ...challenge })
  }

  return SecretRing.register<FetchLike>(async (input, init) => {
    const url = new URL(input)
    if (!matches(url)) return base(input, init)
    const context = RequestContext.make(url, init?.method ?? "GET", mcpInfo(init?.body))
    // A 401 drops the rejected token and replays with a fresh one. The replays stop as soon as the drop is held
    // back (a token fetched after the last drop was rejected within a second: the server refuses this client) and
    // after MAX_SENDS requests (a replay can meet a token revoked in the same event that revoked the first one).
    for (let sent = 1;; sent++) {
      const headers = await run(auth.forRequest(context))
      const response = await send(url, init, headers)
      if (response.status === 403) throw await refused(response)
      if (response.status !== 401) return response
      const invalidated = await run(auth.invalidate(headers.token))
      if (invalidated._tag === "Throttled" || sent >= MAX_SENDS || !replayable(init?.body)) {
        throw await refused(response)
      }
      await response.body?.cancel().catch(() => undefined)
    }
  }, secrets)
}

/**
 * The authenticated fetch, using the `AuthHeaders` in context.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<FetchLike, ConfigurationError, AuthHeaders.AuthHeaders> =>
  Effect.flatMap(
    Effect.zip(AuthHeaders.AuthHeaders, Effect.runtime<never>()),
    ([auth, runtime]) =>
      Effect.try({ try: () => makeWith(auth, runtime, options), catch: (error) => error as ConfigurationError })
  )

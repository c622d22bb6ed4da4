/**
 * An MCP client as an Effect service: connected in a scope (closed with it), `listTools` / `callTool` with typed
 * errors, tool-call timeouts and NAT-style reconnects. Each client takes its `AuthHeaders` from context, so several
 * servers can each use their own service account, or share one (one token cache), as NAT function groups do.
 *
 * @since 0.1.0
 */
import type * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RetrySchedule from "@mcp-auth/service-account/RetrySchedule"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { type CallToolResult, ErrorCode, McpError, type Tool } from "@modelcontextprotocol/sdk/types.js"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as SynchronizedRef from "effect/SynchronizedRef"
import * as AuthenticatedFetch from "./AuthenticatedFetch.js"
import { version } from "./internal/version.js"
import * as McpClientDefaults from "./McpClientDefaults.js"
import { isMcpCallError, type McpCallError, McpRequestError } from "./McpClientError.js"

/**
 * NAT's reconnect settings; see `McpClientDefaults.ReconnectOptions` (backoffs are full-jittered).
 *
 * @since 0.1.0
 * @category Models
 */
export type ReconnectOptions = McpClientDefaults.ReconnectOptions

/**
 * NAT's defaults: enabled, 2 attempts, a 0.5 s ceiling doubling up to 50 s (`McpClientDefaults.defaultReconnect`).
 *
 * @since 0.1.0
 * @category Constants
 */
export const defaultReconnect: typeof McpClientDefaults.defaultReconnect = McpClientDefaults.defaultReconnect

/**
 * The tool-call timeout when `toolCallTimeout` is not given: 60 s (`McpClientDefaults.defaultToolCallTimeout`).
 *
 * @since 0.1.0
 * @category Constants
 */
export const defaultToolCallTimeout: Duration.Duration = McpClientDefaults.defaultToolCallTimeout

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The MCP endpoint, e.g. `https://mcp.example.com/mcp`. */
  readonly url: URL | string
  /** A name for logs and errors (NAT: the function group). */
  readonly name?: string | undefined
  /** `streamable-http` (default) or the deprecated `sse`. */
  readonly transport?: "streamable-http" | "sse" | undefined
  /** Static headers (NAT `custom_headers`); auth headers win over same-named ones. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** The underlying fetch, e.g. one trusting an internal CA. */
  readonly fetch?: AuthenticatedFetch.FetchLike | undefined
  /** The `clientInfo` sent in `initialize` (default: `mcp-auth` and this package's version). */
  readonly clientInfo?: { readonly name: string; readonly version: string } | undefined
  /** Timeout of `listTools` and `callTool` (NAT `tool_call_timeout`, default 60 s). */
  readonly toolCallTimeout?: Duration.DurationInput | undefined
  readonly reconnect?: Partial<ReconnectOptions> | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface McpClient {
  readonly name: string
  readonly url: URL
  /** Every tool the server exposes (all pages). */
  readonly listTools: Effect.Effect<ReadonlyArray<Tool>, McpCallError>
  /** Calls a tool. A tool-level failure comes back as a result with `isError: true`, not as an error. */
  readonly callTool: (name: string, args?: Record<string, unknown>) => Effect.Effect<CallToolResult, McpCallError>
  /** The connected SDK client, for anything else. */
  readonly sdk: Effect.Effect<Client>
}

/**
 * @since 0.1.0
 * @category Tags
 */
export const McpClient: Context.Tag<McpClient, McpClient> = Context.GenericTag<McpClient>("@mcp-auth/client/McpClient")

const describe = (cause: unknown): string => {
  const text = cause instanceof Error
    ? `${cause.message}${
      cause.cause instanceof Error ? ` (${(cause.cause as NodeJS.ErrnoException).code ?? cause.cause.message})` : ""
    }`
    : String(cause)
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

/** Our typed errors pass through; SDK and transport failures become `McpRequestError`. */
const toError = (url: string, operation: string) => (cause: unknown): McpCallError => {
  if (isMcpCallError(cause)) return cause
  if (cause instanceof McpError) {
    const reason = cause.code === ErrorCode.RequestTimeout
      ? "timeout"
      : cause.code === ErrorCode.ConnectionClosed
      ? "closed"
      : "protocol"
    return new McpRequestError({ url, operation, reason, detail: describe(cause), cause })
  }
  return new McpRequestError({ url, operation, reason: "connect", detail: describe(cause), cause })
}

/** Failures a fresh connection may cure (never auth failures or JSON-RPC errors from the server). */
const reconnectable = (error: McpCallError): boolean => error._tag === "McpRequestError" && error.reason !== "protocol"

/**
 * Connects a client in the current scope. The first connection is not retried (NAT fails the build too).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  options: Options
): Effect.Effect<McpClient, McpCallError, AuthHeaders.AuthHeaders | Scope.Scope> =>
  Effect.flatMap(
    AuthenticatedFetch.make({
      serverUrl: options.url,
      fetch: options.fetch,
      headers: options.headers,
      scope: options.transport === "sse" ? "origin" : "endpoint"
    }),
    (fetch) => makeWithFetch(options, fetch)
  )

/**
 * A client without mcp-auth headers (an MCP server that needs no auth, as NAT allows); `headers` still apply.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeUnauthenticated = (options: Options): Effect.Effect<McpClient, McpCallError, Scope.Scope> => {
  const base: AuthenticatedFetch.FetchLike = options.fetch ?? ((url, init) => globalThis.fetch(url, init))
  const headers = options.headers
  return makeWithFetch(
    options,
    headers === undefined ? base : (url, init) => {
      const merged = new Headers(headers)
      new Headers(init?.headers).forEach((value, name) => merged.set(name, value))
      return base(url, { ...init, headers: merged })
    }
  )
}

const makeWithFetch = (
  options: Options,
  fetch: AuthenticatedFetch.FetchLike
): Effect.Effect<McpClient, McpCallError, Scope.Scope> =>
  Effect.gen(function*() {
    const url = new URL(options.url)
    const display = `${url.origin}${url.pathname}`
    const name = options.name ?? display
    const reconnect = { ...defaultReconnect, ...options.reconnect }
    const timeoutMs = Duration.toMillis(Duration.decode(options.toolCallTimeout ?? defaultToolCallTimeout))

    const connect = Effect.tryPromise({
      try: async () => {
        const client = new Client(options.clientInfo ?? { name: "mcp-auth", version })
        const transport = options.transport === "sse"
          ? new SSEClientTransport(url, { fetch, eventSourceInit: { fetch } })
          : new StreamableHTTPClientTransport(url, { fetch })
        try {
          await client.connect(transport, { timeout: timeoutMs })
        } catch (error) {
          await client.close().catch(() => undefined)
          throw error
        }
        return client
      },
      catch: toError(display, "connect")
    }).pipe(
      Effect.mapError((error) =>
        error._tag === "McpRequestError" && error.reason !== "connect"
          ? new McpRequestError({ ...error, reason: "connect" })
          : error
      )
    )
    const close = (client: Client) => Effect.promise(() => client.close().catch(() => undefined))

    const current = yield* SynchronizedRef.make(yield* connect)
    yield* Effect.addFinalizer(() => Effect.flatMap(SynchronizedRef.get(current), close))

    /** The failed operation is the schedule's first attempt; each retry is one reconnect after its backoff. */
    const reconnectSchedule = RetrySchedule.make<McpCallError>({
      maxAttempts: reconnect.maxAttempts + 1,
      initialBackoff: reconnect.initialBackoff,
      maxBackoff: reconnect.maxBackoff,
      jitter: "full"
    })

    /** Replaces `failed` with a new connection (NAT: close + connect, up to maxAttempts, backoff before each). */
    const reconnectFrom = (failed: Client, error: McpCallError) =>
      SynchronizedRef.updateAndGetEffect(current, (client) =>
        client !== failed ? Effect.succeed(client) : Effect.gen(function*() {
          yield* close(client)
          const state = yield* Ref.make({ attempt: 0, last: error })
          const attempt = Effect.flatMap(
            Ref.getAndUpdate(state, (s) => ({ ...s, attempt: s.attempt + 1 })),
            ({ attempt, last }) =>
              attempt === 0 ? Effect.fail(last) : Effect.logWarning("Reconnecting to MCP server").pipe(
                Effect.annotateLogs({ server: name, attempt, error: last._tag }),
                Effect.zipRight(connect),
                Effect.tapError((failure) =>
                  Ref.update(state, (s) => ({ ...s, last: failure }))
                )
              )
          )
          return yield* Effect.retry(attempt, reconnectSchedule)
        }))

    const run = <A>(operation: string, f: (client: Client) => Promise<A>): Effect.Effect<A, McpCallError> => {
      const once = (client: Client) =>
        Effect.tryPromise({
          try: () => f(client),
          catch: toError(display, operation)
        })
      return Effect.flatMap(SynchronizedRef.get(current), (client) =>
        once(client).pipe(
          Effect.catchIf(
            (error) => reconnect.enabled && reconnect.maxAttempts > 0 && reconnectable(error),
            (error) => Effect.flatMap(reconnectFrom(client, error), once)
          )
        ))
    }

    const listTools = run("tools/list", async (client) => {
      const tools: Array<Tool> = []
      let cursor: string | undefined
      do {
        const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: timeoutMs })
        tools.push(...page.tools)
        cursor = page.nextCursor
      } while (cursor !== undefined)
      return tools
    }).pipe(Effect.withSpan("mcp-auth/tools/list", { attributes: { "mcp.server": display } }))

    const callTool = (tool: string, args: Record<string, unknown> = {}) =>
      run(
        "tools/call",
        (client) =>
          client.callTool({ name: tool, arguments: args }, undefined, { timeout: timeoutMs }) as Promise<CallToolResult>
      ).pipe(Effect.withSpan("mcp-auth/tools/call", { attributes: { "mcp.server": display, "mcp.tool": tool } }))

    return McpClient.of({ name, url, listTools, callTool, sdk: SynchronizedRef.get(current) })
  })

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<McpClient, McpCallError, AuthHeaders.AuthHeaders> =>
  Layer.scoped(McpClient, make(options))

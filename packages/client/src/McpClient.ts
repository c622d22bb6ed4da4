/**
 * An MCP client as an Effect service: connected in a scope (closed with it), `listTools` / `callTool` with typed
 * errors, tool-call timeouts, bounded reads and NAT-style reconnects. A `tools/call` is sent at most once: after a
 * failure that may have reached the server (closed connection, timeout) it fails, and the session is replaced before
 * the next operation; it is sent again only when the connection was refused (or the name did not resolve) before
 * anything was written. `tools/list` is retried once after a reconnect. Server text in errors is scrubbed. Each client takes its `AuthHeaders` from context, so several
 * servers can each use their own service account, or share one (one token cache), as NAT function groups do.
 *
 * @since 0.1.0
 */
import type * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RetrySchedule from "@mcp-auth/service-account/RetrySchedule"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { type CallToolResult, ErrorCode, McpError, type Tool } from "@modelcontextprotocol/sdk/types.js"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as SynchronizedRef from "effect/SynchronizedRef"
import * as AuthenticatedFetch from "./AuthenticatedFetch.js"
import * as BoundedFetch from "./internal/boundedFetch.js"
import * as SecretRing from "./internal/secrets.js"
import { userInfoError } from "./internal/serverUrl.js"
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
 * The most bytes read from one MCP response when `maxResponseBytes` is not given: 8 MiB
 * (`McpClientDefaults.defaultMaxResponseBytes`).
 *
 * @since 0.2.0
 * @category Constants
 */
export const defaultMaxResponseBytes: number = McpClientDefaults.defaultMaxResponseBytes

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
  /**
   * Timeout of `listTools` (per page) and `callTool` (NAT `tool_call_timeout`, default 60 s). It bounds the whole
   * tool call, including a reconnect before it.
   */
  readonly toolCallTimeout?: Duration.DurationInput | undefined
  /**
   * The most bytes read from one MCP response (YAML `max_response_bytes`, default 8 MiB): a JSON response is cut when
   * its body exceeds it, an SSE stream when one event does. The call then fails with `McpRequestError` reason
   * `too_large` and the connection is closed.
   */
  readonly maxResponseBytes?: number | undefined
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

const describe = (cause: unknown): string =>
  cause instanceof Error
    ? `${cause.message}${
      cause.cause instanceof Error ? ` (${(cause.cause as NodeJS.ErrnoException).code ?? cause.cause.message})` : ""
    }`
    : String(cause)

/** Connection failures that prove the request never reached the server: nothing was written. */
const unsentCodes: ReadonlySet<string> = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"])

const neverSent = (cause: unknown, depth = 0): boolean => {
  if (depth > 4 || typeof cause !== "object" || cause === null) return false
  const { cause: inner, code, errors } = cause as { code?: unknown; cause?: unknown; errors?: unknown }
  if (typeof code === "string" && unsentCodes.has(code)) return true
  if (Array.isArray(errors) && errors.length > 0 && errors.every((e) => neverSent(e, depth + 1))) return true
  return neverSent(inner, depth + 1)
}

/** A failure that proves the request never reached the server (so even a `tools/call` may be sent again). */
const provedUnsent = (error: McpCallError): boolean =>
  error._tag === "McpRequestError" && error.reason === "connect" && neverSent(error.cause)

/** The first error code in a cause chain (`fetch failed` → `ECONNREFUSED`). */
const codeOf = (cause: unknown, depth = 0): string | number | undefined => {
  if (depth > 4 || typeof cause !== "object" || cause === null) return undefined
  const { cause: inner, code } = cause as { code?: unknown; cause?: unknown }
  if (typeof code === "number" || (typeof code === "string" && /^[\w.-]{1,50}$/.test(code))) return code
  return codeOf(inner, depth + 1)
}

/** A local failure to build or serialize the request (stack overflow on deep arguments, circular or BigInt values). */
const isLocalFailure = (cause: unknown): boolean =>
  cause instanceof RangeError ||
  (cause instanceof TypeError && cause.cause === undefined && (cause as NodeJS.ErrnoException).code === undefined &&
    cause.message !== "fetch failed")

/** A fetch or socket failure (undici's `TypeError` with a cause, or a Node system error). */
const isTransportFailure = (cause: unknown): boolean =>
  cause instanceof TypeError ||
  (cause instanceof Error && typeof (cause as NodeJS.ErrnoException).code === "string")

/**
 * The cause kept on an `McpRequestError`: its name, scrubbed message and first error code (`ECONNREFUSED`, an HTTP
 * status), nothing the server sent in clear.
 */
const safeCause = (cause: unknown, secrets: ReadonlyArray<string>): Error => {
  const error = new Error(Scrub.text(describe(cause), secrets, { max: 300 }))
  error.name = cause instanceof Error ? Scrub.text(cause.name, [], { max: 50 }) : "Error"
  const code = codeOf(cause)
  if (code !== undefined) Object.assign(error, { code })
  return error
}

/** One MCP session. `broken`: it failed in a way a new session may cure; it is replaced before the next operation. */
interface Connection {
  readonly client: Client
  broken: McpCallError | undefined
  /** Set when the session was closed because a stream no request owns (the GET stream) broke the size limit. */
  fatal: McpRequestError | undefined
}

/** Failures a fresh connection may cure (never auth failures, JSON-RPC errors or our own refusals). */
const reconnectable = (error: McpCallError): boolean =>
  error._tag === "McpRequestError" &&
  error.reason !== "protocol" && error.reason !== "too_large" && error.reason !== "invalid_request"

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
    const userInfo = userInfoError(url)
    if (userInfo !== undefined) return yield* Effect.fail(userInfo)
    const maxResponseBytes = options.maxResponseBytes ?? McpClientDefaults.defaultMaxResponseBytes
    if (!Number.isSafeInteger(maxResponseBytes) || maxResponseBytes <= 0) {
      return yield* Effect.fail(
        new ConfigurationError({
          issues: [
            new ConfigIssue({
              path: "max_response_bytes",
              message: `must be a positive whole number of bytes, got ${String(maxResponseBytes)}`
            })
          ]
        })
      )
    }
    const display = Scrub.url(url)
    const name = options.name ?? display
    const reconnect = { ...defaultReconnect, ...options.reconnect }
    const canReconnect = reconnect.enabled && reconnect.maxAttempts > 0
    const timeoutMs = Duration.toMillis(Duration.decode(options.toolCallTimeout ?? defaultToolCallTimeout))
    const secrets = SecretRing.of(fetch)
    const scrub = (text: string) => Scrub.text(text, secrets.values(), { max: 300 })

    /** Our typed errors pass through; SDK and transport failures become `McpRequestError`, scrubbed. */
    const toError = (operation: string, connection?: Connection) => (cause: unknown): McpCallError => {
      if (isMcpCallError(cause)) return cause
      const make = (reason: McpRequestError["reason"]) =>
        new McpRequestError({
          url: display,
          operation,
          reason,
          detail: scrub(describe(cause)),
          cause: safeCause(cause, secrets.values())
        })
      if (cause instanceof McpError) {
        // a call failed on purpose by the stream guard carries its typed error
        if (isMcpCallError(cause.data)) return cause.data
        if (cause.code === ErrorCode.ConnectionClosed && connection?.fatal !== undefined) {
          return new McpRequestError({ ...connection.fatal, operation })
        }
        return make(
          cause.code === ErrorCode.RequestTimeout
            ? "timeout"
            : cause.code === ErrorCode.ConnectionClosed
            ? "closed"
            : "protocol"
        )
      }
      if (isLocalFailure(cause)) return make("invalid_request")
      if (neverSent(cause)) return make("connect")
      return make(isTransportFailure(cause) ? "closed" : "connect")
    }

    const connect: Effect.Effect<Connection, McpCallError> = Effect.tryPromise({
      try: async (signal) => {
        const client = new Client(options.clientInfo ?? { name: "mcp-auth", version })
        const connection: Connection = { client, broken: undefined, fatal: undefined }
        const bounded = BoundedFetch.make(fetch, {
          limit: maxResponseBytes,
          tooLarge: ({ method, rpcMethod, sse }) =>
            new McpRequestError({
              url: display,
              operation: rpcMethod ?? (method === "GET" ? "stream" : method),
              reason: "too_large",
              detail: sse
                ? `one SSE event from the server exceeded max_response_bytes (${maxResponseBytes} bytes)`
                : `the response body exceeded max_response_bytes (${maxResponseBytes} bytes)`
            }),
          onStreamEnd: ({ cut, error, ids, rpcMethod }) => {
            if (ids.length === 0) {
              // the GET stream (or the deprecated SSE transport's only stream): no call owns it; end the session
              if (cut && error instanceof McpRequestError) {
                connection.fatal = error
                connection.broken = error
                void client.close().catch(() => undefined)
              }
              return
            }
            const failure = cut && isMcpCallError(error) ? error : new McpRequestError({
              url: display,
              operation: rpcMethod ?? "request",
              reason: "closed",
              detail: `the response stream broke before the answer: ${scrub(describe(error))}`
            })
            if (!cut) connection.broken = failure
            // fail the calls at once; the SDK would only report the broken stream to onerror (the transport
            // exists: only it calls this fetch)
            for (const id of ids) {
              transport.onmessage?.({
                jsonrpc: "2.0",
                id,
                error: { code: ErrorCode.InternalError, message: failure.message, data: failure }
              })
            }
          }
        })
        const transport: StreamableHTTPClientTransport | SSEClientTransport = options.transport === "sse"
          ? new SSEClientTransport(url, { fetch: bounded, eventSourceInit: { fetch: bounded } })
          : new StreamableHTTPClientTransport(url, { fetch: bounded })
        const abort = () => void client.close().catch(() => undefined)
        signal.addEventListener("abort", abort, { once: true })
        try {
          await client.connect(transport, { timeout: timeoutMs })
        } catch (error) {
          await client.close().catch(() => undefined)
          throw error
        } finally {
          signal.removeEventListener("abort", abort)
        }
        if (signal.aborted) await client.close().catch(() => undefined)
        return connection
      },
      catch: toError("connect")
    }).pipe(
      Effect.mapError((error) =>
        error._tag === "McpRequestError" && error.reason !== "connect" && error.reason !== "too_large" &&
          error.reason !== "invalid_request"
          ? new McpRequestError({ ...error, reason: "connect" })
          : error
      )
    )
    const close = (connection: Connection) => Effect.promise(() => connection.client.close().catch(() => undefined))

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
    const reconnectFrom = (failed: Connection, error: McpCallError) =>
      SynchronizedRef.updateAndGetEffect(current, (connection) =>
        connection !== failed ? Effect.succeed(connection) : Effect.gen(function*() {
          yield* close(connection)
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

    /** The current connection, replaced first if an earlier operation left it broken. */
    const usable = Effect.flatMap(SynchronizedRef.get(current), (connection) =>
      connection.broken !== undefined && canReconnect
        ? reconnectFrom(connection, connection.broken)
        : Effect.succeed(connection))

    /** One request on one connection; a failure a new session may cure marks the connection broken. */
    const attempt = <A>(
      connection: Connection,
      operation: string,
      f: (client: Client, signal: AbortSignal) => Promise<A>
    ): Effect.Effect<A, McpCallError> =>
      Effect.tryPromise({
        try: (signal) =>
          f(connection.client, signal),
        catch: toError(operation, connection)
      }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            if (reconnectable(error)) {
              connection.broken ??= error
            }
          })
        ),
        // interrupted in flight (the call's timeout): the session may still answer; the next operation gets a new one
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            connection.broken ??= new McpRequestError({
              url: display,
              operation,
              reason: "timeout",
              detail: "interrupted"
            })
          })
        )
      )

    const listTools = Effect.flatMap(usable, (connection) => {
      const list = (connection: Connection) =>
        attempt(connection, "tools/list", async (client, signal) => {
          const tools: Array<Tool> = []
          let cursor: string | undefined
          do {
            const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: timeoutMs, signal })
            tools.push(...page.tools)
            cursor = page.nextCursor
          } while (cursor !== undefined)
          return tools
        })
      return list(connection).pipe(
        Effect.catchIf(
          (error) =>
            canReconnect && reconnectable(error),
          (error) =>
            Effect.flatMap(reconnectFrom(connection, error), list)
        )
      )
    }).pipe(Effect.withSpan("mcp-auth/tools/list", { attributes: { "mcp.server": display } }))

    /**
     * A tool call is sent at most once: it is sent again (on a new connection) only when the failure proves it never
     * reached the server. `tool_call_timeout` bounds the whole call, reconnects included.
     */
    const callTool = (tool: string, args: Record<string, unknown> = {}) =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + timeoutMs
        const call = (connection: Connection) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            attempt(
              connection,
              "tools/call",
              (client, signal) =>
                client.callTool({ name: tool, arguments: args }, undefined, {
                  timeout: Math.max(1, deadline - now),
                  signal
                }) as Promise<CallToolResult>
            ))
        const connection = yield* usable
        return yield* call(connection).pipe(
          Effect.catchIf(
            (error) => canReconnect && provedUnsent(error),
            (error) => Effect.flatMap(reconnectFrom(connection, error), call)
          )
        )
      }).pipe(
        Effect.timeoutFail({
          duration: timeoutMs,
          onTimeout: () =>
            new McpRequestError({
              url: display,
              operation: "tools/call",
              reason: "timeout",
              detail: `no answer within tool_call_timeout (${Duration.format(Duration.millis(timeoutMs))})`
            })
        }),
        Effect.withSpan("mcp-auth/tools/call", { attributes: { "mcp.server": display, "mcp.tool": tool } })
      )

    return McpClient.of({
      name,
      url,
      listTools,
      callTool,
      sdk: Effect.map(SynchronizedRef.get(current), (connection) => connection.client)
    })
  })

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<McpClient, McpCallError, AuthHeaders.AuthHeaders> =>
  Layer.scoped(McpClient, make(options))

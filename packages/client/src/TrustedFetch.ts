/**
 * A Node `fetch` (undici) that trusts the system roots plus an extra PEM bundle, for MCP servers behind an internal
 * certificate authority. Pass it as the base `fetch` of {@link AuthenticatedFetch} / `McpClient`.
 *
 * @since 0.1.0
 */
import * as Undici from "@effect/platform-node/Undici"
import type { ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * A fetch over an undici dispatcher (closed with the scope).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromDispatcher = (dispatcher: Undici.Dispatcher): FetchLike => (url, init) =>
  Undici.fetch(url, { ...(init as Undici.RequestInit), dispatcher }) as unknown as Promise<Response>

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: TokenHttpClient.TlsOptions): Effect.Effect<FetchLike, ConfigurationError, Scope.Scope> =>
  Effect.map(TokenHttpClient.makeDispatcher(options), fromDispatcher)

/**
 * The usual pair, wired together: an {@link AuthorizationServer} whose default audience is the URL of an
 * {@link McpServer} that verifies its tokens. Handy for the demo, benchmarks and end-to-end tests.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as AuthorizationServer from "./AuthorizationServer.js"
import * as internal from "./internal/server.js"
import * as McpServer from "./McpServer.js"
import type { TestPki } from "./TestPki.js"
import type { Started } from "./TestServer.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly clients: ReadonlyArray<AuthorizationServer.Client>
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly accessTokenTtlSeconds?: number | undefined
  readonly requiredScopes?: ReadonlyArray<string> | undefined
  readonly serviceToken?: McpServer.ServiceTokenOptions | undefined
  readonly mode?: "stateful" | "stateless" | undefined
  /** Serve both over HTTPS with `pki.server` (the MCP server fetches the JWKS trusting `pki.ca`). */
  readonly pki?: TestPki | undefined
  /** Further MCP server options (override the ones above). */
  readonly mcp?: Partial<McpServer.Options> | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface TestStack {
  readonly authorizationServer: AuthorizationServer.AuthorizationServer
  readonly mcpServer: McpServer.McpServer
  /** `authorizationServer.tokenUrl` */
  readonly tokenUrl: string
  /** `mcpServer.url` */
  readonly mcpUrl: string
  /** Clears the records of both servers. */
  readonly clearRecords: () => void
}

/**
 * Starts both servers from plain async code; `close()` closes both.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const start = async (options: Options): Promise<Started<TestStack>> => {
  const authorizationServer = await AuthorizationServer.start({
    clients: options.clients,
    scopes: options.scopes,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds,
    https: options.pki?.server
  })
  let mcpServer: Started<McpServer.McpServer>
  try {
    mcpServer = await McpServer.start({
      authorizationServer,
      requiredScopes: options.requiredScopes,
      serviceToken: options.serviceToken,
      mode: options.mode,
      ca: options.pki?.ca,
      https: options.pki?.server,
      ...options.mcp
    })
  } catch (error) {
    await authorizationServer.close()
    throw error
  }
  authorizationServer.setAudience(mcpServer.url)
  return {
    authorizationServer,
    mcpServer,
    tokenUrl: authorizationServer.tokenUrl,
    mcpUrl: mcpServer.url,
    clearRecords: () => {
      authorizationServer.clearRecords()
      mcpServer.clearRecords()
    },
    close: async () => {
      await mcpServer.close()
      await authorizationServer.close()
    }
  }
}

/**
 * Both servers as a scoped resource.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options: Options) => Effect.Effect<TestStack, never, Scope.Scope> = internal.scoped(start)

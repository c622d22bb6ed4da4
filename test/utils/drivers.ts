import { AuthenticatedFetch, createServiceAccountAuth, McpClient } from "@mcp-auth/client"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { Cause, Effect, Exit, Layer, ManagedRuntime } from "effect"

/** One connected MCP client, however it was built. */
export interface Session {
  readonly listTools: () => Promise<ReadonlyArray<string>>
  readonly callTool: (name: string, args?: Record<string, unknown>) => Promise<CallToolResult>
  /** A fetch through the same auth, for requests to other origins (undefined when the driver has none). */
  readonly fetch: ((url: string) => Promise<Response>) | undefined
  readonly close: () => Promise<void>
}

export interface Driver {
  readonly name: string
  /** Whether this path can send the service header (the SDK's authProvider cannot). */
  readonly dual: boolean
  /** Whether concurrent 401s are coalesced (the SDK's own auth path is not). */
  readonly coalesces401: boolean
  readonly connect: (config: Record<string, unknown>, serverUrl: string) => Promise<Session>
}

const rejectTyped = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

/** The auth stack for one provider: TokenProvider (undici, ca_file honoured) + ServiceToken → AuthHeaders. */
export const authLayer = (config: ServiceAccountConfig.ServiceAccountConfig) =>
  AuthHeaders.layer.pipe(
    Layer.provide(ServiceToken.layerFromConfig(config)),
    Layer.provideMerge(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layerFromConfig(config))))
  )

export const effectDriver: Driver = {
  name: "Effect McpClient",
  dual: true,
  coalesces401: true,
  connect: async (input, serverUrl) => {
    const config = ServiceAccountConfig.decodeSync(input)
    const runtime = ManagedRuntime.make(McpClient.layer({ url: serverUrl }).pipe(Layer.provideMerge(authLayer(config))))
    const run = <A, E>(f: (client: McpClient.McpClient) => Effect.Effect<A, E>) =>
      runtime.runPromiseExit(Effect.flatMap(McpClient.McpClient, f)).then(rejectTyped)
    try {
      await run(() => Effect.void)
    } catch (error) {
      await runtime.dispose()
      throw error
    }
    const fetch = await runtime.runPromise(AuthenticatedFetch.make({ serverUrl }))
    return {
      listTools: () => run((c) => Effect.map(c.listTools, (tools) => tools.map((t) => t.name))),
      callTool: (name, args) => run((c) => c.callTool(name, args)),
      fetch: (url) => fetch(url),
      close: () => runtime.dispose()
    }
  }
}

const sdkSession = async (
  transport: StreamableHTTPClientTransport,
  close: () => Promise<void>,
  fetch: Session["fetch"]
): Promise<Session> => {
  const client = new Client({ name: "e2e", version: "0.0.0" })
  try {
    await client.connect(transport)
  } catch (error) {
    await close()
    throw error
  }
  return {
    listTools: async () => (await client.listTools()).tools.map((t) => t.name),
    callTool: async (name, args = {}) => (await client.callTool({ name, arguments: args })) as CallToolResult,
    fetch,
    close: async () => {
      await client.close()
      await close()
    }
  }
}

export const promiseDriver: Driver = {
  name: "Promise API fetch",
  dual: true,
  coalesces401: true,
  connect: async (input, serverUrl) => {
    const auth = createServiceAccountAuth(input, { serverUrl })
    return sdkSession(
      new StreamableHTTPClientTransport(new URL(serverUrl), { fetch: auth.fetch }),
      auth.close,
      (url) => auth.fetch(url)
    )
  }
}

export const adapterDriver: Driver = {
  name: "SDK authProvider adapter",
  dual: false,
  coalesces401: false,
  connect: async (input, serverUrl) => {
    const auth = createServiceAccountAuth(input, { serverUrl })
    return sdkSession(
      new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: auth.authProvider() }),
      auth.close,
      undefined
    )
  }
}

export const text = (result: CallToolResult): string =>
  result.content.map((c) => (c.type === "text" ? c.text : "")).join("")

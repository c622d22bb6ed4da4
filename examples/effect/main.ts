/**
 * mcp-auth from Effect, composing the Layers by hand:
 *
 *   SERVICE_ACCOUNT_* env ─▶ ServiceAccountConfig ─▶ TokenProvider (undici, honours ca_file)
 *                                                 └▶ ServiceToken (none | static | function)
 *                                                          ─▶ AuthHeaders ─▶ McpClient (MCP_SERVER_URL)
 *
 * Run: SERVICE_ACCOUNT_CLIENT_ID=… SERVICE_ACCOUNT_CLIENT_SECRET=… SERVICE_ACCOUNT_TOKEN_URL=https://…/token \
 *      SERVICE_ACCOUNT_SCOPES="mcp:tools" MCP_SERVER_URL=https://…/mcp npx tsx examples/effect/main.ts
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { McpClient } from "@mcp-auth/client"
import { AuthHeaders, ServiceAccountConfig, ServiceToken, TokenProvider } from "@mcp-auth/service-account"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import { Config, Console, Effect, Layer } from "effect"
import { pathToFileURL } from "node:url"

/** The service account from SERVICE_ACCOUNT_* variables, validated like a YAML block. */
export const AuthLive = Layer.unwrapEffect(
  Effect.map(ServiceAccountConfig.fromEnv, (config) =>
    AuthHeaders.layer.pipe(
      Layer.provide(ServiceToken.layerFromConfig(config)),
      Layer.provideMerge(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layerFromConfig(config))))
    ))
)

/** One MCP server, authenticated by AuthLive. */
export const McpLive = Layer.unwrapEffect(Effect.map(Config.url("MCP_SERVER_URL"), (url) => McpClient.layer({ url })))

export const program = Effect.gen(function*() {
  const client = yield* McpClient.McpClient
  const tools = yield* client.listTools
  yield* Console.log(`tools: ${tools.map((t) => t.name).join(", ")}`)
  const result = yield* client.callTool("echo", { text: "hello from Effect" })
  yield* Console.log(`echo: ${result.content.map((c) => (c.type === "text" ? c.text : "")).join("")}`)
  const state = yield* Effect.flatMap(TokenProvider.TokenProvider, (p) => p.state)
  yield* Console.log(`token: ${state.status}`)
}).pipe(
  // the typed errors read like a runbook
  Effect.catchTags({
    InvalidCredentialsError: (e) => Console.error(`fix the credentials: ${e.message}`),
    RateLimitedError: (e) => Console.error(`try again later: ${e.message}`),
    TlsError: (e) => Console.error(`trust the CA (ca_file): ${e.message}`)
  })
)

export const main = program.pipe(Effect.provide(McpLive.pipe(Layer.provideMerge(AuthLive))))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  NodeRuntime.runMain(main)
}

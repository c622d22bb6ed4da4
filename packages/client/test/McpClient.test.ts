import { describe, expect, it } from "@effect/vitest"
import * as McpClient from "@mcp-auth/client/McpClient"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { AuthorizationServer, McpServer, TestStack } from "@mcp-auth/testing"
import { Effect, Layer } from "effect"

const clients = [
  { clientId: "svc-a", clientSecret: "secret-a" },
  { clientId: "svc-b", clientSecret: "secret-b" }
]

const auth = (tokenUrl: string, client: { clientId: string; clientSecret: string }, extra: object = {}) => {
  const config = ServiceAccountConfig.decodeSync({
    client_id: client.clientId,
    client_secret: client.clientSecret,
    token_url: tokenUrl,
    allow_insecure_http: true,
    ...extra
  })
  return AuthHeaders.layer.pipe(
    Layer.provide(ServiceToken.layerFromConfig(config)),
    Layer.provide(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layer())))
  )
}

const never = new Promise<never>(() => {})

describe("McpClient", () => {
  it.scopedLive("applies tool_call_timeout to tool calls", () =>
    Effect.gen(function*() {
      // a tool that never answers: only the timeout can end the call, whatever the scheduling
      const stack = yield* TestStack.make({
        clients,
        mcp: { configure: (server) => server.registerTool("hang", { description: "Never answers" }, () => never) }
      })
      // the timeout also bounds connect (initialize + the first token): well above that on a loaded machine
      const client = yield* McpClient.make({
        url: stack.mcpUrl,
        toolCallTimeout: "3 seconds",
        reconnect: { enabled: false }
      })
        .pipe(Effect.provide(yield* Layer.build(auth(stack.tokenUrl, clients[0]!))))
      // connected and holding a token first, so the timeout can only be the hanging call's
      yield* client.listTools
      const error = yield* Effect.flip(client.callTool("hang"))
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "timeout", operation: "tools/call" })
      expect(error.message).toMatch(/^MCP tools\/call timed out/)
      const ok = yield* client.callTool("echo", { text: "still connected" })
      expect(ok.isError ?? false).toBe(false)
    }))

  it.scopedLive("reconnects after a connection failure and retries the operation once (NAT behaviour)", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients })
      let failNext = false
      const flaky: typeof fetch = (url, init) => {
        if (failNext && typeof init?.body === "string" && init.body.includes("tools/call")) {
          failNext = false
          return Promise.reject(
            new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) })
          )
        }
        return fetch(url, init)
      }
      const client = yield* McpClient.make({
        url: stack.mcpUrl,
        fetch: flaky,
        reconnect: { initialBackoff: "10 millis" }
      }).pipe(Effect.provide(yield* Layer.build(auth(stack.tokenUrl, clients[0]!))))
      failNext = true
      const result = yield* client.callTool("echo", { text: "after reconnect" })
      expect(result.isError ?? false).toBe(false)
      const initializes = stack.mcpServer.mcpRequests.filter((r) => r.rpcMethod === "initialize")
      expect(initializes).toHaveLength(2)
      expect(stack.authorizationServer.tokenRequestCount).toBe(1) // the token survived the reconnect
    }))

  it.scopedLive("without reconnects, a connection failure is a typed McpRequestError", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients })
      let broken = false
      const flaky: typeof fetch = (url, init) =>
        broken
          ? Promise.reject(
            new TypeError("fetch failed", { cause: Object.assign(new Error("refused"), { code: "ECONNREFUSED" }) })
          )
          : fetch(url, init)
      const client = yield* McpClient.make({ url: stack.mcpUrl, fetch: flaky, reconnect: { enabled: false } }).pipe(
        Effect.provide(yield* Layer.build(auth(stack.tokenUrl, clients[0]!)))
      )
      broken = true
      const error = yield* Effect.flip(client.listTools)
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "connect", operation: "tools/list" })
      expect(error.message).toContain("ECONNREFUSED")
    }))

  it.scopedLive("a 403 for a missing service token is typed and not retried by reconnecting", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients, serviceToken: { accept: "expected-token" } })
      const error = yield* Effect.flip(
        McpClient.make({ url: stack.mcpUrl }).pipe(
          Effect.provide(auth(stack.tokenUrl, clients[0]!, { service_token: { token: "wrong-token" } }))
        )
      )
      expect(error).toMatchObject({ _tag: "McpForbiddenError" })
      expect(stack.mcpServer.forbiddenCount).toBe(1)
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
    }))

  it.scopedLive("several servers, each with its own service account, or two sharing one token cache", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients })
      const jira = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const jama = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const wiki = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const shared = yield* Layer.build(auth(as.tokenUrl, clients[0]!))
      const own = yield* Layer.build(auth(as.tokenUrl, clients[1]!))
      const clientsByServer = {
        jira: yield* McpClient.make({ url: jira.url, name: "jira" }).pipe(Effect.provide(shared)),
        jama: yield* McpClient.make({ url: jama.url, name: "jama" }).pipe(Effect.provide(shared)),
        wiki: yield* McpClient.make({ url: wiki.url, name: "wiki" }).pipe(Effect.provide(own))
      }
      for (const client of Object.values(clientsByServer)) yield* client.callTool("whoami")
      const seenBy = (server: McpServer.McpServer) => server.mcpRequests.map((r) => r.clientId)
      expect(new Set(seenBy(jira))).toEqual(new Set(["svc-a"]))
      expect(new Set(seenBy(jama))).toEqual(new Set(["svc-a"]))
      expect(new Set(seenBy(wiki))).toEqual(new Set(["svc-b"]))
      expect(as.tokenRequests.map((r) => r.clientId).sort()).toEqual(["svc-a", "svc-b"])
    }))
})

/**
 * The example programs run against the embedded servers (the NAT workflow examples run in the workflow and CLI
 * suites).
 */
import { describe, expect, it } from "@effect/vitest"
import { TestStack } from "@mcp-auth/testing"
import { ConfigProvider, Effect } from "effect"
import { main as effectMain } from "../examples/effect/main.js"
import { main as promiseMain } from "../examples/promise/main.js"

const CLIENT = { clientId: "svc-examples", clientSecret: "examples-secret" }

const envFor = (stack: TestStack.TestStack) => ({
  SERVICE_ACCOUNT_CLIENT_ID: CLIENT.clientId,
  SERVICE_ACCOUNT_CLIENT_SECRET: CLIENT.clientSecret,
  SERVICE_ACCOUNT_TOKEN_URL: stack.tokenUrl,
  SERVICE_ACCOUNT_SCOPES: "mcp:tools",
  SERVICE_ACCOUNT_ALLOW_INSECURE_HTTP: "true",
  MCP_SERVER_URL: stack.mcpUrl
})

const echoed = (stack: TestStack.TestStack) =>
  stack.mcpServer.mcpRequests.filter((r) => r.rpcMethod === "tools/call").map((r) => r.body)

describe("examples", () => {
  it.scopedLive("examples/effect/main.ts: Layers composed by hand, configured from SERVICE_ACCOUNT_* variables", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients: [CLIENT], scopes: ["mcp:tools"], requiredScopes: ["mcp:tools"] })
      yield* effectMain.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(envFor(stack))))))
      expect(JSON.stringify(echoed(stack))).toContain("hello from Effect")
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
    }))

  it.scopedLive("examples/promise/main.ts: the Promise API with the SDK's transport, dual pattern", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({
        clients: [CLIENT],
        scopes: ["mcp:tools"],
        serviceToken: { accept: "jira-example-token" }
      })
      const lines = yield* Effect.promise(() =>
        promiseMain({ ...envFor(stack), JIRA_SERVICE_TOKEN: "jira-example-token" })
      )
      expect(lines[0]).toMatch(/^tools: .*echo/)
      expect(lines[1]).toBe("echo: hello from Promises")
      expect(lines[2]).toMatch(/^token expires at \d{4}-/)
      expect(stack.mcpServer.forbiddenCount).toBe(0)
    }))

  it.live("examples/promise/main.ts reports invalid credentials as the typed error", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients: [CLIENT] })
      const lines = yield* Effect.promise(() =>
        promiseMain({ ...envFor(stack), SERVICE_ACCOUNT_CLIENT_SECRET: "wrong" })
      )
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^fix the credentials: Invalid service account credentials/)
    }).pipe(Effect.scoped))
})

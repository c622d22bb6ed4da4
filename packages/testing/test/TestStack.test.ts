import { describe, expect, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { Effect } from "effect"
import { BasicCredentials, TestPki, TestStack } from "../src/index.js"
import { fetchTrusting } from "./helpers.js"

describe("TestStack", () => {
  it("async: AS audience = MCP URL; dual mode end to end", async () => {
    const stack = await TestStack.start({
      clients: [{ clientId: "svc-a", clientSecret: "secret-a" }],
      serviceToken: { accept: "svc-1" }
    })
    try {
      const body = await (await fetch(stack.tokenUrl, {
        method: "POST",
        headers: { authorization: BasicCredentials.encode("svc-a", "secret-a") },
        body: new URLSearchParams({ grant_type: "client_credentials" })
      })).json()
      const client = new Client({ name: "t", version: "0" })
      await client.connect(
        new StreamableHTTPClientTransport(new URL(stack.mcpUrl), {
          requestInit: { headers: { Authorization: `Bearer ${body.access_token}`, "X-Service-Account-Token": "svc-1" } }
        })
      )
      const result = await client.callTool({ name: "whoami", arguments: {} })
      expect(JSON.parse((result.content as Array<{ text: string }>)[0]!.text).clientId).toBe("svc-a")
      await client.close()
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
      expect(stack.authorizationServer.tokenRequests[0]!.headers["x-service-account-token"]).toBeUndefined()
      stack.clearRecords()
      expect(stack.mcpServer.requestCount).toBe(0)
    } finally {
      await stack.close()
    }
  })

  it.scopedLive("Effect: both over HTTPS with the test PKI", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const stack = yield* TestStack.make({ clients: [{ clientId: "svc-a", clientSecret: "secret-a" }], pki })
      expect(stack.mcpUrl).toMatch(/^https:/)
      const client = fetchTrusting(pki.ca)
      yield* Effect.addFinalizer(() => Effect.promise(() => client.destroy()))
      const token = yield* Effect.promise(async () =>
        (await (await client.fetch(stack.tokenUrl, {
          method: "POST",
          headers: { authorization: BasicCredentials.encode("svc-a", "secret-a") },
          body: new URLSearchParams({ grant_type: "client_credentials" })
        })).json()).access_token as string
      )
      const status = yield* Effect.promise(async () =>
        (await client.fetch(stack.mcpUrl, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream"
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } }
          })
        })).status
      )
      expect(status).toBe(200)
      expect(stack.mcpServer.requests[0]!.auth).toBe("ok")
    }))
})

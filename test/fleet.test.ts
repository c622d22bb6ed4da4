/**
 * A fleet sharing tokens through a real redis-server (issue 15), end to end: workflows loaded from YAML with
 * `shared_cache`, each with its own providers (as separate processes would be), against oidc-provider and the testing
 * MCP server. The counts across real processes are the fleet benchmark's (packages/bench); here: one token request
 * for the fleet, what Redis holds (encrypted or, as the README warns, in clear), and the CLI saying where its token
 * came from.
 */
import { describe, expect, it } from "@effect/vitest"
import { AuthorizationServer, McpServer, RedisServer } from "@mcp-auth/testing"
import * as Workflow from "@mcp-auth/workflow/Workflow"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import { Effect, Redacted, Schedule } from "effect"

const client = { clientId: "svc-fleet", clientSecret: "fleet-secret-value" }
const KEY = Buffer.alloc(32, 3).toString("base64")

const yaml = (tokenUrl: string, mcpUrl: string, redisUrl: string, encryptionKey?: string) => `
authentication:
  sa:
    _type: mcp_service_account
    client_id: ${client.clientId}
    client_secret: \${SECRET}
    token_url: ${tokenUrl}
    allow_insecure_http: true
    scopes: [mcp:tools]
    resource: ${mcpUrl}
    shared_cache:
      url: ${redisUrl}
${encryptionKey === undefined ? "" : `      encryption_key: \${CACHE_KEY}\n`}function_groups:
  tools:
    _type: mcp_client
    server:
      transport: streamable-http
      url: ${mcpUrl}
      auth_provider: sa
`

/** Every value stored under the prefix, as redis-cli prints it. */
const rawValues = (redis: RedisServer.RedisServer) =>
  Effect.promise(async () => {
    const keys = (await redis.cli(["--scan", "--pattern", "mcp-auth:*"])).split("\n").filter((k) => k.length > 0)
    const values = await Promise.all(
      keys.map(async (key) =>
        (await redis.cli(["TYPE", key])).trim() === "hash" ? redis.cli(["HGETALL", key]) : redis.cli(["GET", key])
      )
    )
    return { keys, text: values.join("\n") }
  })

describe("a fleet on Redis (workflows, real servers)", () => {
  for (const encrypted of [true, false]) {
    it.scopedLive(
      `three workers, one token request; Redis holds the token ${encrypted ? "encrypted" : "in clear (no key)"}`,
      () =>
        Effect.gen(function*() {
          const as = yield* AuthorizationServer.make({ clients: [client], scopes: ["mcp:tools"] })
          const mcp = yield* McpServer.make({ authorizationServer: as, requiredScopes: ["mcp:tools"] })
          const redis = yield* RedisServer.make({})
          const config = yield* WorkflowConfig.parse(
            yaml(as.tokenUrl, mcp.url, redis.url, encrypted ? KEY : undefined),
            { env: { SECRET: client.clientSecret, CACHE_KEY: KEY } }
          )
          const workers = yield* Effect.all([Workflow.make(config), Workflow.make(config), Workflow.make(config)])
          // one after the other: the first publishes, the others adopt (no lock contention needed to share)
          for (const [i, worker] of workers.entries()) {
            const result = yield* worker.groups.get("tools")!.callTool("echo", { text: `worker ${i}` })
            expect(result.content).toEqual([{ type: "text", text: `worker ${i}` }])
          }
          expect(as.tokenRequestCount).toBe(1)
          const sources = yield* Effect.forEach(workers, (w) => w.providers.get("sa")!.state)
          expect(sources.map((s) => s.sharedCache?.lastSource)).toEqual(["endpoint", "fleet", "fleet"])
          const token = Redacted.value((yield* workers[0]!.providers.get("sa")!.get).token)
          const raw = yield* rawValues(redis)
          expect(raw.keys.some((k) => /^mcp-auth:\{[A-Za-z0-9_-]+\}:token$/.test(k))).toBe(true)
          expect(raw.text.includes(token)).toBe(!encrypted)
          expect(raw.text).not.toContain(client.clientSecret)
        })
    )
  }

  it.scopedLive("Redis down: the workers fail open (0 failed calls); back: they share again", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients: [client], scopes: ["mcp:tools"] })
      const mcp = yield* McpServer.make({ authorizationServer: as, requiredScopes: ["mcp:tools"] })
      const redis = yield* RedisServer.make({})
      const config = yield* WorkflowConfig.parse(yaml(as.tokenUrl, mcp.url, redis.url), {
        env: { SECRET: client.clientSecret }
      })
      // connecting fetches the first token: one request for both
      const workers = yield* Effect.all([Workflow.make(config), Workflow.make(config)])
      expect(as.tokenRequestCount).toBe(1)
      const call = (text: string) =>
        Effect.forEach(workers, (worker) => worker.groups.get("tools")!.callTool("echo", { text }))
      /** Revokes the token every worker holds: their next calls get a 401 and fetch a new one. */
      const revokeAll = Effect.forEach(
        workers,
        (worker) => Effect.map(worker.providers.get("sa")!.get, (token) => mcp.revoke(Redacted.value(token.token)))
      )

      yield* Effect.promise(() => redis.kill())
      yield* revokeAll
      yield* call("down")
      // each fetched alone, and says the store is unavailable
      expect(as.tokenRequestCount).toBe(3)
      for (const worker of workers) {
        expect((yield* worker.providers.get("sa")!.state).sharedCache?.unavailableSince).toBeDefined()
      }

      yield* Effect.promise(() => redis.restart())
      // once the clients have reconnected (by themselves, within a few seconds): one request for both again
      const shared = Effect.gen(function*() {
        const before = as.tokenRequestCount
        yield* revokeAll
        yield* call("back")
        const state = yield* workers[1]!.providers.get("sa")!.state
        if (as.tokenRequestCount - before !== 1 || state.sharedCache?.lastSource !== "fleet") {
          return yield* Effect.fail("not shared yet")
        }
      })
      yield* Effect.retry(shared, Schedule.intersect(Schedule.spaced("500 millis"), Schedule.recurs(40)))
      expect((yield* workers[1]!.providers.get("sa")!.state).sharedCache).toEqual({ lastSource: "fleet" })
    }))
})

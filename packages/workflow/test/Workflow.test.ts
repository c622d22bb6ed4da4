import { describe, expect, it } from "@effect/vitest"
import { AuthorizationServer, McpServer } from "@mcp-auth/testing"
import { Workflow, WorkflowConfig } from "@mcp-auth/workflow"
import { Effect, Either } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const examples = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../examples/nat-workflows")
const clients = [{ clientId: "svc-nat", clientSecret: "nat-secret" }]

/** A real AS, a Jama-like server (bearer only) and a Jira-like server (bearer + service header). */
const servers = Effect.gen(function*() {
  const as = yield* AuthorizationServer.make({ clients, scopes: ["mcp:tools"] })
  const jama = yield* McpServer.make({ authorizationServer: as, audience: as.issuer, requiredScopes: ["mcp:tools"] })
  const jira = yield* McpServer.make({
    authorizationServer: as,
    audience: as.issuer,
    requiredScopes: ["mcp:tools"],
    serviceToken: { header: "X-Jira-Service-Token", accept: "jira-token" }
  })
  const env = {
    SERVICE_ACCOUNT_CLIENT_ID: "svc-nat",
    SERVICE_ACCOUNT_CLIENT_SECRET: "nat-secret",
    SERVICE_ACCOUNT_TOKEN_URL: as.tokenUrl,
    SERVICE_ACCOUNT_SCOPES: "mcp:tools",
    CORPORATE_MCP_SERVICE_ACCOUNT_JAMA_URL: jama.url,
    CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: jira.url,
    JIRA_SERVICE_TOKEN: "jira-token",
    SERVICE_TOKEN_HEADER: "X-Jira-Service-Token"
  }
  return { as, jama, jira, env }
})

/** The NAT example configs talk to http:// loopback servers here, which needs allow_insecure_http. */
const loadExample = (name: string, env: Record<string, string>) =>
  WorkflowConfig.parse(
    Fs.readFileSync(Path.join(examples, `config-mcp-service-account-${name}.yml`), "utf8").replace(
      "    token_cache_buffer_seconds: 300",
      "    token_cache_buffer_seconds: 300\n    allow_insecure_http: true"
    ),
    { env, baseDir: examples }
  )

describe("Workflow (real servers)", () => {
  for (const [name, server] of [["jama", "jama"], ["jira", "jira"], ["jira-function", "jira"]] as const) {
    it.scopedLive(`runs the NAT example ${name}: tools list and a tool call with the right headers`, () =>
      Effect.gen(function*() {
        const s = yield* servers
        // the example's function reads the process environment, as NAT's does
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const saved = { header: process.env.SERVICE_TOKEN_HEADER, token: process.env.JIRA_SERVICE_TOKEN }
            process.env.SERVICE_TOKEN_HEADER = s.env.SERVICE_TOKEN_HEADER
            process.env.JIRA_SERVICE_TOKEN = s.env.JIRA_SERVICE_TOKEN
            return saved
          }),
          (saved) =>
            Effect.sync(() => {
              for (
                const [key, value] of [["SERVICE_TOKEN_HEADER", saved.header], [
                  "JIRA_SERVICE_TOKEN",
                  saved.token
                ]] as const
              ) {
                if (value === undefined) delete process.env[key]
                else process.env[key] = value
              }
            })
        )
        const config = Either.getOrThrowWith(loadExample(name, s.env), (e) => new Error(e.message))
        const workflow = yield* Workflow.make(config)
        const [group] = [...workflow.groups.values()]
        const tools = yield* group!.listTools
        expect(tools.map((t) => t.name)).toEqual(
          expect.arrayContaining(["echo", "jira_get_issue", "jama_list_releases"])
        )
        const result = yield* group!.callTool("whoami")
        expect(result.isError ?? false).toBe(false)
        const mcp = s[server]
        expect(mcp.forbiddenCount).toBe(0)
        expect(mcp.mcpRequests.every((r) => r.clientId === "svc-nat")).toBe(true)
        if (server === "jira") {
          expect(mcp.mcpRequests.every((r) => r.headers["x-jira-service-token"] === "jira-token")).toBe(true)
        }
        expect(s.as.tokenRequestCount).toBe(1)
        expect(s.as.tokenRequests.every((r) => r.headers["x-jira-service-token"] === undefined)).toBe(true)
      }))
  }

  it.scopedLive("include/exclude and tool_overrides shape what a group exposes; groups share a provider's cache", () =>
    Effect.gen(function*() {
      const s = yield* servers
      const config = Either.getOrThrowWith(
        WorkflowConfig.parse(
          `
authentication:
  sa:
    _type: mcp_service_account
    client_id: svc-nat
    client_secret: nat-secret
    token_url: ${s.as.tokenUrl}
    allow_insecure_http: true
    scopes: mcp:tools
    preflight_auth: true
function_groups:
  only_jama:
    _type: mcp_client
    include: [jama_list_releases, jama_get_item]
    tool_overrides:
      jama_list_releases: { alias: releases, description: All Jama releases }
    server: { url: "${s.jama.url}", auth_provider: sa }
  no_sleep:
    _type: mcp_client
    exclude: [sleep]
    server: { url: "${s.jama.url}", auth_provider: sa }
`,
          {}
        ),
        (e) => new Error(e.message)
      )
      const workflow = yield* Workflow.make(config)
      expect(s.as.tokenRequestCount).toBe(1) // preflight_auth fetched before any MCP request
      const onlyJama = workflow.groups.get("only_jama")!
      const tools = yield* onlyJama.listTools
      expect(tools.map((t) => [t.name, t.serverName])).toEqual([["releases", "jama_list_releases"], [
        "jama_get_item",
        "jama_get_item"
      ]])
      expect(tools[0]!.description).toBe("All Jama releases")
      const releases = yield* onlyJama.callTool("releases", { projectId: 7 })
      expect(releases.isError ?? false).toBe(false)
      const excluded = yield* Effect.flip(onlyJama.callTool("echo", { text: "x" }))
      expect(excluded.message).toContain("tool echo is not exposed by function group only_jama")
      const noSleep = yield* workflow.groups.get("no_sleep")!.listTools
      expect(noSleep.map((t) => t.name)).not.toContain("sleep")
      expect(noSleep.map((t) => t.name)).toContain("echo")
      expect(s.as.tokenRequestCount).toBe(1)
    }))

  it.scopedLive("a missing service-token module fails at start-up with a clear error", () =>
    Effect.gen(function*() {
      const s = yield* servers
      const config = Either.getOrThrowWith(
        WorkflowConfig.parse(
          `
authentication:
  sa:
    _type: mcp_service_account
    client_id: svc-nat
    client_secret: nat-secret
    token_url: ${s.as.tokenUrl}
    allow_insecure_http: true
    service_token: { function: "./missing.ts#getToken" }
`,
          { baseDir: examples }
        ),
        (e) => new Error(e.message)
      )
      const error = yield* Effect.flip(Workflow.make(config))
      expect(error).toMatchObject({ _tag: "ServiceTokenError", reason: "load_failed" })
      expect(error.message).toContain("missing.ts does not exist")
      expect(s.as.tokenRequestCount).toBe(0)
    }))
})

/**
 * `mcp-auth demo`: starts a real OAuth2 authorization server and two MCP servers on 127.0.0.1 over HTTPS (with a CA
 * made at start-up, so the demo runs the secure path), then runs the three NAT example configs and prints a timeline:
 * token fetched, cache hits, tool results, a refresh after expiry and the recovery from a revoked token. It checks
 * every step and fails if one does not hold.
 *
 * @since 0.1.0
 */
import { AuthorizationServer, McpServer, TestPki } from "@mcp-auth/testing"
import * as Workflow from "@mcp-auth/workflow/Workflow"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { renderResult } from "./Cli.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * The `examples/nat-workflows` folder (default: the copy shipped next to the bundled CLI, else the repository's,
   * found from this module's location).
   */
  readonly examples?: string | undefined
  readonly ttlSeconds: number
}

const findExamples = (): string => {
  let dir = Path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 8; i++) {
    const candidate = Path.join(dir, "examples", "nat-workflows")
    if (Fs.existsSync(candidate)) return candidate
    dir = Path.dirname(dir)
  }
  throw new Error("cannot find examples/nat-workflows: pass --examples")
}

class DemoCheckFailed extends Error {}

/**
 * A server of @mcp-auth/testing, closed with the scope. Its promise API, not its Effect one: installed next to the
 * bundled CLI, @mcp-auth/testing runs on its own copy of effect.
 */
const started = <A extends { close(): Promise<void> }>(start: () => Promise<A>) =>
  Effect.acquireRelease(Effect.promise(start), (server) => Effect.promise(() => server.close()))

const check = (ok: boolean, what: string) =>
  ok ? Effect.void : Effect.fail(new DemoCheckFailed(`demo check failed: ${what}`))

const oneLine = (text: string, max = 110) => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max)}…` : flat
}

interface Pattern {
  readonly label: string
  readonly file: string
  readonly server: McpServer.McpServer
  readonly tool: string
  readonly args: Record<string, unknown>
}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const run = (options: Options): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const t0 = yield* Clock.currentTimeMillis
    const say = (label: string, text: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Console.log(`[${((now - t0) / 1000).toFixed(2).padStart(6)}s] ${label.padEnd(12)} ${text}`))
    const examples = options.examples ?? findExamples()

    yield* say("setup", "making a certificate authority and starting servers on 127.0.0.1 (HTTPS)…")
    const pki = yield* Effect.promise(() =>
      TestPki.make()
    )
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-demo-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    const caFile = Path.join(dir, "ca.pem")
    Fs.writeFileSync(caFile, pki.ca)
    const clientSecret = Crypto.randomBytes(18).toString("base64url")
    const jiraToken = Crypto.randomBytes(18).toString("base64url")
    const as = yield* started(() =>
      AuthorizationServer.start({
        clients: [{ clientId: "svc-demo", clientSecret }],
        scopes: ["mcp:tools"],
        accessTokenTtlSeconds: options.ttlSeconds,
        https: pki.server
      })
    )
    const common = {
      authorizationServer: as,
      audience: as.issuer,
      requiredScopes: ["mcp:tools"],
      ca: pki.ca,
      https: pki.server
    }
    const jama = yield* started(() => McpServer.start(common))
    const jira = yield* started(() =>
      McpServer.start({ ...common, serviceToken: { header: "X-Jira-Service-Token", accept: jiraToken } })
    )
    yield* say("setup", `authorization server ${as.tokenUrl} (oidc-provider, ${options.ttlSeconds}s JWT access tokens)`)
    yield* say("setup", `Jama MCP server ${jama.url}; Jira MCP server ${jira.url} (requires X-Jira-Service-Token)`)
    yield* say("setup", `TLS: every connection verifies certificates against the CA made just now (${caFile})`)

    const env: Record<string, string> = {
      SERVICE_ACCOUNT_CLIENT_ID: "svc-demo",
      SERVICE_ACCOUNT_CLIENT_SECRET: clientSecret,
      SERVICE_ACCOUNT_TOKEN_URL: as.tokenUrl,
      SERVICE_ACCOUNT_SCOPES: "mcp:tools",
      CORPORATE_MCP_SERVICE_ACCOUNT_JAMA_URL: jama.url,
      CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: jira.url,
      JIRA_SERVICE_TOKEN: jiraToken,
      SERVICE_TOKEN_HEADER: "X-Jira-Service-Token"
    }
    // the example service-token function reads the process environment, as NAT's does
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const saved = { header: process.env.SERVICE_TOKEN_HEADER, token: process.env.JIRA_SERVICE_TOKEN }
        process.env.SERVICE_TOKEN_HEADER = env.SERVICE_TOKEN_HEADER
        process.env.JIRA_SERVICE_TOKEN = env.JIRA_SERVICE_TOKEN
        return saved
      }),
      (saved) =>
        Effect.sync(() => {
          if (saved.header === undefined) delete process.env.SERVICE_TOKEN_HEADER
          else process.env.SERVICE_TOKEN_HEADER = saved.header
          if (saved.token === undefined) delete process.env.JIRA_SERVICE_TOKEN
          else process.env.JIRA_SERVICE_TOKEN = saved.token
        })
    )

    const patterns: ReadonlyArray<Pattern> = [
      {
        label: "single",
        file: "config-mcp-service-account-jama.yml",
        server: jama,
        tool: "jama_list_releases",
        args: { projectId: 42 }
      },
      {
        label: "dual-static",
        file: "config-mcp-service-account-jira.yml",
        server: jira,
        tool: "jira_get_issue",
        args: { key: "OCSW-2116" }
      },
      {
        label: "dual-dynamic",
        file: "config-mcp-service-account-jira-function.yml",
        server: jira,
        tool: "jira_get_issue",
        args: { key: "OCSW-2116" }
      }
    ]

    for (const pattern of patterns) {
      yield* Console.log("")
      yield* say(pattern.label, `── ${pattern.file}`)
      yield* Effect.scoped(Effect.gen(function*() {
        const config = yield* WorkflowConfig.load(Path.join(examples, pattern.file), { env })
        const [providerName] = [...config.providers.keys()]
        const requests = () => as.tokenRequestCount
        const before = requests()
        pattern.server.clearRecords()
        const workflow = yield* Workflow.make(config, { caFile }) // connecting fetches the first token
        const [group] = [...workflow.groups.values()]
        const provider = workflow.providers.get(providerName!)!

        const tools = yield* group!.listTools
        const token = yield* provider.get
        const now = yield* Clock.currentTimeMillis
        yield* say(
          pattern.label,
          `token fetched for ${providerName}: Bearer <redacted>, expires in ${
            Math.round((token.expiresAt - now) / 1000)
          }s, scopes ${token.scopes.join(" ")}`
        )
        yield* say(pattern.label, `${group!.name}: ${tools.length} tools (${tools.map((t) => t.name).join(", ")})`)
        const result = yield* group!.callTool(pattern.tool, pattern.args)
        yield* say(
          pattern.label,
          `${group!.name}.${pattern.tool}(${JSON.stringify(pattern.args)}) → ${oneLine(renderResult(result))}`
        )
        yield* check(result.isError !== true, `${pattern.tool} succeeded`)
        const seen = pattern.server.mcpRequests[pattern.server.mcpRequests.length - 1]!.headers
        const sent = ["authorization", "x-jira-service-token"].filter((h) => seen[h] !== undefined)
        yield* say(pattern.label, `the MCP server received: ${sent.join(", ")} (values redacted here)`)
        yield* check(
          as.tokenRequests.every((r) => r.headers["x-jira-service-token"] === undefined),
          "no service header at the token endpoint"
        )

        for (let i = 0; i < 3; i++) yield* group!.callTool("echo", { text: `call ${i}` })
        yield* say(pattern.label, `3 more calls from the cached token: ${requests() - before - 1} new token requests`)
        yield* check(requests() - before === 1, "one token request so far")

        const state = yield* provider.state
        const wait = "expiresAt" in state ? state.expiresAt - (yield* Clock.currentTimeMillis) + 200 : 0
        yield* say(pattern.label, `idle for ${(wait / 1000).toFixed(1)}s until the token expires…`)
        yield* Effect.sleep(Duration.millis(Math.max(0, wait)))
        const afterExpiry = yield* group!.callTool("echo", { text: "after expiry" })
        yield* say(
          pattern.label,
          `token expired → a new one was fetched before the call (token requests: ${requests() - before}) → ${
            oneLine(renderResult(afterExpiry))
          }`
        )
        yield* check(requests() - before === 2, "exactly one token request after expiry")

        const current = yield* provider.get
        pattern.server.revoke(Redacted.value(current.token))
        const unauthorized = pattern.server.unauthorizedCount
        const afterRevoke = yield* group!.callTool(pattern.tool, pattern.args)
        yield* say(
          pattern.label,
          `token revoked at the MCP server → 401 → invalidated, refetched once, replayed → ${
            afterRevoke.isError ? "error" : "ok"
          } ` +
            `(401s: ${pattern.server.unauthorizedCount - unauthorized}, token requests: ${requests() - before})`
        )
        yield* check(
          afterRevoke.isError !== true && requests() - before === 3,
          "recovery with exactly one extra token request"
        )
      }))
    }
    yield* Console.log("")
    yield* say("done", "all three patterns ran; every check held")
  })

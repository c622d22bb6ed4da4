import { describe, expect, it } from "@effect/vitest"
import * as McpClientDefaults from "@mcp-auth/client/McpClientDefaults"
import { Interpolation, WorkflowConfig } from "@mcp-auth/workflow"
import { Duration, Either, Redacted, Schema } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
const examples = Path.resolve(here, "../../../examples/nat-workflows")

/** Environment a user of the spec's snippets would export. */
const specEnv = {
  SERVICE_ACCOUNT_CLIENT_ID: "your-client-id",
  SERVICE_ACCOUNT_CLIENT_SECRET: "your-client-secret",
  SERVICE_ACCOUNT_TOKEN_URL: "https://auth.example.com/oauth/token",
  SERVICE_ACCOUNT_SCOPES: "service-account-scope-1 service-account-scope-2",
  CLIENT_ID: "cid",
  CLIENT_SECRET: "csecret",
  TOKEN_URL: "https://auth.example.com/oauth/token",
  SERVICE_TOKEN: "svc-token"
}

const natEnv = {
  SERVICE_ACCOUNT_CLIENT_ID: "svc-nat",
  SERVICE_ACCOUNT_CLIENT_SECRET: "nat-secret",
  SERVICE_ACCOUNT_TOKEN_URL: "https://auth.example.com/service_account/token",
  SERVICE_ACCOUNT_SCOPES: "service-account-scope-jama_cache service-account-scope-jira",
  CORPORATE_MCP_SERVICE_ACCOUNT_JAMA_URL: "https://jama.example.com/mcp",
  CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: "https://jira.example.com/mcp",
  JIRA_SERVICE_TOKEN: "jira-token",
  SERVICE_TOKEN_HEADER: "X-Jira-Service-Token"
}

const issues = (result: Either.Either<unknown, { issues: ReadonlyArray<{ toString(): string }> }>) =>
  Either.isLeft(result) ? result.left.issues.map((i) => i.toString()) : []

const parse = (yaml: string, env: Record<string, string> = {}) => WorkflowConfig.parse(yaml, { env })

describe("WorkflowConfig: the feature description's YAML", () => {
  const dir = Path.join(here, "fixtures/spec")
  const snippets = Fs.readdirSync(dir).filter((f) => f.endsWith(".yml")).sort()

  it("has the 8 snippets of spec-service-account-auth.md", () => expect(snippets).toHaveLength(8))

  for (const file of snippets) {
    const text = Fs.readFileSync(Path.join(dir, file), "utf8")
    const partial = text.includes("# ... other configuration ...")
    it(`${file} loads unchanged${partial ? " (a fragment: only the elided required keys are reported)" : ""}`, () => {
      const result = parse(text, specEnv)
      if (partial) {
        expect(issues(result)).toEqual([
          "authentication.my_service_account.client_id: client_id is required: set it in the config or via ${SERVICE_ACCOUNT_CLIENT_ID}",
          "authentication.my_service_account.token_url: token_url is required: set it to the OAuth2 token endpoint URL (https://…/token), or set issuer (its metadata names the token endpoint), or allowed_issuers (the authorization servers an MCP server may name in discovery)",
          "authentication.my_service_account.client_secret: client_secret is required: set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it (or set client_secret_file to a file holding it)"
        ])
      } else {
        expect(issues(result)).toEqual([])
        expect(Either.isRight(result) && result.right.providers.size).toBe(1)
      }
    })
  }

  it("the string scopes of the spec's env example become a list", () => {
    const result = parse(Fs.readFileSync(Path.join(dir, "snippet-03.yml"), "utf8"), specEnv)
    expect(Either.isRight(result) && result.right.providers.get("my_service_account")!.scopes).toEqual([
      "service-account-scope-1",
      "service-account-scope-2"
    ])
  })
})

describe("WorkflowConfig: NAT example configs", () => {
  for (const name of ["jama", "jira", "jira-function"]) {
    it(`config-mcp-service-account-${name}.yml loads unchanged; llms and workflow are ignored`, () => {
      const file = Path.join(examples, `config-mcp-service-account-${name}.yml`)
      const result = WorkflowConfig.parse(Fs.readFileSync(file, "utf8"), { env: natEnv, baseDir: examples })
      expect(issues(result)).toEqual([])
      if (Either.isLeft(result)) return
      const config = result.right
      expect(config.ignored).toEqual(["llms: (not run by mcp-auth)", "workflow: (not run by mcp-auth)"])
      const [group] = [...config.groups.values()]
      expect(group!.transport).toBe("streamable-http")
      expect(group!.toolCallTimeout).toEqual(Duration.seconds(60))
      expect(group!.reconnect).toEqual({
        enabled: true,
        maxAttempts: 2,
        initialBackoff: Duration.seconds(0.5),
        maxBackoff: Duration.seconds(50)
      })
      const [provider] = [...config.providers.values()]
      expect(provider!.scopes).toEqual(["service-account-scope-jama_cache", "service-account-scope-jira"])
      if (name === "jira") {
        expect(provider!.serviceToken).toMatchObject({ _tag: "Static", header: "X-Jira-Service-Token" })
        if (provider!.serviceToken?._tag === "Static") {
          expect(Redacted.value(provider!.serviceToken.token)).toBe("jira-token")
        }
      }
    })
  }

  it("with three variables unset, names all three with their YAML paths", () => {
    const file = Path.join(examples, "config-mcp-service-account-jira.yml")
    const {
      CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: _url,
      JIRA_SERVICE_TOKEN: _token,
      SERVICE_ACCOUNT_CLIENT_SECRET: _secret,
      ...env
    } = natEnv
    const result = WorkflowConfig.parse(Fs.readFileSync(file, "utf8"), { env })
    expect(issues(result)).toEqual([
      "authentication.jira_service_account.client_secret: environment variable SERVICE_ACCOUNT_CLIENT_SECRET is not set: export it (in CI, add it to the job's secrets or variables) or give a default with ${SERVICE_ACCOUNT_CLIENT_SECRET:-default}",
      "authentication.jira_service_account.service_token.token: environment variable JIRA_SERVICE_TOKEN is not set: export it (in CI, add it to the job's secrets or variables) or give a default with ${JIRA_SERVICE_TOKEN:-default}",
      "function_groups.mcp_jira.server.url: environment variable CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL is not set: export it (in CI, add it to the job's secrets or variables) or give a default with ${CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL:-default}"
    ])
  })
})

describe("WorkflowConfig: mcp_client rules (NAT's)", () => {
  const provider = `
authentication:
  sa:
    _type: mcp_service_account
    client_id: id
    client_secret: secret
    token_url: https://idp.example.com/token
`
  const group = (server: string, extra = "") =>
    `${provider}
function_groups:
  g:
    _type: mcp_client
    server:
${server}
${extra}`

  it("auth is not supported for sse or stdio", () => {
    expect(issues(parse(group("      transport: sse\n      url: https://x.example.com/sse\n      auth_provider: sa"))))
      .toEqual([
        "function_groups.g.server.auth_provider: Authentication is not supported for SSE transport."
      ])
    expect(issues(parse(group("      transport: stdio\n      command: node\n      auth_provider: sa")))).toEqual([
      "function_groups.g.server.auth_provider: Authentication is not supported for stdio transport"
    ])
  })

  it("url is required, and must name an existing mcp_service_account provider", () => {
    expect(issues(parse(group("      auth_provider: missing")))).toEqual([
      "function_groups.g.server.url: url is required when using streamable-http transport",
      "function_groups.g.server.auth_provider: auth_provider \"missing\" is not defined under authentication: (defined: sa)"
    ])
  })

  it("include and exclude together, backoffs out of order, unknown keys", () => {
    const server = "      url: https://x.example.com/mcp\n      auth_provider: sa"
    expect(
      issues(
        parse(
          group(server, "    include: [a]\n    exclude: [b]\n    reconnect_max_backoff: 0.1\n    tool_call_timout: 5")
        )
      )
    )
      .toEqual([
        "function_groups.g.tool_call_timout: unknown key \"tool_call_timout\": did you mean \"tool_call_timeout\"?",
        "function_groups.g.include: include and exclude cannot be used together",
        "function_groups.g.reconnect_max_backoff: reconnect_max_backoff must be greater than or equal to reconnect_initial_backoff"
      ])
  })

  it("an authenticated server must use https (http only on loopback)", () => {
    expect(issues(parse(group("      url: http://mcp.example.com/mcp\n      auth_provider: sa")))).toEqual([
      "function_groups.g.server.url: server.url must use https when auth_provider is set: credentials are never sent in clear text (http only for loopback hosts)"
    ])
    expect(issues(parse(group("      url: http://127.0.0.1:9000/mcp\n      auth_provider: sa")))).toEqual([])
    expect(issues(parse(group("      url: http://mcp.example.com/mcp")))).toEqual([]) // no credentials to protect
  })

  it("durations as NAT writes them", () => {
    const server = "      url: https://x.example.com/mcp"
    for (const [value, secs] of [["30", 30], ["\"45s\"", 45], ["\"1.5m\"", 90], ["PT2M", 120]] as const) {
      const result = parse(group(server, `    tool_call_timeout: ${value}`))
      expect(Either.isRight(result) && Duration.toSeconds(result.right.groups.get("g")!.toolCallTimeout)).toBe(secs)
    }
  })

  it("other entry types and sections are ignored, and said so", () => {
    const result = parse(`
general:
  use_uvloop: true
functions:
  calc: { _type: calculator }
authentication:
  oauth_user: { _type: mcp_oauth2, server_url: https://x.example.com }
function_groups:
  other: { _type: something_else }
`)
    expect(Either.isRight(result) && result.right.ignored).toEqual([
      "general: (not run by mcp-auth)",
      "functions: (not run by mcp-auth)",
      "authentication.oauth_user: _type \"mcp_oauth2\" (not run by mcp-auth)",
      "function_groups.other: _type \"something_else\" (not run by mcp-auth)"
    ])
  })

  it("YAML syntax errors carry their line", () => {
    expect(issues(parse("authentication:\n  sa: [unclosed\n"))[0]).toMatch(/^line \d+, column \d+: YAML syntax error/)
  })
})

describe("WorkflowConfig: mcp_client defaults are McpClient's, written once (McpClientDefaults)", () => {
  const { defaultReconnect, defaultToolCallTimeout } = McpClientDefaults
  /** Each key whose default McpClient also applies, with that default in the schema's units (seconds). */
  const clientDefaults: Record<string, unknown> = {
    tool_call_timeout: Duration.toSeconds(defaultToolCallTimeout),
    reconnect_enabled: defaultReconnect.enabled,
    reconnect_max_attempts: defaultReconnect.maxAttempts,
    reconnect_initial_backoff: Duration.toSeconds(defaultReconnect.initialBackoff),
    reconnect_max_backoff: Duration.toSeconds(defaultReconnect.maxBackoff)
  }
  const documented = new Map(
    WorkflowConfig.mcpClientFieldDocs.filter((field) => "default" in field).map((field) => [field.name, field.default])
  )
  const decoded: Record<string, unknown> = Schema.decodeUnknownSync(WorkflowConfig.McpClientInput)({
    _type: "mcp_client",
    server: { url: "https://mcp.example.com/mcp" }
  })

  it.each(Object.entries(clientDefaults))("%s: documented = decoded = McpClientDefaults (%j)", (name, value) => {
    expect(documented.get(name), "documented (info components, README)").toStrictEqual(value)
    expect(decoded[name], "decoded for a missing key").toStrictEqual(value)
  })

  it("a group that sets none of them runs with McpClient's defaults", () => {
    const result = parse(
      "function_groups:\n  g:\n    _type: mcp_client\n    server:\n      url: https://x.example.com/mcp"
    )
    expect(issues(result)).toEqual([])
    const group = Either.isRight(result) ? result.right.groups.get("g") : undefined
    expect(group && Duration.equals(group.toolCallTimeout, defaultToolCallTimeout)).toBe(true)
    expect(group?.reconnect.enabled).toBe(defaultReconnect.enabled)
    expect(group?.reconnect.maxAttempts).toBe(defaultReconnect.maxAttempts)
    expect(group && Duration.equals(group.reconnect.initialBackoff, defaultReconnect.initialBackoff)).toBe(true)
    expect(group && Duration.equals(group.reconnect.maxBackoff, defaultReconnect.maxBackoff)).toBe(true)
  })

  it("the backoff order check compares a given backoff with the other one's default", () => {
    const initial = Duration.toSeconds(defaultReconnect.initialBackoff)
    const max = Duration.toSeconds(defaultReconnect.maxBackoff)
    const check = (key: string, value: number) =>
      issues(parse(`function_groups:
  g:
    _type: mcp_client
    server:
      url: https://x.example.com/mcp
    ${key}: ${value}`))
    const outOfOrder = [
      "function_groups.g.reconnect_max_backoff: reconnect_max_backoff must be greater than or equal to reconnect_initial_backoff"
    ]
    expect(check("reconnect_max_backoff", initial)).toEqual([])
    expect(check("reconnect_max_backoff", initial / 2)).toEqual(outOfOrder)
    expect(check("reconnect_initial_backoff", max)).toEqual([])
    expect(check("reconnect_initial_backoff", max * 2)).toEqual(outOfOrder)
  })
})

describe("Interpolation", () => {
  it("replaces ${VAR} and ${VAR:-default} anywhere in strings; default on unset or empty", () => {
    const result = Interpolation.interpolate(
      { a: "${A}", b: "https://${HOST:-localhost}:${PORT}/mcp", c: ["${EMPTY:-fallback}", 3], d: "${MISSING}" },
      { A: "1", PORT: "8080", EMPTY: "" },
      "root"
    )
    expect(result.value).toEqual({ a: "1", b: "https://localhost:8080/mcp", c: ["fallback", 3], d: "" })
    expect(result.unset).toEqual([{ name: "MISSING", path: "root.d" }])
  })
})

/**
 * The bundled `mcp-auth` binary (what the package ships), run as a subprocess against real HTTPS servers: exit codes,
 * output, and no secret in stdout or stderr on any path; then a copy of it outside the workspace, where neither
 * @mcp-auth/testing nor tsx can be found. The test command builds the bundle once, before the tests; run alone, this
 * file rebuilds it when it is missing or older than the sources (or the bundle script), so it always tests fresh code.
 */
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { AuthorizationServer, McpServer, TestPki } from "@mcp-auth/testing"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../..")
const cliDir = Path.join(root, "packages/cli")
const bin = Path.join(cliDir, "build/bundle/bin.js")
const notices = Path.join(cliDir, "build/bundle/THIRD_PARTY_NOTICES.md")
const examples = Path.join(root, "examples/nat-workflows")

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}, binary = bin): Promise<Run> =>
  new Promise((resolve) => {
    ChildProcess.execFile(
      process.execPath,
      [binary, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    )
  })

const SECRET = "cli-Secret:with%chars+9"
const JIRA_TOKEN = "jira-service-token-for-cli-tests"
let as: AuthorizationServer.AuthorizationServer & { close(): Promise<void> }
let jama: McpServer.McpServer & { close(): Promise<void> }
let jira: McpServer.McpServer & { close(): Promise<void> }
let caFile: string
let env: Record<string, string>
const outputs: Array<string> = []
const tempDirs: Array<string> = []
const tempDir = (prefix: string) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

/** The newest modification time of the files under a directory (0 when it does not exist). */
const newest = (dir: string): number =>
  Fs.existsSync(dir)
    ? Fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile())
      .reduce((max, e) => Math.max(max, Fs.statSync(Path.join(e.parentPath, e.name)).mtimeMs), 0)
    : 0

/**
 * Builds the bundle unless it is newer than what it is made of: every package's sources and package.json (the
 * versions it inlines), the examples it ships and the bundle script.
 */
const ensureBundle = () => {
  const packages = Path.join(root, "packages")
  const mtime = (file: string) => Fs.existsSync(file) ? Fs.statSync(file).mtimeMs : 0
  const sources = Math.max(
    mtime(Path.join(cliDir, "scripts/bundle.mjs")),
    newest(examples),
    ...Fs.readdirSync(packages).flatMap((name) => [
      newest(Path.join(packages, name, "src")),
      mtime(Path.join(packages, name, "package.json"))
    ])
  )
  const built = Fs.existsSync(bin) && Fs.existsSync(notices) ? Fs.statSync(bin).mtimeMs : 0
  if (built <= sources) {
    ChildProcess.execFileSync(process.execPath, [Path.join(cliDir, "scripts/bundle.mjs")], { stdio: "pipe" })
  }
}

const cli = async (args: ReadonlyArray<string>, extraEnv: Record<string, string> = {}) => {
  const result = await run(args, { ...env, ...extraEnv })
  outputs.push(result.stdout, result.stderr)
  return result
}

beforeAll(async () => {
  ensureBundle()
  const pki = await TestPki.shared()
  caFile = Path.join(tempDir("mcp-auth-cli-"), "ca.pem")
  Fs.writeFileSync(caFile, pki.ca)
  as = await AuthorizationServer.start({
    clients: [{ clientId: "svc-cli", clientSecret: SECRET }],
    scopes: ["mcp:tools"],
    https: pki.server
  })
  const common = {
    authorizationServer: as,
    audience: as.issuer,
    requiredScopes: ["mcp:tools"],
    ca: pki.ca,
    https: pki.server
  }
  jama = await McpServer.start(common)
  jira = await McpServer.start({ ...common, serviceToken: { header: "X-Jira-Service-Token", accept: JIRA_TOKEN } })
  env = {
    SERVICE_ACCOUNT_CLIENT_ID: "svc-cli",
    SERVICE_ACCOUNT_CLIENT_SECRET: SECRET,
    SERVICE_ACCOUNT_TOKEN_URL: as.tokenUrl,
    SERVICE_ACCOUNT_SCOPES: "mcp:tools",
    CORPORATE_MCP_SERVICE_ACCOUNT_JAMA_URL: jama.url,
    CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: jira.url,
    JIRA_SERVICE_TOKEN: JIRA_TOKEN,
    SERVICE_TOKEN_HEADER: "X-Jira-Service-Token"
  }
}, 60_000)

afterAll(async () => {
  await jira?.close()
  await jama?.close()
  await as?.close()
  for (const dir of tempDirs) Fs.rmSync(dir, { recursive: true, force: true })
})

const config = (name: string) => Path.join(examples, `config-mcp-service-account-${name}.yml`)

/** `tools call` of the jira example's `jira_get_issue`, over HTTPS with the test CA. */
const jiraIssueCall = () => [
  "tools",
  "call",
  "-c",
  config("jira"),
  "mcp_jira.jira_get_issue",
  "--args",
  "{\"key\":\"OCSW-2116\"}",
  "--ca-file",
  caFile
]

describe("mcp-auth CLI (built binary)", () => {
  it("every command has --help", async () => {
    const commands = [[], ["info"], ["info", "components"], ["validate"], ["token"], ["tools"], ["tools", "list"], [
      "tools",
      "call"
    ], ["demo"]]
    const results = await Promise.all(commands.map((command) => cli([...command, "--help"])))
    results.forEach((result, i) => {
      expect(result.code, commands[i]!.join(" ")).toBe(0)
      expect(result.stdout).toContain("USAGE")
    })
  })

  it("the bundle ships the notices of the third-party packages it inlines", () => {
    const text = Fs.readFileSync(notices, "utf8")
    expect(text).toMatch(/^## effect@\d+\.\d+\.\d+$/m)
    expect(text).toMatch(/^## @modelcontextprotocol\/sdk@\d+\.\d+\.\d+$/m)
    expect(text).toContain("Permission is hereby granted, free of charge") // an MIT licence text, not only its name
  })

  it("--version and info components print the versions of the package.json files", async () => {
    const versionOf = (pkg: string) =>
      (JSON.parse(Fs.readFileSync(Path.join(root, "packages", pkg, "package.json"), "utf8")) as { version: string })
        .version
    const version = await cli(["--version"])
    expect(version.code).toBe(0)
    expect(version.stdout.trim()).toBe(versionOf("cli"))
    const json = await cli(["info", "components", "--json"])
    const rows = JSON.parse(json.stdout) as Array<{ package: string; version: string }>
    expect(rows.map((r) => [r.package, r.version])).toEqual([
      ["@mcp-auth/service-account", versionOf("service-account")],
      ["@mcp-auth/workflow", versionOf("workflow")]
    ])
  })

  it("info components lists every field of the Schema, nested ones included", async () => {
    const [result, json] = await Promise.all([
      cli(["info", "components", "-t", "auth_provider", "-q", "mcp_service_account"]),
      cli(["info", "components", "-q", "mcp_service_account", "--json"])
    ])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("mcp-auth Search Results")
    expect(result.stdout).toContain("auth_provider")
    const schema = ServiceAccountConfig.ServiceAccountConfigInput.fields
    const expected = [
      ...Object.keys(schema),
      ...Object.keys(ServiceAccountConfig.ServiceTokenInput.fields).map((k) => `service_token.${k}`),
      ...Object.keys(ServiceAccountConfig.RetryInput.fields).map((k) => `retry.${k}`),
      ...Object.keys(ServiceAccountConfig.FailureCooldownInput.fields).map((k) => `failure_cooldown.${k}`)
    ]
    // a field the Schema gains but the output lacks fails here
    for (const field of expected) expect(result.stdout).toMatch(new RegExp(`\\b${field.replace(".", "\\.")} \\(`))
    expect(result.stdout).toContain("token_cache_buffer_seconds (int): Seconds before token expiry to refresh")
    expect(result.stdout).toContain("Defaults to 300.")
    expect(result.stdout).not.toContain("function_group")

    const rows = JSON.parse(json.stdout) as Array<{ component_name: string; fields: Array<{ name: string }> }>
    expect(rows.map((r) => r.component_name)).toEqual(["mcp_service_account"])
    expect(rows[0]!.fields.map((f) => f.name).sort()).toEqual([...expected].sort())
  })

  it("validate: a NAT example config with the right environment is valid", async () => {
    const results = await Promise.all(
      ["jama", "jira", "jira-function"].map((name) => cli(["validate", "-c", config(name)]))
    )
    for (const result of results) {
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain("is valid")
      expect(result.stdout).toContain("ignored:         llms: (not run by mcp-auth); workflow: (not run by mcp-auth)")
    }
  })

  it("validate: with three variables unset, names all three and exits 3 with the CI hint", async () => {
    const result = await cli(["validate", "-c", config("jira")], {
      SERVICE_ACCOUNT_CLIENT_SECRET: "",
      JIRA_SERVICE_TOKEN: "",
      CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: ""
    })
    // an empty variable counts as set (as in NAT); unset them for real
    expect(result.code).toBe(3)
    const unset = await run(
      ["validate", "-c", config("jira")],
      Object.fromEntries(
        Object.entries(env).filter(([k]) =>
          !["SERVICE_ACCOUNT_CLIENT_SECRET", "JIRA_SERVICE_TOKEN", "CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL"].includes(k)
        )
      )
    )
    outputs.push(unset.stdout, unset.stderr)
    expect(unset.code).toBe(3)
    for (
      const name of ["SERVICE_ACCOUNT_CLIENT_SECRET", "JIRA_SERVICE_TOKEN", "CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL"]
    ) {
      expect(unset.stderr).toContain(`environment variable ${name} is not set`)
    }
    expect(unset.stderr).toContain("Hint: Authentication works locally but fails in CI/CD?")
  })

  it("token: fetches over HTTPS with --ca-file, keeps the token redacted unless asked", async () => {
    const [result, shown] = await Promise.all([
      cli(["token", "-c", config("jama"), "--ca-file", caFile]),
      run(["token", "-c", config("jama"), "--ca-file", caFile, "--show-token"], env)
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain("provider:     jama_service_account")
    expect(result.stdout).toContain("token_type:   Bearer")
    expect(result.stdout).toContain("scopes:       mcp:tools")
    expect(result.stdout).toMatch(/expires_at: {3}\d{4}-.*\(in \d+s\)/)
    expect(result.stdout).toContain("access_token: <redacted>")
    expect(shown.stdout).toMatch(/access_token: ey[\w-]+\.[\w-]+\.[\w-]+/)
  })

  it("tools list and tools call run the NAT example configs against the embedded servers", async () => {
    const [list, call, jamaCall] = await Promise.all([
      cli(["tools", "list", "-c", config("jira-function"), "--ca-file", caFile]),
      cli(jiraIssueCall()),
      cli([
        "tools",
        "call",
        "-c",
        config("jama"),
        "mcp_jama.jama_list_releases",
        "--args",
        "{\"projectId\":1}",
        "--ca-file",
        caFile
      ])
    ])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toContain("mcp_jira (7 tools)")
    expect(list.stdout).toContain("mcp_jira.jira_get_issue")
    expect(list.stderr).toContain("… connecting mcp_jira")
    expect(call.code, call.stderr).toBe(0)
    expect(call.stdout).toContain("\"status\": \"In Progress\"")
    expect(jamaCall.code, jamaCall.stderr).toBe(0)
    expect(jira.mcpRequests.every((r) => r.headers["x-jira-service-token"] === JIRA_TOKEN)).toBe(true)
  })

  it("a distinct exit code and a hint per error family, never a stack trace without --verbose", async () => {
    const [tls, wrongSecret, badArgs, unknownGroup, missing, wrongServiceToken, usage, verbose] = await Promise.all([
      cli(["token", "-c", config("jama")]),
      cli(["token", "-c", config("jama"), "--ca-file", caFile], {
        SERVICE_ACCOUNT_CLIENT_SECRET: "not-the-secret-value"
      }),
      cli(["tools", "call", "-c", config("jira"), "mcp_jira.jira_get_issue", "--args", "{oops", "--ca-file", caFile]),
      cli(["tools", "list", "-c", config("jira"), "--group", "nope", "--ca-file", caFile]),
      cli(["validate", "-c", "/nonexistent/workflow.yml"]),
      cli(["tools", "list", "-c", config("jira"), "--ca-file", caFile], {
        JIRA_SERVICE_TOKEN: "wrong-service-token-value"
      }),
      cli(["tokn"]),
      cli(["token", "-c", config("jama"), "--verbose"])
    ])
    expect(tls.code).toBe(6)
    expect(tls.stderr).toMatch(
      /^Error: TLS certificate verification failed for https:\/\/127\.0\.0\.1:\d+\/token \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/m
    )
    expect(tls.stderr).toContain("Hint: The server may use certificates from an internal Certificate Authority")
    expect(tls.stderr).not.toMatch(/\n\s+at /)

    expect(wrongSecret.code).toBe(4)
    expect(wrongSecret.stderr).toContain("Error: Invalid service account credentials (invalid_client")
    expect(wrongSecret.stderr).toContain("Hint: Verify your client ID and client secret are correct")
    expect(wrongSecret.stderr + wrongSecret.stdout).not.toContain("not-the-secret-value")

    expect(badArgs.code).toBe(2)
    expect(badArgs.stderr).toContain("Error: --args is not valid JSON")

    expect(unknownGroup.code).toBe(2)
    expect(unknownGroup.stderr).toContain("Hint: groups: mcp_jira")

    expect(missing.code).toBe(3)
    expect(missing.stderr).toContain("cannot read the workflow file (ENOENT)")

    expect(wrongServiceToken.code).toBe(10)
    expect(wrongServiceToken.stderr).toContain("refused the request (HTTP 403)")

    expect(usage.code).toBe(2)

    expect(verbose.code).toBe(6)
    expect(verbose.stderr).toMatch(/\n\s+at /)
  })

  it("Ctrl-C while waiting for a token exits 130, not 0", async () => {
    const { FaultTokenEndpoint } = await import("@mcp-auth/testing")
    const endpoint = await FaultTokenEndpoint.start({ fallback: FaultTokenEndpoint.hang() })
    try {
      const file = Path.join(tempDir("mcp-auth-cli-"), "workflow.yml")
      Fs.writeFileSync(
        file,
        `authentication:
  sa:
    _type: mcp_service_account
    client_id: svc
    client_secret: s3cret-value
    token_url: ${endpoint.url}
    allow_insecure_http: true
`
      )
      const child = ChildProcess.spawn(process.execPath, [bin, "token", "-c", file], {
        env: { PATH: process.env.PATH ?? "" }
      })
      let stderr = ""
      child.stderr.on("data", (chunk) => {
        stderr += String(chunk)
        if (stderr.includes("requesting a token")) setTimeout(() => child.kill("SIGINT"), 200)
      })
      const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)))
      expect(code).toBe(130)
    } finally {
      await endpoint.close()
    }
  })
})

describe("the bundle copied outside the workspace (no @mcp-auth/testing, no tsx)", () => {
  let outside: string
  beforeAll(() => {
    const dir = tempDir("mcp-auth-cli-package-")
    Fs.cpSync(Path.join(cliDir, "package.json"), Path.join(dir, "package.json"))
    Fs.cpSync(Path.dirname(bin), Path.join(dir, "build/bundle"), { recursive: true })
    outside = Path.join(dir, "build/bundle/bin.js")
  })

  const runOutside = async (args: ReadonlyArray<string>) => {
    const result = await run(args, env, outside)
    outputs.push(result.stdout, result.stderr)
    return result
  }

  it("runs the commands that need no server from its own files", async () => {
    const help = await runOutside(["--help"])
    expect(help.code, help.stderr).toBe(0)
    expect(help.stdout).toContain("USAGE")
    const valid = await runOutside(["validate", "-c", config("jira")])
    expect(valid.code, valid.stderr).toBe(0)
    // the examples shipped for the demo: their service-token function is JavaScript, so no tsx is needed
    const shipped = Path.join(
      Path.dirname(outside),
      "examples/nat-workflows/config-mcp-service-account-jira-function.yml"
    )
    const function_ = await runOutside(["validate", "-c", shipped])
    expect(function_.code, function_.stderr).toBe(0)
    expect(function_.stdout).toContain("is valid")
  })

  it("reaches the servers from its own files: token and tools", async () => {
    const token = await runOutside(["token", "-c", config("jama"), "--ca-file", caFile])
    expect(token.code, token.stderr).toBe(0)
    expect(token.stdout).toContain("access_token: <redacted>")
    const call = await runOutside(jiraIssueCall())
    expect(call.code, call.stderr).toBe(0)
    expect(call.stdout).toContain("\"status\": \"In Progress\"")
  })

  it("a TypeScript service-token module without tsx: exit 9, saying to install tsx", async () => {
    const result = await runOutside(["validate", "-c", config("jira-function")])
    expect(result.code).toBe(9)
    expect(result.stderr).toContain(
      "Error: Failed to load service token function './scripts/service-tokens.ts#getJiraServiceToken': cannot load " +
        "./scripts/service-tokens.ts: install tsx (npm i tsx) to load TypeScript service-token modules, or compile it to .js"
    )
  })

  it("demo without @mcp-auth/testing: one line saying how to get it, exit 2", async () => {
    const result = await runOutside(["demo"])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toBe(
      "Error: mcp-auth demo runs the test servers of @mcp-auth/testing, which is not installed: " +
        "npm i -D @mcp-auth/testing (npm i -g @mcp-auth/testing next to a global mcp-auth)\n"
    )
  })
})

// last, after both describes: every run above, inside and outside the workspace, pushed its output
describe("every output", () => {
  it("has no secret, service token or access token (of any run in this file)", () => {
    expect(outputs.length).toBeGreaterThan(0)
    const issued = as.tokenRequests.map((r) => r.accessToken).filter((t): t is string => t !== undefined)
    expect(issued.length).toBeGreaterThan(3)
    const shownToken = /access_token: (ey\S+)/.exec(outputs.join("\n"))?.[1]
    for (const text of outputs) {
      expect(text).not.toContain(SECRET)
      expect(text).not.toContain(JIRA_TOKEN)
      expect(text).not.toContain(Buffer.from(`svc-cli:${encodeURIComponent(SECRET)}`).toString("base64"))
      for (const token of issued) if (token !== shownToken) expect(text).not.toContain(token)
    }
  })
})

/**
 * The bundled `mcp-auth` binary (what the package ships), run as a subprocess against real HTTPS servers: exit codes,
 * output, and no secret in stdout or stderr on any path; then a copy of it outside the workspace, where neither
 * @mcp-auth/testing nor tsx can be found. The test command builds the bundle once, before the tests; run alone, this
 * file rebuilds it when it is missing or older than the sources (or the bundle script), so it always tests fresh code.
 */
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { AuthorizationServer, McpServer, RedisServer, TestPki } from "@mcp-auth/testing"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Bundle from "./utils/bundle.js"

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
/** The secret of the client whose secret is read from a file (client_secret_file). */
const FILE_SECRET = "cli-file-Secret:rotated%1"
const KEY_ID = "cli-key-1"
// private_key_jwt: a P-256 key made for this run; the server knows the public half
const keyPair = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
const PRIVATE_KEY = keyPair.privateKey.export({ format: "pem", type: "pkcs8" }).toString()
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

const cli = async (args: ReadonlyArray<string>, extraEnv: Record<string, string> = {}) => {
  const result = await run(args, { ...env, ...extraEnv })
  outputs.push(result.stdout, result.stderr)
  return result
}

beforeAll(async () => {
  Bundle.ensureBundle()
  const pki = await TestPki.shared()
  caFile = Path.join(tempDir("mcp-auth-cli-"), "ca.pem")
  Fs.writeFileSync(caFile, pki.ca)
  as = await AuthorizationServer.start({
    clients: [
      { clientId: "svc-cli", clientSecret: SECRET },
      { clientId: "svc-cli-file", clientSecret: FILE_SECRET },
      {
        clientId: "svc-cli-pkjwt",
        authMethod: "private_key_jwt",
        jwks: { keys: [{ ...keyPair.publicKey.export({ format: "jwk" }), kid: KEY_ID }] }
      }
    ],
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

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

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
      ...Object.keys(ServiceAccountConfig.ClientAssertionInput.fields).map((k) => `client_assertion.${k}`),
      ...Object.keys(ServiceAccountConfig.RetryInput.fields).map((k) => `retry.${k}`),
      ...Object.keys(ServiceAccountConfig.FailureCooldownInput.fields).map((k) => `failure_cooldown.${k}`),
      ...Object.keys(ServiceAccountConfig.SharedCacheInput.fields).map((k) => `shared_cache.${k}`)
    ]
    // a field the Schema gains but the output lacks fails here
    for (const field of expected) expect(result.stdout).toMatch(new RegExp(`\\b${field.replace(".", "\\.")} \\(`))
    expect(result.stdout).toContain("token_cache_buffer_seconds (int): Seconds before token expiry to refresh")
    expect(result.stdout).toContain("Defaults to 300.")
    // the client authentication methods' keys (issue 13), nested client_assertion.* included
    for (
      const field of [
        "auth_method",
        "client_secret_file",
        "grant_type",
        "private_key",
        "private_key_file",
        "key_id",
        "signing_algorithm",
        "certificate_file",
        "assertion_lifetime_seconds",
        "assertion_audience",
        "issuer",
        "client_assertion",
        "client_assertion.file",
        "client_assertion.token",
        "client_assertion.function",
        "client_assertion.kwargs",
        "client_assertion.timeout_seconds",
        "tls_client_certificate_file",
        "tls_client_key_file",
        "tls_client_key_passphrase",
        "proxy_url"
      ]
    ) expect(expected).toContain(field)
    expect(result.stdout).toMatch(/auth_method \(.*client_secret_basic.*private_key_jwt.*tls_client_auth/s)
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

  it("token with shared_cache: the first run publishes its token, the next one says it came from the fleet", async () => {
    const redis = await RedisServer.start()
    try {
      const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-fleet-")), "fleet.yml")
      Fs.writeFileSync(
        file,
        Fs.readFileSync(config("jama"), "utf8").replace(
          "    token_cache_buffer_seconds: 300",
          `    token_cache_buffer_seconds: 300\n    shared_cache:\n      url: ${redis.url}`
        )
      )
      const first = await cli(["token", "-c", file, "--ca-file", caFile])
      expect(first.code, first.stderr).toBe(0)
      expect(first.stdout).toContain("source:       token endpoint (requested by this process; shared_cache on)")
      const second = await cli(["token", "-c", file, "--ca-file", caFile, "--json"])
      expect(second.code, second.stderr).toBe(0)
      expect(JSON.parse(second.stdout)).toMatchObject({ source: "fleet cache (shared_cache)" })
    } finally {
      await redis.close()
    }
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

/** A workflow with the given providers (YAML of the `authentication:` entries), in a temporary directory. */
const authWorkflow = (providers: string): string => {
  const file = Path.join(tempDir("mcp-auth-cli-auth-"), "workflow.yml")
  Fs.writeFileSync(file, `authentication:\n${providers}`)
  return file
}

/** One provider entry on the test authorization server; `extra` are more keys, indented like these. */
const provider = (name: string, clientId: string, extra: string) =>
  `  ${name}:
    _type: mcp_service_account
    client_id: ${clientId}
    token_url: ${as.tokenUrl}
    scopes: mcp:tools
    retry:
      max_attempts: 1
${extra}`

describe("client authentication methods (issue 13)", () => {
  it("token with private_key_jwt: shows the method and where the key comes from, never the key", async () => {
    const keyFile = Path.join(tempDir("mcp-auth-cli-key-"), "client-key.pem")
    Fs.writeFileSync(keyFile, PRIVATE_KEY)
    const file = authWorkflow(provider(
      "signed",
      "svc-cli-pkjwt",
      `    auth_method: private_key_jwt
    private_key_file: ${keyFile}
    key_id: ${KEY_ID}
`
    ))
    const before = as.assertions.length
    const [human, json] = await Promise.all([
      cli(["token", "-c", file, "--ca-file", caFile]),
      cli(["token", "-c", file, "--ca-file", caFile, "--json"])
    ])
    const method = `private_key_jwt (private_key_file ${keyFile}, kid ${KEY_ID})`
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain(`auth_method:  ${method}`)
    expect(human.stdout).toContain("scopes:       mcp:tools")
    expect(human.stderr).toContain(`with ${method}`)
    expect(json.code, json.stderr).toBe(0)
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>
    expect(parsed).toMatchObject({
      provider: "signed",
      auth_method: method,
      token_type: "Bearer",
      scopes: ["mcp:tools"],
      access_token: null
    })
    expect(parsed.expires_at).toMatch(/^\d{4}-/)
    // the server verified two assertions signed with the key, each with its own jti
    const assertions = as.assertions.slice(before)
    expect(assertions.map((a) => [a.parameter, a.header.kid, a.header.alg, a.claims.iss, a.claims.sub])).toEqual([
      ["client_assertion", KEY_ID, "ES256", "svc-cli-pkjwt", "svc-cli-pkjwt"],
      ["client_assertion", KEY_ID, "ES256", "svc-cli-pkjwt", "svc-cli-pkjwt"]
    ])
    expect(new Set(assertions.map((a) => a.claims.jti)).size).toBe(2)
    for (const text of [human.stdout, human.stderr, json.stdout, json.stderr]) {
      expect(text).not.toContain("PRIVATE KEY")
    }
  })

  it("the private_key_jwt NAT example: validate, token and tools call with a key file, no client secret", async () => {
    const keyFile = Path.join(tempDir("mcp-auth-cli-key-"), "client-key.pem")
    Fs.writeFileSync(keyFile, PRIVATE_KEY)
    const exampleEnv = {
      SERVICE_ACCOUNT_CLIENT_ID: "svc-cli-pkjwt",
      SERVICE_ACCOUNT_PRIVATE_KEY_FILE: keyFile,
      SERVICE_ACCOUNT_KEY_ID: KEY_ID
    }
    const example = config("private-key-jwt")
    const [valid, token, call] = await Promise.all([
      cli(["validate", "-c", example], exampleEnv),
      cli(["token", "-c", example, "--ca-file", caFile], exampleEnv),
      cli(
        [
          "tools",
          "call",
          "-c",
          example,
          "mcp_jama.jama_list_releases",
          "--args",
          "{\"projectId\":1}",
          "--ca-file",
          caFile
        ],
        exampleEnv
      )
    ])
    expect(valid.code, valid.stderr).toBe(0)
    expect(valid.stdout).toContain(
      `jama_service_account (private_key_jwt (private_key_file ${keyFile}, kid ${KEY_ID}))`
    )
    expect(token.code, token.stderr).toBe(0)
    expect(token.stdout).toContain("auth_method:  private_key_jwt")
    expect(call.code, call.stderr).toBe(0)
  })

  it("token with client_secret_file: the secret read from the file, the file named, the secret never printed", async () => {
    const secretFile = Path.join(tempDir("mcp-auth-cli-secret-"), "client-secret")
    // a trailing line break, as `echo` or a mounted Kubernetes Secret leave it, is not part of the secret
    Fs.writeFileSync(secretFile, `${FILE_SECRET}\n`)
    const file = authWorkflow(provider("from_file", "svc-cli-file", `    client_secret_file: ${secretFile}\n`))
    const [ok, asJson] = await Promise.all([
      cli(["token", "-c", file, "--ca-file", caFile]),
      cli(["token", "-c", file, "--ca-file", caFile, "--json", "--provider", "from_file"])
    ])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toContain(`auth_method:  client_secret_basic (client_secret_file ${secretFile})`)
    expect(asJson.code, asJson.stderr).toBe(0)
    expect((JSON.parse(asJson.stdout) as { auth_method: string }).auth_method).toBe(
      `client_secret_basic (client_secret_file ${secretFile})`
    )
    // a file holding another secret: invalid credentials (exit 4), neither secret printed
    const otherFile = Path.join(tempDir("mcp-auth-cli-secret-"), "client-secret")
    Fs.writeFileSync(otherFile, "not-the-file-secret-value")
    const refused = await cli([
      "token",
      "-c",
      authWorkflow(provider("from_file", "svc-cli-file", `    client_secret_file: ${otherFile}\n`)),
      "--ca-file",
      caFile
    ])
    expect(refused.code).toBe(4)
    expect(refused.stderr).toContain("Error: Invalid service account credentials (invalid_client")
    expect(refused.stderr + refused.stdout).not.toContain("not-the-file-secret-value")
  })

  it("validate: missing and malformed key, certificate and secret files, all named with their field, exit 3", async () => {
    const dir = tempDir("mcp-auth-cli-badkeys-")
    const badKey = Path.join(dir, "bad-key.pem")
    const badKeyText =
      "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LWJ1dC1zZWNyZXQtbG9va2luZy10ZXh0\n-----END PRIVATE KEY-----\n"
    Fs.writeFileSync(badKey, badKeyText)
    const missing = Path.join(dir, "missing.pem")
    const missingSecret = Path.join(dir, "no-such-secret")
    const file = authWorkflow(
      provider("bad_key", "svc-a", `    auth_method: private_key_jwt\n    private_key_file: ${badKey}\n`) +
        provider("no_key", "svc-b", `    auth_method: private_key_jwt\n    private_key_file: ${missing}\n`) +
        provider(
          "no_cert",
          "svc-c",
          `    auth_method: tls_client_auth\n    tls_client_certificate_file: ${missing}\n    tls_client_key_file: ${badKey}\n`
        ) +
        provider("no_secret", "svc-d", `    client_secret_file: ${missingSecret}\n`)
    )
    const result = await cli(["validate", "-c", file])
    expect(result.code).toBe(3)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("Error: Invalid service account configuration (4 problems):")
    expect(result.stderr).toMatch(
      new RegExp(`authentication\\.bad_key\\.private_key_file: private_key_file \\(${escape(badKey)}\\) \\S`)
    )
    expect(result.stderr).toContain(
      `authentication.no_key.private_key_file: private_key_file (${missing}) cannot be read (ENOENT)`
    )
    expect(result.stderr).toContain(
      `authentication.no_cert.tls_client_certificate_file: tls_client_certificate_file (${missing}) cannot be read (ENOENT)`
    )
    expect(result.stderr).toContain(
      `authentication.no_secret.client_secret_file: client_secret_file (${missingSecret}) cannot be read (ENOENT)`
    )
    expect(result.stderr).toContain("Hint: Check the files named above")
    expect(result.stderr).not.toContain("bm90LWEta2V5")
  })

  it("validate: a readable key and secret file are valid, and it says how each provider authenticates", async () => {
    const dir = tempDir("mcp-auth-cli-goodkeys-")
    const keyFile = Path.join(dir, "key.pem")
    Fs.writeFileSync(keyFile, PRIVATE_KEY)
    const secretFile = Path.join(dir, "secret")
    Fs.writeFileSync(secretFile, FILE_SECRET)
    const result = await cli([
      "validate",
      "-c",
      authWorkflow(
        provider("signed", "svc-cli-pkjwt", `    auth_method: private_key_jwt\n    private_key_file: ${keyFile}\n`) +
          provider("from_file", "svc-cli-file", `    client_secret_file: ${secretFile}\n`)
      )
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain(
      `providers:       signed (private_key_jwt (private_key_file ${keyFile})), from_file (client_secret_basic ` +
        `(client_secret_file ${secretFile}))`
    )
  })

  it("token with a key file that cannot be used: exit 3 naming the field and the file, never the contents", async () => {
    const dir = tempDir("mcp-auth-cli-tokenkey-")
    const badKey = Path.join(dir, "bad-key.pem")
    Fs.writeFileSync(
      badKey,
      "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWxvb2tpbmctbm90LWEta2V5\n-----END PRIVATE KEY-----\n"
    )
    const missing = Path.join(dir, "missing.pem")
    const [bad, absent] = await Promise.all([
      cli([
        "token",
        "-c",
        authWorkflow(provider(
          "signed",
          "svc-cli-pkjwt",
          `    auth_method: private_key_jwt\n    private_key_file: ${badKey}\n`
        )),
        "--ca-file",
        caFile
      ]),
      cli([
        "token",
        "-c",
        authWorkflow(provider(
          "signed",
          "svc-cli-pkjwt",
          `    auth_method: private_key_jwt\n    private_key_file: ${missing}\n`
        )),
        "--ca-file",
        caFile
      ])
    ])
    expect(bad.code).toBe(3)
    expect(bad.stderr).toContain(`private_key_file (${badKey})`)
    expect(bad.stderr).not.toContain("c2VjcmV0LWxvb2tpbmc")
    expect(absent.code).toBe(3)
    expect(absent.stderr).toContain(`private_key_file (${missing}) cannot be read (ENOENT)`)
    expect(bad.stderr + absent.stderr).not.toMatch(/\n\s+at /)
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
      expect(text).not.toContain(FILE_SECRET)
      expect(text).not.toContain(PRIVATE_KEY.split("\n")[1]!)
      expect(text).not.toContain(JIRA_TOKEN)
      expect(text).not.toContain(Buffer.from(`svc-cli:${encodeURIComponent(SECRET)}`).toString("base64"))
      for (const token of issued) if (token !== shownToken) expect(text).not.toContain(token)
    }
  })
})

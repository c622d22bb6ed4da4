/**
 * Client authentication in a workflow: a `client_assertion.function` module named relative to the workflow file
 * (private_key_jwt against the real authorization server), file paths resolved against the workflow file's
 * directory, and start-up refusing a missing key file with a ConfigurationError naming the provider's field and the
 * file.
 */
import { describe, expect, it } from "@effect/vitest"
import { AuthorizationServer, McpServer, TestProxy } from "@mcp-auth/testing"
import { Workflow, WorkflowConfig } from "@mcp-auth/workflow"
import { Effect, Either } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** A temporary directory holding a workflow and its files, removed with the scope. */
const workflowDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-workflow-auth-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Signs RS256 with node:crypto only (the module lives in a temporary directory without node_modules). */
const assertionModule = `
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url")

export const makeAssertion = (kwargs, context) => {
  const key = Fs.readFileSync(new URL("./keys/client-key.pem", import.meta.url), "utf8")
  const now = Math.floor(Date.now() / 1000)
  const input = b64({ alg: "RS256", typ: "JWT", kid: kwargs.kid }) + "." + b64({
    iss: kwargs.client_id,
    sub: kwargs.client_id,
    aud: context.audience,
    jti: Crypto.randomUUID(),
    iat: now,
    exp: now + 60
  })
  return input + "." + Crypto.sign("sha256", Buffer.from(input), key).toString("base64url")
}
`

const workflowYaml = (provider: string) => `
authentication:
  workload:
    _type: mcp_service_account
    client_id: svc-workload
    token_url: \${TOKEN_URL}
    scopes: mcp:tools
    allow_insecure_http: true
${provider}
function_groups:
  tools:
    _type: mcp_client
    server:
      transport: streamable-http
      url: \${MCP_URL}
      auth_provider: workload
`

const PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] as const

/** Exactly these proxy variables for the rest of the scope (the others unset); the environment is restored after. */
const proxyEnv = (vars: Partial<Record<(typeof PROXY_VARIABLES)[number], string>>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = PROXY_VARIABLES.map((name) => [name, process.env[name]] as const)
      for (const name of PROXY_VARIABLES) delete process.env[name]
      Object.assign(process.env, vars)
      return saved
    }),
    (saved) =>
      Effect.sync(() => {
        for (const [name, value] of saved) {
          if (value === undefined) delete process.env[name]
          else process.env[name] = value
        }
      })
  )

describe("Workflow client authentication", () => {
  it.scopedLive("client_assertion.function ./module#export resolves against the workflow file's directory", () =>
    Effect.gen(function*() {
      const { privateKey, publicKey } = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
      const jwk = { ...publicKey.export({ format: "jwk" }), kid: "wl-1", alg: "RS256", use: "sig" }
      const as = yield* AuthorizationServer.make({
        clients: [{ clientId: "svc-workload", authMethod: "private_key_jwt", jwks: { keys: [jwk] } }],
        scopes: ["mcp:tools"]
      })
      const mcp = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const dir = yield* workflowDir
      Fs.mkdirSync(Path.join(dir, "keys"))
      Fs.mkdirSync(Path.join(dir, "scripts"))
      Fs.writeFileSync(
        Path.join(dir, "keys", "client-key.pem"),
        privateKey.export({ type: "pkcs8", format: "pem" }).toString()
      )
      Fs.writeFileSync(Path.join(dir, "scripts", "assertion.mjs"), assertionModule.replace("./keys/", "../keys/"))
      const file = Path.join(dir, "workflow.yml")
      Fs.writeFileSync(
        file,
        workflowYaml(`    auth_method: private_key_jwt
    client_assertion:
      function: ./scripts/assertion.mjs#makeAssertion
      kwargs: { kid: wl-1, client_id: svc-workload }`)
      )
      // the working directory is not the workflow's: only resolution against the file's directory finds the module
      expect(Path.resolve("./scripts/assertion.mjs")).not.toBe(Path.join(dir, "scripts", "assertion.mjs"))
      const config = yield* WorkflowConfig.load(file, { env: { TOKEN_URL: as.tokenUrl, MCP_URL: mcp.url } })
      const workflow = yield* Workflow.make(config)
      const tools = yield* workflow.groups.get("tools")!.listTools
      expect(tools.map((t) => t.name)).toContain("echo")
      const requests = as.tokenRequests
      expect(requests.length).toBeGreaterThan(0)
      expect(requests.map((r) => r.error)).toEqual(requests.map(() => undefined))
      expect(requests[0]!.assertion).toMatchObject({
        parameter: "client_assertion",
        header: { alg: "RS256", kid: "wl-1" },
        claims: { iss: "svc-workload", sub: "svc-workload", aud: as.tokenUrl }
      })
      expect(mcp.mcpRequests.every((r) => r.auth === "ok" && r.clientId === "svc-workload")).toBe(true)
    }))

  it.scoped("a missing private_key_file stops the start with a ConfigurationError naming the field and the file", () =>
    Effect.gen(function*() {
      const dir = yield* workflowDir
      const file = Path.join(dir, "workflow.yml")
      Fs.writeFileSync(
        file,
        workflowYaml(`    auth_method: private_key_jwt
    private_key_file: keys/missing.pem`)
      )
      const config = yield* WorkflowConfig.load(file, {
        env: { TOKEN_URL: "http://127.0.0.1:9/token", MCP_URL: "http://127.0.0.1:9/mcp" }
      })
      const missing = Path.join(dir, "keys", "missing.pem")
      expect(config.providers.get("workload")?.privateKeyFile).toBe(missing)
      const error = yield* Effect.flip(Workflow.make(config))
      expect(error._tag).toBe("ConfigurationError")
      if (error._tag !== "ConfigurationError") return
      expect(error.issues.map((i) => i.path)).toEqual(["authentication.workload.private_key_file"])
      expect(error.issues[0]!.message).toContain(missing)
      expect(error.message).toContain("authentication.workload.private_key_file")
    }))

  it("relative file paths resolve against the workflow file's directory, absolute ones stay", () => {
    const base = Path.join(Os.tmpdir(), "wf-base")
    const absolute = Path.join(Os.tmpdir(), "elsewhere", "secret.txt")
    const parsed = WorkflowConfig.parse(
      workflowYaml(`    auth_method: private_key_jwt
    private_key_file: ./keys/key.pem
    certificate_file: keys/cert.pem
    ca_file: ../ca/corp.pem
    tls_client_certificate_file: mtls/client.pem
    tls_client_key_file: \${KEY_FILE}`),
      {
        baseDir: base,
        env: { TOKEN_URL: "http://127.0.0.1:9/token", MCP_URL: "http://127.0.0.1:9/mcp", KEY_FILE: absolute }
      }
    )
    const provider = Either.getOrThrowWith(parsed, (e) => new Error(e.message)).providers.get("workload")!
    expect(provider.privateKeyFile).toBe(Path.join(base, "keys", "key.pem"))
    expect(provider.certificateFile).toBe(Path.join(base, "keys", "cert.pem"))
    expect(provider.caFile).toBe(Path.join(Os.tmpdir(), "ca", "corp.pem"))
    expect(provider.tlsClientCertificate).toMatchObject({
      certificateFile: Path.join(base, "mtls", "client.pem"),
      keyFile: absolute
    })

    const secret = WorkflowConfig.parse(workflowYaml(`    client_secret_file: secrets/client-secret`), {
      baseDir: base,
      env: { TOKEN_URL: "http://127.0.0.1:9/token", MCP_URL: "http://127.0.0.1:9/mcp" }
    })
    expect(Either.getOrThrow(secret).providers.get("workload")?.clientSecretFile).toBe(
      Path.join(base, "secrets", "client-secret")
    )
    const assertion = WorkflowConfig.parse(
      workflowYaml(`    grant_type: jwt_bearer
    client_assertion: { file: /var/run/secrets/tokens/mcp }`),
      { baseDir: base, env: { TOKEN_URL: "http://127.0.0.1:9/token", MCP_URL: "http://127.0.0.1:9/mcp" } }
    )
    expect(Either.getOrThrow(assertion).providers.get("workload")?.clientAssertion).toEqual({
      _tag: "File",
      path: "/var/run/secrets/tokens/mcp"
    })
  })

  it("a misspelled new key is reported with a did-you-mean", () => {
    const parsed = WorkflowConfig.parse(
      workflowYaml(`    auth_method: private_key_jwt
    private_key_flie: keys/key.pem`),
      { env: { TOKEN_URL: "http://127.0.0.1:9/token", MCP_URL: "http://127.0.0.1:9/mcp" } }
    )
    expect(Either.isLeft(parsed)).toBe(true)
    if (Either.isRight(parsed)) return
    expect(parsed.left.issues.map((i) => `${i.path}: ${i.message}`)).toContainEqual(
      expect.stringMatching(/^authentication\.workload\.private_key_flie: .*did you mean "private_key_file"\?/)
    )
  })

  it.scopedLive("proxies: a provider's proxy_url carries its token and MCP requests; other groups use the variables", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({
        clients: [{ clientId: "svc-workload", clientSecret: "proxied-secret" }],
        scopes: ["mcp:tools"]
      })
      const mcp = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const open = yield* McpServer.make({ requireAuth: false })
      const providerProxy = yield* TestProxy.make()
      const envProxy = yield* TestProxy.make()
      // the variables name another proxy and exempt the provider's hosts (NO_PROXY): only proxy_url can send the
      // provider's traffic to providerProxy; the open group (another port) goes through the variables' proxy
      yield* proxyEnv({ HTTP_PROXY: envProxy.url, NO_PROXY: `127.0.0.1:${as.port},127.0.0.1:${mcp.port}` })
      const dir = yield* workflowDir
      const file = Path.join(dir, "workflow.yml")
      Fs.writeFileSync(
        file,
        `${
          workflowYaml(`    client_secret: proxied-secret
    proxy_url: \${PROXY_URL}`)
        }  open:
    _type: mcp_client
    server:
      transport: streamable-http
      url: \${OPEN_URL}
`
      )
      const config = yield* WorkflowConfig.load(file, {
        env: { TOKEN_URL: as.tokenUrl, MCP_URL: mcp.url, OPEN_URL: open.url, PROXY_URL: providerProxy.url }
      })
      const workflow = yield* Workflow.make(config)
      yield* workflow.groups.get("tools")!.listTools
      yield* workflow.groups.get("open")!.listTools
      expect(new Set(providerProxy.connectTargets)).toEqual(new Set([`127.0.0.1:${as.port}`, `127.0.0.1:${mcp.port}`]))
      expect(new Set(envProxy.connectTargets)).toEqual(new Set([`127.0.0.1:${open.port}`]))
      expect(mcp.mcpRequests.length).toBeGreaterThan(0)
      expect(mcp.mcpRequests.every((r) => r.auth === "ok")).toBe(true)
    }))
})

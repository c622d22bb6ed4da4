/**
 * The example programs run against the embedded servers (the NAT workflow examples with client secrets run in the
 * workflow and CLI suites; the private_key_jwt one runs here, with a key pair made for the test).
 */
import { describe, expect, it } from "@effect/vitest"
import { TestPki, TestStack } from "@mcp-auth/testing"
import * as Workflow from "@mcp-auth/workflow/Workflow"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import { ConfigProvider, Effect } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { main as effectMain } from "../examples/effect/main.js"
import { main as promiseMain } from "../examples/promise/main.js"

const CLIENT = { clientId: "svc-examples", clientSecret: "examples-secret" }

const natWorkflows = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../examples/nat-workflows")

/** A temporary directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-examples-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

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

  it.scopedLive("examples/nat-workflows/config-mcp-service-account-private-key-jwt.yml: private_key_jwt, no secret", () =>
    Effect.gen(function*() {
      // a key pair made now: the private half in a file (as a mounted secret), the public JWK registered at the server
      const { privateKey, publicKey } = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
      const kid = "examples-key-1"
      const pki = yield* TestPki.sharedEffect
      const stack = yield* TestStack.make({
        clients: [{
          clientId: "svc-examples-signed",
          authMethod: "private_key_jwt",
          jwks: { keys: [{ ...publicKey.export({ format: "jwk" }), kid }] }
        }],
        scopes: ["mcp:tools"],
        requiredScopes: ["mcp:tools"],
        pki
      })
      const dir = yield* tempDir
      const keyFile = Path.join(dir, "client-key.pem")
      Fs.writeFileSync(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 })
      const caFile = Path.join(dir, "ca.pem")
      Fs.writeFileSync(caFile, pki.ca)

      const config = yield* WorkflowConfig.load(
        Path.join(natWorkflows, "config-mcp-service-account-private-key-jwt.yml"),
        {
          env: {
            SERVICE_ACCOUNT_CLIENT_ID: "svc-examples-signed",
            SERVICE_ACCOUNT_TOKEN_URL: stack.tokenUrl,
            SERVICE_ACCOUNT_SCOPES: "mcp:tools",
            SERVICE_ACCOUNT_PRIVATE_KEY_FILE: keyFile,
            SERVICE_ACCOUNT_KEY_ID: kid,
            CORPORATE_MCP_SERVICE_ACCOUNT_JAMA_URL: stack.mcpUrl
          }
        }
      )
      const provider = config.providers.get("jama_service_account")!
      expect(provider.authMethod).toBe("private_key_jwt")
      expect(provider.clientSecret).toBeUndefined()
      const workflow = yield* Workflow.make(config, { caFile })
      const jama = workflow.groups.get("mcp_jama")!
      expect((yield* jama.listTools).map((t) => t.name)).toContain("jama_list_releases")
      const result = yield* jama.callTool("jama_list_releases", { projectId: 1 })
      expect(result.isError).not.toBe(true)

      // one token, obtained with an ES256 assertion under the configured kid; no secret was sent
      const as = stack.authorizationServer
      expect(as.tokenRequestCount).toBe(1)
      expect(
        as.assertions.map((a) => [a.parameter, a.header.alg, a.header.kid, a.claims.iss, a.claims.sub, a.claims.aud])
      )
        .toEqual([["client_assertion", "ES256", kid, "svc-examples-signed", "svc-examples-signed", stack.tokenUrl]])
      expect(as.tokenRequests.every((r) => r.form?.client_secret === undefined)).toBe(true)
      expect(stack.mcpServer.forbiddenCount).toBe(0)
    }))
})

/**
 * Client authentication and connections of the client package against real local servers: the Promise API with
 * `client_secret_file` (rotation without restart, an unreadable file as `ClientCredentialError`), `TrustedFetch` and
 * the Promise API's `fetch` through a real forward proxy (`proxy` npm package; tunnels counted by the proxy), the
 * proxy variables with their `NO_PROXY` exceptions, `proxy_url` over the variables, and the TLS client certificate on
 * the MCP connection. The SDK adapter's client authentication for the methods without a secret.
 *
 * The proxy variables are process-wide: each test sets them for itself and restores them (tests in a file run one
 * after another). Assertions are about what the servers saw, never about time.
 */
import { createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import * as TrustedFetch from "@mcp-auth/client/TrustedFetch"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import type { ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import { AuthorizationServer, McpServer, RecordingServer, TestPki, TestProxy } from "@mcp-auth/testing"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import { Effect, Exit, Scope } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"] as const

/** Runs `f` with exactly these proxy variables set (the others unset), restoring the environment after. */
const withProxyEnv = async <A>(
  vars: Partial<Record<(typeof PROXY_VARIABLES)[number], string>>,
  f: () => Promise<A>
): Promise<A> => {
  const saved = PROXY_VARIABLES.map((name) => [name, process.env[name]] as const)
  for (const name of PROXY_VARIABLES) delete process.env[name]
  Object.assign(process.env, vars)
  try {
    return await f()
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
}

/** A scoped fetch usable from Promise code; `close` ends its connections. */
const scopedFetch = async (make: Effect.Effect<FetchLike, ConfigurationError, Scope.Scope>) => {
  const scope = Effect.runSync(Scope.make())
  const fetch = await Effect.runPromise(Scope.extend(make, scope))
  return {
    fetch: (url: string, init?: RequestInit) => fetch(url, init),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const formEncode = (value: string) => new URLSearchParams([["", value]]).toString().slice(1)
const b64url = (value: string) => Buffer.from(value, "base64url").toString("utf8")
const claimsOf = (jwt: string): Record<string, unknown> => JSON.parse(b64url(jwt.split(".")[1]!))

let pki: TestPki.TestPki
let dir: string
let caFile: string
let proxy: TestProxy.TestProxy & { close(): Promise<void> }

beforeAll(async () => {
  pki = await TestPki.shared()
  proxy = await TestProxy.start()
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-connections-"))
  caFile = Path.join(dir, "ca.pem")
  Fs.writeFileSync(caFile, pki.ca)
})

afterAll(async () => {
  await proxy?.close()
  if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
})

const portOf = (url: string) => new URL(url).port

describe("createServiceAccountAuth with client_secret_file", () => {
  it("reads the secret from the file, and a rotated file is used without a restart", async () => {
    const as = await AuthorizationServer.start({ clients: [{ clientId: "svc-file", clientSecret: "first-secret" }] })
    const secretFile = Path.join(dir, "secret-rotating")
    Fs.writeFileSync(secretFile, "first-secret\n")
    const auth = createServiceAccountAuth({
      client_id: "svc-file",
      client_secret_file: secretFile,
      token_url: as.tokenUrl,
      scopes: "mcp:tools",
      allow_insecure_http: true,
      retry: { max_attempts: 1 }
    }, { logLevel: "none" })
    try {
      const first = await auth.getToken()
      expect(as.tokenRequests.at(-1)?.error).toBeUndefined()
      // the server now accepts only the new secret; the mounted file is replaced
      as.setClientSecret("svc-file", "second-secret")
      Fs.writeFileSync(secretFile, "second-secret\n")
      expect(await auth.invalidate(first.accessToken)).toEqual({ _tag: "Dropped" })
      const second = await auth.getToken()
      expect(second.accessToken).not.toBe(first.accessToken)
      expect(as.tokenRequests.map((r) => r.error)).toEqual([undefined, undefined])
    } finally {
      await auth.close()
      await as.close()
    }
  })

  it("client_secret_post sends the file's secret in the form", async () => {
    const as = await AuthorizationServer.start({
      clients: [{ clientId: "svc-post", clientSecret: "post-secret", authMethod: "client_secret_post" }]
    })
    const secretFile = Path.join(dir, "secret-post")
    Fs.writeFileSync(secretFile, "post-secret")
    const auth = createServiceAccountAuth({
      client_id: "svc-post",
      client_secret_file: secretFile,
      auth_method: "client_secret_post",
      token_url: as.tokenUrl,
      allow_insecure_http: true
    }, { logLevel: "none" })
    try {
      expect((await auth.getToken()).accessToken.length).toBeGreaterThan(0)
      expect(as.tokenRequests[0]?.form).toMatchObject({ client_id: "svc-post", client_secret: "post-secret" })
    } finally {
      await auth.close()
      await as.close()
    }
  })

  it("an unreadable secret file rejects with ClientCredentialError naming the field and the file", async () => {
    const missing = Path.join(dir, "no-such-secret")
    const auth = createServiceAccountAuth({
      client_id: "svc-missing",
      client_secret_file: missing,
      token_url: "http://127.0.0.1:9/token",
      allow_insecure_http: true,
      retry: { max_attempts: 1 }
    }, { logLevel: "none" })
    try {
      const error: unknown = await auth.getToken().then(() => undefined, (e: unknown) => e)
      expect(error).toMatchObject({ _tag: "ClientCredentialError", field: "client_secret_file", file: missing })
      expect((error as Error).message).toContain(missing)
    } finally {
      await auth.close()
    }
  })
})

describe("TrustedFetch.fromConfig and proxies", () => {
  const config = (extra: Record<string, unknown> = {}) =>
    ServiceAccountConfig.decodeSync({
      client_id: "svc-proxy",
      client_secret: "s",
      token_url: "http://127.0.0.1:9/token",
      allow_insecure_http: true,
      ...extra
    })

  it("the proxy variables tunnel requests through the proxy; NO_PROXY exceptions go direct", async () => {
    const proxied = await RecordingServer.start({ https: pki.server })
    const direct = await RecordingServer.start({ https: pki.server })
    try {
      await withProxyEnv({
        HTTPS_PROXY: proxy.url,
        HTTP_PROXY: proxy.url,
        NO_PROXY: `example.invalid, 127.0.0.1:${direct.port}`
      }, async () => {
        proxy.clearRecords()
        const { close, fetch } = await scopedFetch(TrustedFetch.fromConfig(config({ ca_file: caFile })))
        try {
          // ca_file applies to the tunnelled connection: the test CA's server certificate is trusted
          expect((await fetch(`${proxied.url}/through`)).status).toBe(200)
          expect((await fetch(`${direct.url}/direct`)).status).toBe(200)
        } finally {
          await close()
        }
      })
      expect(proxy.connectTargets).toContain(`127.0.0.1:${proxied.port}`)
      expect(proxy.connectTargets).not.toContain(`127.0.0.1:${direct.port}`)
      expect(proxy.requests.every((r) => r.target.endsWith(`:${proxied.port}`))).toBe(true)
      expect(proxied.requests.map((r) => r.url)).toEqual(["/through"])
      expect(direct.requests.map((r) => r.url)).toEqual(["/direct"])
    } finally {
      await proxied.close()
      await direct.close()
    }
  })

  it("without proxy variables, requests go direct", async () => {
    const server = await RecordingServer.start()
    try {
      await withProxyEnv({}, async () => {
        proxy.clearRecords()
        const { close, fetch } = await scopedFetch(TrustedFetch.fromConfig(config()))
        try {
          expect((await fetch(`${server.url}/plain`)).status).toBe(200)
        } finally {
          await close()
        }
      })
      expect(proxy.connectCount).toBe(0)
      expect(server.count).toBe(1)
    } finally {
      await server.close()
    }
  })

  it("proxy_url overrides the variables (and their NO_PROXY), with credentials", async () => {
    const authenticating = await TestProxy.start({ credentials: { username: "proxy-user", password: "p@ss word" } })
    const server = await RecordingServer.start()
    try {
      await withProxyEnv({ HTTP_PROXY: "http://127.0.0.1:9", NO_PROXY: "127.0.0.1" }, async () => {
        const { close, fetch } = await scopedFetch(
          TrustedFetch.fromConfig(config({ proxy_url: authenticating.urlWithCredentials }))
        )
        try {
          expect((await fetch(`${server.url}/via-proxy-url`)).status).toBe(200)
        } finally {
          await close()
        }
      })
      expect(authenticating.connectTargets).toEqual([`127.0.0.1:${server.port}`])
      expect(authenticating.refusedCount).toBe(0)
      expect(server.count).toBe(1)
    } finally {
      await server.close()
      await authenticating.close()
    }
  })

  it("presents the provider's TLS client certificate to the MCP server, through the proxy", async () => {
    const certificate = await pki.issueClient({ commonName: "svc-mtls" })
    const certFile = Path.join(dir, "client.pem")
    const keyFile = Path.join(dir, "client-key.pem")
    Fs.writeFileSync(certFile, certificate.certPem)
    Fs.writeFileSync(keyFile, certificate.keyPem)
    const mcp = await McpServer.start({ https: pki.server, requestClientCertificate: true, requireAuth: false })
    try {
      await withProxyEnv({}, async () => {
        proxy.clearRecords()
        const { close, fetch } = await scopedFetch(
          TrustedFetch.fromConfig(
            config({ tls_client_certificate_file: certFile, tls_client_key_file: keyFile, proxy_url: proxy.url }),
            { caFile }
          )
        )
        try {
          await fetch(mcp.url, { method: "GET" })
        } finally {
          await close()
        }
      })
      expect(mcp.requests.map((r) => r.clientCertificateThumbprint)).toEqual([certificate.thumbprint])
      expect(proxy.connectTargets).toEqual([`127.0.0.1:${mcp.port}`])
    } finally {
      await mcp.close()
    }
  })

  it("the MCP server's caFile option replaces the provider's ca_file for the MCP connection", async () => {
    const server = await RecordingServer.start({ https: pki.unknownCa.leafOnly })
    const otherCa = Path.join(dir, "other-ca.pem")
    Fs.writeFileSync(otherCa, pki.unknownCa.ca)
    try {
      await withProxyEnv({}, async () => {
        const providerTrust = await scopedFetch(TrustedFetch.fromConfig(config({ ca_file: caFile })))
        const mcpTrust = await scopedFetch(TrustedFetch.fromConfig(config({ ca_file: caFile }), { caFile: otherCa }))
        try {
          await expect(providerTrust.fetch(`${server.url}/a`)).rejects.toThrow()
          expect((await mcpTrust.fetch(`${server.url}/b`)).status).toBe(200)
        } finally {
          await providerTrust.close()
          await mcpTrust.close()
        }
      })
      expect(server.requests.map((r) => r.url)).toEqual(["/b"])
    } finally {
      await server.close()
    }
  })
})

describe("createServiceAccountAuth through a proxy", () => {
  it("token and MCP requests are tunnelled through proxy_url; providers with other proxies keep theirs", async () => {
    const as = await AuthorizationServer.start({ clients: [{ clientId: "svc-via-proxy", clientSecret: "px" }] })
    const mcp = await McpServer.start({ authorizationServer: as, audience: as.issuer })
    const block = {
      client_id: "svc-via-proxy",
      client_secret: "px",
      token_url: as.tokenUrl,
      allow_insecure_http: true,
      retry: { max_attempts: 1 }
    }
    const direct = createServiceAccountAuth(block, { logLevel: "none" })
    try {
      await withProxyEnv({}, async () => {
        proxy.clearRecords()
        const auth = createServiceAccountAuth({ ...block, proxy_url: proxy.url }, {
          serverUrl: mcp.url,
          logLevel: "none"
        })
        const client = new Client({ name: "proxied", version: "1.0.0" })
        try {
          await client.connect(new StreamableHTTPClientTransport(new URL(mcp.url), { fetch: auth.fetch }))
          const tools = await client.listTools()
          expect(tools.tools.length).toBeGreaterThan(0)
        } finally {
          await client.close()
          await auth.close()
        }
        const viaProxy = new Set(proxy.connectTargets)
        expect(viaProxy).toEqual(new Set([`127.0.0.1:${portOf(as.tokenUrl)}`, `127.0.0.1:${mcp.port}`]))
        // same config but no proxy_url: its own runtime and connections, which go direct
        proxy.clearRecords()
        await direct.getToken()
        expect(proxy.connectCount).toBe(0)
      })
      expect(mcp.mcpRequests.every((r) => r.auth === "ok")).toBe(true)
    } finally {
      await direct.close()
      await mcp.close()
      await as.close()
    }
  })
})

describe("OAuthProviderAdapter client authentication", () => {
  const key = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
  const privateKey = key.privateKey.export({ type: "pkcs8", format: "pem" }).toString()
  const tokenUrl = "http://127.0.0.1:9/token"

  it("private_key_jwt: a freshly signed client_assertion for every token request", async () => {
    const auth = createServiceAccountAuth({
      client_id: "svc-adapter-jwt",
      auth_method: "private_key_jwt",
      private_key: privateKey,
      token_url: tokenUrl,
      allow_insecure_http: true
    }, { logLevel: "none" })
    try {
      const provider = auth.authProvider()
      const request = async () => {
        const headers = new Headers()
        const params = (await provider.prepareTokenRequest!())!
        await provider.addClientAuthentication!(headers, params, tokenUrl)
        return { headers, params }
      }
      const [one, two] = [await request(), await request()]
      for (const { headers, params } of [one, two]) {
        expect(headers.get("authorization")).toBeNull()
        expect(params.get("grant_type")).toBe("client_credentials")
        expect(params.get("client_id")).toBe("svc-adapter-jwt")
        expect(params.get("client_assertion_type")).toBe("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        expect(claimsOf(params.get("client_assertion")!)).toMatchObject({
          iss: "svc-adapter-jwt",
          sub: "svc-adapter-jwt",
          aud: tokenUrl
        })
      }
      expect(claimsOf(one.params.get("client_assertion")!).jti).not.toBe(
        claimsOf(two.params.get("client_assertion")!).jti
      )
    } finally {
      await auth.close()
    }
  })

  it("jwt_bearer: the jwt-bearer grant with the assertion read from its file, no client authentication", async () => {
    const assertionFile = Path.join(dir, "projected-token")
    const header = Buffer.from(JSON.stringify({ alg: "ES256", typ: "JWT" })).toString("base64url")
    const payload = Buffer.from(JSON.stringify({ iss: "https://cluster.example", sub: "workload", aud: tokenUrl }))
      .toString("base64url")
    const jwt = `${header}.${payload}.${Buffer.from("signature").toString("base64url")}`
    Fs.writeFileSync(assertionFile, `${jwt}\n`)
    const auth = createServiceAccountAuth({
      client_id: "svc-workload",
      grant_type: "jwt_bearer",
      client_assertion: { file: assertionFile },
      token_url: tokenUrl,
      allow_insecure_http: true
    }, { logLevel: "none" })
    try {
      const provider = auth.authProvider()
      const headers = new Headers()
      const params = (await provider.prepareTokenRequest!())!
      await provider.addClientAuthentication!(headers, params, tokenUrl)
      expect(params.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer")
      expect(params.get("assertion")).toBe(jwt)
      expect(params.has("client_id")).toBe(false)
      expect(params.has("client_assertion")).toBe(false)
      expect(headers.get("authorization")).toBeNull()
      expect(provider.clientMetadata.grant_types).toEqual(["urn:ietf:params:oauth:grant-type:jwt-bearer"])
    } finally {
      await auth.close()
    }
  })

  it("client_secret_basic: the Basic header, form-encoded before base64", async () => {
    const auth = createServiceAccountAuth({
      client_id: "svc:basic",
      client_secret: "sécret+/",
      token_url: tokenUrl,
      allow_insecure_http: true
    }, { logLevel: "none" })
    try {
      const headers = new Headers()
      const params = new URLSearchParams()
      await auth.authProvider().addClientAuthentication!(headers, params, tokenUrl)
      const basic = headers.get("authorization")!
      expect(basic.startsWith("Basic ")).toBe(true)
      expect(Buffer.from(basic.slice(6), "base64").toString("utf8")).toBe(
        `${formEncode("svc:basic")}:${formEncode("sécret+/")}`
      )
      expect([...params.keys()]).toEqual([])
    } finally {
      await auth.close()
    }
  })

  it("private_key_jwt through the SDK's own token request after a revocation (real servers)", async () => {
    const { privateKey: rsa, publicKey } = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
    const jwk = { ...publicKey.export({ format: "jwk" }), kid: "adapter-1", alg: "RS256", use: "sig" }
    const as = await AuthorizationServer.start({
      clients: [{ clientId: "svc-sdk-jwt", authMethod: "private_key_jwt", jwks: { keys: [jwk] } }]
    })
    const mcp = await McpServer.start({ authorizationServer: as, audience: as.issuer })
    const auth = createServiceAccountAuth({
      client_id: "svc-sdk-jwt",
      auth_method: "private_key_jwt",
      private_key: rsa.export({ type: "pkcs8", format: "pem" }).toString(),
      key_id: "adapter-1",
      token_url: as.tokenUrl,
      allow_insecure_http: true
    }, { logLevel: "none" })
    const client = new Client({ name: "adapter", version: "1.0.0" })
    try {
      await client.connect(
        new StreamableHTTPClientTransport(new URL(mcp.url), { authProvider: auth.authProvider(mcp.url) })
      )
      const first = await auth.getToken()
      mcp.revoke(first.accessToken)
      // the server refuses the cached token: the SDK runs its token request with our client authentication
      expect((await client.listTools()).tools.length).toBeGreaterThan(0)
      // mcp-auth's first request, then the SDK's (one per request that met the 401: the SDK has no single-flight)
      const requests = as.tokenRequests
      expect(requests.length).toBeGreaterThanOrEqual(2)
      expect(requests.map((r) => r.error)).toEqual(requests.map(() => undefined))
      expect(requests.map((r) => r.assertion?.header.kid)).toEqual(requests.map(() => "adapter-1"))
      expect(new Set(requests.map((r) => r.assertion?.claims.jti)).size).toBe(requests.length)
      expect((await auth.getToken()).accessToken).not.toBe(first.accessToken)
    } finally {
      await client.close()
      await auth.close()
      await mcp.close()
      await as.close()
    }
  })
})

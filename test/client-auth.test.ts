/**
 * Every way a headless client authenticates, against oidc-provider started here (HTTPS with a CA made at test time,
 * client certificates requested): a token with each method, a wrong key / certificate / assertion refused as
 * `InvalidCredentialsError`, assertions that never share a `jti`; a worker that keeps calling tools while its
 * `client_secret_file` is rotated; the token and MCP requests tunnelled through a real proxy.
 */
import { describe, expect, it } from "@effect/vitest"
import * as McpClient from "@mcp-auth/client/McpClient"
import * as TrustedFetch from "@mcp-auth/client/TrustedFetch"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { AuthorizationServer, McpServer, TestPki, TestProxy } from "@mcp-auth/testing"
import { Effect, Layer, Redacted } from "effect"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

// ---------------------------------------------------------------------------------------------------------------------
// Fixtures: keys, certificates and files made at run time
// ---------------------------------------------------------------------------------------------------------------------

const ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"] as const
type Algorithm = typeof ALGORITHMS[number]

const keyPair = (algorithm: Algorithm) =>
  algorithm === "ES256"
    ? Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
    : algorithm === "EdDSA"
    ? Crypto.generateKeyPairSync("ed25519")
    : Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })

const pemOf = (key: Crypto.KeyObject) => key.export({ type: "pkcs8", format: "pem" }) as string
const jwkOf = (key: Crypto.KeyObject, algorithm: string, kid: string) => ({
  ...key.export({ format: "jwk" }),
  alg: algorithm,
  kid,
  use: "sig"
})

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-client-auth-"))
/** Writes a file as Kubernetes swaps a mounted one: a new file renamed over the old. */
const write = (name: string, text: string): string => {
  const path = Path.join(dir, name)
  Fs.writeFileSync(`${path}.tmp`, text)
  Fs.renameSync(`${path}.tmp`, path)
  return path
}

const pkiEffect = TestPki.sharedEffect

/** A JWT the "platform" (a Kubernetes cluster, say) issues to a workload, for the jwt-bearer grant. */
const platformToken = (
  key: Crypto.KeyObject,
  audience: string,
  options: { readonly subject?: string; readonly issuer?: string } = {}
) =>
  new jose.SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: "cluster-1" })
    .setIssuer(options.issuer ?? "https://kubernetes.default.svc")
    .setSubject(options.subject ?? "system:serviceaccount:jobs:reports")
    .setAudience(audience)
    .setJti(Crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(key)

/** One token request with the configuration's own HTTP client (CA, client certificate, proxy). */
const fetchToken = (input: Record<string, unknown>) =>
  Effect.suspend(() => {
    const config = ServiceAccountConfig.decodeSync(input) as ServiceAccountConfig.Resolved
    return TokenEndpoint.request(config).pipe(Effect.provide(TokenHttpClient.layerFromConfig(config)))
  })

const claimsOf = (token: { readonly token: Redacted.Redacted<string> }) => jose.decodeJwt(Redacted.value(token.token))

// ---------------------------------------------------------------------------------------------------------------------

describe("every client authentication method against oidc-provider", () => {
  const platform = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
  const keys = Object.fromEntries(ALGORITHMS.map((a) => [a, keyPair(a)])) as Record<
    Algorithm,
    Crypto.KeyPairKeyObjectResult
  >

  const setup = Effect.gen(function*() {
    const pki = yield* pkiEffect
    const tls = yield* Effect.promise(() => pki.issueClient({ commonName: "svc-mtls" }))
    const selfSigned = yield* Effect.promise(() => pki.selfSignedClient({ commonName: "svc-self" }))
    const as = yield* AuthorizationServer.make({
      https: pki.server,
      requestClientCertificate: true,
      clientCa: pki.ca,
      trustedAssertionIssuers: [
        {
          issuer: "https://kubernetes.default.svc",
          jwks: { keys: [jwkOf(platform.publicKey, "ES256", "cluster-1") as jose.JWK] }
        },
        // a workload that signs its own assertions (iss = sub = its client id)
        { issuer: "reports-signer", jwks: { keys: [jwkOf(keys.ES256.publicKey, "ES256", "signer-1") as jose.JWK] } }
      ],
      workloads: { "system:serviceaccount:jobs:reports": "svc-workload", "reports-signer": "svc-workload" },
      clients: [
        {
          clientId: "svc-hs256",
          clientSecret: "a-shared-secret-of-at-least-32-bytes",
          authMethod: "client_secret_jwt"
        },
        ...ALGORITHMS.map((algorithm): AuthorizationServer.Client => ({
          clientId: `svc-${algorithm.toLowerCase()}`,
          authMethod: "private_key_jwt",
          jwks: { keys: [jwkOf(keys[algorithm].publicKey, algorithm, `${algorithm}-1`) as jose.JWK] }
        })),
        {
          clientId: "svc-mtls",
          authMethod: "tls_client_auth",
          certificatePem: tls.certPem,
          certificateBoundAccessTokens: true
        },
        { clientId: "svc-self", authMethod: "self_signed_tls_client_auth", certificatePem: selfSigned.certPem },
        { clientId: "svc-workload", authMethod: "none" }
      ]
    })
    const common = { token_url: as.tokenUrl, ca_file: write("ca.pem", pki.ca), scopes: ["mcp:tools"] }
    return { pki, tls, selfSigned, as, common }
  })

  it.live("client_secret_jwt: a token; a wrong secret is InvalidCredentialsError", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, common } = yield* setup
      const input = { ...common, client_id: "svc-hs256", auth_method: "client_secret_jwt" }
      const token = yield* fetchToken({ ...input, client_secret: "a-shared-secret-of-at-least-32-bytes" })
      expect(claimsOf(token).client_id).toBe("svc-hs256")
      expect(as.assertions.at(-1)?.header.alg).toBe("HS256")
      const wrong = yield* Effect.flip(fetchToken({ ...input, client_secret: "another-secret-of-at-least-32-bytes!" }))
      expect(wrong._tag).toBe("InvalidCredentialsError")
    })))

  for (const algorithm of ALGORITHMS) {
    it.live(`private_key_jwt ${algorithm}: a token; another key is InvalidCredentialsError`, () =>
      Effect.scoped(Effect.gen(function*() {
        const { as, common } = yield* setup
        const clientId = `svc-${algorithm.toLowerCase()}`
        const input = {
          ...common,
          client_id: clientId,
          auth_method: "private_key_jwt",
          key_id: `${algorithm}-1`,
          ...(algorithm === "PS256" ? { signing_algorithm: "PS256" } : {})
        }
        const token = yield* fetchToken({
          ...input,
          private_key_file: write(`${algorithm}.pem`, pemOf(keys[algorithm].privateKey))
        })
        expect(claimsOf(token).client_id).toBe(clientId)
        const assertion = as.assertions.at(-1)!
        expect(assertion.header.alg).toBe(algorithm)
        expect([assertion.claims.iss, assertion.claims.sub, assertion.claims.aud]).toEqual([
          clientId,
          clientId,
          as.tokenUrl
        ])
        const other = pemOf(keyPair(algorithm).privateKey)
        const wrong = yield* Effect.flip(fetchToken({ ...input, private_key: other }))
        expect(wrong._tag).toBe("InvalidCredentialsError")
        expect(wrong.message).toContain("public key of this client's private key")
      })))
  }

  it.live("tls_client_auth: a certificate-bound token; a certificate from another CA is InvalidCredentialsError", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, common, pki, tls } = yield* setup
      const input = { ...common, client_id: "svc-mtls", auth_method: "tls_client_auth" }
      const token = yield* fetchToken({
        ...input,
        tls_client_certificate_file: write("mtls.crt", tls.certPem),
        // an encrypted key, with its passphrase
        tls_client_key_file: write("mtls.key", tls.encryptedKeyPem("key-passphrase")),
        tls_client_key_passphrase: "key-passphrase"
      })
      expect(claimsOf(token).cnf).toEqual({ "x5t#S256": tls.thumbprint })
      expect(as.tokenRequests.at(-1)?.form?.client_id).toBe("svc-mtls")
      const untrusted = yield* Effect.promise(() => pki.issueUntrustedClient({ commonName: "svc-mtls" }))
      const wrong = yield* Effect.flip(fetchToken({
        ...input,
        tls_client_certificate_file: write("untrusted.crt", untrusted.certPem),
        tls_client_key_file: write("untrusted.key", untrusted.keyPem)
      }))
      expect(wrong._tag).toBe("InvalidCredentialsError")
    })))

  it.live("tls_client_auth: the MCP connection presents the same certificate, so a certificate-bound token works", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, common, pki, tls } = yield* setup
      const mcp = yield* McpServer.make({
        authorizationServer: as,
        https: pki.server,
        ca: pki.ca,
        requireCertificateBinding: true
      })
      as.setAudience(mcp.url)
      const input = {
        ...common,
        client_id: "svc-mtls",
        auth_method: "tls_client_auth",
        tls_client_certificate_file: write("bound.crt", tls.certPem),
        tls_client_key_file: write("bound.key", tls.keyPem)
      }
      const config = ServiceAccountConfig.decodeSync(input)
      const client = yield* mcpClient(config, mcp.url)
      const result = yield* client.callTool("echo", { text: "bound" })
      expect(JSON.stringify(result)).toContain("bound")
      expect(mcp.mcpRequests.every((r) => r.clientCertificateThumbprint === tls.thumbprint)).toBe(true)
      // the same token on a connection without the certificate is refused by the MCP server
      const token = Redacted.value((yield* fetchToken(input)).token)
      const bare = yield* TrustedFetch.make({ caFile: config.caFile })
      const response = yield* Effect.promise(() =>
        bare(mcp.url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream"
          },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" })
        })
      )
      expect(response.status).toBe(401)
    })))

  it.live("self_signed_tls_client_auth: a token; another self-signed certificate is InvalidCredentialsError", () =>
    Effect.scoped(Effect.gen(function*() {
      const { common, pki, selfSigned } = yield* setup
      const input = { ...common, client_id: "svc-self", auth_method: "self_signed_tls_client_auth" }
      const token = yield* fetchToken({
        ...input,
        tls_client_certificate_file: write("self.crt", selfSigned.certPem),
        tls_client_key_file: write("self.key", selfSigned.keyPem)
      })
      expect(claimsOf(token).client_id).toBe("svc-self")
      const other = yield* Effect.promise(() => pki.selfSignedClient({ commonName: "svc-self" }))
      const wrong = yield* Effect.flip(fetchToken({
        ...input,
        tls_client_certificate_file: write("other-self.crt", other.certPem),
        tls_client_key_file: write("other-self.key", other.keyPem)
      }))
      expect(wrong._tag).toBe("InvalidCredentialsError")
    })))

  it.live("jwt_bearer from client_assertion.file: the file changes between two fetches, the second JWT is used", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, common } = yield* setup
      const first = yield* Effect.promise(() => platformToken(platform.privateKey, as.tokenUrl))
      const file = write("projected-token", `${first}\n`)
      const input = {
        ...common,
        client_id: "reports-workload",
        grant_type: "jwt_bearer",
        client_assertion: { file }
      }
      const one = yield* fetchToken(input)
      expect(claimsOf(one).client_id).toBe("svc-workload")
      const second = yield* Effect.promise(() => platformToken(platform.privateKey, as.tokenUrl))
      write("projected-token", second)
      const two = yield* fetchToken(input)
      expect(claimsOf(two).client_id).toBe("svc-workload")
      const sent = as.tokenRequests.slice(-2).map((r) => r.form?.assertion)
      expect(sent).toEqual([first, second])
      expect(as.tokenRequests.slice(-2).map((r) => r.form?.client_id)).toEqual([undefined, undefined])
      // a JWT signed by a key the authorization server does not trust
      const forged = yield* Effect.promise(() =>
        platformToken(Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, as.tokenUrl)
      )
      write("projected-token", forged)
      const wrong = yield* Effect.flip(fetchToken(input))
      expect(wrong._tag).toBe("InvalidCredentialsError")
      expect(wrong.message).toContain("trust its issuer for the jwt-bearer grant")
    })))

  it.live("jwt_bearer signed with the client's own key, and from client_assertion.token; wrong keys refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, common } = yield* setup
      const signed = {
        ...common,
        client_id: "reports-signer",
        grant_type: "jwt_bearer",
        key_id: "signer-1",
        private_key_file: write("signer.pem", pemOf(keys.ES256.privateKey))
      }
      const own = yield* fetchToken(signed)
      expect(claimsOf(own).client_id).toBe("svc-workload")
      const assertion = as.assertions.at(-1)!
      expect(assertion.parameter).toBe("assertion")
      expect([assertion.claims.iss, assertion.claims.sub, assertion.claims.aud]).toEqual([
        "reports-signer",
        "reports-signer",
        as.tokenUrl
      ])
      const wrongKey = yield* Effect.flip(
        fetchToken({ ...signed, private_key_file: write("not-signer.pem", pemOf(keyPair("ES256").privateKey)) })
      )
      expect(wrongKey._tag).toBe("InvalidCredentialsError")
      const token = yield* Effect.promise(() => platformToken(platform.privateKey, as.tokenUrl))
      const viaToken = yield* fetchToken({
        ...common,
        client_id: "reports-workload",
        grant_type: "jwt_bearer",
        client_assertion: { token }
      })
      expect(claimsOf(viaToken).client_id).toBe("svc-workload")
      // a platform token for another audience
      const elsewhere = yield* Effect.promise(() => platformToken(platform.privateKey, "https://elsewhere.example"))
      const wrongAudience = yield* Effect.flip(fetchToken({
        ...common,
        client_id: "reports-workload",
        grant_type: "jwt_bearer",
        client_assertion: { token: elsewhere }
      }))
      expect(wrongAudience._tag).toBe("InvalidCredentialsError")
    })))

  it.live(
    "two assertions never share a jti: 30 requests across every signed method",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const { as, common } = yield* setup
        const file = write("ES256-jti.pem", pemOf(keys.ES256.privateKey))
        for (let i = 0; i < 10; i++) {
          yield* fetchToken({
            ...common,
            client_id: "svc-es256",
            auth_method: "private_key_jwt",
            private_key_file: file
          })
          yield* fetchToken({
            ...common,
            client_id: "svc-eddsa",
            auth_method: "private_key_jwt",
            private_key: pemOf(keys.EdDSA.privateKey)
          })
          yield* fetchToken({
            ...common,
            client_id: "svc-hs256",
            auth_method: "client_secret_jwt",
            client_secret: "a-shared-secret-of-at-least-32-bytes"
          })
        }
        const jtis = as.assertions.map((a) => a.claims.jti)
        expect(jtis).toHaveLength(30)
        expect(new Set(jtis).size).toBe(30)
        // oidc-provider would have refused a replayed jti: every request was answered with a token
        expect(as.tokenRequests.every((r) => r.accessToken !== undefined)).toBe(true)
      })),
    120_000
  ) // 30 sequential TLS token requests: 11–22 s on a loaded 2-core machine, too close to the default 30 s
})

// ---------------------------------------------------------------------------------------------------------------------

/** An authenticated MCP client for a configuration, its token endpoint and MCP connection made from the config. */
const mcpClient = (config: ServiceAccountConfig.ServiceAccountConfig, url: string, caFile?: string) =>
  Effect.gen(function*() {
    // built in the test's scope: the provider lives as long as the client that uses it
    const auth = yield* Layer.build(
      AuthHeaders.layer.pipe(
        Layer.provide(ServiceToken.layerFromConfig(config)),
        Layer.provideMerge(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layerFromConfig(config))))
      )
    )
    const fetch = yield* TrustedFetch.make({
      ...TokenHttpClient.optionsFromConfig(config),
      caFile: caFile ?? config.caFile
    })
    return yield* McpClient.make({ url, fetch }).pipe(Effect.provide(auth))
  })

describe("rotation without restart", () => {
  it.live("a worker calling tools keeps working while client_secret_file is replaced: 0 failed calls, 1 extra token request", () =>
    Effect.scoped(Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({
        clients: [{ clientId: "svc-rotating", clientSecret: "secret-v1", authMethod: "client_secret_basic" }]
      })
      const mcp = yield* McpServer.make({ authorizationServer: as })
      as.setAudience(mcp.url)
      const file = write("client-secret", "secret-v1\n")
      const config = ServiceAccountConfig.decodeSync({
        client_id: "svc-rotating",
        client_secret_file: file,
        token_url: as.tokenUrl,
        allow_insecure_http: true
      })
      const client = yield* mcpClient(config, mcp.url)
      let failed = 0
      let done = 0
      const worker = (id: number) =>
        Effect.forEach(
          Array.from({ length: 15 }, (_, i) => i),
          (i) =>
            client.callTool("echo", { text: `${id}-${i}` }).pipe(
              Effect.tap(() => Effect.sync(() => done++)),
              Effect.catchAll(() => Effect.sync(() => failed++)),
              // the operator rotates once a third of the calls are done
              Effect.zipRight(i === 5 && id === 0 ? rotate : Effect.void)
            ),
          { discard: true }
        )
      const rotate = Effect.sync(() => {
        const old = as.tokenRequests.at(-1)!.accessToken!
        write("client-secret", "secret-v2\n")
        as.setClientSecret("svc-rotating", "secret-v2")
        mcp.revoke(old)
      })
      yield* Effect.forEach([0, 1, 2, 3], worker, { concurrency: "unbounded", discard: true })
      expect({ failed, done }).toEqual({ failed: 0, done: 60 })
      expect(as.tokenRequestCount).toBe(2)
      const [before, after] = as.tokenRequests
      expect([before!.error, after!.error]).toEqual([undefined, undefined])
      expect(mcp.unauthorizedCount).toBeGreaterThan(0)
      // the old secret is refused at the server now
      const old = yield* Effect.flip(fetchToken({
        client_id: "svc-rotating",
        client_secret: "secret-v1",
        token_url: as.tokenUrl,
        allow_insecure_http: true
      }))
      expect(old._tag).toBe("InvalidCredentialsError")
    })))
})

// ---------------------------------------------------------------------------------------------------------------------

describe("proxies", () => {
  const https = Effect.gen(function*() {
    const pki = yield* pkiEffect
    const as = yield* AuthorizationServer.make({
      https: pki.server,
      clients: [{ clientId: "svc-proxied", clientSecret: "proxied-secret" }]
    })
    const mcp = yield* McpServer.make({ authorizationServer: as, https: pki.server, ca: pki.ca })
    as.setAudience(mcp.url)
    const input = {
      client_id: "svc-proxied",
      client_secret: "proxied-secret",
      token_url: as.tokenUrl,
      ca_file: write("proxy-ca.pem", pki.ca)
    }
    return { as, mcp, input, hostOf: (url: string) => new URL(url).host }
  })

  const withEnv = <A, E, R>(env: Record<string, string>, effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const names = ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"]
        const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]))
        for (const n of names) delete process.env[n]
        Object.assign(process.env, env)
        return saved
      }),
      () => effect,
      (saved) =>
        Effect.sync(() => {
          for (const [n, v] of Object.entries(saved)) {
            if (v === undefined) delete process.env[n]
            else process.env[n] = v
          }
        })
    )

  it.live("proxy_url with credentials: the token and MCP requests are tunnelled (CONNECT), ca_file still applies", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, hostOf, input, mcp } = yield* https
      const proxy = yield* TestProxy.make({ credentials: { username: "proxy-user", password: "proxy-p@ss" } })
      const config = ServiceAccountConfig.decodeSync({ ...input, proxy_url: proxy.urlWithCredentials })
      const client = yield* mcpClient(config, mcp.url)
      const result = yield* client.callTool("echo", { text: "through the proxy" })
      expect(JSON.stringify(result)).toContain("through the proxy")
      expect(proxy.connectTargets).toContain(hostOf(as.tokenUrl))
      expect(proxy.connectTargets).toContain(hostOf(mcp.url))
      expect(proxy.refusedCount).toBe(0)
      expect(as.tokenRequestCount).toBe(1)
      // a wrong proxy password: a typed error that names neither password
      const denied = ServiceAccountConfig.decodeSync({
        ...input,
        proxy_url: proxy.urlWithCredentials.replace("proxy-p%40ss", "wrong-pass")
      })
      const error = yield* Effect.flip(
        TokenEndpoint.request(denied).pipe(Effect.provide(TokenHttpClient.layerFromConfig(denied)))
      )
      expect(error._tag).toBe("NetworkError")
      expect(JSON.stringify(error) + error.message).not.toMatch(/wrong-pass|proxy-p/)
    })))

  it.live("proxy variables are checked: host:port works, a malformed one is a ConfigurationError quoting nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, hostOf, input } = yield* https
      const proxy = yield* TestProxy.make()
      yield* withEnv({ HTTPS_PROXY: hostOf(proxy.url) }, fetchToken(input))
      expect(proxy.connectTargets).toEqual([hostOf(as.tokenUrl)])
      const error = yield* withEnv(
        { HTTPS_PROXY: "socks5://user:SECRET-PROXY-PW@proxy.internal:1080" },
        Effect.flip(fetchToken(input))
      )
      expect(error._tag).toBe("ConfigurationError")
      expect(error.message).toContain("HTTPS_PROXY must be an http:// or https:// proxy URL")
      expect(error.message + JSON.stringify(error)).not.toContain("SECRET-PROXY-PW")
    })))

  it.live("HTTPS_PROXY is honoured, NO_PROXY exceptions go direct", () =>
    Effect.scoped(Effect.gen(function*() {
      const { as, hostOf, input, mcp } = yield* https
      const proxy = yield* TestProxy.make()
      yield* withEnv(
        { HTTPS_PROXY: proxy.url, NO_PROXY: hostOf(mcp.url) },
        Effect.gen(function*() {
          const config = ServiceAccountConfig.decodeSync(input)
          const client = yield* mcpClient(config, mcp.url)
          yield* client.callTool("echo", { text: "mixed" })
        })
      )
      expect(proxy.connectTargets).toEqual([hostOf(as.tokenUrl)])
      expect(mcp.requestCount).toBeGreaterThan(0)
      proxy.clearRecords()
      // the lower-case variables too, and a NO_PROXY naming the authorization server instead
      yield* withEnv(
        { https_proxy: proxy.url, no_proxy: hostOf(as.tokenUrl) },
        Effect.gen(function*() {
          const config = ServiceAccountConfig.decodeSync(input)
          const client = yield* mcpClient(config, mcp.url)
          yield* client.callTool("echo", { text: "mixed" })
        })
      )
      expect(new Set(proxy.connectTargets)).toEqual(new Set([hostOf(mcp.url)]))
    })))
})

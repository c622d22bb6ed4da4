import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { AuthorizationServer, FaultTokenEndpoint, TestPki } from "@mcp-auth/testing"
import { Effect, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const claims = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"))

const tempPem = (name: string, pem: string) => {
  const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-")), name)
  Fs.writeFileSync(file, pem)
  return file
}

describe("against a real OAuth2 authorization server (oidc-provider)", () => {
  const clients = [
    { clientId: "svc-basic", clientSecret: "se:cr%et+ with spaces", authMethod: "client_secret_basic" as const },
    { clientId: "svc:post", clientSecret: "post-secret", authMethod: "client_secret_post" as const }
  ]

  it.scopedLive("gets a JWT with client_secret_basic (form-encoded credentials) and with client_secret_post", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients, scopes: ["mcp:tools"], accessTokenTtlSeconds: 600 })
      for (const client of clients) {
        const config = ServiceAccountConfig.decodeSync({
          client_id: client.clientId,
          client_secret: client.clientSecret,
          token_url: as.tokenUrl,
          allow_insecure_http: true,
          scopes: "mcp:tools",
          auth_method: client.authMethod
        })
        const token = yield* TokenEndpoint.request(config).pipe(Effect.provide(TokenHttpClient.layer()))
        const jwt = claims(Redacted.value(token.token))
        expect(jwt.client_id).toBe(client.clientId)
        expect(jwt.scope).toBe("mcp:tools")
        expect(jwt.iss).toBe(as.issuer)
        expect(token.expiresAt - token.issuedAt).toBe(600_000)
      }
      const [basic, post] = as.tokenRequests
      expect(basic!.headers["authorization"]).toMatch(/^Basic /)
      expect(basic!.form?.["client_secret"]).toBeUndefined()
      expect(post!.headers["authorization"]).toBeUndefined()
      expect(post!.form?.["client_secret"]).toBe("post-secret")
    }))

  it.scopedLive("a wrong secret gives InvalidCredentialsError", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients })
      const config = ServiceAccountConfig.decodeSync({
        client_id: "svc-basic",
        client_secret: "not-the-secret",
        token_url: as.tokenUrl,
        allow_insecure_http: true
      })
      const error = yield* Effect.flip(
        Effect.scoped(Effect.flatMap(TokenProvider.make(config), (p) => p.get)).pipe(
          Effect.provide(TokenHttpClient.layer())
        )
      )
      expect(error).toMatchObject({ _tag: "InvalidCredentialsError", error: "invalid_client" })
      expect(error.message).toMatch(/^Invalid service account credentials \(invalid_client/)
      expect(error.message).not.toContain("not-the-secret")
    }))
})

describe("TLS against a real local HTTPS token endpoint (certificates made at test time)", () => {
  const cases = [
    {
      name: "self-signed",
      tls: (pki: TestPki.TestPki) => pki.selfSigned,
      trust: (pki: TestPki.TestPki) => pki.selfSigned.certPem,
      code: "DEPTH_ZERO_SELF_SIGNED_CERT"
    },
    {
      name: "unknown CA",
      tls: (pki: TestPki.TestPki) => ({
        certPem: pki.unknownCa.leafOnly.certPem,
        keyPem: pki.unknownCa.leafOnly.keyPem
      }),
      trust: (pki: TestPki.TestPki) => pki.unknownCa.ca,
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
    },
    {
      name: "unknown CA sent in the chain",
      tls: (pki: TestPki.TestPki) => pki.unknownCa.withChain,
      trust: (pki: TestPki.TestPki) => pki.unknownCa.ca,
      code: "SELF_SIGNED_CERT_IN_CHAIN"
    }
  ]

  for (const c of cases) {
    it.scopedLive(`${c.name}: TlsError ${c.code}, and ca_file makes the same endpoint work`, () =>
      Effect.gen(function*() {
        const pki = yield* Effect.promise(() => TestPki.shared())
        const endpoint = yield* FaultTokenEndpoint.make({ https: c.tls(pki) })
        const base = { client_id: "svc", client_secret: "tls-secret", token_url: endpoint.url }
        const untrusted = ServiceAccountConfig.decodeSync(base)
        const error = yield* Effect.flip(
          TokenEndpoint.request(untrusted).pipe(Effect.provide(TokenHttpClient.layerFromConfig(untrusted)))
        )
        expect(error).toMatchObject({ _tag: "TlsError", code: c.code })
        expect(error.message).toContain("set ca_file")
        expect(error.message).not.toContain("tls-secret")

        const trusted = ServiceAccountConfig.decodeSync({ ...base, ca_file: tempPem("ca.pem", c.trust(pki)) })
        const token = yield* TokenEndpoint.request(trusted).pipe(
          Effect.provide(TokenHttpClient.layerFromConfig(trusted))
        )
        expect(Redacted.value(token.token)).toBe("tok-1")
        expect(endpoint.count).toBe(1) // the failed handshake never reached HTTP
      }))
  }

  it.scopedLive("wrong hostname: TlsError ERR_TLS_CERT_ALTNAME_INVALID even with the CA trusted", () =>
    Effect.gen(function*() {
      const pki = yield* Effect.promise(() => TestPki.shared())
      const endpoint = yield* FaultTokenEndpoint.make({ https: pki.wrongHost })
      const config = ServiceAccountConfig.decodeSync({
        client_id: "svc",
        client_secret: "tls-secret",
        token_url: endpoint.url,
        ca_file: tempPem("ca.pem", pki.ca)
      })
      const error = yield* Effect.flip(
        TokenEndpoint.request(config).pipe(Effect.provide(TokenHttpClient.layerFromConfig(config)))
      )
      expect(error).toMatchObject({ _tag: "TlsError", code: "ERR_TLS_CERT_ALTNAME_INVALID" })
      expect(error.message).toContain("the certificate does not name this host")
    }))

  it.effect("a missing or non-PEM ca_file is a ConfigurationError naming the path", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(
        Effect.scoped(TokenHttpClient.makeDispatcher({ caFile: "/nonexistent/ca.pem" }))
      )
      expect(missing.message).toContain("ca_file: cannot read /nonexistent/ca.pem (ENOENT)")
      const notPem = yield* Effect.flip(
        Effect.scoped(TokenHttpClient.makeDispatcher({ caFile: tempPem("x.pem", "hello") }))
      )
      expect(notPem.message).toContain("holds no PEM certificate")
    }))
})

import { describe, expect, it } from "@effect/vitest"
import * as ClientAuthentication from "@mcp-auth/service-account/ClientAuthentication"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import { FakeHttpClient, HostileServer, TestPki } from "@mcp-auth/testing"
import { Effect, Either, Redacted } from "effect"
import * as jose from "jose"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as util from "node:util"
import { keys, tempDir } from "./utils/keys.js"

const TOKEN_URL = "https://idp.example.com/oauth2/token"
const base = { client_id: "svc-reports", token_url: TOKEN_URL }

/** `it.effect` runs on the TestClock, which starts at the epoch: assertions are verified as of then. */
const testClockDate = new Date(1000)

const issuesOf = (input: Record<string, unknown>): Array<string> => {
  const result = ServiceAccountConfig.decodeEither(input)
  return Either.isLeft(result) ? result.left.issues.map((i) => `${i.path}: ${i.message}`) : []
}

/** The form and headers one token request would carry, through a fake endpoint that records it. */
const capture = (config: ServiceAccountConfig.Resolved) =>
  Effect.gen(function*() {
    const fake = yield* FakeHttpClient.make((n) => Effect.succeed(FakeHttpClient.token(n)))
    yield* TokenEndpoint.request(config).pipe(Effect.provide(fake.layer))
    const [request] = yield* fake.requests
    return request!
  })

describe("configuration: exactly one credential source per method, each problem with its path", () => {
  it("client_secret methods: one of client_secret and client_secret_file; no key, no assertion", () => {
    expect(issuesOf({ ...base, client_secret: "s", client_secret_file: "/run/secret" })).toEqual([
      "client_secret_file: give only one of client_secret and client_secret_file"
    ])
    expect(issuesOf({ ...base, auth_method: "client_secret_jwt" })).toEqual([
      "client_secret: client_secret is required: set it via ${SERVICE_ACCOUNT_CLIENT_SECRET}; never commit it (or " +
      "set client_secret_file to a file holding it)"
    ])
    expect(issuesOf({ ...base, client_secret: "s", private_key_file: "/k.pem", key_id: "k1" })).toEqual([
      "private_key_file: private_key_file is not used with auth_method: client_secret_basic: remove it, or set " +
      "auth_method: private_key_jwt",
      "key_id: key_id is not used with auth_method: client_secret_basic: remove it, or set auth_method: private_key_jwt"
    ])
  })

  it("private_key_jwt: one of private_key, private_key_file, client_assertion; a client secret refused", () => {
    const method = { ...base, auth_method: "private_key_jwt" }
    expect(issuesOf(method)).toEqual([
      "private_key: auth_method: private_key_jwt needs the client's key: set private_key or private_key_file (or " +
      "client_assertion for a JWT issued by the platform)"
    ])
    expect(issuesOf({ ...method, private_key_file: "/k.pem", client_secret: "s" })).toEqual([
      "client_secret: client_secret is not used with auth_method: private_key_jwt, which authenticates with a signed " +
      "JWT instead of a secret: remove it"
    ])
    expect(issuesOf({ ...method, private_key_file: "/k.pem", client_assertion: { file: "/t" } })).toEqual([
      "client_assertion: give only one of private_key_file and client_assertion"
    ])
    expect(issuesOf({ ...method, client_assertion: { file: "/t", token: "a.b.c" }, key_id: "k" })).toEqual([
      "key_id: key_id applies to an assertion signed with private_key or private_key_file: remove it",
      "client_assertion: client_assertion takes one of file, token or function, not file and token"
    ])
    expect(issuesOf({ ...method, client_assertion: { token: "a.b.c", kwargs: { a: 1 } } })).toEqual([
      "client_assertion.kwargs: client_assertion.kwargs applies to client_assertion.function only: remove it"
    ])
    expect(issuesOf({ ...method, client_assertion: {} })).toEqual([
      "client_assertion: client_assertion needs one of file, token or function"
    ])
    expect(issuesOf({ ...method, client_assertion: { fiel: "/t" } })[0]).toContain("did you mean \"file\"?")
  })

  it("jwt_bearer: an assertion source, no client authentication keys", () => {
    const bearer = { ...base, grant_type: "jwt_bearer" }
    expect(issuesOf(bearer)).toEqual([
      "grant_type: grant_type: jwt_bearer needs an assertion: set client_assertion (file, token or function), or " +
      "private_key / private_key_file to sign one"
    ])
    expect(issuesOf({ ...bearer, client_assertion: { token: "a.b.c" }, auth_method: "private_key_jwt" })).toEqual([
      "auth_method: grant_type: jwt_bearer sends no client authentication (the assertion is the grant): remove " +
      "auth_method"
    ])
    expect(issuesOf({ ...bearer, client_assertion: { token: "a.b.c" }, client_secret_file: "/s" })).toEqual([
      "client_secret_file: client_secret_file is not used with grant_type: jwt_bearer, which sends no client " +
      "authentication: remove it"
    ])
    const decoded = ServiceAccountConfig.decodeSync({ ...bearer, client_assertion: { file: "/var/run/token" } })
    expect(decoded.authMethod).toBe("none")
    expect(decoded.clientAssertion).toEqual({ _tag: "File", path: "/var/run/token" })
  })

  it("tls methods: certificate and key required, other credentials refused; pairs complete everywhere", () => {
    const tls = { ...base, auth_method: "tls_client_auth" }
    expect(issuesOf(tls)).toEqual([
      "tls_client_certificate_file: auth_method: tls_client_auth needs tls_client_certificate_file",
      "tls_client_key_file: auth_method: tls_client_auth needs tls_client_key_file"
    ])
    expect(issuesOf({ ...tls, tls_client_certificate_file: "/c", tls_client_key_file: "/k", client_secret: "s" }))
      .toEqual([
        "client_secret: client_secret is not used with auth_method: tls_client_auth, which authenticates with the TLS " +
        "client certificate: remove it"
      ])
    expect(issuesOf({ ...base, client_secret: "s", tls_client_certificate_file: "/c" })).toEqual([
      "tls_client_key_file: tls_client_certificate_file needs tls_client_key_file"
    ])
    expect(issuesOf({ ...base, client_secret: "s", tls_client_key_passphrase: "p" })).toEqual([
      "tls_client_key_passphrase: tls_client_key_passphrase needs tls_client_key_file"
    ])
  })

  it("an inline key is checked at load, never quoted; algorithm and audience rules", () => {
    const method = { ...base, auth_method: "private_key_jwt" }
    const garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----"
    const issues = issuesOf({ ...method, private_key: garbage })
    expect(issues).toHaveLength(1)
    expect(issues[0]).toMatch(/^private_key: private_key is not a valid PEM private key/)
    expect(issues.join()).not.toContain("c2VjcmV0")
    expect(issuesOf({ ...method, private_key: "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"a\",\"y\":\"b\"}" }))
      .toEqual(["private_key: private_key is a JWK without its private part (d): give the private key"])
    expect(issuesOf({ ...method, private_key: keys().ES256.privatePem, signing_algorithm: "RS256" })).toEqual([
      "signing_algorithm: private_key cannot sign RS256: it is a P-256 key (use ES256)"
    ])
    const small = Crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({
      type: "pkcs8",
      format: "pem"
    }) as string
    expect(issuesOf({ ...method, private_key: small })).toEqual([
      "private_key: private_key is a 1024-bit RSA key: use at least 2048 bits"
    ])
    const pss = Crypto.generateKeyPairSync("rsa-pss", { modulusLength: 2048 }).privateKey.export({
      type: "pkcs8",
      format: "pem"
    }) as string
    expect(issuesOf({ ...method, private_key: pss, signing_algorithm: "PS256" })).toEqual([
      "signing_algorithm: private_key is an RSA-PSS key (id-RSASSA-PSS): give a plain RSA key, which signs PS256 too"
    ])
    expect(issuesOf({ ...method, private_key: keys().ES256.privatePem, assertion_audience: "issuer" })).toEqual([
      "issuer: assertion_audience: issuer needs issuer (the authorization server's issuer URL)"
    ])
    expect(issuesOf({ ...base, client_secret: "s", proxy_url: "socks5://user:hunter2@proxy:1080" })).toEqual([
      "proxy_url: proxy_url must be an http:// or https:// URL, e.g. http://user:password@proxy.internal:3128"
    ])
  })

  it("keys, passphrases, proxy URLs and assertion tokens are Redacted in the model", () => {
    const config = ServiceAccountConfig.decodeSync({
      ...base,
      auth_method: "private_key_jwt",
      private_key: keys().EdDSA.privatePem,
      tls_client_certificate_file: "/c",
      tls_client_key_file: "/k",
      tls_client_key_passphrase: "passphrase-hunter2",
      proxy_url: "http://user:proxy-hunter2@127.0.0.1:3128"
    })
    const key = keys().EdDSA.privatePem.split("\n")[1]!
    for (const text of [JSON.stringify(config), util.inspect(config, { depth: Infinity }), String(config)]) {
      expect(text).not.toContain(key)
      expect(text).not.toContain("passphrase-hunter2")
      expect(text).not.toContain("proxy-hunter2")
    }
  })
})

describe("signed assertions (RFC 7523 §2.2)", () => {
  for (const algorithm of ["RS256", "PS256", "ES256", "EdDSA"] as const) {
    it.effect(`private_key_jwt with ${algorithm}: iss = sub = client id, aud = token endpoint, jti, iat, exp`, () =>
      Effect.gen(function*() {
        const key = keys()[algorithm]
        const config = ServiceAccountConfig.decodeSync({
          ...base,
          auth_method: "private_key_jwt",
          // the JWK form for EdDSA, PEM for the others
          private_key: algorithm === "EdDSA" ? JSON.stringify({ ...key.privateJwk, kid: "jwk-kid" }) : key.privatePem,
          ...(algorithm === "PS256" ? { signing_algorithm: "PS256" } : {}),
          ...(algorithm === "ES256" ? { key_id: "k-2026" } : {}),
          assertion_lifetime_seconds: 90
        })
        const request = yield* capture(config)
        expect(request.headers.authorization).toBeUndefined()
        expect(request.form.get("client_id")).toBe("svc-reports")
        expect(request.form.get("client_assertion_type")).toBe(ClientAuthentication.ASSERTION_TYPE)
        const jwt = request.form.get("client_assertion")!
        const { payload, protectedHeader } = yield* Effect.promise(() =>
          jose.jwtVerify(jwt, key.publicKey, {
            issuer: "svc-reports",
            subject: "svc-reports",
            audience: TOKEN_URL,
            currentDate: testClockDate
          })
        )
        expect(protectedHeader.alg).toBe(algorithm)
        expect(protectedHeader.kid).toBe(
          algorithm === "EdDSA" ? "jwk-kid" : algorithm === "ES256" ? "k-2026" : undefined
        )
        expect(payload.exp! - payload.iat!).toBe(90)
        expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/)
      }))
  }

  it.effect("two assertions never share a jti (500 requests)", () =>
    Effect.gen(function*() {
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "private_key_jwt",
        private_key: keys().ES256.privatePem
      })
      const jtis = new Set<string>()
      for (let i = 0; i < 500; i++) {
        const { params } = yield* ClientAuthentication.authenticate(config)
        const jwt = params.find(([name]) => name === "client_assertion")![1]
        jtis.add(jose.decodeJwt(jwt).jti!)
      }
      expect(jtis.size).toBe(500)
    }))

  it.effect("certificate_file adds x5t#S256; assertion_audience: issuer uses the issuer", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const files = tempDir()
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "private_key_jwt",
        private_key_file: files.write("key.pem", pki.server.keyPem),
        certificate_file: files.write("cert.pem", pki.server.certPem),
        assertion_audience: "issuer",
        issuer: "https://idp.example.com"
      })
      yield* ClientAuthentication.check(config)
      const request = yield* capture(config)
      const jwt = request.form.get("client_assertion")!
      const der = new Crypto.X509Certificate(pki.server.certPem).raw
      expect(jose.decodeProtectedHeader(jwt)["x5t#S256"]).toBe(
        Crypto.createHash("sha256").update(der).digest("base64url")
      )
      expect(jose.decodeJwt(jwt).aud).toBe("https://idp.example.com")
      // the certificate of another key is refused, naming the file
      const wrong = { ...config, privateKeyFile: files.write("other.pem", keys().RS256.privatePem) }
      const error = yield* Effect.flip(ClientAuthentication.check(wrong))
      expect(error.issues.map((i) => i.message)).toEqual([
        `certificate_file (${config.certificateFile}) is not the certificate of the private key`
      ])
    }))

  it.effect("client_secret_jwt: HS256 over the client secret, same claims", () =>
    Effect.gen(function*() {
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "client_secret_jwt",
        client_secret: "a-long-shared-secret-of-32-bytes!"
      })
      const request = yield* capture(config)
      expect(request.form.get("client_secret")).toBeNull()
      const jwt = request.form.get("client_assertion")!
      const { payload, protectedHeader } = yield* Effect.promise(() =>
        jose.jwtVerify(jwt, new TextEncoder().encode("a-long-shared-secret-of-32-bytes!"), {
          audience: TOKEN_URL,
          currentDate: testClockDate
        })
      )
      expect(protectedHeader.alg).toBe("HS256")
      expect([payload.iss, payload.sub]).toEqual(["svc-reports", "svc-reports"])
    }))

  it.effect("jwt_bearer: the assertion is the grant, no client authentication, no client_id", () =>
    Effect.gen(function*() {
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        grant_type: "jwt_bearer",
        client_assertion: { token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2ln" },
        scopes: ["mcp:tools"]
      })
      const request = yield* capture(config)
      expect(request.headers.authorization).toBeUndefined()
      expect([...request.form.keys()].sort()).toEqual(["assertion", "grant_type", "scope"])
      expect(request.form.get("grant_type")).toBe(ClientAuthentication.JWT_BEARER_GRANT)
      expect(request.form.get("assertion")).toBe("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2ln")
      expect(ClientAuthentication.describe(config)).toBe("jwt_bearer grant (client_assertion.token)")
    }))

  it.effect("client_assertion.function: called per request with kwargs and the audience; bad results typed", () =>
    Effect.gen(function*() {
      const seen: Array<unknown> = []
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "private_key_jwt",
        client_assertion: {
          function: async (kwargs: Record<string, unknown>, context: { audience: string }) => {
            seen.push([kwargs, context.audience])
            return Redacted.make(`aaa.bbb.c${seen.length}`)
          },
          kwargs: { audience: "sts.example.com" }
        }
      })
      expect((yield* capture(config)).form.get("client_assertion")).toBe("aaa.bbb.c1")
      expect((yield* capture(config)).form.get("client_assertion")).toBe("aaa.bbb.c2")
      expect(seen).toEqual([[{ audience: "sts.example.com" }, TOKEN_URL], [{ audience: "sts.example.com" }, TOKEN_URL]])
      const returning = (value: unknown) =>
        ServiceAccountConfig.decodeSync({
          ...base,
          auth_method: "private_key_jwt",
          client_assertion: { function: () => value }
        })
      const notJwt = yield* Effect.flip(ClientAuthentication.authenticate(returning("not a jwt")))
      expect(notJwt.message).toBe(
        `Cannot authenticate to ${TOKEN_URL}: client_assertion.function is not a JWT (three base64url parts separated ` +
          "by dots)"
      )
      const thrown = yield* Effect.flip(ClientAuthentication.authenticate(
        ServiceAccountConfig.decodeSync({
          ...base,
          auth_method: "private_key_jwt",
          client_assertion: {
            function: () => {
              throw new TypeError(
                "OIDC request failed\u001b[31m: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvIn0.c2lnbmF0dXJl for request-token-abc123"
              )
            },
            kwargs: { requestToken: "request-token-abc123" }
          }
        })
      ))
      // control sequences are removed from what a function says
      expect(thrown.reason).toBe("threw TypeError: OIDC request failed: <jwt> for <redacted>")
      const named = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "private_key_jwt",
        client_assertion: { function: "./oidc.ts#token" }
      })
      expect((yield* Effect.flip(ClientAuthentication.authenticate(named))).reason).toBe(
        "\"./oidc.ts#token\" cannot be loaded here: pass a function, or a loader"
      )
    }))
})

describe("files are read for every request", () => {
  it.effect("client_secret_file: one trailing newline dropped, a new value used at once; errors name the file", () =>
    Effect.gen(function*() {
      const files = tempDir()
      const path = files.write("secret", "first-secret\n")
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "client_secret_post",
        client_secret_file: path
      })
      expect((yield* capture(config)).form.get("client_secret")).toBe("first-secret")
      files.write("secret", "second-secret")
      expect((yield* capture(config)).form.get("client_secret")).toBe("second-secret")
      files.write("secret", "\n")
      const empty = yield* Effect.flip(ClientAuthentication.authenticate(config))
      expect(empty).toMatchObject({ _tag: "ClientCredentialError", field: "client_secret_file", file: path })
      expect(empty.message).toBe(`Cannot authenticate to ${TOKEN_URL}: client_secret_file (${path}) is empty`)
      Fs.rmSync(path)
      const missing = yield* Effect.flip(ClientAuthentication.authenticate(config))
      expect(missing.message).toBe(
        `Cannot authenticate to ${TOKEN_URL}: client_secret_file (${path}) cannot be read (ENOENT)`
      )
      files.write("secret", "x".repeat(64 * 1024 + 1))
      expect((yield* Effect.flip(ClientAuthentication.authenticate(config))).reason).toBe(
        "is larger than 65536 bytes: is it the right file?"
      )
    }))

  it.effect("client_assertion.file: each request sends the JWT the file holds then; malformed files never quoted", () =>
    Effect.gen(function*() {
      const files = tempDir()
      const path = files.write("token", "aaa.bbb.first\n")
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        grant_type: "jwt_bearer",
        client_assertion: { file: path }
      })
      expect((yield* capture(config)).form.get("assertion")).toBe("aaa.bbb.first")
      files.write("token", "aaa.bbb.second")
      expect((yield* capture(config)).form.get("assertion")).toBe("aaa.bbb.second")
      files.write("token", "secret-material with spaces")
      const error = yield* Effect.flip(ClientAuthentication.authenticate(config))
      expect(error.message).not.toContain("secret-material")
      expect(error.message).toBe(
        `Cannot authenticate to ${TOKEN_URL}: client_assertion.file (${path}) is not a JWT (three base64url parts ` +
          "separated by dots)"
      )
    }))

  it.effect("private_key_file: a replaced key signs the next assertion; check() reports a bad file at start-up", () =>
    Effect.gen(function*() {
      const files = tempDir()
      const path = files.write("key.pem", keys().ES256.privatePem)
      const config = ServiceAccountConfig.decodeSync({
        ...base,
        auth_method: "private_key_jwt",
        private_key_file: path
      })
      yield* ClientAuthentication.check(config)
      const first = (yield* capture(config)).form.get("client_assertion")!
      expect(jose.decodeProtectedHeader(first).alg).toBe("ES256")
      files.write("key.pem", keys().EdDSA.privatePem)
      const second = (yield* capture(config)).form.get("client_assertion")!
      yield* Effect.promise(() => jose.jwtVerify(second, keys().EdDSA.publicKey, { currentDate: testClockDate }))
      files.write("key.pem", "not a key at all, but a secret")
      const error = yield* Effect.flip(ClientAuthentication.check(config))
      expect(error.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
        `private_key_file: private_key_file (${path}) holds neither a PEM private key (-----BEGIN PRIVATE KEY-----) ` +
        "nor a JWK (JSON)"
      ])
      expect(error.message).not.toContain("a secret")
      // every problem at once: a bad key and a missing TLS certificate
      const both = yield* Effect.flip(ClientAuthentication.check({
        ...config,
        tlsClientCertificate: { certificateFile: `${path}.missing`, keyFile: path }
      }))
      expect(both.issues.map((i) => i.path)).toEqual(["private_key_file", "tls_client_certificate_file"])
      expect(ClientAuthentication.describe(config)).toBe(`private_key_jwt (private_key_file ${path})`)
    }))
})

describe("rotation: a credential file replaced while a request is under way", () => {
  it.scoped("invalid_client with the old secret, the file changed: sent once more at once with the new one", () =>
    Effect.gen(function*() {
      const files = tempDir()
      const path = files.write("secret", "old-secret")
      const seen: Array<string> = []
      const server = yield* HostileServer.make((record, res) => {
        const secret = new URLSearchParams(record.body).get("client_secret") ?? ""
        seen.push(secret)
        // the operator rotates while this request is at the server: the old secret is already revoked
        files.write("secret", "new-secret")
        const ok = secret === "new-secret"
        res.writeHead(ok ? 200 : 401, { "content-type": "application/json" })
        res.end(JSON.stringify(
          ok ? { access_token: "rotated", token_type: "Bearer", expires_in: 600 } : { error: "invalid_client" }
        ))
      })
      const config = ServiceAccountConfig.decodeSync({
        client_id: "svc",
        token_url: `${server.origin}/token`,
        allow_insecure_http: true,
        auth_method: "client_secret_post",
        client_secret_file: path
      })
      const token = yield* TokenEndpoint.request(config).pipe(Effect.provide(TokenHttpClient.layer()))
      expect(Redacted.value(token.token)).toBe("rotated")
      expect(seen).toEqual(["old-secret", "new-secret"])
    }))

  it.scoped("invalid_client and the file unchanged: one request, InvalidCredentialsError", () =>
    Effect.gen(function*() {
      const files = tempDir()
      const path = files.write("secret", "wrong-secret")
      let requests = 0
      const server = yield* HostileServer.make((_, res) => {
        requests++
        res.writeHead(401, { "content-type": "application/json" })
        res.end(JSON.stringify({ error: "invalid_client" }))
      })
      const config = ServiceAccountConfig.decodeSync({
        client_id: "svc",
        token_url: `${server.origin}/token`,
        allow_insecure_http: true,
        client_secret_file: path
      })
      const error = yield* Effect.flip(TokenEndpoint.request(config).pipe(Effect.provide(TokenHttpClient.layer())))
      expect(error._tag).toBe("InvalidCredentialsError")
      expect(requests).toBe(1)
    }))
})

import * as Undici from "@effect/platform-node/Undici"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as jose from "jose"
import * as crypto from "node:crypto"
import * as AuthorizationServer from "../src/AuthorizationServer.js"
import * as BasicCredentials from "../src/BasicCredentials.js"
import * as McpServer from "../src/McpServer.js"
import * as TestPki from "../src/TestPki.js"

const AUDIENCE = "http://127.0.0.1:1/mcp"
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

type Started<A> = A & { close(): Promise<void> }

interface Response {
  readonly status: number
  readonly body: Record<string, unknown>
}

/** A token request with undici: optional client certificate (`cert`/`key`) and trusted CA. */
const post = async (
  url: string,
  form: Record<string, string>,
  tls: { readonly ca?: string; readonly cert?: string; readonly key?: string } = {},
  headers: Record<string, string> = {}
): Promise<Response> => {
  const dispatcher = new Undici.Agent({ connect: { ...tls } })
  try {
    const response = await Undici.fetch(url, {
      method: "POST",
      dispatcher,
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", ...headers },
      body: new URLSearchParams(form).toString()
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  } finally {
    await dispatcher.destroy()
  }
}

const assertion = (
  key: jose.CryptoKey | Uint8Array,
  alg: string,
  claims: {
    readonly iss: string
    readonly sub: string
    readonly aud: string | Array<string>
    readonly jti?: string
    readonly expiresIn?: number
  },
  kid?: string
): Promise<string> => {
  const now = Math.floor(Date.now() / 1000)
  return new jose.SignJWT({})
    .setProtectedHeader({ alg, ...(kid === undefined ? {} : { kid }) })
    .setIssuer(claims.iss)
    .setSubject(claims.sub)
    .setAudience(claims.aud)
    .setJti(claims.jti ?? crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresIn ?? 60))
    .sign(key)
}

const keyFor = async (alg: string) => {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true })
  const kid = `${alg}-key`
  return { privateKey, kid, jwk: { ...(await jose.exportJWK(publicKey)), kid } }
}

describe("AuthorizationServer: client assertions, rotation and the jwt-bearer grant (plain HTTP)", () => {
  const algorithms = ["RS256", "PS256", "ES256", "EdDSA"] as const
  let as: Started<AuthorizationServer.AuthorizationServer>
  let keys: Record<string, Awaited<ReturnType<typeof keyFor>>>
  let platform: Awaited<ReturnType<typeof keyFor>>
  let verifyKeys: ReturnType<typeof jose.createRemoteJWKSet>
  const SECRET = "a-client-secret-long-enough-for-hs256-0123456789"

  beforeAll(async () => {
    keys = Object.fromEntries(await Promise.all(algorithms.map(async (alg) => [alg, await keyFor(alg)] as const)))
    platform = await keyFor("ES256")
    as = await AuthorizationServer.start({
      clients: [
        ...algorithms.map((alg) => ({
          clientId: `svc-pkjwt-${alg}`,
          authMethod: "private_key_jwt" as const,
          jwks: { keys: [keys[alg]!.jwk] },
          scopes: ["mcp:tools"]
        })),
        { clientId: "svc-csjwt", authMethod: "client_secret_jwt", clientSecret: SECRET },
        { clientId: "svc-rotate", clientSecret: "old-secret" },
        { clientId: "svc-rotate-post", clientSecret: "old-secret", authMethod: "client_secret_post" },
        { clientId: "svc-workload", authMethod: "none", scopes: ["mcp:tools"] },
        { clientId: "system:serviceaccount:ns:app", authMethod: "none" }
      ],
      audience: AUDIENCE,
      trustedAssertionIssuers: [{ issuer: "https://kubernetes.default.svc", jwks: { keys: [platform.jwk] } }],
      workloads: { "system:serviceaccount:ns:worker": "svc-workload" }
    })
    verifyKeys = jose.createRemoteJWKSet(new URL(as.jwksUrl))
  })
  afterAll(() => as.close())

  it("discovery lists every client authentication method and the jwt-bearer grant", async () => {
    const metadata = await (await fetch(as.metadataUrl)).json()
    expect(metadata.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"])
    )
    expect(metadata.token_endpoint_auth_signing_alg_values_supported).toEqual(
      expect.arrayContaining(["HS256", "RS256", "PS256", "ES256", "EdDSA"])
    )
    expect(metadata.grant_types_supported).toEqual(expect.arrayContaining(["client_credentials", JWT_BEARER]))
  })

  for (const alg of algorithms) {
    it(`private_key_jwt (${alg}): accepted with aud = token endpoint or issuer; the assertion is recorded`, async () => {
      const clientId = `svc-pkjwt-${alg}`
      for (const aud of [as.tokenUrl, as.issuer]) {
        const jwt = await assertion(keys[alg]!.privateKey, alg, { iss: clientId, sub: clientId, aud }, keys[alg]!.kid)
        const response = await post(as.tokenUrl, {
          grant_type: "client_credentials",
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: jwt,
          scope: "mcp:tools"
        })
        expect(response.status).toBe(200)
        const { payload } = await jose.jwtVerify(response.body.access_token as string, verifyKeys, {
          issuer: as.issuer,
          audience: AUDIENCE
        })
        expect(payload.client_id).toBe(clientId)
        const record = as.tokenRequests.at(-1)!
        expect(record.clientId).toBe(clientId)
        expect(record.assertion?.parameter).toBe("client_assertion")
        expect(record.assertion?.header.alg).toBe(alg)
        expect(record.assertion?.claims.jti).toBe(jose.decodeJwt(jwt).jti)
        expect(record.assertion?.claims.aud).toBe(aud)
      }
    })
  }

  it("private_key_jwt: a reused jti, a wrong key, a wrong aud, an expired or foreign-iss assertion → 401 invalid_client", async () => {
    const clientId = "svc-pkjwt-RS256"
    const { kid, privateKey } = keys.RS256!
    const form = (jwt: string) => ({
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: jwt
    })
    const jti = crypto.randomUUID()
    const first = await assertion(privateKey, "RS256", { iss: clientId, sub: clientId, aud: as.tokenUrl, jti }, kid)
    expect((await post(as.tokenUrl, form(first))).status).toBe(200)
    // the very same assertion, then a new one with the same jti
    const again = await post(as.tokenUrl, form(first))
    expect(again).toMatchObject({ status: 401, body: { error: "invalid_client" } })
    expect(as.tokenRequests.at(-1)!.errorDetail).toMatch(/only be used once/)
    const sameJti = await assertion(privateKey, "RS256", { iss: clientId, sub: clientId, aud: as.issuer, jti }, kid)
    expect(await post(as.tokenUrl, form(sameJti))).toMatchObject({ status: 401, body: { error: "invalid_client" } })
    expect(as.tokenRequests.at(-1)!.errorDetail).toMatch(/only be used once/)

    const other = await jose.generateKeyPair("RS256")
    const cases: Array<[string, Promise<string>, RegExp]> = [
      [
        "wrong key",
        assertion(other.privateKey, "RS256", { iss: clientId, sub: clientId, aud: as.tokenUrl }, kid),
        /signature/
      ],
      [
        "wrong aud",
        assertion(privateKey, "RS256", { iss: clientId, sub: clientId, aud: "https://elsewhere.example/token" }, kid),
        /aud/
      ],
      [
        "expired",
        assertion(privateKey, "RS256", { iss: clientId, sub: clientId, aud: as.tokenUrl, expiresIn: -120 }, kid),
        /exp/
      ],
      [
        "other iss",
        assertion(privateKey, "RS256", { iss: "svc-pkjwt-ES256", sub: clientId, aud: as.tokenUrl }, kid),
        /iss/
      ]
    ]
    for (const [name, jwt, detail] of cases) {
      const response = await post(as.tokenUrl, form(await jwt))
      expect(response, name).toMatchObject({ status: 401, body: { error: "invalid_client" } })
      expect(as.tokenRequests.at(-1)!.errorDetail, name).toMatch(detail)
    }
  })

  it("every recorded assertion keeps its jti (assertions getter)", async () => {
    const before = as.assertions.length
    const { kid, privateKey } = keys.ES256!
    const clientId = "svc-pkjwt-ES256"
    const jtis = [crypto.randomUUID(), crypto.randomUUID()]
    for (const jti of jtis) {
      const jwt = await assertion(privateKey, "ES256", { iss: clientId, sub: clientId, aud: as.tokenUrl, jti }, kid)
      await post(as.tokenUrl, {
        grant_type: "client_credentials",
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: jwt
      })
    }
    expect(as.assertions.slice(before).map((a) => a.claims.jti)).toEqual(jtis)
  })

  it("client_secret_jwt: HS256 over the secret accepted; another secret or a replay → 401 invalid_client", async () => {
    const claims = { iss: "svc-csjwt", sub: "svc-csjwt", aud: as.tokenUrl }
    const good = await assertion(new TextEncoder().encode(SECRET), "HS256", claims)
    const form = (jwt: string) => ({
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: jwt
    })
    const ok = await post(as.tokenUrl, form(good))
    expect(ok.status).toBe(200)
    expect(jose.decodeJwt(ok.body.access_token as string).client_id).toBe("svc-csjwt")
    expect(await post(as.tokenUrl, form(good))).toMatchObject({ status: 401, body: { error: "invalid_client" } })
    const wrong = await assertion(new TextEncoder().encode(`${SECRET}-not`), "HS256", claims)
    expect(await post(as.tokenUrl, form(wrong))).toMatchObject({ status: 401, body: { error: "invalid_client" } })
    // a private_key_jwt client cannot authenticate with a secret-based method
    expect(
      await post(as.tokenUrl, { grant_type: "client_credentials", client_id: "svc-pkjwt-RS256", client_secret: SECRET })
    ).toMatchObject({ status: 401, body: { error: "invalid_client" } })
  })

  it("setClientSecret: the old secret is refused and the new one accepted from the next request", async () => {
    const basic = (secret: string) => ({ authorization: BasicCredentials.encode("svc-rotate", secret) })
    const form = { grant_type: "client_credentials" }
    expect((await post(as.tokenUrl, form, {}, basic("old-secret"))).status).toBe(200)
    as.setClientSecret("svc-rotate", "new-secret")
    expect(await post(as.tokenUrl, form, {}, basic("old-secret"))).toMatchObject({
      status: 401,
      body: { error: "invalid_client" }
    })
    expect((await post(as.tokenUrl, form, {}, basic("new-secret"))).status).toBe(200)
    as.setClientSecret("svc-rotate-post", "rotated")
    const postForm = (secret: string) => ({ ...form, client_id: "svc-rotate-post", client_secret: secret })
    expect((await post(as.tokenUrl, postForm("old-secret"))).status).toBe(401)
    expect((await post(as.tokenUrl, postForm("rotated"))).status).toBe(200)
    expect(() => as.setClientSecret("nobody", "x")).toThrow(/unknown client/)
  })

  it("setClientJwks: a rotated private_key_jwt key replaces the old one", async () => {
    const clientId = "svc-pkjwt-PS256"
    const old = keys.PS256!
    const next = await keyFor("PS256")
    as.setClientJwks(clientId, { keys: [{ ...next.jwk, kid: "next" }] })
    const form = (jwt: string) => ({
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: jwt
    })
    const claims = { iss: clientId, sub: clientId, aud: as.tokenUrl }
    expect((await post(as.tokenUrl, form(await assertion(old.privateKey, "PS256", claims, old.kid)))).status).toBe(401)
    expect((await post(as.tokenUrl, form(await assertion(next.privateKey, "PS256", claims, "next")))).status).toBe(200)
    as.setClientJwks(clientId, { keys: [old.jwk] })
  })

  describe("jwt-bearer grant (RFC 7523 §2.1): no client authentication, no client_id", () => {
    const k8s = "https://kubernetes.default.svc"
    const request = (jwt: string, extra: Record<string, string> = {}) =>
      post(as.tokenUrl, { grant_type: JWT_BEARER, assertion: jwt, ...extra })

    it("a platform-signed assertion is exchanged for a token of the mapped client (or the client named sub)", async () => {
      const jwt = await assertion(platform.privateKey, "ES256", {
        iss: k8s,
        sub: "system:serviceaccount:ns:worker",
        aud: as.tokenUrl
      }, platform.kid)
      const response = await request(jwt, { scope: "mcp:tools", resource: "https://mcp.example/mcp" })
      expect(response.status).toBe(200)
      expect(response.body).toMatchObject({ token_type: "Bearer", scope: "mcp:tools" })
      const { payload } = await jose.jwtVerify(response.body.access_token as string, verifyKeys, {
        issuer: as.issuer,
        audience: "https://mcp.example/mcp"
      })
      expect(payload.client_id).toBe("svc-workload")
      expect(payload.scope).toBe("mcp:tools")
      const record = as.tokenRequests.at(-1)!
      expect(record.form?.client_id).toBeUndefined()
      expect(record.form?.grant_type).toBe(JWT_BEARER)
      expect(record.clientId).toBe("svc-workload")
      expect(record.assertion).toMatchObject({ parameter: "assertion", claims: { iss: k8s } })
      expect(record.accessToken).toBe(response.body.access_token)

      // no mapping: the client whose id is sub; aud = issuer works too; default audience
      const direct = await assertion(platform.privateKey, "ES256", {
        iss: k8s,
        sub: "system:serviceaccount:ns:app",
        aud: as.issuer
      }, platform.kid)
      const second = await request(direct)
      expect(second.status).toBe(200)
      const claims = jose.decodeJwt(second.body.access_token as string)
      expect(claims.client_id).toBe("system:serviceaccount:ns:app")
      expect(claims.aud).toBe(AUDIENCE)
    })

    it("refusals: replayed jti, bad signature, unknown issuer, wrong aud, expired, not a JWT → 400 invalid_grant", async () => {
      const claims = { iss: k8s, sub: "system:serviceaccount:ns:worker", aud: as.tokenUrl }
      const jti = crypto.randomUUID()
      const once = await assertion(platform.privateKey, "ES256", { ...claims, jti }, platform.kid)
      expect((await request(once)).status).toBe(200)
      const foreign = await jose.generateKeyPair("ES256")
      const cases: Array<[string, string, RegExp]> = [
        ["replayed", once, /already been used/],
        [
          "same jti",
          await assertion(platform.privateKey, "ES256", { ...claims, jti }, platform.kid),
          /already been used/
        ],
        ["bad signature", await assertion(foreign.privateKey, "ES256", claims, platform.kid), /invalid/],
        [
          "unknown issuer",
          await assertion(platform.privateKey, "ES256", { ...claims, iss: "https://other" }, platform.kid),
          /not trusted/
        ],
        [
          "wrong aud",
          await assertion(platform.privateKey, "ES256", { ...claims, aud: "https://x.example" }, platform.kid),
          /aud/
        ],
        ["expired", await assertion(platform.privateKey, "ES256", { ...claims, expiresIn: -60 }, platform.kid), /exp/],
        ["not a JWT", "not-a-jwt", /sub claim/]
      ]
      for (const [name, jwt, detail] of cases) {
        const response = await request(jwt)
        expect(response, name).toMatchObject({ status: 400, body: { error: "invalid_grant" } })
        expect(as.tokenRequests.at(-1)!.errorDetail, name).toMatch(detail)
      }
    })

    it("a sub that maps to no registered client → 401 invalid_client; a client_id of another client → invalid_grant", async () => {
      const unknown = await assertion(platform.privateKey, "ES256", {
        iss: k8s,
        sub: "system:serviceaccount:ns:stranger",
        aud: as.tokenUrl
      }, platform.kid)
      expect(await request(unknown)).toMatchObject({ status: 401, body: { error: "invalid_client" } })
      const worker = await assertion(platform.privateKey, "ES256", {
        iss: k8s,
        sub: "system:serviceaccount:ns:worker",
        aud: as.tokenUrl
      }, platform.kid)
      expect(await request(worker, { client_id: "system:serviceaccount:ns:app" })).toMatchObject({
        status: 400,
        body: { error: "invalid_grant" }
      })
    })
  })
})

describe("AuthorizationServer + McpServer: mutual TLS (RFC 8705)", () => {
  let pki: TestPki.TestPki
  let good: TestPki.ClientCertificate
  let otherName: TestPki.ClientCertificate
  let untrusted: TestPki.ClientCertificate
  let selfSigned: TestPki.ClientCertificate
  let strangerSelfSigned: TestPki.ClientCertificate
  let as: Started<AuthorizationServer.AuthorizationServer>
  let mcp: Started<McpServer.McpServer>

  beforeAll(async () => {
    pki = await TestPki.shared()
    ;[good, otherName, untrusted, selfSigned, strangerSelfSigned] = await Promise.all([
      pki.issueClient({ commonName: "svc-mtls" }),
      pki.issueClient({ commonName: "svc-somebody-else" }),
      pki.issueUntrustedClient({ commonName: "svc-mtls" }),
      pki.selfSignedClient({ commonName: "svc-self" }),
      pki.selfSignedClient({ commonName: "svc-self" })
    ])
    as = await AuthorizationServer.start({
      https: pki.server,
      requestClientCertificate: true,
      clientCa: pki.ca,
      clients: [
        { clientId: "svc-mtls", authMethod: "tls_client_auth", tlsClientAuthSubjectDn: "CN=svc-mtls, O=mcp-auth" },
        {
          clientId: "svc-mtls-bound",
          authMethod: "tls_client_auth",
          certificatePem: good.certPem,
          certificateBoundAccessTokens: true
        },
        { clientId: "svc-self", authMethod: "self_signed_tls_client_auth", certificatePem: selfSigned.certPem },
        { clientId: "svc-secret", clientSecret: "s" }
      ],
      audience: AUDIENCE
    })
    mcp = await McpServer.start({
      https: pki.server,
      authorizationServer: as,
      ca: pki.ca,
      audience: AUDIENCE,
      requireCertificateBinding: true
    })
  })
  afterAll(async () => {
    await mcp.close()
    await as.close()
  })

  const tokenWith = (clientId: string, cert?: TestPki.ClientCertificate) =>
    post(as.tokenUrl, { grant_type: "client_credentials", client_id: clientId }, {
      ca: pki.ca,
      ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem })
    })

  it("client certificates: CA-signed with clientAuth EKU and a fresh key each; self-signed; thumbprints", () => {
    const ca = new crypto.X509Certificate(pki.ca)
    const cert = new crypto.X509Certificate(good.certPem)
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true)
    expect(cert.keyUsage).toContain("1.3.6.1.5.5.7.3.2")
    expect(cert.subject).toBe("CN=svc-mtls\nO=mcp-auth")
    expect(good.subjectDn).toBe("CN=svc-mtls,O=mcp-auth")
    expect(crypto.createPublicKey(good.keyPem).export({ type: "spki", format: "pem" })).toBe(
      cert.publicKey.export({ type: "spki", format: "pem" })
    )
    // its own key, not the servers' shared leaf key
    expect(good.keyPem).not.toBe(pki.server.keyPem)
    expect(good.keyPem).not.toBe(otherName.keyPem)
    const self = new crypto.X509Certificate(selfSigned.certPem)
    expect(self.verify(self.publicKey)).toBe(true)
    expect(self.checkIssued(ca)).toBe(false)
    expect(good.thumbprint).toBe(crypto.createHash("sha256").update(cert.raw).digest("base64url"))
    expect(TestPki.thumbprint(good.certPem)).toBe(good.thumbprint)
    const jwk = TestPki.certificateJwk(selfSigned.certPem)
    expect(jwk.x5c).toEqual([self.raw.toString("base64")])
    expect(jwk["x5t#S256"]).toBe(selfSigned.thumbprint)
    // the encrypted key opens with its passphrase only
    const encrypted = good.encryptedKeyPem("pass phrase")
    expect(encrypted).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/)
    expect(() => crypto.createPrivateKey({ key: encrypted, passphrase: "wrong" })).toThrow()
    expect(
      crypto.createPrivateKey({ key: encrypted, passphrase: "pass phrase" }).export({ type: "pkcs8", format: "pem" })
    )
      .toBe(good.keyPem)
    expect(good.pkcs1KeyPem).toMatch(/BEGIN RSA PRIVATE KEY/)
  })

  it("tls_client_auth: the right certificate is accepted; wrong subject, untrusted CA or none → 401 invalid_client", async () => {
    const ok = await tokenWith("svc-mtls", good)
    expect(ok.status).toBe(200)
    expect(jose.decodeJwt(ok.body.access_token as string).client_id).toBe("svc-mtls")
    expect(as.tokenRequests.at(-1)!.clientCertificateThumbprint).toBe(good.thumbprint)
    for (
      const [name, cert, detail] of [
        ["other subject", otherName, /subject/],
        ["untrusted CA", untrusted, /not verified/],
        ["no certificate", undefined, /not provided/],
        ["self-signed", selfSigned, /not verified/]
      ] as const
    ) {
      const response = await tokenWith("svc-mtls", cert)
      expect(response, name).toMatchObject({ status: 401, body: { error: "invalid_client" } })
      expect(as.tokenRequests.at(-1)!.errorDetail, name).toMatch(detail)
    }
  })

  it("self_signed_tls_client_auth: the registered certificate is accepted; another (same subject) or none → 401", async () => {
    expect((await tokenWith("svc-self", selfSigned)).status).toBe(200)
    for (const cert of [strangerSelfSigned, good, undefined]) {
      expect(await tokenWith("svc-self", cert)).toMatchObject({ status: 401, body: { error: "invalid_client" } })
    }
  })

  it("a secret client still works over the mTLS-enabled server, with or without a certificate", async () => {
    const response = await post(as.tokenUrl, { grant_type: "client_credentials" }, { ca: pki.ca }, {
      authorization: BasicCredentials.encode("svc-secret", "s")
    })
    expect(response.status).toBe(200)
    expect(jose.decodeJwt(response.body.access_token as string).cnf).toBeUndefined()
  })

  it("certificate-bound tokens carry cnf.x5t#S256; the MCP server accepts them only with that certificate", async () => {
    const response = await tokenWith("svc-mtls-bound", good)
    expect(response.status).toBe(200)
    const token = response.body.access_token as string
    expect(jose.decodeJwt(token).cnf).toEqual({ "x5t#S256": good.thumbprint })

    const call = async (cert: TestPki.ClientCertificate | undefined, bearer: string) => {
      const dispatcher = new Undici.Agent({
        connect: { ca: pki.ca, ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }) }
      })
      try {
        const res = await Undici.fetch(mcp.url, {
          method: "POST",
          dispatcher,
          headers: {
            authorization: `Bearer ${bearer}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream"
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } }
          })
        })
        await res.arrayBuffer()
        return { status: res.status, challenge: res.headers.get("www-authenticate") }
      } finally {
        await dispatcher.destroy()
      }
    }
    expect((await call(good, token)).status).toBe(200)
    expect(mcp.mcpRequests.at(-1)!.clientCertificateThumbprint).toBe(good.thumbprint)
    for (const cert of [otherName, undefined]) {
      const refused = await call(cert, token)
      expect(refused.status).toBe(401)
      expect(refused.challenge).toMatch(/invalid_token/)
      expect(mcp.mcpRequests.at(-1)!.auth).toBe("certificate_mismatch")
      expect(mcp.mcpRequests.at(-1)!.clientCertificateThumbprint).toBe(cert?.thumbprint)
    }
    // an unbound token is unaffected, with or without a certificate
    const unbound = (await tokenWith("svc-mtls", good)).body.access_token as string
    expect((await call(undefined, unbound)).status).toBe(200)
    expect((await call(otherName, unbound)).status).toBe(200)
  })

  it("a certificate-bound client without a certificate gets no token", async () => {
    const response = await tokenWith("svc-mtls-bound")
    expect(response).toMatchObject({ status: 401, body: { error: "invalid_client" } })
  })

  it("refuses mTLS clients when client certificates are not requested", async () => {
    await expect(AuthorizationServer.start({
      clients: [{ clientId: "x", authMethod: "tls_client_auth", tlsClientAuthSubjectDn: "CN=x" }]
    })).rejects.toThrow(/requestClientCertificate/)
  })
})

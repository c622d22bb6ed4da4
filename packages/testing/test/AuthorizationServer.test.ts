import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as jose from "jose"
import * as AuthorizationServer from "../src/AuthorizationServer.js"
import * as BasicCredentials from "../src/BasicCredentials.js"
import * as TestPki from "../src/TestPki.js"
import { fetchTrusting } from "./helpers.js"

const AUDIENCE = "http://127.0.0.1:1/mcp"
const SPECIAL_ID = "svc:a%2F+b c~!*'()"
const SPECIAL_SECRET = "s3cr:et%41+ &=?#/\\\"x"

const tokenRequest = (
  url: string,
  options: {
    readonly basic?: string
    readonly form?: Record<string, string>
    readonly headers?: Record<string, string>
    readonly fetch?: typeof fetch
  }
) =>
  (options.fetch ?? fetch)(url, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
      ...(options.basic === undefined ? {} : { authorization: options.basic }),
      ...options.headers
    },
    body: new URLSearchParams({ grant_type: "client_credentials", ...options.form }).toString()
  })

describe("AuthorizationServer", () => {
  let as: AuthorizationServer.AuthorizationServer & { close(): Promise<void> }
  let jwks: ReturnType<typeof jose.createRemoteJWKSet>

  beforeAll(async () => {
    as = await AuthorizationServer.start({
      clients: [
        { clientId: "svc-basic", clientSecret: "secret-basic", scopes: ["mcp:tools", "jira:read"] },
        { clientId: "svc-post", clientSecret: "secret-post", authMethod: "client_secret_post" },
        { clientId: SPECIAL_ID, clientSecret: SPECIAL_SECRET }
      ],
      scopes: ["mcp:tools", "jama:read"],
      audience: AUDIENCE,
      accessTokenTtlSeconds: 600
    })
    jwks = jose.createRemoteJWKSet(new URL(as.jwksUrl))
  })
  afterAll(() => as.close())

  it("serves discovery metadata naming the real token endpoint and JWKS", async () => {
    for (const url of [as.discoveryUrl, as.metadataUrl]) {
      const metadata = await (await fetch(url)).json()
      expect(metadata.issuer).toBe(as.issuer)
      expect(metadata.token_endpoint).toBe(as.tokenUrl)
      expect(metadata.jwks_uri).toBe(as.jwksUrl)
      expect(metadata.grant_types_supported).toContain("client_credentials")
      expect(metadata.token_endpoint_auth_methods_supported).toEqual(
        expect.arrayContaining(["client_secret_basic", "client_secret_post"])
      )
    }
    expect(as.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect((await (await fetch(as.jwksUrl)).json()).keys).toEqual(as.jwks.keys)
  })

  it("client_secret_basic: issues a JWT verifiable against the JWKS (iss, aud, scope, exp ≈ ttl)", async () => {
    const response = await tokenRequest(as.tokenUrl, {
      basic: BasicCredentials.encode("svc-basic", "secret-basic"),
      form: { scope: "mcp:tools jira:read" }
    })
    expect(response.status).toBe(200)
    expect(response.headers.get("cache-control")).toBe("no-store")
    const body = await response.json()
    expect(body).toMatchObject({ token_type: "Bearer", expires_in: 600, scope: "mcp:tools jira:read" })
    const { payload, protectedHeader } = await jose.jwtVerify(body.access_token, jwks, {
      issuer: as.issuer,
      audience: AUDIENCE
    })
    expect(protectedHeader.typ).toBe("at+jwt")
    expect(payload.client_id).toBe("svc-basic")
    expect(payload.sub).toBe("svc-basic")
    expect(payload.scope).toBe("mcp:tools jira:read")
    expect(payload.exp! - payload.iat!).toBe(600)
    expect(Math.abs(payload.exp! - (Date.now() / 1000 + 600))).toBeLessThan(5)
  })

  it("client_secret_post: credentials in the form body", async () => {
    const response = await tokenRequest(as.tokenUrl, {
      form: { client_id: "svc-post", client_secret: "secret-post", scope: "mcp:tools" }
    })
    expect(response.status).toBe(200)
    const body = await response.json()
    const { payload } = await jose.jwtVerify(body.access_token, jwks, { issuer: as.issuer, audience: AUDIENCE })
    expect(payload.client_id).toBe("svc-post")
    expect(payload.scope).toBe("mcp:tools")
  })

  it("the resource parameter selects the audience; no scope requested, no scope issued", async () => {
    const response = await tokenRequest(as.tokenUrl, {
      basic: BasicCredentials.encode("svc-basic", "secret-basic"),
      form: { resource: "https://mcp.example/mcp" }
    })
    const body = await response.json()
    expect(body.scope).toBeUndefined()
    const { payload } = await jose.jwtVerify(body.access_token, jwks, { audience: "https://mcp.example/mcp" })
    expect(payload.scope).toBeUndefined()
  })

  it("a wrong secret or unknown client gets 401 invalid_client", async () => {
    for (
      const basic of [
        BasicCredentials.encode("svc-basic", "wrong"),
        BasicCredentials.encode("nobody", "secret-basic")
      ]
    ) {
      const response = await tokenRequest(as.tokenUrl, { basic })
      expect(response.status).toBe(401)
      expect(response.headers.get("content-type")).toMatch(/application\/json/)
      expect(response.headers.get("www-authenticate")).toMatch(/^Basic .*error="invalid_client"/)
      expect((await response.json()).error).toBe("invalid_client")
    }
    const post = await tokenRequest(as.tokenUrl, { form: { client_id: "svc-post", client_secret: "nope" } })
    expect(post.status).toBe(401)
    expect((await post.json()).error).toBe("invalid_client")
    const last = as.tokenRequests.at(-1)!
    expect(last.error).toBe("invalid_client")
    expect(last.status).toBe(401)
  })

  it("a scope outside the client's allowed scopes is invalid_scope", async () => {
    const response = await tokenRequest(as.tokenUrl, {
      basic: BasicCredentials.encode("svc-basic", "secret-basic"),
      form: { scope: "jama:read" }
    })
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe("invalid_scope")
  })

  it("RFC 6749 §2.3.1: ids/secrets with ':', '%', '+', spaces work when form-encoded before base64", async () => {
    const encoded = BasicCredentials.encode(SPECIAL_ID, SPECIAL_SECRET)
    const response = await tokenRequest(as.tokenUrl, { basic: encoded })
    expect(response.status).toBe(200)
    const { payload } = await jose.jwtVerify((await response.json()).access_token, jwks)
    expect(payload.client_id).toBe(SPECIAL_ID)

    // the naive `base64(id:secret)` does not work for these credentials
    const naive = await tokenRequest(as.tokenUrl, { basic: BasicCredentials.encodeRaw(SPECIAL_ID, SPECIAL_SECRET) })
    expect(naive.status).toBeGreaterThanOrEqual(400)
    expect(["invalid_client", "invalid_request"]).toContain((await naive.json()).error)

    // post needs no special encoding beyond the form itself
    const post = await tokenRequest(as.tokenUrl, { form: { client_id: SPECIAL_ID, client_secret: SPECIAL_SECRET } })
    expect(post.status).toBe(200)
  })

  it("non-ASCII ids/secrets are refused by oidc-provider (RFC 6749 Appendix A VSCHAR) with invalid_request", async () => {
    const response = await tokenRequest(as.tokenUrl, { basic: BasicCredentials.encode("clïent", "sëcret") })
    expect(response.status).toBe(400)
    expect((await response.json()).error).toBe("invalid_request")
  })

  it("records requests: count, headers (lowercase) and parsed form bodies", async () => {
    as.clearRecords()
    await tokenRequest(as.tokenUrl, {
      basic: BasicCredentials.encode("svc-basic", "secret-basic"),
      form: { scope: "mcp:tools" },
      headers: { "X-Trace": "abc" }
    })
    await fetch(as.jwksUrl)
    expect(as.tokenRequestCount).toBe(1)
    expect(as.requests).toHaveLength(2)
    const [token] = as.tokenRequests
    expect(token!.route).toBe("token")
    expect(token!.form).toEqual({ grant_type: "client_credentials", scope: "mcp:tools" })
    expect(token!.headers["x-trace"]).toBe("abc")
    expect(token!.headers["x-service-account-token"]).toBeUndefined()
    expect(token!.rawHeaders).toContainEqual(["X-Trace", "abc"])
    expect(token!.clientId).toBe("svc-basic")
    expect(token!.accessToken).toMatch(/^ey/)
    expect(token!.status).toBe(200)
    expect(as.requests[1]!.route).toBe("jwks")
  })

  it.live("the TTL can be changed at run time and tokens expire after it", () =>
    Effect.gen(function*() {
      const ttl0 = as.accessTokenTtlSeconds
      as.setAccessTokenTtl(1)
      try {
        const response = yield* Effect.promise(() =>
          tokenRequest(as.tokenUrl, { basic: BasicCredentials.encode("svc-basic", "secret-basic") })
        )
        const body = yield* Effect.promise(() => response.json())
        expect(body.expires_in).toBe(1)
        // verified as of its issue time (a 1 s token may already be dead now), then as of exp, without waiting
        const issuedAt = new Date(jose.decodeJwt(body.access_token).iat! * 1000)
        const { payload } = yield* Effect.promise(() =>
          jose.jwtVerify(body.access_token, jwks, { currentDate: issuedAt })
        )
        expect(payload.exp! - payload.iat!).toBe(1)
        const later = new Date(payload.exp! * 1000)
        const expired = yield* Effect.flip(
          Effect.tryPromise(() => jose.jwtVerify(body.access_token, jwks, { currentDate: later }))
        )
        expect((expired.error as jose.errors.JOSEError).code).toBe("ERR_JWT_EXPIRED")
      } finally {
        as.setAccessTokenTtl(ttl0)
      }
    }))

  it("the default audience can be changed at run time", async () => {
    as.setAudience("http://127.0.0.1:2/mcp")
    try {
      const body =
        await (await tokenRequest(as.tokenUrl, { basic: BasicCredentials.encode("svc-basic", "secret-basic") }))
          .json()
      expect(jose.decodeJwt(body.access_token).aud).toBe("http://127.0.0.1:2/mcp")
      expect(as.audience).toBe("http://127.0.0.1:2/mcp")
    } finally {
      as.setAudience(AUDIENCE)
    }
  })

  it("mint() signs tokens directly (expired, other audience, foreign key)", async () => {
    const expired = await as.mint({ expiresInSeconds: -60, scope: "mcp:tools" })
    await expect(jose.jwtVerify(expired, jwks)).rejects.toThrow(/exp/)
    const other = await as.mint({ audience: "https://elsewhere.example" })
    await expect(jose.jwtVerify(other, jwks, { audience: AUDIENCE })).rejects.toThrow(/aud/)
    const foreign = await as.mint({ foreignKey: true })
    await expect(jose.jwtVerify(foreign, jwks)).rejects.toThrow()
    const good = await as.mint({ clientId: "svc-basic" })
    expect((await jose.jwtVerify(good, jwks, { issuer: as.issuer, audience: AUDIENCE })).payload.client_id).toBe(
      "svc-basic"
    )
  })

  it.scopedLive("HTTPS variant works with a client trusting the test CA (Effect API)", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const server = yield* AuthorizationServer.make({
        clients: [{ clientId: "svc-tls", clientSecret: "secret-tls" }],
        https: pki.server
      })
      expect(server.issuer).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
      const client = fetchTrusting(pki.ca)
      yield* Effect.addFinalizer(() => Effect.promise(() => client.destroy()))
      const metadata = yield* Effect.promise(() => client.fetch(server.discoveryUrl).then((r) => r.json()))
      expect(metadata.token_endpoint).toBe(server.tokenUrl)
      const response = yield* Effect.promise(() =>
        tokenRequest(server.tokenUrl, { basic: BasicCredentials.encode("svc-tls", "secret-tls"), fetch: client.fetch })
      )
      expect(response.status).toBe(200)
      const body = yield* Effect.promise(() => response.json())
      const keys = jose.createRemoteJWKSet(new URL(server.jwksUrl), {
        [jose.customFetch]: client.fetch as unknown as jose.FetchImplementation
      })
      const { payload } = yield* Effect.promise(() =>
        jose.jwtVerify(body.access_token, keys, { issuer: server.issuer })
      )
      expect(payload.aud).toBe(server.issuer)
      // a client without the CA fails the handshake
      const failure = yield* Effect.promise(() => fetch(server.tokenUrl).then(() => "ok", () => "failed"))
      expect(failure).toBe("failed")
    }))
})

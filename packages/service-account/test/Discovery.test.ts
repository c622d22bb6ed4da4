/**
 * Discovery's building blocks: RFC 8414 / OIDC metadata by issuer and RFC 9728 from an MCP server's 401, against
 * oidc-provider and the testing MCP server; hostile metadata from a raw loopback server. Discovery through the
 * configuration (the token provider, the cache, a moved endpoint) is tested end to end in test/discovery.test.ts.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import { AuthorizationServer, HostileServer, McpServer, TestPki } from "@mcp-auth/testing"
import { Effect } from "effect"
import * as Discovery from "../src/internal/discovery.js"

const insecure = { allowInsecureHttp: true }
const client = TokenHttpClient.layer()

describe("well-known URLs", () => {
  it("inserts the well-known name between host and path (RFC 8414 §3.1, RFC 9728 §3.1)", () => {
    expect(Discovery.wellKnown("https://as.example.com", "oauth-authorization-server").href).toBe(
      "https://as.example.com/.well-known/oauth-authorization-server"
    )
    expect(Discovery.wellKnown("https://as.example.com/tenant/1/", "oauth-authorization-server").href).toBe(
      "https://as.example.com/.well-known/oauth-authorization-server/tenant/1"
    )
    expect(Discovery.metadataUrls("https://as.example.com/tenant").map((u) => u.href)).toEqual([
      "https://as.example.com/.well-known/oauth-authorization-server/tenant",
      "https://as.example.com/tenant/.well-known/openid-configuration"
    ])
    expect(Discovery.wellKnown("https://mcp.example.com/mcp", "oauth-protected-resource").href).toBe(
      "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    )
  })

  it("reads resource_metadata and scope from a Bearer challenge", () => {
    expect(Discovery.parseChallenge(
      "Bearer error=\"invalid_token\", resource_metadata=\"https://mcp.example.com/.well-known/x\", scope=\"a b\""
    )).toEqual({ error: "invalid_token", resourceMetadata: "https://mcp.example.com/.well-known/x", scope: "a b" })
    expect(Discovery.parseChallenge("Basic realm=\"x\"")).toEqual({})
    expect(Discovery.parseChallenge(undefined)).toEqual({})
  })

  it("chooses the auth method the server supports, in the configuration's order", () => {
    expect(Discovery.chooseAuthMethod(["client_secret_post", "private_key_jwt"], ["private_key_jwt"])).toBe(
      "private_key_jwt"
    )
    expect(Discovery.chooseAuthMethod(["client_secret_post"], ["client_secret_basic", "client_secret_post"])).toBe(
      "client_secret_post"
    )
    expect(Discovery.chooseAuthMethod(["tls_client_auth"], ["client_secret_basic"])).toBeUndefined()
  })
})

describe("by issuer (RFC 8414, then OpenID Connect discovery)", () => {
  it.scoped("oidc-provider's metadata: the token endpoint and the methods it accepts", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients: [{ clientId: "c", clientSecret: "s" }] })
      const found = yield* Discovery.authorizationServer(as.issuer, insecure).pipe(Effect.provide(client))
      expect(found.value.tokenEndpoint.href).toBe(as.tokenUrl)
      expect(found.value.authMethods).toEqual(expect.arrayContaining(["client_secret_basic", "private_key_jwt"]))
      expect(as.requests.map((r) => r.path)).toEqual(["/.well-known/oauth-authorization-server"])
    }))

  it.scoped("falls back to openid-configuration; refuses another issuer, an http endpoint and junk", () =>
    Effect.gen(function*() {
      let document: unknown = {}
      const server = yield* HostileServer.make((record, res) => {
        if (record.path === "/.well-known/oauth-authorization-server") {
          res.writeHead(404).end()
          return
        }
        res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=120" })
        res.end(typeof document === "string" ? document : JSON.stringify(document))
      })
      const issuer = server.origin
      const failure = (options = insecure) =>
        Effect.flip(Discovery.authorizationServer(issuer, options)).pipe(Effect.provide(client))

      document = { issuer, token_endpoint: `${issuer}/token` }
      const found = yield* Discovery.authorizationServer(issuer, insecure).pipe(Effect.provide(client))
      expect(found.value.tokenEndpoint.href).toBe(`${issuer}/token`)
      expect(found.maxAge).toEqual(expect.objectContaining({ value: expect.anything() }))
      expect(server.requests.map((r) => r.path)).toEqual([
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration"
      ])

      document = { issuer: "https://evil.example", token_endpoint: "https://evil.example/token" }
      expect(yield* failure()).toMatchObject({ reason: "issuer_mismatch" })
      document = { issuer, token_endpoint: `${issuer}/token` }
      expect(yield* failure({ allowInsecureHttp: false })).toMatchObject({ reason: "insecure_endpoint" })
      document = { issuer, token_endpoint: "http://idp.example.com/token" }
      expect(yield* failure()).toMatchObject({ reason: "insecure_endpoint" })
      document = { issuer }
      expect(yield* failure()).toMatchObject({ reason: "invalid_metadata" })
      document = "<html>not json</html>"
      expect(yield* failure()).toMatchObject({ reason: "invalid_metadata" })
    }))

  it.scoped("nothing published: not_found, saying what to configure", () =>
    Effect.gen(function*() {
      const server = yield* HostileServer.make((_, res) => {
        res.writeHead(404).end()
      })
      const error = yield* Effect.flip(Discovery.authorizationServer(server.origin, insecure)).pipe(
        Effect.provide(client)
      )
      expect(error.reason).toBe("not_found")
      expect(error.message).toContain("check issuer, or set token_url")
    }))
})

describe("from the MCP server (RFC 9728)", () => {
  it.scoped("401 → resource_metadata → authorization_servers → the pinned server's metadata", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients: [{ clientId: "c", clientSecret: "s" }] })
      const mcp = yield* McpServer.make({ authorizationServer: as, requiredScopes: ["mcp:tools"] })
      const found = yield* Discovery.fromMcpServer(mcp.url, [as.issuer], insecure).pipe(Effect.provide(client))
      expect(found.resource.resource).toBe(mcp.url)
      expect(found.server.tokenEndpoint.href).toBe(as.tokenUrl)
      expect(found.scopes).toEqual(["mcp:tools"])
      expect(mcp.unauthorizedCount).toBe(1)
    }))

  it.scoped("an authorization server that is not pinned: issuer_not_trusted, and not one request reaches it", () =>
    Effect.gen(function*() {
      const rogue = yield* AuthorizationServer.make({ clients: [{ clientId: "c", clientSecret: "s" }] })
      const mcp = yield* McpServer.make({ authorizationServer: rogue })
      const error = yield* Effect.flip(
        Discovery.fromMcpServer(mcp.url, ["https://idp.example.com"], insecure)
      ).pipe(Effect.provide(client))
      expect(error.reason).toBe("issuer_not_trusted")
      expect(error.message).toContain("no credentials were sent")
      expect(rogue.requests).toHaveLength(0)
      expect(rogue.tokenRequestCount).toBe(0)
    }))

  it.scoped("metadata for another resource: resource_mismatch", () =>
    Effect.gen(function*() {
      const server = yield* HostileServer.make((record, res) => {
        if (record.path.startsWith("/.well-known/oauth-protected-resource")) {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ resource: "https://other.example/mcp", authorization_servers: ["https://as"] }))
          return
        }
        res.writeHead(401, { "www-authenticate": "Bearer error=\"invalid_token\"" }).end()
      })
      const error = yield* Effect.flip(Discovery.fromMcpServer(`${server.origin}/mcp`, ["https://as"], insecure)).pipe(
        Effect.provide(client)
      )
      expect(error.reason).toBe("resource_mismatch")
    }))
})

describe("what discovery never does", () => {
  it.scoped("follow a redirect, even with a fetch-based client: the redirected document is not read", () =>
    Effect.gen(function*() {
      const elsewhere = yield* HostileServer.make((_, res) => {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(JSON.stringify({ issuer: origin, token_endpoint: `${origin}/token` }))
      })
      const server = yield* HostileServer.make((record, res) => {
        res.writeHead(302, { location: `${elsewhere.origin}${record.path}` }).end()
      })
      const origin = server.origin
      const error = yield* Effect.flip(Discovery.authorizationServer(origin, insecure)).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      expect(error.reason).toBe("not_found")
      expect(elsewhere.requests).toHaveLength(0)
    }))

  it.scoped("fetch a resource_metadata URL on another origin than the MCP server", () =>
    Effect.gen(function*() {
      const elsewhere = yield* HostileServer.make((_, res) => {
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
      const mcp = yield* HostileServer.make((_, res) => {
        res.writeHead(401, {
          "www-authenticate": `Bearer resource_metadata="${elsewhere.origin}/.well-known/oauth-protected-resource"`
        }).end()
      })
      const error = yield* Effect.flip(Discovery.fromMcpServer(`${mcp.origin}/mcp`, ["https://as"], insecure)).pipe(
        Effect.provide(client)
      )
      expect(error.reason).toBe("invalid_metadata")
      expect(error.message).toContain("another origin")
      expect(elsewhere.requests).toHaveLength(0)
    }))

  it.scoped("fetch an http issuer off loopback, or repeats a URL's query or user info in its errors", () =>
    Effect.gen(function*() {
      const insecureIssuer = yield* Effect.flip(Discovery.authorizationServer("http://idp.example.com", insecure)).pipe(
        Effect.provide(client)
      )
      expect(insecureIssuer.reason).toBe("insecure_endpoint")
      const server = yield* HostileServer.make((_, res) => {
        res.writeHead(404).end()
      })
      const error = yield* Effect.flip(
        Discovery.fromMcpServer(`${server.origin}/mcp?api_key=TOPSECRETKEY`, ["https://as"], insecure)
      ).pipe(Effect.provide(client))
      expect(error.reason).toBe("not_found")
      expect(`${error.message} ${JSON.stringify(error)}`).not.toContain("TOPSECRETKEY")
    }))

  it.scoped("treat a refused certificate as unreachable (retried): it is reason tls, not transient", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const server = yield* HostileServer.make((_, res) => {
        res.writeHead(404).end()
      }, { https: pki.server })
      const error = yield* Effect.flip(Discovery.authorizationServer(`https://127.0.0.1:${server.port}`, insecure))
        .pipe(Effect.provide(client))
      expect(error.reason).toBe("tls")
      expect(error.message).toContain("set ca_file")
      expect(ServiceAccountError.isTransient(error)).toBe(false)
    }))
})

/**
 * Discovery through the configuration (issue 14): no `token_url`, the token endpoint found from `issuer`'s metadata
 * (RFC 8414) or from the MCP server's 401 and protected-resource metadata (RFC 9728), against oidc-provider and the
 * testing MCP server. Credentials go only to a pinned authorization server; hostile metadata is refused with a typed
 * `DiscoveryError` before any token request; metadata is kept for its max-age and fetched again when the token
 * endpoint moves.
 */
import { describe, expect, it } from "@effect/vitest"
import { createServiceAccountAuth } from "@mcp-auth/client"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import type { DiscoveryError } from "@mcp-auth/service-account/ServiceAccountError"
import * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { AuthorizationServer, HostileServer, McpServer } from "@mcp-auth/testing"
import * as Workflow from "@mcp-auth/workflow/Workflow"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import { Effect, Either, Layer, Redacted, TestClock } from "effect"
import type * as Http from "node:http"

const client = { clientId: "svc-discovery", clientSecret: "discovery-secret" }
const secret = { client_id: client.clientId, client_secret: client.clientSecret, allow_insecure_http: true }

/** A provider for `input`, built in the test's scope with the default HTTP client (and a shared store, if given). */
const providerFor = (input: Record<string, unknown>, mcpUrl?: string, store?: SharedTokenStore.Store) =>
  Effect.gen(function*() {
    const config = ServiceAccountConfig.decodeSync(input)
    const context = yield* Layer.build(TokenHttpClient.layerFromConfig(config))
    return yield* TokenProvider.make(config, { mcpUrl }).pipe(
      Effect.provide(context),
      store === undefined ? (effect) => effect : Effect.provideService(SharedTokenStore.SharedTokenStore, store)
    )
  })

const failure = (provider: TokenProvider.TokenProvider) => Effect.flip(provider.get) as Effect.Effect<DiscoveryError>

const json = (res: Http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify(body))
}

/**
 * An authorization server written by hand: metadata (with `cache-control`) naming `endpoint()` as the token endpoint
 * and accepting only `methods`; tokens from whatever path `endpoint()` names, for a client that authenticates with
 * the secret in the body (`client_secret_post`) or in Basic.
 */
const handMadeServer = (options: {
  readonly methods: ReadonlyArray<string>
  readonly maxAge?: number | undefined
  readonly issuer?: (origin: string) => string
}) =>
  Effect.gen(function*() {
    let path = "/token"
    let methods = options.methods
    let issued = 0
    const server = yield* HostileServer.make((record, res) => {
      if (record.path === "/.well-known/oauth-authorization-server") {
        json(res, 200, {
          issuer: options.issuer?.(server.origin) ?? server.origin,
          token_endpoint: `${server.origin}${path}`,
          token_endpoint_auth_methods_supported: methods
        }, { "cache-control": `max-age=${options.maxAge ?? 600}` })
        return
      }
      if (record.path !== path) {
        res.writeHead(404).end()
        return
      }
      const form = new URLSearchParams(record.body)
      const basic = record.headers.authorization?.startsWith("Basic ") === true
      const method = basic ? "client_secret_basic" : "client_secret_post"
      const valid = methods.includes(method) &&
        (basic || (form.get("client_id") === client.clientId && form.get("client_secret") === client.clientSecret))
      if (!valid) {
        json(res, 401, { error: "invalid_client" })
        return
      }
      json(res, 200, { access_token: `tok-${++issued}`, token_type: "Bearer", expires_in: 3600 })
    })
    return {
      server,
      metadataFetches: () => server.requestsTo("/.well-known/oauth-authorization-server").length,
      tokenRequests: () => server.requests.filter((r) => !r.path.startsWith("/.well-known/")).length,
      move: (to: string) => {
        path = to
      },
      accept: (only: ReadonlyArray<string>) => {
        methods = only
      }
    }
  })

describe("by issuer (RFC 8414)", () => {
  it.scopedLive("oidc-provider: issuer alone is enough; the token endpoint and the method come from its metadata", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients: [client] })
      const provider = yield* providerFor({ ...secret, issuer: as.issuer })
      const token = yield* provider.get
      expect(Redacted.value(token.token).split(".")).toHaveLength(3)
      const resolved = yield* provider.resolved
      expect(resolved.tokenUrl.href).toBe(as.tokenUrl)
      expect(resolved.authMethod).toBe("client_secret_basic")
      expect(as.requests.map((r) => r.path)).toEqual(["/.well-known/oauth-authorization-server", "/token"])
    }))

  it.scoped("auth_method follows token_endpoint_auth_methods_supported when not configured", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["private_key_jwt", "client_secret_post"] })
      const provider = yield* providerFor({ ...secret, issuer: as.server.origin })
      expect(Redacted.value((yield* provider.get).token)).toBe("tok-1")
      expect((yield* provider.resolved).authMethod).toBe("client_secret_post")
      const [request] = as.server.requestsTo("/token")
      expect(request!.headers.authorization).toBeUndefined()
      expect(new URLSearchParams(request!.body).get("client_secret")).toBe(client.clientSecret)
    }))

  it.scoped("a server that accepts no client secret: auth_method_unsupported, no token request", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["private_key_jwt", "tls_client_auth"] })
      const provider = yield* providerFor({ ...secret, issuer: as.server.origin })
      const error = yield* failure(provider)
      expect(error._tag).toBe("DiscoveryError")
      expect(error.reason).toBe("auth_method_unsupported")
      expect(error.message).toContain("set auth_method")
      expect(as.tokenRequests()).toBe(0)
    }))

  it.scoped("metadata naming another issuer: issuer_mismatch, and the credentials go nowhere", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_basic"], issuer: () => "https://idp.example.com" })
      const provider = yield* providerFor({ ...secret, issuer: as.server.origin })
      const error = yield* failure(provider)
      expect(error.reason).toBe("issuer_mismatch")
      expect(as.tokenRequests()).toBe(0)
      expect(JSON.stringify(error)).not.toContain(client.clientSecret)
    }))

  it.scoped("metadata is fetched once per max-age, not per token; a 404 at the token endpoint refetches it once", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_basic"], maxAge: 600 })
      const provider = yield* providerFor({ ...secret, issuer: as.server.origin })
      const renew = Effect.gen(function*() {
        // 401-driven drops are throttled (one per few seconds): let that pass
        yield* TestClock.adjust("10 seconds")
        const token = yield* provider.get
        yield* provider.invalidate(token)
        return Redacted.value((yield* provider.get).token)
      })
      expect(Redacted.value((yield* provider.get).token)).toBe("tok-1")
      expect(yield* renew).toBe("tok-2")
      expect(yield* renew).toBe("tok-3")
      // three token requests, one metadata fetch: the cache hit twice
      expect({ metadata: as.metadataFetches(), tokens: as.tokenRequests() }).toEqual({ metadata: 1, tokens: 3 })

      yield* TestClock.adjust("591 seconds")
      expect(yield* renew).toBe("tok-4")
      expect(as.metadataFetches()).toBe(2)

      // the server moves its token endpoint: the old one answers 404, the metadata is fetched again, once
      as.move("/oauth2/v2/token")
      expect(yield* renew).toBe("tok-5")
      expect(as.metadataFetches()).toBe(3)
      expect((yield* provider.resolved).tokenUrl.pathname).toBe("/oauth2/v2/token")
      expect(as.server.requests.filter((r) => r.path === "/token").length).toBe(5)
    }))

  it.scoped("a server that stops accepting the chosen auth method: refetched once, the request sent again", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_basic", "client_secret_post"] })
      const provider = yield* providerFor({ ...secret, issuer: as.server.origin })
      yield* provider.get
      expect((yield* provider.resolved).authMethod).toBe("client_secret_basic")
      as.accept(["client_secret_post"])
      yield* TestClock.adjust("10 seconds")
      yield* provider.invalidate(yield* provider.get)
      expect(Redacted.value((yield* provider.get).token)).toBe("tok-2")
      expect((yield* provider.resolved).authMethod).toBe("client_secret_post")
      // the refused request, the metadata once more, the same request with the new method
      expect(as.server.requests.map((r) => r.path)).toEqual([
        "/.well-known/oauth-authorization-server",
        "/token",
        "/token",
        "/.well-known/oauth-authorization-server",
        "/token"
      ])
    }))

  it.scoped("a configured auth_method is never replaced: the refusal is the error", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_post"] })
      const provider = yield* providerFor({ ...secret, issuer: as.server.origin, auth_method: "client_secret_basic" })
      expect((yield* Effect.flip(provider.get))._tag).toBe("InvalidCredentialsError")
      expect(as.metadataFetches()).toBe(1)
    }))
})

/** An MCP server written by hand: 401 with its challenge, and protected-resource metadata naming `issuer`. */
const handMadeMcp = (issuer: string, maxAge: number) =>
  Effect.gen(function*() {
    const server = yield* HostileServer.make((record, res) => {
      if (record.path === "/.well-known/oauth-protected-resource/mcp") {
        json(res, 200, { resource: `${server.origin}/mcp`, authorization_servers: [issuer] }, {
          "cache-control": `max-age=${maxAge}`
        })
        return
      }
      res.writeHead(401, {
        "www-authenticate": `Bearer resource_metadata="${server.origin}/.well-known/oauth-protected-resource/mcp"`
      }).end()
    })
    return { server, url: `${server.origin}/mcp`, probes: () => server.requestsTo("/mcp").length }
  })

describe("from the MCP server (RFC 9728)", () => {
  it.scoped("the whole discovery is kept for the shorter max-age: 3 tokens, one probe, one of each document", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_basic"], maxAge: 900 })
      const mcp = yield* handMadeMcp(as.server.origin, 300)
      const provider = yield* providerFor({ ...secret, allowed_issuers: [as.server.origin] }, mcp.url)
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("10 seconds")
        const token = yield* provider.get
        yield* provider.invalidate(token)
      }
      expect({ probes: mcp.probes(), metadata: as.metadataFetches(), tokens: as.tokenRequests() }).toEqual({
        probes: 1,
        metadata: 1,
        tokens: 3
      })
      // past the protected resource's max-age (300 s, shorter than the server's 900 s): all of it again
      yield* TestClock.adjust("300 seconds")
      yield* provider.get
      expect({ probes: mcp.probes(), metadata: as.metadataFetches(), tokens: as.tokenRequests() }).toEqual({
        probes: 2,
        metadata: 2,
        tokens: 4
      })
    }))

  it.scoped("a fleet cache keys discovered tokens by what discovery found: two MCP servers, two tokens", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_basic"] })
      const one = yield* handMadeMcp(as.server.origin, 600)
      const two = yield* handMadeMcp(as.server.origin, 600)
      const store = yield* SharedTokenStore.makeMemory
      const input = { ...secret, allowed_issuers: [as.server.origin] }
      const a = yield* providerFor(input, one.url, store)
      const b = yield* providerFor(input, two.url, store)
      const a2 = yield* providerFor(input, one.url, store)
      yield* a.get
      yield* b.get
      // same client and configuration, another resource: its own token; the same server again: shared
      expect(as.tokenRequests()).toBe(2)
      expect(Redacted.value((yield* a2.get).token)).toBe(Redacted.value((yield* a.get).token))
      expect(as.tokenRequests()).toBe(2)
    }))

  it.scoped("with issuer and allowed_issuers, the server the MCP server names is the one bound (not issuer)", () =>
    Effect.gen(function*() {
      const first = yield* handMadeServer({ methods: ["client_secret_basic"] })
      const second = yield* handMadeServer({ methods: ["client_secret_basic"] })
      const mcp = yield* handMadeMcp(second.server.origin, 600)
      const provider = yield* providerFor({
        ...secret,
        issuer: first.server.origin,
        allowed_issuers: [second.server.origin],
        discover: true
      }, mcp.url)
      yield* provider.get
      const resolved = yield* provider.resolved
      expect({ issuer: resolved.issuer, tokenUrl: resolved.tokenUrl.origin }).toEqual({
        issuer: second.server.origin,
        tokenUrl: second.server.origin
      })
      expect(first.server.requests).toHaveLength(0)
    }))

  it.scopedLive("a workflow without token_url: the 401 leads to the pinned server; resource and scopes follow", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({
        clients: [client],
        scopes: ["mcp:tools", "offline_access"]
      })
      const mcp = yield* McpServer.make({ authorizationServer: as, requiredScopes: ["mcp:tools"] })
      const config = yield* WorkflowConfig.parse(
        `
authentication:
  sa:
    _type: mcp_service_account
    client_id: ${client.clientId}
    client_secret: \${SECRET}
    allowed_issuers: [${as.issuer}]
    allow_insecure_http: true
function_groups:
  tools:
    _type: mcp_client
    server:
      transport: streamable-http
      url: ${mcp.url}
      auth_provider: sa
`,
        { env: { SECRET: client.clientSecret } }
      )
      const workflow = yield* Workflow.make(config)
      const result = yield* workflow.groups.get("tools")!.callTool("echo", { text: "discovered" })
      expect(result.content).toEqual([{ type: "text", text: "discovered" }])
      const resolved = yield* workflow.providers.get("sa")!.resolved
      // RFC 9728: resource is the MCP server; scopes from the 401's challenge (the MCP spec's selection)
      expect({ tokenUrl: resolved.tokenUrl.href, resource: resolved.resource, scopes: resolved.scopes }).toEqual({
        tokenUrl: as.tokenUrl,
        resource: mcp.url,
        scopes: ["mcp:tools"]
      })
      expect(as.tokenRequestCount).toBe(1)
      // resolved reports what the token was requested with: it never discovers again by itself
      yield* workflow.providers.get("sa")!.resolved
      yield* workflow.providers.get("sa")!.resolved
      expect(mcp.unauthorizedCount).toBe(1)
    }))

  it.scopedLive("an MCP server naming an unpinned server: issuer_not_trusted, 0 requests reach it, not even metadata", () =>
    Effect.gen(function*() {
      const rogue = yield* AuthorizationServer.make({ clients: [client] })
      const mcp = yield* McpServer.make({ authorizationServer: rogue })
      const provider = yield* providerFor({ ...secret, allowed_issuers: ["https://127.0.0.1:9/trusted"] }, mcp.url)
      const error = yield* failure(provider)
      expect(error.reason).toBe("issuer_not_trusted")
      expect(error.message).toContain("allowed_issuers")
      // asked again: the permanent failure is kept (failure_cooldown), nothing more is sent anywhere
      expect((yield* failure(provider)).reason).toBe("issuer_not_trusted")
      expect(rogue.requests).toHaveLength(0)
      expect(rogue.tokenRequestCount).toBe(0)
      expect(mcp.unauthorizedCount).toBe(1)
    }))

  it.scopedLive("issuer pins the server too; discover: true with issuer goes through the MCP server", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients: [client] })
      const mcp = yield* McpServer.make({ authorizationServer: as })
      const provider = yield* providerFor({ ...secret, issuer: as.issuer, discover: true }, mcp.url)
      yield* provider.get
      expect(mcp.unauthorizedCount).toBe(1)
      expect((yield* provider.resolved).resource).toBe(mcp.url)
    }))

  it.scoped("metadata for another resource: resource_mismatch, no token request", () =>
    Effect.gen(function*() {
      const as = yield* handMadeServer({ methods: ["client_secret_basic"] })
      const server = yield* HostileServer.make((record, res) => {
        if (record.path.startsWith("/.well-known/oauth-protected-resource")) {
          json(res, 200, { resource: "https://other.example/mcp", authorization_servers: [as.server.origin] })
          return
        }
        res.writeHead(401, { "www-authenticate": "Bearer error=\"invalid_token\"" }).end()
      })
      const provider = yield* providerFor({ ...secret, allowed_issuers: [as.server.origin] }, `${server.origin}/mcp`)
      expect((yield* failure(provider)).reason).toBe("resource_mismatch")
      expect(as.server.requests).toHaveLength(0)
    }))

  it("the Promise API needs the MCP server's URL to discover from it", () => {
    expect(() => createServiceAccountAuth({ ...secret, allowed_issuers: ["http://127.0.0.1:1"] })).toThrow(
      /discovered from the MCP server: pass options\.serverUrl/
    )
  })

  it("a workflow provider that discovers from an MCP server no group uses is a configuration error", () => {
    const parsed = WorkflowConfig.parse(`
authentication:
  sa:
    _type: mcp_service_account
    client_id: c
    client_secret: s
    allowed_issuers: [https://idp.example.com]
`)
    expect(Either.isLeft(parsed) && parsed.left.issues.map((i) => i.toString())).toEqual([
      expect.stringContaining("authentication.sa: the token endpoint is discovered from the MCP server")
    ])
    // two servers would need two resources (token audiences): one provider each
    const group = (name: string, url: string) => `
  ${name}:
    _type: mcp_client
    server: { transport: streamable-http, url: "${url}", auth_provider: sa }`
    const shared = WorkflowConfig.parse(`
authentication:
  sa:
    _type: mcp_service_account
    client_id: c
    client_secret: s
    allowed_issuers: [https://idp.example.com]
function_groups:${group("one", "https://a.example/mcp")}${group("two", "https://b.example/mcp")}
`)
    expect(Either.isLeft(shared) && shared.left.issues.map((i) => i.toString())).toEqual([
      expect.stringContaining("but 2 servers use this provider")
    ])
  })
})

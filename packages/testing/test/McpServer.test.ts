import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { Effect } from "effect"
import * as AuthorizationServer from "../src/AuthorizationServer.js"
import * as BasicCredentials from "../src/BasicCredentials.js"
import * as McpServer from "../src/McpServer.js"
import * as RecordingServer from "../src/RecordingServer.js"
import * as TestPki from "../src/TestPki.js"
import type { Started } from "../src/TestServer.js"
import { fetchTrusting } from "./helpers.js"

const CLIENT = { clientId: "svc-a", clientSecret: "secret-a" }

const getToken = async (
  as: AuthorizationServer.AuthorizationServer,
  form: Record<string, string> = {},
  fetchImpl: typeof fetch = fetch
): Promise<string> => {
  const response = await fetchImpl(as.tokenUrl, {
    method: "POST",
    headers: {
      authorization: BasicCredentials.encode(CLIENT.clientId, CLIENT.clientSecret),
      "content-type": "application/x-www-form-urlencoded"
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope: "mcp:tools", ...form }).toString()
  })
  const body = await response.json()
  if (typeof body.access_token !== "string") throw new Error(`no token: ${JSON.stringify(body)}`)
  return body.access_token
}

const connect = async (url: string, headers: Record<string, string>) => {
  const client = new Client({ name: "test-client", version: "0.0.0" })
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } })
  await client.connect(transport)
  return { client, transport }
}

const connectError = async (url: string, headers: Record<string, string>) => {
  const client = new Client({ name: "test-client", version: "0.0.0" })
  const error = await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }))
    .then(() => undefined, (e: unknown) => e)
  await client.close()
  return error
}

const text = (result: unknown): string => {
  const content = (result as { content: Array<{ type: string; text: string }> }).content
  return content[0]!.text
}

describe("McpServer", () => {
  let as: Started<AuthorizationServer.AuthorizationServer>
  let mcp: Started<McpServer.McpServer>

  beforeAll(async () => {
    as = await AuthorizationServer.start({ clients: [CLIENT], scopes: ["mcp:tools", "jira:read"] })
    mcp = await McpServer.start({ authorizationServer: as })
    as.setAudience(mcp.url)
  })
  afterAll(async () => {
    await mcp.close()
    await as.close()
  })

  it("lists and calls tools with a bearer JWT from the authorization server", async () => {
    const token = await getToken(as)
    const { client, transport } = await connect(mcp.url, { Authorization: `Bearer ${token}` })
    try {
      const { tools } = await client.listTools()
      expect(tools.map((t) => t.name)).toEqual([
        "echo",
        "whoami",
        "jira_get_issue",
        "jira_search",
        "jama_list_releases",
        "jama_get_item",
        "sleep"
      ])
      expect(text(await client.callTool({ name: "echo", arguments: { text: "héllo" } }))).toBe("héllo")
      const whoami = JSON.parse(text(await client.callTool({ name: "whoami", arguments: {} })))
      expect(whoami).toMatchObject({ clientId: "svc-a", scopes: ["mcp:tools"], serviceTokenPresented: false })
      expect(whoami.sessionId).toBe(transport.sessionId)
      const issue = JSON.parse(text(await client.callTool({ name: "jira_get_issue", arguments: { key: "OCSW-2116" } })))
      expect(issue).toMatchObject({ key: "OCSW-2116", status: "In Progress" })
      expect(issue).toEqual(McpServer.fakeJiraIssue("OCSW-2116"))
      const missing = await client.callTool({ name: "jira_get_issue", arguments: { key: "nope" } })
      expect(missing.isError).toBe(true)
      const search = JSON.parse(
        text(await client.callTool({ name: "jira_search", arguments: { jql: "project = OCSW", maxResults: 2 } }))
      )
      expect(search.issues).toHaveLength(2)
      expect(search.issues[0].key).toMatch(/^OCSW-\d+$/)
      const releases = JSON.parse(
        text(await client.callTool({ name: "jama_list_releases", arguments: { projectId: 7 } }))
      )
      expect(releases.releases).toHaveLength(3)
      const item = JSON.parse(text(await client.callTool({ name: "jama_get_item", arguments: { id: 42 } })))
      expect(item.documentKey).toBe("OCSW-REQ-42")
      expect(mcp.sessionCount).toBeGreaterThanOrEqual(1)
    } finally {
      await transport.terminateSession()
      await client.close()
    }
  })

  it("no token: 401 with WWW-Authenticate invalid_token (raw HTTP and SDK client)", async () => {
    const before = mcp.unauthorizedCount
    const response = await fetch(mcp.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" })
    })
    expect(response.status).toBe(401)
    const challenge = response.headers.get("www-authenticate")!
    expect(challenge).toMatch(/^Bearer error="invalid_token", error_description="Missing Authorization header"/)
    expect(challenge).toContain(`resource_metadata="${mcp.resourceMetadataUrl}"`)
    expect(await response.json()).toMatchObject({ error: "invalid_token" })

    const error = await connectError(mcp.url, {})
    expect(error).toBeInstanceOf(StreamableHTTPError)
    expect((error as StreamableHTTPError).code).toBe(401)
    expect(mcp.unauthorizedCount).toBe(before + 2)
    expect(mcp.requests.at(-1)!.auth).toBe("missing_token")
    expect(mcp.requests.at(-1)!.rpcMethod).toBe("initialize")
  })

  it("bad tokens: malformed header, expired, wrong audience, wrong issuer, foreign key → 401", async () => {
    const cases: Array<[string, McpServer.AuthOutcome]> = [
      ["Basic abc", "malformed"],
      ["Bearer not-a-jwt", "invalid_token"],
      [`Bearer ${await as.mint({ expiresInSeconds: -30 })}`, "expired"],
      [`Bearer ${await as.mint({ audience: "https://elsewhere.example/mcp" })}`, "invalid_token"],
      [`Bearer ${await as.mint({ issuer: "https://evil.example" })}`, "invalid_token"],
      [`Bearer ${await as.mint({ foreignKey: true })}`, "invalid_token"]
    ]
    for (const [authorization, outcome] of cases) {
      const error = await connectError(mcp.url, { Authorization: authorization })
      expect((error as StreamableHTTPError).code).toBe(401)
      const last = mcp.requests.at(-1)!
      expect(last.status).toBe(401)
      expect(last.auth).toBe(outcome)
    }
  })

  it("a token that expires is refused on an open session, also once verified and remembered", async () => {
    // the server's clock, moved by hand: the token expires without waiting for it
    let now = Date.now()
    const server = await McpServer.start({ authorizationServer: as, now: () => now })
    try {
      const token = await as.mint({ audience: server.url, expiresInSeconds: 60 })
      const { client } = await connect(server.url, { Authorization: `Bearer ${token}` })
      try {
        expect(text(await client.callTool({ name: "echo", arguments: { text: "ok" } }))).toBe("ok")
        now += 55_000
        expect(text(await client.callTool({ name: "echo", arguments: { text: "still" } }))).toBe("still")
        now += 6_000
        const error = await client.callTool({ name: "echo", arguments: { text: "late" } }).then(
          () => undefined,
          (e: unknown) => e
        )
        expect((error as StreamableHTTPError).code).toBe(401)
        expect(server.requests.at(-1)!.auth).toBe("expired")
      } finally {
        await client.close()
      }
    } finally {
      await server.close()
    }
  })

  it("revoke(token): further requests with it get 401", async () => {
    const token = await getToken(as)
    const { client, transport } = await connect(mcp.url, { Authorization: `Bearer ${token}` })
    try {
      await client.callTool({ name: "echo", arguments: { text: "before" } })
      mcp.revoke(token)
      const error = await client.callTool({ name: "echo", arguments: { text: "after" } }).then(
        () => undefined,
        (e) => e
      )
      expect((error as StreamableHTTPError).code).toBe(401)
      const last = mcp.requests.at(-1)!
      expect(last.auth).toBe("revoked")
      expect(last.sessionId).toBe(transport.sessionId)
    } finally {
      mcp.clearRevocations()
      await client.close()
    }
  })

  it("missing required scope → 403 insufficient_scope", async () => {
    const strict = await McpServer.start({ authorizationServer: as, requiredScopes: ["jira:read"] })
    try {
      const token = await getToken(as, { resource: strict.url })
      const error = await connectError(strict.url, { Authorization: `Bearer ${token}` })
      expect((error as StreamableHTTPError).code).toBe(403)
      expect(strict.requests.at(-1)!.auth).toBe("insufficient_scope")
      const good = await getToken(as, { resource: strict.url, scope: "mcp:tools jira:read" })
      const { client } = await connect(strict.url, { Authorization: `Bearer ${good}` })
      await client.close()
    } finally {
      await strict.close()
    }
  })

  it("dual mode: missing or wrong service header → 403 (never 401); right header → OK; headers recorded", async () => {
    const dual = await McpServer.start({ authorizationServer: as, serviceToken: { accept: "svc-token-123" } })
    try {
      const token = await getToken(as, { resource: dual.url })
      const missing = await connectError(dual.url, { Authorization: `Bearer ${token}` })
      expect((missing as StreamableHTTPError).code).toBe(403)
      expect(dual.requests.at(-1)!.auth).toBe("service_token_missing")
      const wrong = await connectError(dual.url, {
        Authorization: `Bearer ${token}`,
        "X-Service-Account-Token": "nope"
      })
      expect((wrong as StreamableHTTPError).code).toBe(403)
      expect(dual.requests.at(-1)!.auth).toBe("service_token_invalid")
      expect(dual.unauthorizedCount).toBe(0)
      expect(dual.forbiddenCount).toBe(2)

      const raw = await fetch(dual.url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" })
      })
      expect(raw.status).toBe(403)
      expect(await raw.json()).toEqual({
        jsonrpc: "2.0",
        error: { code: -32001, message: "Missing X-Service-Account-Token header" },
        id: 9
      })

      dual.clearRecords()
      const { client } = await connect(dual.url, {
        Authorization: `Bearer ${token}`,
        "X-Service-Account-Token": "svc-token-123"
      })
      const whoami = JSON.parse(text(await client.callTool({ name: "whoami", arguments: {} })))
      expect(whoami).toMatchObject({ clientId: "svc-a", serviceTokenPresented: true })
      await client.close()
      const post = dual.mcpRequests.find((r) => r.rpcMethod === "tools/call")!
      expect(post.headers.authorization).toBe(`Bearer ${token}`)
      expect(post.headers["x-service-account-token"]).toBe("svc-token-123")
      expect(post.rawHeaders.map(([name]) => name.toLowerCase())).toContain("x-service-account-token")
      expect(post.clientId).toBe("svc-a")
      expect(dual.mcpRequests.map((r) => r.rpcMethod)).toEqual(
        expect.arrayContaining(["initialize", "notifications/initialized", "tools/call"])
      )

      // predicate form and custom header name, switched at run time
      dual.setServiceToken({ header: "X-Api-Key", accept: (value) => value.startsWith("key-") })
      const custom = await connect(dual.url, { Authorization: `Bearer ${token}`, "X-Api-Key": "key-1" })
      await custom.client.close()
      expect(await connectError(dual.url, { Authorization: `Bearer ${token}`, "X-Api-Key": "bad" })).toBeInstanceOf(
        StreamableHTTPError
      )
    } finally {
      await dual.close()
    }
  })

  it("stateful sessions: GET/DELETE need a session; unknown session → 404; DELETE ends it", async () => {
    const token = await getToken(as)
    const auth = { authorization: `Bearer ${token}` }
    expect((await fetch(mcp.url, { headers: { ...auth, accept: "text/event-stream" } })).status).toBe(400)
    expect((await fetch(mcp.url, { method: "DELETE", headers: auth })).status).toBe(400)
    const unknown = await fetch(mcp.url, { method: "DELETE", headers: { ...auth, "mcp-session-id": "nope" } })
    expect(unknown.status).toBe(404)
    expect((await fetch(mcp.url, { method: "PUT", headers: auth })).status).toBe(405)
    expect((await fetch(mcp.url, { headers: { accept: "text/event-stream" } })).status).toBe(401)

    const { client, transport } = await connect(mcp.url, auth)
    const sessionId = transport.sessionId!
    const sessions = mcp.sessionCount
    await transport.terminateSession()
    expect(mcp.sessionCount).toBe(sessions - 1)
    const gone = await fetch(mcp.url, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", "mcp-session-id": sessionId },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" })
    })
    expect(gone.status).toBe(404)
    await client.close()
  })

  it("stateless mode with JSON responses: POST works, GET/DELETE → 405", async () => {
    const stateless = await McpServer.start({ authorizationServer: as, mode: "stateless", jsonResponse: true })
    try {
      const token = await getToken(as, { resource: stateless.url })
      const { client } = await connect(stateless.url, { Authorization: `Bearer ${token}` })
      expect(text(await client.callTool({ name: "echo", arguments: { text: "x" } }))).toBe("x")
      await client.close()
      const get = await fetch(stateless.url, { headers: { authorization: `Bearer ${token}` } })
      expect(get.status).toBe(405)
      expect(get.headers.get("allow")).toBe("POST")
      expect((await fetch(stateless.url, { method: "DELETE", headers: { authorization: `Bearer ${token}` } })).status)
        .toBe(405)
      expect(stateless.sessionCount).toBe(0)
    } finally {
      await stateless.close()
    }
  })

  it("intercept hook (e.g. 401 on every GET) and requireAuth: false", async () => {
    const open = await McpServer.start({
      requireAuth: false,
      intercept: (request) => request.method === "GET" ? { status: 401, body: { error: "invalid_token" } } : undefined
    })
    try {
      const { client } = await connect(open.url, {})
      const whoami = JSON.parse(text(await client.callTool({ name: "whoami", arguments: {} })))
      expect(whoami.clientId).toBeNull()
      await client.close()
      const gets = open.requests.filter((r) => r.method === "GET")
      expect(gets.length).toBeGreaterThanOrEqual(1)
      expect(gets.every((r) => r.status === 401 && r.auth === "intercepted")).toBe(true)
      open.setIntercept(undefined)
    } finally {
      await open.close()
    }
  })

  it("serves RFC 9728 metadata, so the SDK's own ClientCredentialsProvider can discover the AS", async () => {
    const metadata = await (await fetch(mcp.resourceMetadataUrl)).json()
    expect(metadata).toMatchObject({ resource: mcp.url, authorization_servers: [as.issuer] })
    as.clearRecords()
    const client = new Client({ name: "sdk-peer", version: "0.0.0" })
    const authProvider = new ClientCredentialsProvider({ ...CLIENT, scope: "mcp:tools", expectedIssuer: as.issuer })
    await client.connect(new StreamableHTTPClientTransport(new URL(mcp.url), { authProvider }))
    expect(JSON.parse(text(await client.callTool({ name: "whoami", arguments: {} }))).clientId).toBe("svc-a")
    await client.close()
    expect(as.tokenRequestCount).toBe(1)
    expect(as.tokenRequests[0]!.form).toMatchObject({ grant_type: "client_credentials", resource: mcp.url })
  })

  it.scopedLive("verifies tokens from an HTTPS authorization server (JWKS fetched with the test CA)", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const tlsAs = yield* AuthorizationServer.make({ clients: [CLIENT], https: pki.server })
      const server = yield* McpServer.make({ authorizationServer: tlsAs, ca: pki.ca, https: pki.serverWithChain })
      tlsAs.setAudience(server.url)
      const token = yield* Effect.promise(() => tlsAs.mint())
      const client = fetchTrusting(pki.ca)
      yield* Effect.addFinalizer(() => Effect.promise(() => client.destroy()))
      const response = yield* Effect.promise(() =>
        client.fetch(server.url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream"
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } }
          })
        })
      )
      expect(response.status).toBe(200)
      expect(response.headers.get("mcp-session-id")).toBeTruthy()
      expect(server.requests[0]!.auth).toBe("ok")
    }))
})

describe("RecordingServer", () => {
  it("records any path and method with its headers; custom responses", async () => {
    const other: Started<RecordingServer.RecordingServer> = await RecordingServer.start()
    try {
      const ok = await fetch(`${other.url}/any/path?x=1`, { method: "PATCH", headers: { "X-Probe": "1" }, body: "hi" })
      expect(await ok.json()).toEqual({ ok: true })
      other.setResponse((request) => ({ status: 302, headers: { location: `${request.path}/next` } }))
      const redirect = await fetch(`${other.url}/r`, { redirect: "manual" })
      expect(redirect.status).toBe(302)
      expect(other.count).toBe(2)
      expect(other.requests[0]).toMatchObject({ method: "PATCH", path: "/any/path", url: "/any/path?x=1", body: "hi" })
      expect(other.requestsWithHeader("x-probe")).toHaveLength(1)
      expect(other.requestsWithHeader("Authorization")).toHaveLength(0)
      other.clearRecords()
      expect(other.requests).toEqual([])
    } finally {
      await other.close()
    }
  })

  it.scopedLive("Effect API", () =>
    Effect.gen(function*() {
      const other = yield* RecordingServer.make({ respond: { status: 204 } })
      const status = yield* Effect.promise(() => fetch(other.url).then((r) => r.status))
      expect(status).toBe(204)
    }))
})

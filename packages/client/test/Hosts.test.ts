/**
 * The SDK adapter in the MCP hosts users run (issue 14): the MCP SDK client, LangChain.js `MultiServerMCPClient` and
 * the Vercel AI SDK's `createMCPClient` (`@ai-sdk/mcp`, with `authProvider` and with `fetch`), each end to end against
 * oidc-provider and the testing MCP server: cold start, a tool call, the token revoked mid-run and the next call.
 * And the safety rule: a host that discovered a rogue authorization server never gets credentials for it.
 */
import { createMCPClient } from "@ai-sdk/mcp"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { MultiServerMCPClient } from "@langchain/mcp-adapters"
import { createServiceAccountAuth } from "@mcp-auth/client"
import { AuthorizationServer, HostileServer, McpServer } from "@mcp-auth/testing"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { Effect } from "effect"

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
})

/** oidc-provider (advertising `refresh_token`, as real identity providers do) and an MCP server trusting it. */
const stack = async (options: { readonly discovered?: boolean } = {}) => {
  // offline_access makes oidc-provider list refresh_token in grant_types_supported: the AI SDK looks for it
  const as = await AuthorizationServer.start({
    clients: [{ clientId: "svc-host", clientSecret: "host-secret" }],
    scopes: ["mcp:tools", "offline_access"]
  })
  cleanups.push(as.close)
  const mcp = await McpServer.start({ authorizationServer: as })
  cleanups.push(mcp.close)
  as.setAudience(mcp.url)
  const auth = createServiceAccountAuth({
    client_id: "svc-host",
    client_secret: "host-secret",
    // discovered: no token_url, the MCP server's metadata names the authorization server, which is pinned
    ...(options.discovered === true ? { allowed_issuers: [as.issuer] } : { token_url: as.tokenUrl, issuer: as.issuer }),
    allow_insecure_http: true
  }, { serverUrl: mcp.url, logLevel: "none" })
  cleanups.push(auth.close)
  return { as, mcp, auth }
}

/** Revokes the token the host is using, runs `next`, and says how many token requests the recovery took. */
const afterRevocation = async (
  s: { readonly as: AuthorizationServer.AuthorizationServer; readonly mcp: McpServer.McpServer },
  auth: ReturnType<typeof createServiceAccountAuth>,
  next: () => Promise<unknown>
) => {
  const before = s.as.tokenRequestCount
  const unauthorized = s.mcp.unauthorizedCount
  s.mcp.revoke((await auth.getToken()).accessToken)
  const result = await next()
  return { result, tokenRequests: s.as.tokenRequestCount - before, rejected: s.mcp.unauthorizedCount - unauthorized }
}

const text = (result: unknown) => JSON.stringify(result)

describe("the MCP SDK client", () => {
  it.each([["token_url", false], ["discovery (no token_url)", true]] as const)(
    "authProvider with %s: cold start, a tool call, a revocation mid-run",
    async (_, discovered) => {
      const s = await stack({ discovered })
      const client = new Client({ name: "host", version: "0.0.0" })
      await client.connect(
        new StreamableHTTPClientTransport(new URL(s.mcp.url), { authProvider: s.auth.authProvider() })
      )
      cleanups.push(() => client.close())
      expect(text(await client.callTool({ name: "echo", arguments: { text: "cold" } }))).toContain("cold")
      const { rejected, result, tokenRequests } = await afterRevocation(
        s,
        s.auth,
        () => client.callTool({ name: "echo", arguments: { text: "after" } })
      )
      expect(text(result)).toContain("after")
      expect({ rejected, tokenRequests }).toEqual({ rejected: 1, tokenRequests: 1 })
    }
  )
})

describe("LangChain.js MultiServerMCPClient", () => {
  it("authProvider: cold start, a tool call, a revocation mid-run", async () => {
    const s = await stack()
    const client = new MultiServerMCPClient({
      throwOnLoadError: true,
      useStandardContentBlocks: true,
      mcpServers: {
        testing: { transport: "http", url: s.mcp.url, authProvider: s.auth.authProvider(), automaticSSEFallback: false }
      }
    })
    cleanups.push(() => client.close())
    const tools = await client.getTools()
    const echo = tools.find((tool) => tool.name.endsWith("echo"))!
    expect(text(await echo.invoke({ text: "cold" }))).toContain("cold")
    const { rejected, result, tokenRequests } = await afterRevocation(s, s.auth, () => echo.invoke({ text: "after" }))
    expect(text(result)).toContain("after")
    expect({ rejected, tokenRequests }).toEqual({ rejected: 1, tokenRequests: 1 })
  })
})

describe("Vercel AI SDK createMCPClient (@ai-sdk/mcp)", () => {
  const call = (tools: Record<string, { execute?: unknown }>, args: Record<string, unknown>, id: string) =>
    (tools.echo!.execute as (args: unknown, options: unknown) => Promise<unknown>)(args, {
      toolCallId: id,
      messages: []
    })

  it("authProvider: bound to its issuer, it recovers from a revocation with one token request", async () => {
    const s = await stack()
    // the AI SDK's provider type wants a string redirectUrl; ours is undefined on purpose (non-interactive)
    const client = await createMCPClient({
      transport: { type: "http", url: s.mcp.url, authProvider: s.auth.authProvider() as never }
    })
    cleanups.push(() => client.close())
    const tools = await client.tools()
    expect(text(await call(tools, { text: "cold" }, "1"))).toContain("cold")
    const { rejected, result, tokenRequests } = await afterRevocation(
      s,
      s.auth,
      () => call(tools, { text: "after" }, "2")
    )
    expect(text(result)).toContain("after")
    expect({ rejected, tokenRequests }).toEqual({ rejected: 1, tokenRequests: 1 })
    // the AI SDK's refresh was turned into the configured grant: no refresh_token ever reached the server
    const last = s.as.tokenRequests.at(-1)!
    expect(last.form?.grant_type).toBe("client_credentials")
    expect(last.form?.refresh_token).toBeUndefined()
  })

  it("authProvider with a discovered token endpoint (no token_url): bound to the pinned issuer, recovers", async () => {
    const s = await stack({ discovered: true })
    const client = await createMCPClient({
      transport: { type: "http", url: s.mcp.url, authProvider: s.auth.authProvider() as never }
    })
    cleanups.push(() => client.close())
    const tools = await client.tools()
    expect(text(await call(tools, { text: "discovered" }, "1"))).toContain("discovered")
    const { rejected, result, tokenRequests } = await afterRevocation(
      s,
      s.auth,
      () => call(tools, { text: "after" }, "2")
    )
    expect(text(result)).toContain("after")
    expect({ rejected, tokenRequests }).toEqual({ rejected: 1, tokenRequests: 1 })
    expect(s.as.tokenRequests.every((r) => r.form?.refresh_token === undefined)).toBe(true)
    // one discovery (one unauthenticated probe for the 401), not one per call the host makes
    expect(s.mcp.requests.filter((r) => r.method === "POST" && r.headers.authorization === undefined)).toHaveLength(1)
  })

  it("fetch: auth.fetch: cold start, a tool call, 10 concurrent calls after a revocation, one token request", async () => {
    const s = await stack()
    const client = await createMCPClient({
      transport: { type: "http", url: s.mcp.url, fetch: s.auth.fetch as typeof fetch }
    })
    cleanups.push(() => client.close())
    const tools = await client.tools()
    expect(text(await call(tools, { text: "cold" }, "1"))).toContain("cold")
    const { result, tokenRequests } = await afterRevocation(
      s,
      s.auth,
      () => Promise.all(Array.from({ length: 10 }, (_, i) => call(tools, { text: `after-${i}` }, `c${i}`)))
    )
    expect((result as Array<unknown>).map(text).every((r, i) => r.includes(`after-${i}`))).toBe(true)
    expect(tokenRequests).toBe(1)
  })

  it.scoped("a rogue authorization server claiming our issuer never gets credentials", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => stack())
      // what a compromised MCP server points the host to: metadata that copies our issuer, its own token endpoint
      const rogue = yield* HostileServer.make((record, res) => {
        res.writeHead(record.path === "/token" ? 400 : 200, { "content-type": "application/json" })
        res.end(JSON.stringify({
          issuer: s.as.issuer,
          token_endpoint: `${rogueOrigin()}/token`,
          authorization_endpoint: `${rogueOrigin()}/authorize`,
          grant_types_supported: ["client_credentials", "refresh_token"],
          response_types_supported: ["code"]
        }))
      })
      const rogueOrigin = () => rogue.origin
      const mcp = yield* McpServer.make({ authorizationServer: { issuer: rogue.origin, jwksUrl: s.as.jwksUrl } })
      // every token is refused there (its issuer is the real one), so the host runs its discovery and recovery
      const error = yield* Effect.flip(Effect.tryPromise({
        catch: (cause) => cause,
        try: async () => {
          const client = await createMCPClient({
            transport: { type: "http", url: mcp.url, authProvider: s.auth.authProvider() as never }
          })
          cleanups.push(() => client.close())
          return client.tools()
        }
      }))
      expect(String(error)).toContain("does not match expected issuer")
      expect(rogue.requests.filter((r) => r.path === "/token")).toHaveLength(0)
      // and should a host believe it: the adapter itself refuses any token endpoint but the configured one, whether
      // the host passes it as the URL (MCP SDK) or in the metadata (AI SDK)
      const provider = s.auth.authProvider()
      const grant = () => new URLSearchParams({ grant_type: "client_credentials" })
      const rogueToken = `${rogue.origin}/token`
      yield* Effect.promise(async () => {
        await expect(provider.addClientAuthentication!(new Headers(), grant(), new URL(rogueToken))).rejects.toThrow(
          "refuses to send client credentials"
        )
        const headers = new Headers()
        await expect(
          provider.addClientAuthentication!(headers, grant(), s.as.issuer, {
            issuer: s.as.issuer,
            token_endpoint: rogueToken
          } as never)
        ).rejects.toThrow("refuses to send client credentials")
        expect(headers.get("authorization")).toBeNull()
        // no destination at all: refused too
        await expect(provider.addClientAuthentication!(headers, grant(), undefined as never)).rejects.toThrow(
          "refuses to send client credentials to an unknown destination"
        )
        // a refresh token that is not ours is never forwarded
        await expect(
          provider.addClientAuthentication!(
            headers,
            new URLSearchParams({ grant_type: "refresh_token", refresh_token: "someone-else's" }),
            new URL(s.as.tokenUrl),
            { issuer: s.as.issuer, token_endpoint: s.as.tokenUrl } as never
          )
        ).rejects.toThrow("issued no refresh token")
        expect(headers.get("authorization")).toBeNull()
        await provider.addClientAuthentication!(headers, grant(), new URL(s.as.tokenUrl))
        expect(headers.get("authorization")).toMatch(/^Basic /)
      })
    }))
})

import { RecordingServer, TestStack } from "@mcp-auth/testing"
import { afterEach, describe, expect, it } from "vitest"
import { type Driver, type Session, text } from "./drivers.js"

export const CLIENT = {
  clientId: "svc-mcp",
  clientSecret: "mcp:secret%Zx9+",
  authMethod: "client_secret_basic" as const
}
const SERVICE_TOKEN = "jira-svc-token-123"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type Pattern = {
  readonly name: string
  readonly server: TestStack.Options["serviceToken"]
  readonly serviceToken: Record<string, unknown> | undefined
  readonly header: string | undefined
}

const patterns: ReadonlyArray<Pattern> = [
  { name: "single", server: undefined, serviceToken: undefined, header: undefined },
  {
    name: "dual static",
    server: { accept: SERVICE_TOKEN },
    serviceToken: { token: SERVICE_TOKEN },
    header: "x-service-account-token"
  },
  {
    name: "dual dynamic",
    server: { header: "X-Jira-Service-Token", accept: (v: string) => v === `vault:secrets/jira:${SERVICE_TOKEN}` },
    serviceToken: {
      // NAT's contract: called on every request with kwargs; a [header, token] pair overrides the header
      function: (
        kwargs: Record<string, unknown>
      ) => ["X-Jira-Service-Token", `vault:${String(kwargs.path)}:${SERVICE_TOKEN}`],
      kwargs: { path: "secrets/jira" }
    },
    header: "x-jira-service-token"
  }
]

const providerConfig = (stack: TestStack.TestStack, extra: Record<string, unknown> = {}) => ({
  _type: "mcp_service_account",
  client_id: CLIENT.clientId,
  client_secret: CLIENT.clientSecret,
  token_url: stack.tokenUrl,
  allow_insecure_http: true,
  scopes: ["mcp:tools"],
  ...extra
})

/** The bearer tokens the MCP server saw, in order, deduplicated. */
const bearersSeen = (stack: TestStack.TestStack) => [
  ...new Set(stack.mcpServer.requests.map((r) => r.headers["authorization"]).filter((h) => h !== undefined))
]

/** The end-to-end flows every integration path must pass, against a real AS and MCP server. */
export const describeFlows = (driver: Driver) =>
  describe(`end to end through ${driver.name}`, () => {
    const cleanup: Array<() => Promise<void>> = []
    afterEach(async () => {
      for (const close of cleanup.splice(0).reverse()) await close()
    })
    const stackWith = async (options: Partial<TestStack.Options> = {}) => {
      const stack = await TestStack.start({
        clients: [CLIENT],
        scopes: ["mcp:tools"],
        requiredScopes: ["mcp:tools"],
        ...options
      })
      cleanup.push(stack.close)
      return stack
    }
    const connect = async (stack: TestStack.TestStack, extra: Record<string, unknown> = {}): Promise<Session> => {
      const session = await driver.connect(providerConfig(stack, extra), stack.mcpUrl)
      cleanup.push(session.close)
      return session
    }

    for (const pattern of patterns.filter((p) => driver.dual || p.header === undefined)) {
      it(`${pattern.name}: listTools and callTool succeed with the right headers, and nowhere else`, async () => {
        const stack = await stackWith({ serviceToken: pattern.server })
        const other = await RecordingServer.start({})
        cleanup.push(other.close)
        const session = await connect(stack, pattern.serviceToken ? { service_token: pattern.serviceToken } : {})

        expect(await session.listTools()).toEqual(expect.arrayContaining(["echo", "whoami", "jira_get_issue"]))
        const whoami = JSON.parse(text(await session.callTool("whoami")))
        expect(whoami).toMatchObject({ clientId: CLIENT.clientId, serviceTokenPresented: pattern.header !== undefined })
        expect(text(await session.callTool("jira_get_issue", { key: "OCSW-2116" }))).toContain("OCSW-2116")

        const mcp = stack.mcpServer.mcpRequests
        expect(mcp.length).toBeGreaterThanOrEqual(4)
        for (const request of mcp) {
          expect(request.headers["authorization"]).toMatch(/^Bearer ey/)
          if (pattern.header !== undefined) expect(request.headers[pattern.header]).toContain(SERVICE_TOKEN)
          else expect(request.headers["x-service-account-token"]).toBeUndefined()
        }
        expect(stack.mcpServer.unauthorizedCount).toBe(0)
        expect(stack.mcpServer.forbiddenCount).toBe(0)
        // the token endpoint saw client credentials only: never the service header, never a bearer
        expect(stack.authorizationServer.tokenRequestCount).toBe(1)
        for (const request of stack.authorizationServer.requests) {
          expect(request.headers[pattern.header ?? "x-service-account-token"]).toBeUndefined()
          expect(request.headers["authorization"] ?? "").not.toMatch(/^Bearer/)
        }
        // another origin, fetched through the same authenticated fetch, gets nothing
        if (session.fetch !== undefined) {
          await session.fetch(`${other.url}/probe`)
          expect(other.count).toBe(1)
          expect(other.requests[0]!.headers["authorization"]).toBeUndefined()
          expect(other.requests[0]!.headers[pattern.header ?? "x-service-account-token"]).toBeUndefined()
        }
      })
    }

    it(
      "short-lived tokens: calls across 3 refreshes succeed, none with an expired token, no token wasted",
      async () => {
        // TTL 3 s, buffer 2 s: lead = min(2, 3/2) = 1.5 s, so a refresh 1.5–1.8 s after a token arrives, and no token is
        // handed out in its last 0.75 s. A JWT's exp has one-second granularity (a 3 s token may die up to 1 s before
        // expires_in says): the MCP server's 1 s clock tolerance cancels that, so a 401 means "sent after expires_in".
        const stack = await stackWith({ accessTokenTtlSeconds: 3, mcp: { clockToleranceSeconds: 1 } })
        const session = await connect(stack, { token_cache_buffer_seconds: 2 })
        // call until the MCP server has seen 4 tokens (3 refreshes): a few seconds, however slow the machine; the
        // deadline only stops a client that never refreshes
        const deadline = Date.now() + 40_000
        let calls = 0
        while (bearersSeen(stack).length < 4 && Date.now() < deadline) {
          expect(text(await session.callTool("echo", { text: `call ${++calls}` }))).toBe(`call ${calls}`)
          await sleep(50)
        }
        const bearers = bearersSeen(stack)
        expect(bearers.length).toBeGreaterThanOrEqual(4)
        expect(stack.mcpServer.unauthorizedCount).toBe(0)
        // one request per token used, plus at most the refresh that finished after the last call
        const issued = stack.authorizationServer.tokenRequests.map((r) => r.accessToken)
        expect(new Set(issued).size).toBe(issued.length)
        for (const bearer of bearers) expect(issued).toContain(bearer.slice("Bearer ".length))
        expect(issued.length).toBeLessThanOrEqual(bearers.length + 1)
        // and no over-eager refreshing: a token is refreshed 1.5–1.8 s after the request that got it started (the
        // scheduler can only delay that), so successive token requests reach the server at least ~1.5 s apart, less
        // the first one's trip to the server; a client fetching per call would send them one call (~50 ms) apart
        const arrivals = stack.authorizationServer.tokenRequests.map((r) => r.time)
        for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThan(500)
      },
      60_000
    )

    it("token revoked mid-session: the next call succeeds after exactly one extra token request", async () => {
      const stack = await stackWith()
      const session = await connect(stack)
      await session.callTool("echo", { text: "before" })
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
      stack.mcpServer.revoke(bearersSeen(stack)[0]!.slice("Bearer ".length))
      expect(text(await session.callTool("echo", { text: "after" }))).toBe("after")
      expect(stack.authorizationServer.tokenRequestCount).toBe(2)
      expect(stack.mcpServer.unauthorizedCount).toBe(1)
      expect(text(await session.callTool("echo", { text: "again" }))).toBe("again")
      expect(stack.authorizationServer.tokenRequestCount).toBe(2)
    })

    it("100 concurrent tool calls after an expiry: 0 failures, at most 1 token request, no expired token", async () => {
      // This is about the client's cache: the MCP server ignores exp (1 h tolerance), so a slow call on a loaded
      // machine cannot meet a JWT that died mid-flight. Buffer 0: no background refresh, the token is replaced only
      // when a call finds it expired.
      const stack = await stackWith({ accessTokenTtlSeconds: 1, mcp: { clockToleranceSeconds: 3600 } })
      const session = await connect(stack, { token_cache_buffer_seconds: 0 })
      await session.callTool("echo", { text: "warm" })
      const idle = new Set(bearersSeen(stack))
      stack.authorizationServer.setAccessTokenTtl(3600) // the next token outlives the burst, however long it takes
      await sleep(1_000) // idle past expiry: a 1 s token is handed out for 0.75 s at most
      const before = stack.authorizationServer.tokenRequestCount
      const seen = stack.mcpServer.requests.length
      const results = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) => session.callTool("echo", { text: `n${i}` }))
      )
      expect(results.filter((r) => r.status === "rejected")).toEqual([])
      // normally exactly 1; 0 only if a request the SDK sent by itself after "warm" already fetched the next token
      expect(stack.authorizationServer.tokenRequestCount - before).toBeLessThanOrEqual(1)
      const burst = stack.mcpServer.requests.slice(seen).map((r) => r.headers["authorization"])
      expect(burst.length).toBeGreaterThanOrEqual(100)
      for (const bearer of burst) expect(idle.has(bearer!)).toBe(false) // no call reused the expired token
      expect(stack.mcpServer.unauthorizedCount).toBe(0)
    })

    if (driver.coalesces401) {
      it("100 concurrent tool calls across a revocation: 0 failures, 1 token request", async () => {
        const stack = await stackWith()
        const session = await connect(stack)
        await session.callTool("echo", { text: "warm" })
        stack.mcpServer.revoke(bearersSeen(stack)[0]!.slice("Bearer ".length))
        const results = await Promise.allSettled(
          Array.from({ length: 100 }, (_, i) => session.callTool("echo", { text: `n${i}` }))
        )
        expect(results.filter((r) => r.status === "rejected")).toEqual([])
        expect(stack.authorizationServer.tokenRequestCount).toBe(2)
        expect(stack.mcpServer.unauthorizedCount).toBeGreaterThanOrEqual(1)
      })
    }

    it("wrong secret: connect fails with InvalidCredentialsError, the MCP server is never called", async () => {
      const stack = await stackWith()
      const error = await connect(stack, { client_secret: "wrong-secret-value" }).then(
        () => undefined,
        (e: unknown) => e
      )
      expect(error).toBeInstanceOf(Error)
      expect(error).toMatchObject({ _tag: "InvalidCredentialsError", error: "invalid_client" })
      expect(String(error)).toContain("Invalid service account credentials")
      expect(String(error)).not.toContain("wrong-secret-value")
      expect(stack.mcpServer.requestCount).toBe(0)
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
    })
  })

import { describe, expect, it } from "@effect/vitest"
import * as McpClient from "@mcp-auth/client/McpClient"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { AuthorizationServer, McpServer, TestStack } from "@mcp-auth/testing"
import type { Clock } from "effect"
import { Chunk, Effect, Exit, Fiber, Layer, Option, Random, TestClock } from "effect"

const clients = [
  { clientId: "svc-a", clientSecret: "secret-a" },
  { clientId: "svc-b", clientSecret: "secret-b" }
]

const auth = (tokenUrl: string, client: { clientId: string; clientSecret: string }, extra: object = {}) => {
  const config = ServiceAccountConfig.decodeSync({
    client_id: client.clientId,
    client_secret: client.clientSecret,
    token_url: tokenUrl,
    allow_insecure_http: true,
    ...extra
  })
  return AuthHeaders.layer.pipe(
    Layer.provide(ServiceToken.layerFromConfig(config)),
    Layer.provide(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layer())))
  )
}

const never = new Promise<never>(() => {})

describe("McpClient", () => {
  it.scopedLive("applies tool_call_timeout to tool calls", () =>
    Effect.gen(function*() {
      // a tool that never answers: only the timeout can end the call, whatever the scheduling
      const stack = yield* TestStack.make({
        clients,
        mcp: { configure: (server) => server.registerTool("hang", { description: "Never answers" }, () => never) }
      })
      // the timeout also bounds connect (initialize + the first token): well above that on a loaded machine
      const client = yield* McpClient.make({
        url: stack.mcpUrl,
        toolCallTimeout: "3 seconds",
        reconnect: { enabled: false }
      })
        .pipe(Effect.provide(yield* Layer.build(auth(stack.tokenUrl, clients[0]!))))
      // connected and holding a token first, so the timeout can only be the hanging call's
      yield* client.listTools
      const error = yield* Effect.flip(client.callTool("hang"))
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "timeout", operation: "tools/call" })
      expect(error.message).toMatch(/^MCP tools\/call timed out/)
      const ok = yield* client.callTool("echo", { text: "still connected" })
      expect(ok.isError ?? false).toBe(false)
    }))

  it.scopedLive("a reset connection: tools/list reconnects and retries once; tools/call fails and is not sent again", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients })
      let failNext: string | undefined
      const flaky: typeof fetch = (url, init) => {
        if (failNext !== undefined && typeof init?.body === "string" && init.body.includes(failNext)) {
          failNext = undefined
          return Promise.reject(
            new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) })
          )
        }
        return fetch(url, init)
      }
      const client = yield* McpClient.make({
        url: stack.mcpUrl,
        fetch: flaky,
        reconnect: { initialBackoff: 0 }
      }).pipe(Effect.provide(yield* Layer.build(auth(stack.tokenUrl, clients[0]!))))
      const initializes = () => stack.mcpServer.mcpRequests.filter((r) => r.rpcMethod === "initialize").length
      failNext = "tools/list"
      const tools = yield* client.listTools
      expect(tools.length).toBeGreaterThan(0)
      expect(initializes()).toBe(2)
      // a reset may come after the server got the call: the call fails and is not replayed (NAT would replay it)
      failNext = "tools/call"
      const error = yield* Effect.flip(client.callTool("echo", { text: "once" }))
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "closed", operation: "tools/call" })
      expect(initializes()).toBe(2)
      // the broken session is replaced before the next call
      const result = yield* client.callTool("echo", { text: "after reconnect" })
      expect(result.isError ?? false).toBe(false)
      expect(initializes()).toBe(3)
      expect(stack.authorizationServer.tokenRequestCount).toBe(1) // the token survived the reconnects
    }))

  it.scopedLive("without reconnects, a connection failure is a typed McpRequestError", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients })
      let broken = false
      const flaky: typeof fetch = (url, init) =>
        broken
          ? Promise.reject(
            new TypeError("fetch failed", { cause: Object.assign(new Error("refused"), { code: "ECONNREFUSED" }) })
          )
          : fetch(url, init)
      const client = yield* McpClient.make({ url: stack.mcpUrl, fetch: flaky, reconnect: { enabled: false } }).pipe(
        Effect.provide(yield* Layer.build(auth(stack.tokenUrl, clients[0]!)))
      )
      broken = true
      const error = yield* Effect.flip(client.listTools)
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "connect", operation: "tools/list" })
      expect(error.message).toContain("ECONNREFUSED")
    }))

  it.scopedLive("a 403 for a missing service token is typed and not retried by reconnecting", () =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients, serviceToken: { accept: "expected-token" } })
      const error = yield* Effect.flip(
        McpClient.make({ url: stack.mcpUrl }).pipe(
          Effect.provide(auth(stack.tokenUrl, clients[0]!, { service_token: { token: "wrong-token" } }))
        )
      )
      expect(error).toMatchObject({ _tag: "McpForbiddenError" })
      expect(stack.mcpServer.forbiddenCount).toBe(1)
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
    }))

  it.scopedLive("several servers, each with its own service account, or two sharing one token cache", () =>
    Effect.gen(function*() {
      const as = yield* AuthorizationServer.make({ clients })
      const jira = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const jama = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const wiki = yield* McpServer.make({ authorizationServer: as, audience: as.issuer })
      const shared = yield* Layer.build(auth(as.tokenUrl, clients[0]!))
      const own = yield* Layer.build(auth(as.tokenUrl, clients[1]!))
      const clientsByServer = {
        jira: yield* McpClient.make({ url: jira.url, name: "jira" }).pipe(Effect.provide(shared)),
        jama: yield* McpClient.make({ url: jama.url, name: "jama" }).pipe(Effect.provide(shared)),
        wiki: yield* McpClient.make({ url: wiki.url, name: "wiki" }).pipe(Effect.provide(own))
      }
      for (const client of Object.values(clientsByServer)) yield* client.callTool("whoami")
      const seenBy = (server: McpServer.McpServer) => server.mcpRequests.map((r) => r.clientId)
      expect(new Set(seenBy(jira))).toEqual(new Set(["svc-a"]))
      expect(new Set(seenBy(jama))).toEqual(new Set(["svc-a"]))
      expect(new Set(seenBy(wiki))).toEqual(new Set(["svc-b"]))
      expect(as.tokenRequests.map((r) => r.clientId).sort()).toEqual(["svc-a", "svc-b"])
    }))
})

/**
 * An in-process MCP server behind a `fetch` (JSON responses, no session): no sockets and no real timers, so the
 * reconnect tests run on the TestClock. `down` makes every request fail as a refused connection would (until the
 * `upFromConnect`-th `initialize`); `rpcError`
 * answers `tools/list` with a JSON-RPC error. `connects` holds the TestClock time of every `initialize` attempt.
 */
const fakeServer = (clock: Clock.Clock) => {
  const server = {
    down: false,
    /** The `initialize` (1-based, the first connect included) from which the server is up again. */
    upFromConnect: Infinity,
    rpcError: false,
    /** `tools/call` never answers. */
    hangCalls: false,
    /** The TestClock time of every `tools/call` the server received. */
    calls: [] as Array<number>,
    connects: [] as Array<number>,
    fetch: async (_url: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const message = init?.method === "POST" && typeof init.body === "string"
        ? JSON.parse(init.body) as { id?: number; method: string; params?: { protocolVersion?: string } }
        : undefined
      if (message?.method === "initialize") {
        server.connects.push(clock.unsafeCurrentTimeMillis())
        if (server.connects.length >= server.upFromConnect) server.down = false
      }
      if (server.down) {
        throw new TypeError("fetch failed", { cause: Object.assign(new Error("refused"), { code: "ECONNREFUSED" }) })
      }
      if (message === undefined) return new Response(null, { status: 405 })
      if (message.id === undefined) return new Response(null, { status: 202 })
      const reply = (body: object) =>
        new Response(JSON.stringify({ jsonrpc: "2.0", id: message.id, ...body }), {
          status: 200,
          headers: { "content-type": "application/json" }
        })
      switch (message.method) {
        case "initialize":
          return reply({
            result: {
              protocolVersion: message.params?.protocolVersion,
              capabilities: { tools: {} },
              serverInfo: { name: "fake", version: "0.0.0" }
            }
          })
        case "tools/call":
          server.calls.push(clock.unsafeCurrentTimeMillis())
          return server.hangCalls ? never : reply({ result: { content: [{ type: "text", text: "done" }] } })
        case "tools/list":
          return server.rpcError
            ? reply({ error: { code: -32603, message: "internal error" } })
            : reply({ result: { tools: [] } })
        default:
          return reply({ error: { code: -32601, message: "method not found" } })
      }
    }
  }
  return server
}

/** Waits, yielding to the event loop, until the fiber has ended or sleeps on the TestClock. */
const settled = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.repeat(
    Effect.gen(function*() {
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      return Option.isSome(yield* Fiber.poll(fiber)) || Chunk.isNonEmpty(yield* TestClock.sleeps())
    }),
    { until: (ready) => ready }
  )

/** Runs the fiber to its end, advancing the TestClock to each sleep's deadline; returns the exit and the sleeps. */
const drive = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  sleeps: ReadonlyArray<number> = []
): Effect.Effect<{ readonly exit: Exit.Exit<A, E>; readonly sleeps: ReadonlyArray<number> }> =>
  Effect.gen(function*() {
    yield* settled(fiber)
    const exit = yield* Fiber.poll(fiber)
    if (Option.isSome(exit)) return { exit: exit.value, sleeps }
    const now = yield* TestClock.currentTimeMillis
    const delay = Math.min(...Chunk.toReadonlyArray(yield* TestClock.sleeps())) - now
    yield* TestClock.adjust(delay)
    return yield* drive(fiber, [...sleeps, delay])
  })

describe("McpClient reconnects (TestClock)", () => {
  const options = (fetch: typeof globalThis.fetch, reconnect: Partial<McpClient.ReconnectOptions>) => ({
    url: "http://mcp.test/mcp",
    fetch,
    reconnect
  })

  it.scoped("reconnects maxAttempts times, each after a full-jitter backoff whose ceiling doubles up to the cap", () =>
    Effect.gen(function*() {
      const server = fakeServer(yield* Effect.clock)
      const client = yield* McpClient.makeUnauthenticated(
        options(server.fetch, { maxAttempts: 4, initialBackoff: "1 second", maxBackoff: "3 seconds" })
      )
      expect(server.connects).toEqual([0])
      server.down = true
      // draws: round(u × ceiling) with ceilings 1000, 2000, 3000 (capped), 3000
      const fiber = yield* Effect.fork(client.listTools.pipe(Effect.withRandom(Random.fixed([0.999, 0.5]))))
      const { exit, sleeps } = yield* drive(fiber)
      expect(sleeps).toEqual([999, 1000, 2997, 1500])
      expect(server.connects).toEqual([0, 999, 1999, 4996, 6496])
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(exit)
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "connect" })
    }))

  it.scoped("with the defaults (2 reconnects, 0.5 s then 1 s ceilings) a reconnect that succeeds retries the operation", () =>
    Effect.gen(function*() {
      const server = fakeServer(yield* Effect.clock)
      const client = yield* McpClient.makeUnauthenticated(options(server.fetch, {}))
      server.down = true
      server.upFromConnect = 3 // the first reconnect fails, the second (and last) one succeeds
      const fiber = yield* Effect.fork(client.listTools.pipe(Effect.withRandom(Random.fixed([0.999]))))
      const { exit, sleeps } = yield* drive(fiber)
      expect(sleeps).toEqual([500, 999])
      expect(server.connects).toEqual([0, 500, 1499])
      expect(exit).toStrictEqual(Exit.succeed([]))
    }))

  it.scoped("a JSON-RPC error from the server is not cured by reconnecting", () =>
    Effect.gen(function*() {
      const server = fakeServer(yield* Effect.clock)
      const client = yield* McpClient.makeUnauthenticated(options(server.fetch, { maxAttempts: 3 }))
      server.rpcError = true
      const fiber = yield* Effect.fork(client.listTools)
      const { exit, sleeps } = yield* drive(fiber)
      expect(sleeps).toEqual([])
      expect(server.connects).toEqual([0])
      expect(yield* Effect.flip(exit)).toMatchObject({ _tag: "McpRequestError", reason: "protocol" })
    }))

  it.scoped("a tools/call that times out is not sent again, ends after one tool_call_timeout; the next reconnects", () =>
    Effect.gen(function*() {
      const server = fakeServer(yield* Effect.clock)
      const client = yield* McpClient.makeUnauthenticated({
        ...options(server.fetch, { initialBackoff: "1 second" }),
        toolCallTimeout: "10 seconds"
      })
      server.hangCalls = true
      const fiber = yield* Effect.fork(client.callTool("slow").pipe(Effect.withRandom(Random.fixed([0.5]))))
      const { exit } = yield* drive(fiber)
      expect(yield* Effect.flip(exit)).toMatchObject({ _tag: "McpRequestError", reason: "timeout" })
      expect(yield* TestClock.currentTimeMillis).toBe(10_000) // not 2 × 10 s: no reconnect, no replay
      expect(server.calls).toEqual([0])
      server.hangCalls = false
      const next = yield* Effect.fork(client.callTool("slow").pipe(Effect.withRandom(Random.fixed([0.5]))))
      const { exit: ok, sleeps } = yield* drive(next)
      expect(Exit.isSuccess(ok)).toBe(true)
      expect(sleeps).toEqual([500]) // the broken session is replaced first, after the reconnect backoff
      expect(server.connects).toEqual([0, 10_500])
      expect(server.calls).toEqual([0, 10_500])
    }))

  it.scoped("tool_call_timeout bounds a tools/call whose reconnects keep being refused", () =>
    Effect.gen(function*() {
      const server = fakeServer(yield* Effect.clock)
      const client = yield* McpClient.makeUnauthenticated({
        ...options(server.fetch, { maxAttempts: 10, initialBackoff: "2 seconds", maxBackoff: "2 seconds" }),
        toolCallTimeout: "5 seconds"
      })
      server.down = true
      const fiber = yield* Effect.fork(client.callTool("any").pipe(Effect.withRandom(Random.fixed([0.999]))))
      const { exit } = yield* drive(fiber)
      expect(yield* Effect.flip(exit)).toMatchObject({ _tag: "McpRequestError", reason: "timeout" })
      expect(yield* TestClock.currentTimeMillis).toBe(5_000)
      expect(server.connects).toEqual([0, 1998, 3996])
      expect(server.calls).toEqual([])
    }))

  it.scoped("a refused tools/call is sent again once the server is back", () =>
    Effect.gen(function*() {
      const server = fakeServer(yield* Effect.clock)
      const client = yield* McpClient.makeUnauthenticated(options(server.fetch, { initialBackoff: "1 second" }))
      server.down = true
      server.upFromConnect = 2
      const fiber = yield* Effect.fork(client.callTool("any").pipe(Effect.withRandom(Random.fixed([0.5]))))
      const { exit } = yield* drive(fiber)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(server.connects).toEqual([0, 500])
      expect(server.calls).toEqual([500])
    }))
})

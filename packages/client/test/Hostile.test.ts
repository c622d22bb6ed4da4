/**
 * The MCP client against hostile and broken servers (issue 12), each a real server on 127.0.0.1 started by the test:
 * bounded reads, tool calls sent at most once, server text scrubbed, local failures classified, the Promise API after
 * close and with absurd lifetimes. Real time: the assertions hold whatever the scheduling (counts and outcomes, never
 * wall time).
 */
import { describe, expect, it } from "@effect/vitest"
import * as McpClient from "@mcp-auth/client/McpClient"
import { AuthClosedError, createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FaultTokenEndpoint, HostileServer } from "@mcp-auth/testing"
import { Effect, Layer } from "effect"
import type * as http from "node:http"
import * as net from "node:net"

const LIMIT = 256 * 1024

interface RpcMessage {
  readonly id?: number | string
  readonly method: string
  readonly params?: { readonly protocolVersion?: string; readonly name?: string }
}

const rpcOf = (record: HostileServer.RequestRecord): RpcMessage | undefined => {
  if (record.method !== "POST") return undefined
  try {
    return JSON.parse(record.body) as RpcMessage
  } catch {
    return undefined
  }
}

type OnCall = (
  res: http.ServerResponse,
  message: RpcMessage,
  record: HostileServer.RequestRecord
) => void | Promise<void>

const answer = (res: http.ServerResponse, id: RpcMessage["id"], result: unknown, headers = {}) => {
  res.writeHead(200, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify({ jsonrpc: "2.0", id, result }))
}

const echoResult = (message: RpcMessage) => ({ content: [{ type: "text", text: `ran ${message.params?.name}` }] })

/**
 * A hand-written MCP endpoint (JSON responses, a session id per `initialize`, no GET stream) whose `tools/call`
 * answers are the test's: `onCall` is replaced by each step.
 */
const hostileMcp = Effect.gen(function*() {
  let sessions = 0
  const state: { onCall: OnCall; onGet: (res: http.ServerResponse) => void } = {
    onCall: (res, message) => answer(res, message.id, echoResult(message)),
    onGet: (res) => void res.writeHead(405).end()
  }
  const server = yield* HostileServer.make(async (record, res) => {
    if (record.method === "GET") return state.onGet(res)
    if (record.method === "DELETE") return void res.writeHead(200).end()
    const message = rpcOf(record)
    if (message === undefined) return void res.writeHead(400).end()
    if (message.id === undefined) return void res.writeHead(202).end()
    switch (message.method) {
      case "initialize":
        return answer(res, message.id, {
          protocolVersion: message.params?.protocolVersion,
          capabilities: { tools: {} },
          serverInfo: { name: "hostile", version: "0.0.0" }
        }, { "mcp-session-id": `session-${++sessions}` })
      case "tools/list":
        return answer(res, message.id, { tools: [{ name: "echo", inputSchema: { type: "object" } }] })
      case "tools/call":
        return state.onCall(res, message, record)
      default:
        res.writeHead(200, { "content-type": "application/json" })
        return void res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "no" } }))
    }
  })
  const ofMethod = (method: string) => server.requests.filter((r) => rpcOf(r)?.method === method)
  return {
    server,
    url: `${server.origin}/mcp`,
    onCall: (f: OnCall) => {
      state.onCall = f
    },
    onGet: (f: (res: http.ServerResponse) => void) => {
      state.onGet = f
    },
    calls: () => ofMethod("tools/call"),
    initializes: () => ofMethod("initialize").length
  }
})

/** The bytes the server may have written before the client closed: the limit, one chunk, and the kernel's buffers. */
const bound = LIMIT + HostileServer.defaultChunkBytes + HostileServer.socketBufferBytes()

describe("bounded MCP reads", () => {
  for (const kind of ["json", "sse"] as const) {
    it.scopedLive(`an endless tools/call answer (${kind}) fails with too_large after at most the limit`, () =>
      Effect.gen(function*() {
        const mcp = yield* hostileMcp
        const written: Array<Promise<number>> = []
        mcp.onCall((res, message) => {
          written.push(HostileServer.endless(
            res,
            kind === "json"
              ? { prefix: `{"jsonrpc":"2.0","id":${message.id},"result":{"content":[{"type":"text","text":"` }
              : { headers: { "content-type": "text/event-stream" }, prefix: "event: message\ndata: " }
          ))
        })
        // a long timeout: only the cut can end the call before the test's own timeout
        const client = yield* McpClient.makeUnauthenticated({
          url: mcp.url,
          maxResponseBytes: LIMIT,
          toolCallTimeout: "10 minutes"
        })
        const error = yield* Effect.flip(client.callTool("echo"))
        expect(error).toMatchObject({ _tag: "McpRequestError", reason: "too_large", operation: "tools/call" })
        expect(error.message).toContain("max_response_bytes")
        expect(written).toHaveLength(1)
        // resolves once the client closed the connection
        const bytes = yield* Effect.promise(() => written[0]!)
        expect(bytes).toBeGreaterThan(LIMIT)
        expect(bytes).toBeLessThanOrEqual(bound)
        // the session is still good: the next call works, on the same session
        mcp.onCall((res, message) => answer(res, message.id, echoResult(message)))
        const ok = yield* client.callTool("echo")
        expect(ok.content).toEqual([{ type: "text", text: "ran echo" }])
        expect(mcp.calls()).toHaveLength(2)
      }))
  }

  it.scopedLive("an endless event on the GET stream is cut; the session is replaced before the next call", () =>
    Effect.gen(function*() {
      const mcp = yield* hostileMcp
      let written: Promise<number> | undefined
      mcp.onGet((res) => {
        written = HostileServer.endless(res, {
          headers: { "content-type": "text/event-stream" },
          prefix: "event: message\ndata: "
        })
        mcp.onGet((res) => void res.writeHead(405).end())
      })
      const client = yield* McpClient.makeUnauthenticated({
        url: mcp.url,
        maxResponseBytes: LIMIT,
        reconnect: { initialBackoff: 0 }
      })
      // the SDK opens the GET stream in the background once connected
      while (written === undefined) yield* Effect.sleep("5 millis")
      const bytes = yield* Effect.promise(() => written!)
      expect(bytes).toBeGreaterThan(LIMIT)
      expect(bytes).toBeLessThanOrEqual(bound)
      const ok = yield* client.callTool("echo")
      expect(ok.content).toEqual([{ type: "text", text: "ran echo" }])
      expect(mcp.calls().map((r) => r.headers["mcp-session-id"])).toEqual(["session-2"])
    }))

  it.scopedLive("many SSE events, each under the limit, pass even when their total is far above it", () =>
    Effect.gen(function*() {
      const mcp = yield* hostileMcp
      mcp.onCall((res, message) => {
        res.writeHead(200, { "content-type": "text/event-stream" })
        const filler = JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info" } })
        const event = `event: message\ndata: ${filler}\n: ${"x".repeat(64 * 1024)}\n\n`
        for (let i = 0; i < 12; i++) res.write(event)
        res.end(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: message.id, result: echoResult(message) })}\n\n`
        )
      })
      const client = yield* McpClient.makeUnauthenticated({ url: mcp.url, maxResponseBytes: 128 * 1024 })
      const ok = yield* client.callTool("echo")
      expect(ok.content).toEqual([{ type: "text", text: "ran echo" }])
    }))
})

/** A local port nothing listens on. */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const probe = net.createServer()
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })

describe("a tools/call is sent at most once", () => {
  for (const how of ["before any answer", "mid SSE answer"] as const) {
    it.scopedLive(`the connection closes ${how}: closed, not sent again, the next call on a new session`, () =>
      Effect.gen(function*() {
        const mcp = yield* hostileMcp
        mcp.onCall((res) => {
          if (how === "mid SSE answer") {
            res.writeHead(200, { "content-type": "text/event-stream" })
            res.write("event: message\ndata: {\"jsonrpc\":")
            setTimeout(() => res.socket?.destroy(), 20)
          } else {
            res.socket?.destroy()
          }
        })
        const client = yield* McpClient.makeUnauthenticated({
          url: mcp.url,
          toolCallTimeout: "10 minutes",
          reconnect: { initialBackoff: 0 }
        })
        const error = yield* Effect.flip(client.callTool("echo"))
        expect(error).toMatchObject({ _tag: "McpRequestError", reason: "closed", operation: "tools/call" })
        expect(error.message).toContain("not sent again")
        expect(mcp.calls()).toHaveLength(1)
        expect(mcp.initializes()).toBe(1)
        mcp.onCall((res, message) => answer(res, message.id, echoResult(message)))
        const ok = yield* client.callTool("echo")
        expect(ok.content).toEqual([{ type: "text", text: "ran echo" }])
        expect(mcp.calls().map((r) => r.headers["mcp-session-id"])).toEqual(["session-1", "session-2"])
      }))
  }

  it.scopedLive("a tools/call that times out is not sent again; the next call runs on a new session", () =>
    Effect.gen(function*() {
      const mcp = yield* hostileMcp
      mcp.onCall(() => undefined) // never answers
      const client = yield* McpClient.makeUnauthenticated({
        url: mcp.url,
        // the timeout also bounds the reconnect's initialize: long enough for a loaded 2-core machine (the exact
        // bound is the TestClock test in McpClient.test.ts)
        toolCallTimeout: "5 seconds",
        reconnect: { initialBackoff: 0 }
      })
      const error = yield* Effect.flip(client.callTool("echo"))
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "timeout", operation: "tools/call" })
      expect(mcp.calls()).toHaveLength(1)
      mcp.onCall((res, message) => answer(res, message.id, echoResult(message)))
      yield* client.callTool("echo")
      expect(mcp.calls().map((r) => r.headers["mcp-session-id"])).toEqual(["session-1", "session-2"])
    }))

  it.scopedLive("a refused connection proves the call never left: it is sent again after reconnecting", () =>
    Effect.gen(function*() {
      const mcp = yield* hostileMcp
      const down = yield* Effect.promise(closedPort)
      let refuseNext = false
      // the server is "down" for one request: it goes to a port nothing listens on (a real ECONNREFUSED)
      const fetch: typeof globalThis.fetch = (input, init) => {
        if (refuseNext && typeof init?.body === "string" && init.body.includes("tools/call")) {
          refuseNext = false
          const url = new URL(input instanceof Request ? input.url : input)
          url.port = String(down)
          return globalThis.fetch(url, init)
        }
        return globalThis.fetch(input, init)
      }
      const client = yield* McpClient.makeUnauthenticated({ url: mcp.url, fetch, reconnect: { initialBackoff: 0 } })
      refuseNext = true
      const ok = yield* client.callTool("echo")
      expect(ok.content).toEqual([{ type: "text", text: "ran echo" }])
      expect(mcp.calls().map((r) => r.headers["mcp-session-id"])).toEqual(["session-2"])
    }))
})

const BEARER = "bearer-Secret.Token_123"
const SERVICE = "service-Secret-Token-456"
const ESC = "\u001b"
const CSI = "\u009b"

const authLayer = (tokenUrl: string) => {
  const config = ServiceAccountConfig.decodeSync({
    client_id: "svc",
    client_secret: "client-secret",
    token_url: tokenUrl,
    allow_insecure_http: true,
    service_token: { token: SERVICE }
  })
  return AuthHeaders.layer.pipe(
    Layer.provide(ServiceToken.layerFromConfig(config)),
    Layer.provide(TokenProvider.layer(config).pipe(Layer.provide(TokenHttpClient.layer())))
  )
}

const expectClean = (error: unknown) => {
  const texts = [
    (error as Error).message,
    JSON.stringify(error),
    String(error),
    JSON.stringify((error as { cause?: unknown }).cause ?? null),
    String((error as { cause?: unknown }).cause)
  ]
  for (const text of texts) {
    expect(text).not.toContain(BEARER)
    expect(text).not.toContain(SERVICE)
    expect(text).not.toContain(Buffer.from(BEARER).toString("base64").replace(/=+$/, ""))
    expect(text).not.toContain(ESC)
    expect(text).not.toContain(CSI)
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
  }
}

describe("server text is scrubbed", () => {
  it.scopedLive("a 500 body echoing the bearer token, the service token and escape sequences", () =>
    Effect.gen(function*() {
      const tokens = yield* FaultTokenEndpoint.make()
      tokens.enqueue(FaultTokenEndpoint.success({ accessToken: BEARER }))
      const mcp = yield* hostileMcp
      mcp.onCall((res, _message, record) => {
        res.writeHead(500, { "content-type": "text/plain" })
        res.end(
          `${ESC}[2J${ESC}]0;owned${ESC}\\ you sent ${record.headers.authorization} and ` +
            `${record.headers["x-service-account-token"]} (b64 ${Buffer.from(BEARER).toString("base64")})${ESC}[31m`
        )
      })
      const client = yield* McpClient.make({ url: mcp.url, reconnect: { enabled: false } }).pipe(
        Effect.provide(yield* Layer.build(authLayer(tokens.url)))
      )
      const error = yield* Effect.flip(client.callTool("echo"))
      expect(error._tag).toBe("McpRequestError")
      expect(mcp.calls()).toHaveLength(1)
      expect(mcp.calls()[0]!.headers.authorization).toBe(`Bearer ${BEARER}`) // the server did get the secrets
      expect(error.message).toContain("<redacted>")
      expectClean(error)
    }))

  it.scopedLive("a 403 WWW-Authenticate error_description echoing the secrets and escape sequences", () =>
    Effect.gen(function*() {
      const tokens = yield* FaultTokenEndpoint.make()
      tokens.enqueue(FaultTokenEndpoint.success({ accessToken: BEARER }))
      const mcp = yield* hostileMcp
      mcp.onCall((res, _message, record) => {
        // written raw (Node's http refuses control characters in header values); undici refuses C0 characters such
        // as ESC in a header but lets C1 ones through: U+009B is CSI, an escape sequence on 8-bit terminals
        const description = `token ${record.headers.authorization} with ${
          record.headers["x-service-account-token"]
        } ${CSI}31mrefused${CSI}0m`
        res.socket?.end(
          "HTTP/1.1 403 Forbidden\r\n" +
            `WWW-Authenticate: Bearer error="insufficient_scope${CSI}1m", error_description="${description}"\r\n` +
            "content-length: 0\r\nconnection: close\r\n\r\n",
          "latin1"
        )
      })
      const client = yield* McpClient.make({ url: `${mcp.url}?api_key=query-secret`, reconnect: { enabled: false } })
        .pipe(Effect.provide(yield* Layer.build(authLayer(tokens.url))))
      const error = yield* Effect.flip(client.callTool("echo"))
      expect(error._tag).toBe("McpForbiddenError")
      expect(error).toMatchObject({ url: `${mcp.url}?<redacted>` })
      expect((error as { errorDescription?: string }).errorDescription).toContain("<redacted>")
      expect(JSON.stringify(error)).not.toContain("query-secret")
      expectClean(error)
    }))

  it.effect("a server URL with user info is refused; the password is not printed", () =>
    Effect.gen(function*() {
      for (
        const make of [
          McpClient.makeUnauthenticated,
          (options: McpClient.Options) =>
            McpClient.make(options).pipe(Effect.provide(authLayer("http://127.0.0.1:1/token")))
        ]
      ) {
        const error = yield* Effect.flip(Effect.scoped(make({ url: "http://user:hunter2@127.0.0.1:1/mcp" })))
        expect(error).toMatchObject({ _tag: "ConfigurationError" })
        expect(error.message).toContain("server.url")
        expect(JSON.stringify(error) + error.message).not.toContain("hunter2")
      }
    }))
})

describe("local failures are not connection failures", () => {
  it.scopedLive("deeply nested arguments: invalid_request, no reconnect, nothing sent", () =>
    Effect.gen(function*() {
      const mcp = yield* hostileMcp
      const client = yield* McpClient.makeUnauthenticated({ url: mcp.url, reconnect: { initialBackoff: 0 } })
      const nested: Record<string, unknown> = {}
      let cursor = nested
      for (let i = 0; i < 100_000; i++) {
        const next: Record<string, unknown> = {}
        cursor.a = next
        cursor = next
      }
      const error = yield* Effect.flip(client.callTool("echo", nested))
      expect(error).toMatchObject({ _tag: "McpRequestError", reason: "invalid_request", operation: "tools/call" })
      expect(error.message).not.toContain("Unable to connect")
      expect(error.message).toContain("could not be serialized")
      const circular: Record<string, unknown> = {}
      circular.self = circular
      expect(yield* Effect.flip(client.callTool("echo", circular))).toMatchObject({ reason: "invalid_request" })
      expect(mcp.calls()).toHaveLength(0)
      yield* client.callTool("echo")
      expect(mcp.initializes()).toBe(1)
    }))
})

describe("the Promise API", () => {
  it("after close(), every method rejects with an AuthClosedError; so does a call close() ended", async () => {
    const tokens = await FaultTokenEndpoint.start()
    try {
      tokens.enqueue(FaultTokenEndpoint.hang())
      const auth = createServiceAccountAuth({
        client_id: "svc",
        client_secret: "secret",
        token_url: tokens.url,
        allow_insecure_http: true
      }, { serverUrl: "http://127.0.0.1:1/mcp", logLevel: "none" })
      const inFlight = auth.getToken()
      inFlight.catch(() => undefined)
      while (tokens.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      await auth.close()
      const outcomes = await Promise.allSettled([
        inFlight,
        auth.state(),
        auth.invalidate("tok"),
        auth.getToken(),
        auth.getHeaders(),
        auth.fetch("http://127.0.0.1:1/mcp")
      ])
      for (const outcome of outcomes) {
        expect(outcome.status).toBe("rejected")
        const reason = (outcome as PromiseRejectedResult).reason
        expect(reason).toBeInstanceOf(Error)
        expect(reason).toBeInstanceOf(AuthClosedError)
        expect(reason.message).toMatch(/closed/)
      }
    } finally {
      await tokens.close()
    }
  })

  it("expires_in: 1e20 from a hostile token endpoint still gives a valid expiresAt", async () => {
    const server = await HostileServer.start((_record, res) => {
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{\"access_token\":\"tok-huge\",\"token_type\":\"Bearer\",\"expires_in\":1e20}")
    })
    const auth = createServiceAccountAuth({
      client_id: "svc",
      client_secret: "secret",
      token_url: `${server.origin}/token`,
      allow_insecure_http: true
    }, { logLevel: "none" })
    try {
      const token = await auth.getToken()
      expect(token.accessToken).toBe("tok-huge")
      expect(Number.isFinite(token.expiresAt.getTime())).toBe(true)
      expect(token.expiresAt.getTime()).toBeGreaterThan(Date.now())
    } finally {
      await auth.close()
      await server.close()
    }
  })
})

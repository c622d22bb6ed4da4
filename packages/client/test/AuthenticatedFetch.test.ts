import { describe, expect, it } from "@effect/vitest"
import * as AuthenticatedFetch from "@mcp-auth/client/AuthenticatedFetch"
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import type * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import type { RequestContext } from "@mcp-auth/service-account/RequestContext"
import { InvalidCredentialsError } from "@mcp-auth/service-account/ServiceAccountError"
import { Effect, Redacted, Runtime } from "effect"
import { parseChallenge } from "../src/internal/challenge.js"

interface Sent {
  readonly url: string
  readonly headers: Record<string, string>
  readonly body: unknown
}

/**
 * A stub AuthHeaders handing out tok-1, tok-2, … (a new one after each successful invalidation). Like the real
 * provider, it holds back a drop of a token fetched after the last drop (`drops` drops are allowed; default 1).
 */
const stubAuth = (options: { fail?: unknown; throttled?: boolean; drops?: number } = {}) => {
  let drops = 0
  let generation = 1
  const contexts: Array<RequestContext> = []
  const invalidated: Array<string> = []
  const current = () => AccessToken.make({ token: `tok-${generation}`, issuedAt: 0, expiresInSeconds: 3600 })
  const auth: AuthHeaders.AuthHeaders = {
    peek: () => undefined,
    peekRecord: () => undefined,
    forRequest: (context) =>
      Effect.suspend(() => {
        contexts.push(context)
        if (options.fail !== undefined) return Effect.fail(options.fail as InvalidCredentialsError)
        const token = current()
        return Effect.succeed({
          token,
          headers: [
            ["Authorization", Redacted.make(`Bearer ${Redacted.value(token.token)}`)],
            ["X-Service-Account-Token", Redacted.make("svc")]
          ] as const
        })
      }),
    invalidate: (rejected) =>
      Effect.sync(() => {
        invalidated.push(Redacted.value(rejected.token))
        if (options.throttled) return { _tag: "Throttled", retryAfterMillis: 400 } as const
        if (Redacted.value(rejected.token) !== `tok-${generation}`) return { _tag: "NotCurrent" } as const
        if (drops >= (options.drops ?? 1)) return { _tag: "Throttled", retryAfterMillis: 400 } as const
        drops++
        generation++
        return { _tag: "Dropped" } as const
      })
  }
  return { auth, contexts, invalidated }
}

/** A base fetch answering by a function of the bearer token, recording what it was sent. */
const stubFetch = (answer: (bearer: string | undefined, url: string) => Response) => {
  const sent: Array<Sent> = []
  const fetch: AuthenticatedFetch.FetchLike = async (url, init) => {
    const headers: Record<string, string> = {}
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v))
    sent.push({ url: String(url), headers, body: init?.body })
    return answer(headers["authorization"], String(url))
  }
  return { fetch, sent }
}

const make = (auth: AuthHeaders.AuthHeaders, base: AuthenticatedFetch.FetchLike, headers?: Record<string, string>) =>
  AuthenticatedFetch.makeWith(auth, Runtime.defaultRuntime, {
    serverUrl: "https://mcp.example.com/mcp",
    fetch: base,
    ...(headers ? { headers } : {})
  })

const ok = () => new Response("{}", { status: 200 })
const rpc = (method: string, params: unknown = {}) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, params })

describe("AuthenticatedFetch", () => {
  it.live("adds the auth headers to requests for the MCP endpoint only", () =>
    Effect.promise(async () => {
      const { auth } = stubAuth()
      const { fetch, sent } = stubFetch(ok)
      const authed = make(auth, fetch)
      await authed("https://mcp.example.com/mcp", { method: "POST", body: rpc("tools/list") })
      await authed(new URL("https://mcp.example.com/mcp/sub?x=1"), { method: "GET" })
      await authed("https://other.example.com/mcp", { method: "POST" })
      await authed("https://mcp.example.com/oauth/token", { method: "POST" })
      await authed("https://mcp.example.com/mcpx", { method: "POST" })
      expect(sent.map((s) => [s.url, s.headers["authorization"], s.headers["x-service-account-token"]])).toEqual([
        ["https://mcp.example.com/mcp", "Bearer tok-1", "svc"],
        ["https://mcp.example.com/mcp/sub?x=1", "Bearer tok-1", "svc"],
        ["https://other.example.com/mcp", undefined, undefined],
        ["https://mcp.example.com/oauth/token", undefined, undefined],
        ["https://mcp.example.com/mcpx", undefined, undefined]
      ])
    }))

  it.live("passes the request context (method, MCP method, tool) to the auth headers", () =>
    Effect.promise(async () => {
      const { auth, contexts } = stubAuth()
      const authed = make(auth, stubFetch(ok).fetch)
      await authed("https://mcp.example.com/mcp", {
        method: "post",
        body: rpc("tools/call", { name: "jira_get_issue" })
      })
      await authed("https://mcp.example.com/mcp", { method: "DELETE" })
      expect(contexts.map((c) => [c.method, c.mcpMethod, c.toolName])).toEqual([
        ["POST", "tools/call", "jira_get_issue"],
        ["DELETE", undefined, undefined]
      ])
    }))

  it.live("keeps the SDK's headers and custom headers, and auth headers win", () =>
    Effect.promise(async () => {
      const { auth } = stubAuth()
      const { fetch, sent } = stubFetch(ok)
      const authed = make(auth, fetch, { "X-Team": "platform", Authorization: "Bearer custom-should-lose" })
      await authed("https://mcp.example.com/mcp", {
        method: "POST",
        headers: new Headers({ "mcp-session-id": "s-1", accept: "application/json, text/event-stream" })
      })
      expect(sent[0]!.headers).toMatchObject({
        "x-team": "platform",
        "mcp-session-id": "s-1",
        accept: "application/json, text/event-stream",
        authorization: "Bearer tok-1"
      })
    }))

  it.live("on a 401: invalidates the rejected token and replays once with a fresh one", () =>
    Effect.promise(async () => {
      const { auth, invalidated } = stubAuth()
      const { fetch, sent } = stubFetch((bearer) => new Response("", { status: bearer === "Bearer tok-1" ? 401 : 200 }))
      const response = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST", body: rpc("ping") })
      expect(response.status).toBe(200)
      expect(invalidated).toEqual(["tok-1"])
      expect(sent.map((s) => [s.headers["authorization"], s.body])).toEqual([
        ["Bearer tok-1", rpc("ping")],
        ["Bearer tok-2", rpc("ping")]
      ])
    }))

  it.live("a second 401 is a typed McpUnauthorizedError with the server's challenge, never a loop", () =>
    Effect.promise(async () => {
      const { auth } = stubAuth()
      const { fetch, sent } = stubFetch(() =>
        new Response("", {
          status: 401,
          headers: { "www-authenticate": "Bearer error=\"invalid_token\", error_description=\"audience mismatch\"" }
        })
      )
      const error = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST", body: "{}" }).catch((e) =>
        e
      )
      expect(error).toMatchObject({
        _tag: "McpUnauthorizedError",
        error: "invalid_token",
        errorDescription: "audience mismatch"
      })
      expect(error.message).toContain("rejected a freshly fetched token (invalid_token: audience mismatch)")
      expect(sent).toHaveLength(2)
    }))

  it.live("a replay that meets a token revoked with the first is dropped too and replayed again, three requests at most", () =>
    Effect.promise(async () => {
      const { auth, invalidated } = stubAuth({ drops: 5 })
      const { fetch, sent } = stubFetch((bearer) => new Response("", { status: bearer === "Bearer tok-3" ? 200 : 401 }))
      const response = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST", body: rpc("ping") })
      expect(response.status).toBe(200)
      expect(invalidated).toEqual(["tok-1", "tok-2"])
      expect(sent.map((s) => s.headers["authorization"])).toEqual(["Bearer tok-1", "Bearer tok-2", "Bearer tok-3"])
      // a server refusing every token, with every drop allowed: still three requests, then the typed error
      const always = stubAuth({ drops: 5 })
      const refusing = stubFetch(() => new Response("", { status: 401 }))
      const error = await make(always.auth, refusing.fetch)("https://mcp.example.com/mcp", {
        method: "POST",
        body: "{}"
      })
        .catch((e) => e)
      expect(error).toMatchObject({ _tag: "McpUnauthorizedError" })
      expect(refusing.sent).toHaveLength(3)
    }))

  it.live("a 401 whose drop is held back by the once-a-second limit is thrown at once: a replay would resend it", () =>
    Effect.promise(async () => {
      const { auth, invalidated } = stubAuth({ throttled: true })
      const { fetch, sent } = stubFetch(() => new Response("", { status: 401 }))
      const error = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST", body: "{}" }).catch((e) =>
        e
      )
      expect(error).toMatchObject({ _tag: "McpUnauthorizedError" })
      expect(sent).toHaveLength(1)
      expect(invalidated).toEqual(["tok-1"])
    }))

  it.live("a 403 is not retried and is a typed McpForbiddenError", () =>
    Effect.promise(async () => {
      const { auth, invalidated } = stubAuth()
      const { fetch, sent } = stubFetch(() => new Response("{}", { status: 403 }))
      const error = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST", body: "{}" }).catch((e) =>
        e
      )
      expect(error).toMatchObject({ _tag: "McpForbiddenError" })
      expect(sent).toHaveLength(1)
      expect(invalidated).toEqual([])
    }))

  it.live("a request whose body cannot be replayed is not retried after a 401", () =>
    Effect.promise(async () => {
      const { auth, invalidated } = stubAuth()
      const { fetch, sent } = stubFetch(() => new Response("", { status: 401 }))
      const body = new ReadableStream({ start: (c) => c.close() })
      const error = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST", body }).catch((e) => e)
      expect(error).toMatchObject({ _tag: "McpUnauthorizedError" })
      expect(sent).toHaveLength(1)
      expect(invalidated).toEqual(["tok-1"]) // the next request still gets a fresh token
    }))

  it.live("token failures are thrown as the typed error instance itself", () =>
    Effect.promise(async () => {
      const failure = new InvalidCredentialsError({ tokenUrl: "https://idp.example.com/token", status: 401 })
      const { auth } = stubAuth({ fail: failure })
      const { fetch, sent } = stubFetch(ok)
      const error = await make(auth, fetch)("https://mcp.example.com/mcp", { method: "POST" }).catch((e) => e)
      expect(error).toBe(failure)
      expect(sent).toHaveLength(0)
    }))

  it("parses RFC 6750 challenges", () => {
    expect(
      parseChallenge(
        "Bearer realm=\"x\", error=\"invalid_token\", error_description=\"a \\\"b\\\"\""
      )
    )
      .toEqual({ error: "invalid_token", errorDescription: "a \\\"b\\\"" })
    expect(parseChallenge(null)).toEqual({})
  })

  it.live("never follows redirects itself: a hop to another origin gets no credentials", () =>
    Effect.promise(async () => {
      const { auth } = stubAuth()
      const redirects: Array<RequestRedirect | undefined> = []
      const base: AuthenticatedFetch.FetchLike = async (_url, init) => {
        redirects.push(init?.redirect)
        return new Response(null, { status: 307, headers: { location: "https://evil.example.com/steal" } })
      }
      const response = await make(auth, base)("https://mcp.example.com/mcp", { method: "POST", body: "{}" })
      expect(response.status).toBe(307)
      expect(redirects).toEqual(["manual"])
    }))

  it("refuses to send credentials over plain http, except to loopback", () => {
    const { auth } = stubAuth()
    const build = (serverUrl: string) => () => AuthenticatedFetch.makeWith(auth, Runtime.defaultRuntime, { serverUrl })
    expect(build("http://mcp.example.com/mcp")).toThrow(/refusing to send credentials to http:\/\/mcp\.example\.com/)
    expect(build("http://127.0.0.1:8080/mcp")).not.toThrow()
    expect(build("http://localhost:8080/mcp")).not.toThrow()
  })

  it.live("the origin scope (SSE) covers the endpoint the server announces on the same origin", () =>
    Effect.promise(async () => {
      const { auth } = stubAuth()
      const { fetch, sent } = stubFetch(ok)
      const authed = AuthenticatedFetch.makeWith(auth, Runtime.defaultRuntime, {
        serverUrl: "https://mcp.example.com/sse",
        fetch,
        scope: "origin"
      })
      await authed("https://mcp.example.com/messages?sessionId=1", { method: "POST", body: "{}" })
      await authed("https://other.example.com/messages", { method: "POST", body: "{}" })
      expect(sent.map((s) => s.headers["authorization"])).toEqual(["Bearer tok-1", undefined])
    }))
})

describe("createServiceAccountAuth", () => {
  it.live("rejects every call after close()", () =>
    Effect.promise(async () => {
      const { createServiceAccountAuth } = await import("@mcp-auth/client")
      const auth = createServiceAccountAuth({
        client_id: "id",
        client_secret: "secret",
        token_url: "https://idp.example.com/token"
      }, { serverUrl: "https://mcp.example.com/mcp" })
      await auth.close()
      await expect(auth.getToken()).rejects.toThrow("this auth was closed")
      await expect(auth.getHeaders()).rejects.toThrow("this auth was closed")
      await expect(auth.fetch("https://mcp.example.com/mcp")).rejects.toThrow("this auth was closed")
    }))
})

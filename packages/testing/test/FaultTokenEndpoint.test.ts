import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as BasicCredentials from "../src/BasicCredentials.js"
import * as FaultTokenEndpoint from "../src/FaultTokenEndpoint.js"
import * as TestPki from "../src/TestPki.js"
import type { Started } from "../src/TestServer.js"
import { errorCode, fetchTrusting, sleep } from "./helpers.js"

const post = (url: string, init: { headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...init.headers },
    body: init.body ?? "grant_type=client_credentials",
    ...(init.signal === undefined ? {} : { signal: init.signal })
  })

const withEndpoint = async (
  options: FaultTokenEndpoint.Options,
  body: (endpoint: Started<FaultTokenEndpoint.FaultTokenEndpoint>) => Promise<void>
) => {
  const endpoint = await FaultTokenEndpoint.start(options)
  try {
    await body(endpoint)
  } finally {
    await endpoint.close()
  }
}

describe("FaultTokenEndpoint", () => {
  it("answers scripted steps in order, then the default success with unique tokens", () =>
    withEndpoint({}, async (endpoint) => {
      const date = new Date(Date.now() + 120_000)
      endpoint.enqueue(
        FaultTokenEndpoint.tooManyRequests(7),
        FaultTokenEndpoint.serviceUnavailable(date),
        FaultTokenEndpoint.badGatewayHtml(),
        FaultTokenEndpoint.nonJsonSuccess(),
        FaultTokenEndpoint.macTokenType(),
        FaultTokenEndpoint.stringExpiresIn(),
        FaultTokenEndpoint.missingAccessToken(),
        FaultTokenEndpoint.invalidClient(401),
        FaultTokenEndpoint.invalidClient(400),
        FaultTokenEndpoint.success({ scope: "mcp:tools", expiresIn: 60 }),
        { status: 418, headers: { "x-custom": "1" }, body: "teapot" }
      )
      expect(endpoint.pending).toBe(11)

      const r1 = await post(endpoint.url)
      expect(r1.status).toBe(429)
      expect(r1.headers.get("retry-after")).toBe("7")
      expect(await r1.json()).toEqual({ error: "slow_down" })

      const r2 = await post(endpoint.url)
      expect(r2.status).toBe(503)
      expect(r2.headers.get("retry-after")).toBe(date.toUTCString())
      expect(new Date(r2.headers.get("retry-after")!).getTime()).toBe(Math.floor(date.getTime() / 1000) * 1000)

      const r3 = await post(endpoint.url)
      expect(r3.status).toBe(502)
      expect(r3.headers.get("content-type")).toBe("text/html")
      expect(await r3.text()).toMatch(/<html>/)

      const r4 = await post(endpoint.url)
      expect(r4.status).toBe(200)
      await expect(r4.json()).rejects.toThrow()

      expect(await (await post(endpoint.url)).json()).toEqual({
        access_token: "tok-1",
        token_type: "mac",
        expires_in: 3600
      })
      expect(await (await post(endpoint.url)).json()).toEqual({
        access_token: "tok-2",
        token_type: "Bearer",
        expires_in: "3600"
      })
      expect(await (await post(endpoint.url)).json()).toEqual({ token_type: "Bearer", expires_in: 3600 })

      const r8 = await post(endpoint.url)
      expect(r8.status).toBe(401)
      expect(r8.headers.get("www-authenticate")).toMatch(/^Basic/)
      expect((await r8.json()).error).toBe("invalid_client")
      const r9 = await post(endpoint.url)
      expect(r9.status).toBe(400)
      expect((await r9.json()).error).toBe("invalid_client")

      expect(await (await post(endpoint.url)).json()).toEqual({
        access_token: "tok-3",
        token_type: "Bearer",
        expires_in: 60,
        scope: "mcp:tools"
      })
      const r11 = await post(endpoint.url)
      expect(r11.status).toBe(418)
      expect(r11.headers.get("x-custom")).toBe("1")
      expect(await r11.text()).toBe("teapot")

      expect(endpoint.pending).toBe(0)
      expect((await (await post(endpoint.url)).json()).access_token).toBe("tok-4")
      expect((await (await post(endpoint.url)).json()).access_token).toBe("tok-5")
      expect(endpoint.count).toBe(13)
      expect(endpoint.issuedTokens).toEqual(["tok-1", "tok-2", "tok-3", "tok-4", "tok-5"])
      expect(endpoint.requests.map((r) => r.status)).toEqual([
        429,
        503,
        502,
        200,
        200,
        200,
        200,
        401,
        400,
        200,
        418,
        200,
        200
      ])
      expect(endpoint.requests.map((r) => r.outcome).slice(0, 5)).toEqual([
        "reply 429",
        "reply 503",
        "reply 502",
        "reply 200",
        "issue tok-1"
      ])
    }))

  it("records method, path, lowercase headers, the form body and the decoded Basic credential", () =>
    withEndpoint({}, async (endpoint) => {
      await post(endpoint.url, {
        headers: { authorization: BasicCredentials.encode("clïent:1 +%", "sëcret"), "X-Extra": "yes" },
        body: "grant_type=client_credentials&scope=mcp%3Atools+jira&resource=http%3A%2F%2F127.0.0.1%2Fmcp"
      })
      const [request] = endpoint.requests
      expect(request!.method).toBe("POST")
      expect(request!.path).toBe("/token")
      expect(request!.headers["x-extra"]).toBe("yes")
      expect(request!.headers["content-type"]).toBe("application/x-www-form-urlencoded")
      expect(request!.form).toEqual({
        grant_type: "client_credentials",
        scope: "mcp:tools jira",
        resource: "http://127.0.0.1/mcp"
      })
      expect(request!.basic).toEqual({ clientId: "clïent:1 +%", clientSecret: "sëcret" })
      expect(request!.index).toBe(0)
      endpoint.clearRecords()
      expect(endpoint.count).toBe(0)
    }))

  it("expectCredentials: answers invalid_client unless the (Unicode, RFC 6749 §2.3.1) credentials match", () =>
    withEndpoint({ expectCredentials: { clientId: "clïent:1 +%", clientSecret: "sëcret/ü" } }, async (endpoint) => {
      const good = await post(endpoint.url, {
        headers: { authorization: BasicCredentials.encode("clïent:1 +%", "sëcret/ü") }
      })
      expect(good.status).toBe(200)
      const naive = await post(endpoint.url, {
        headers: { authorization: BasicCredentials.encodeRaw("clïent:1 +%", "sëcret/ü") }
      })
      expect(naive.status).toBe(401)
      const viaPost = await post(endpoint.url, {
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: "clïent:1 +%",
          client_secret: "sëcret/ü"
        }).toString()
      })
      expect(viaPost.status).toBe(200)
      expect(endpoint.requests.map((r) => r.outcome)).toEqual(["issue tok-1", "invalid_client", "issue tok-2"])
    }))

  it("reset destroys the connection; hang never answers; both are counted", () =>
    withEndpoint({}, async (endpoint) => {
      endpoint.enqueue(FaultTokenEndpoint.resetConnection(), FaultTokenEndpoint.hang())
      const reset = await post(endpoint.url).then(() => undefined, errorCode)
      expect(reset).toMatch(/ECONNRESET|UND_ERR_SOCKET|EPIPE/)

      const started = Date.now()
      const hung = await post(endpoint.url, { signal: AbortSignal.timeout(300) }).then(() => "answered", (e) => e.name)
      expect(hung).toBe("TimeoutError")
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)

      expect((await (await post(endpoint.url)).json()).access_token).toBe("tok-1")
      expect(endpoint.count).toBe(3)
      expect(endpoint.requests.map((r) => r.outcome)).toEqual(["reset", "hang", "issue tok-1"])
      // a hanging request does not keep close() waiting
      endpoint.enqueue(FaultTokenEndpoint.hang())
      const pending = post(endpoint.url).catch(() => "closed")
      while (endpoint.count < 4) await sleep(5) // the hanging request has arrived
      await endpoint.close() // would never return if it waited for the hang (the test would time out)
      expect(await pending).toBe("closed")
    }))

  it("delayMs, bodyDelayMs (headers first, body later) and fixed latency", () =>
    withEndpoint({}, async (endpoint) => {
      endpoint.enqueue(
        FaultTokenEndpoint.delayed(150, FaultTokenEndpoint.success()),
        FaultTokenEndpoint.slowBody(300),
        FaultTokenEndpoint.slowBody(600_000)
      )
      let started = Date.now()
      await (await post(endpoint.url)).json()
      expect(Date.now() - started).toBeGreaterThanOrEqual(145)

      started = Date.now()
      const response = await post(endpoint.url)
      expect(response.status).toBe(200)
      expect((await response.json()).access_token).toBe("tok-2")
      expect(Date.now() - started).toBeGreaterThanOrEqual(295)

      // the headers arrive although the body is 10 minutes away (the test would time out otherwise)
      const abort = new AbortController()
      const headersOnly = await post(endpoint.url, { signal: abort.signal })
      expect(headersOnly.status).toBe(200)
      expect(headersOnly.headers.get("content-type")).toBe("application/json")
      abort.abort()

      endpoint.setLatency(50)
      for (let i = 0; i < 3; i++) {
        started = Date.now()
        await (await post(endpoint.url)).json()
        expect(Date.now() - started).toBeGreaterThanOrEqual(48)
      }
    }))

  it("rule mode: 429 + Retry-After for a time window after the first request, then success", () => {
    // the endpoint's clock, moved by hand
    const T0 = 1_700_000_000_000
    let now = T0
    return withEndpoint(
      { fallback: FaultTokenEndpoint.rateLimitWindow({ windowMs: 400, retryAfter: 2 }), now: () => now },
      async (endpoint) => {
        const first = await post(endpoint.url)
        expect(first.status).toBe(429)
        expect(first.headers.get("retry-after")).toBe("2")
        now += 399
        expect((await post(endpoint.url)).status).toBe(429)
        now += 1
        const later = await post(endpoint.url)
        expect(later.status).toBe(200)
        expect((await later.json()).access_token).toBe("tok-1")
        expect(endpoint.requests.map((r) => r.status)).toEqual([429, 429, 200])
        expect(endpoint.requests.map((r) => r.time - T0)).toEqual([0, 399, 400])

        // clearRecords restarts the window
        endpoint.clearRecords()
        expect((await post(endpoint.url)).status).toBe(429)

        endpoint.setFallback(
          FaultTokenEndpoint.cycle([FaultTokenEndpoint.serviceUnavailable(1), FaultTokenEndpoint.success()])
        )
        endpoint.clearRecords()
        expect((await post(endpoint.url)).status).toBe(503)
        expect((await post(endpoint.url)).status).toBe(200)
        expect((await post(endpoint.url)).status).toBe(503)

        endpoint.reset()
        expect(endpoint.count).toBe(0)
        expect((await post(endpoint.url)).status).toBe(429)
      }
    )
  })

  it("randomTokens and custom expires_in", () =>
    withEndpoint({ randomTokens: true, expiresIn: 5 }, async (endpoint) => {
      const a = await (await post(endpoint.url)).json()
      const b = await (await post(endpoint.url)).json()
      expect(a.access_token).not.toBe(b.access_token)
      expect(a.access_token).toMatch(/^tok-.{10,}/)
      expect(a.expires_in).toBe(5)
    }))

  it.scopedLive("Effect API, over HTTPS", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const endpoint = yield* FaultTokenEndpoint.make({
        https: pki.server,
        script: [FaultTokenEndpoint.tooManyRequests(1)]
      })
      expect(endpoint.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/token$/)
      const client = fetchTrusting(pki.ca)
      yield* Effect.addFinalizer(() => Effect.promise(() => client.destroy()))
      const statuses = yield* Effect.promise(async () => [
        (await client.fetch(endpoint.url, { method: "POST" })).status,
        (await client.fetch(endpoint.url, { method: "POST" })).status
      ])
      expect(statuses).toEqual([429, 200])
      expect(endpoint.count).toBe(2)
    }))
})

describe("FaultTokenEndpoint + real servers", () => {
  it("forward steps relay to a real AS; the MCP server accepts those JWTs (and opaque tok-N if told to)", async () => {
    const { AuthorizationServer, McpServer } = await import("../src/index.js")
    const as = await AuthorizationServer.start({ clients: [{ clientId: "svc-a", clientSecret: "secret-a" }] })
    const mcp = await McpServer.start({
      authorizationServer: as,
      acceptOpaqueToken: (token) => token.startsWith("tok-")
    })
    as.setAudience(mcp.url)
    const endpoint = await FaultTokenEndpoint.start({
      script: [FaultTokenEndpoint.serviceUnavailable(1), FaultTokenEndpoint.success()],
      fallback: FaultTokenEndpoint.forward(as.tokenUrl)
    })
    try {
      const basic = BasicCredentials.encode("svc-a", "secret-a")
      const call = (token: string) =>
        fetch(mcp.url, {
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
        }).then((r) => r.status)
      expect((await post(endpoint.url, { headers: { authorization: basic } })).status).toBe(503)
      const opaque = await (await post(endpoint.url, { headers: { authorization: basic } })).json()
      expect(opaque.access_token).toBe("tok-1")
      expect(await call(opaque.access_token)).toBe(200)
      const real = await post(endpoint.url, { headers: { authorization: basic } })
      expect(real.status).toBe(200)
      const body = await real.json()
      expect(body.access_token).toMatch(/^ey/)
      expect(await call(body.access_token)).toBe(200)
      const wrong = await post(endpoint.url, { headers: { authorization: BasicCredentials.encode("svc-a", "x") } })
      expect(wrong.status).toBe(401)
      expect((await wrong.json()).error).toBe("invalid_client")
      expect(endpoint.requests.map((r) => r.outcome)).toEqual([
        "reply 503",
        "issue tok-1",
        "forward 200",
        "forward 401"
      ])
      expect(endpoint.issuedTokens).toEqual(["tok-1", body.access_token])
      expect(as.tokenRequestCount).toBe(2)
      expect(await call("tok-x")).toBe(200)
      mcp.revoke("tok-x")
      expect(await call("tok-x")).toBe(401)
      expect(await call("nope")).toBe(401)
    } finally {
      await endpoint.close()
      await mcp.close()
      await as.close()
    }
  })
})

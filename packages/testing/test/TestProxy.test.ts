import * as Undici from "@effect/platform-node/Undici"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as http from "node:http"
import * as RecordingServer from "../src/RecordingServer.js"
import * as TestPki from "../src/TestPki.js"
import * as TestProxy from "../src/TestProxy.js"

/** A plain (absolute-form) proxied GET with node:http. */
const plainGet = (proxyUrl: string, target: string, proxyAuthorization?: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const proxy = new URL(proxyUrl)
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port,
      method: "GET",
      path: target,
      agent: false,
      headers: proxyAuthorization === undefined ? {} : { "proxy-authorization": proxyAuthorization }
    }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("error", reject)
    req.end()
  })

describe("TestProxy", () => {
  it("tunnels HTTPS requests with CONNECT (counted, target host:port recorded)", async () => {
    const pki = await TestPki.shared()
    const target = await RecordingServer.start({ https: pki.server })
    const proxy = await TestProxy.start()
    const dispatcher = new Undici.ProxyAgent({ uri: proxy.url, requestTls: { ca: pki.ca } })
    try {
      expect(proxy.url).toBe(`http://127.0.0.1:${proxy.port}`)
      const response = await Undici.fetch(`${target.url}/through`, { dispatcher })
      expect(response.status).toBe(200)
      await response.arrayBuffer()
      expect(proxy.connectCount).toBe(1)
      expect(proxy.connectTargets).toEqual([`127.0.0.1:${target.port}`])
      expect(proxy.connects[0]).toMatchObject({ method: "CONNECT", authorized: true, proxyAuthorization: undefined })
      expect(proxy.plainRequestCount).toBe(0)
      expect(target.requests.map((r) => r.path)).toEqual(["/through"])
      // a direct request is not seen by the proxy
      const direct = new Undici.Agent({ connect: { ca: pki.ca } })
      await (await Undici.fetch(`${target.url}/direct`, { dispatcher: direct })).arrayBuffer()
      await direct.destroy()
      expect(proxy.connectCount).toBe(1)
      expect(target.count).toBe(2)
    } finally {
      await dispatcher.destroy()
      await proxy.close()
      await target.close()
    }
  })

  it("forwards plain http requests (absolute-form) and counts them", async () => {
    const target = await RecordingServer.start()
    const proxy = await TestProxy.start()
    try {
      const response = await plainGet(proxy.url, `${target.url}/plain?x=1`)
      expect(response.status).toBe(200)
      expect(proxy.plainRequestCount).toBe(1)
      expect(proxy.plainRequests[0]).toMatchObject({ method: "GET", target: `${target.url}/plain?x=1` })
      expect(proxy.connectCount).toBe(0)
      expect(target.requests.map((r) => r.url)).toEqual(["/plain?x=1"])
    } finally {
      await proxy.close()
      await target.close()
    }
  })

  it("with credentials: 407 without or with wrong Proxy-Authorization; the right Basic header passes", async () => {
    const pki = await TestPki.shared()
    const target = await RecordingServer.start({ https: pki.server })
    const proxy = await TestProxy.start({ credentials: { username: "proxy user", password: "p@ss:w/rd" } })
    const expected = `Basic ${Buffer.from("proxy user:p@ss:w/rd").toString("base64")}`
    const anonymous = new Undici.ProxyAgent({ uri: proxy.url, requestTls: { ca: pki.ca } })
    const authenticated = new Undici.ProxyAgent({ uri: proxy.urlWithCredentials, requestTls: { ca: pki.ca } })
    try {
      // undici.request names the status; fetch only says "fetch failed" (cause: "Request was cancelled.")
      const refused = await Undici.request(`${target.url}/x`, { dispatcher: anonymous }).then(
        () => "resolved",
        (error: unknown) => String(error)
      )
      expect(refused).toMatch(/Proxy response \(407\)/)
      await expect(Undici.fetch(`${target.url}/x`, { dispatcher: anonymous })).rejects.toThrow()
      expect(target.count).toBe(0)
      expect(proxy.refusedCount).toBe(2)
      expect(proxy.connects.map((c) => c.authorized)).toEqual([false, false])
      expect(proxy.connectTargets).toEqual([])

      const wrong = await plainGet(proxy.url, "http://127.0.0.1:1/", `Basic ${Buffer.from("a:b").toString("base64")}`)
      expect(wrong.status).toBe(407)

      const response = await Undici.fetch(`${target.url}/y`, { dispatcher: authenticated })
      expect(response.status).toBe(200)
      await response.arrayBuffer()
      expect(target.requests.map((r) => r.path)).toEqual(["/y"])
      expect(proxy.connectCount).toBe(3)
      expect(proxy.connectTargets).toEqual([`127.0.0.1:${target.port}`])
      expect(proxy.proxyAuthorizations).toEqual([`Basic ${Buffer.from("a:b").toString("base64")}`, expected])
      expect(proxy.refusedCount).toBe(3)
      // the proxy header is not forwarded into the tunnel
      expect(target.requests[0]!.headers["proxy-authorization"]).toBeUndefined()
    } finally {
      await anonymous.destroy()
      await authenticated.destroy()
      await proxy.close()
      await target.close()
    }
  })

  it.scoped("make: scoped, closed with the scope", () =>
    Effect.gen(function*() {
      const proxy = yield* TestProxy.make()
      const target = yield* Effect.promise(() => RecordingServer.start())
      const response = yield* Effect.promise(() => plainGet(proxy.url, `${target.url}/scoped`))
      expect(response.status).toBe(200)
      expect(proxy.plainRequestCount).toBe(1)
      yield* Effect.promise(() => target.close())
    }))
})

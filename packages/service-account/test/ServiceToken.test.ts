import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import type { ServiceTokenFunction } from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient as FakeTokenEndpoint } from "@mcp-auth/testing"
import { Context, Effect, Layer, Option, Redacted, TestClock } from "effect"
import * as Util from "node:util"
import { config, settle } from "./utils/provider.js"

const request = RequestContext.make("https://mcp.example.com/mcp", "post", {
  mcpMethod: "tools/call",
  toolName: "jira_get_issue"
})

const headerOf = (layer: Layer.Layer<ServiceToken.ServiceToken, any>) =>
  Effect.flatMap(ServiceToken.ServiceToken, (st) => st.get(request)).pipe(
    Effect.map(Option.map((h) => [h.name, Redacted.value(h.value)] as const)),
    Effect.provide(layer)
  )

const errorOf = (layer: Layer.Layer<ServiceToken.ServiceToken, any>) =>
  Effect.flip(Effect.flatMap(ServiceToken.ServiceToken, (st) => st.get(request)).pipe(Effect.provide(layer)))

describe("ServiceToken (NAT behaviours)", () => {
  it.effect("none: the single pattern adds no header", () =>
    Effect.gen(function*() {
      expect(yield* headerOf(ServiceToken.none)).toEqual(Option.none())
    }))

  it.effect("static token with NAT's default header, or a custom one", () =>
    Effect.gen(function*() {
      expect(yield* headerOf(ServiceToken.layerStatic("test_service_token"))).toEqual(
        Option.some(["X-Service-Account-Token", "test_service_token"])
      )
      expect(yield* headerOf(ServiceToken.layerStatic("test_token", "X-Custom-Header"))).toEqual(
        Option.some(["X-Custom-Header", "test_token"])
      )
    }))

  it.effect("a static token that is empty (an unset variable) is a typed error, not a dropped header", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(ServiceToken.layerStatic("")).pipe(Effect.scoped))
      expect(error).toMatchObject({
        _tag: "ServiceTokenError",
        reason: "empty_token",
        header: "X-Service-Account-Token"
      })
    }))

  it.effect("an async function receives kwargs and the request context; a string uses the configured header", () =>
    Effect.gen(function*() {
      const seen: Array<unknown> = []
      const fn: ServiceTokenFunction = async (kwargs, context) => {
        seen.push({
          kwargs,
          url: context.url.href,
          method: context.method,
          mcp: context.mcpMethod,
          tool: context.toolName
        })
        return `vault:${String(kwargs.vault_path)}`
      }
      const layer = ServiceToken.layerFunction(fn, { header: "X-Jira-Token", kwargs: { vault_path: "secrets/test" } })
      expect(yield* headerOf(layer)).toEqual(Option.some(["X-Jira-Token", "vault:secrets/test"]))
      expect(seen).toEqual([{
        kwargs: { vault_path: "secrets/test" },
        url: "https://mcp.example.com/mcp",
        method: "POST",
        mcp: "tools/call",
        tool: "jira_get_issue"
      }])
    }))

  it.effect("a [header, token] result overrides the configured header (sync, async, and sync-returning-a-promise)", () =>
    Effect.gen(function*() {
      const pair = ["X-Custom-Header", "dynamic_token_value"] as const
      for (const fn of [() => pair, async () => pair, () => Promise.resolve(pair)] as Array<ServiceTokenFunction>) {
        expect(yield* headerOf(ServiceToken.layerFunction(fn))).toEqual(Option.some(pair))
      }
    }))

  it.effect("the function is called on every request", () =>
    Effect.gen(function*() {
      let calls = 0
      const st = yield* Effect.provide(ServiceToken.ServiceToken, ServiceToken.layerFunction(() => `t-${++calls}`))
      const values = yield* Effect.all([st.get(request), st.get(request), st.get(request)])
      expect(values.map((v) => Option.map(v, (h) => Redacted.value(h.value)))).toEqual([
        Option.some("t-1"),
        Option.some("t-2"),
        Option.some("t-3")
      ])
    }))

  it.effect("a throwing or rejecting function gives ServiceTokenError with NAT's message and the cause kept", () =>
    Effect.gen(function*() {
      const boom = new Error("Vault connection failed")
      for (
        const fn of [() => {
          throw boom
        }, async () => {
          throw boom
        }] as Array<ServiceTokenFunction>
      ) {
        const error = yield* errorOf(ServiceToken.layerFunction(fn))
        expect(error).toMatchObject({ _tag: "ServiceTokenError", reason: "function_failed" })
        expect(error.message).toBe("Failed to get service token from function: Vault connection failed")
        expect(error.cause).toBe(boom)
      }
    }))

  it.effect("empty, non-string and malformed results are typed errors", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(ServiceToken.layerFunction(() => ""))).toMatchObject({ reason: "empty_token" })
      expect(yield* errorOf(ServiceToken.layerFunction(() => ["X-A", "  "]))).toMatchObject({ reason: "empty_token" })
      expect(yield* errorOf(ServiceToken.layerFunction((() => 42) as any))).toMatchObject({ reason: "invalid_result" })
      expect(yield* errorOf(ServiceToken.layerFunction((() => ["a", "b", "c"]) as any))).toMatchObject({
        reason: "invalid_result"
      })
      expect(yield* errorOf(ServiceToken.layerFunction(() => "a\r\nInjected: yes"))).toMatchObject({
        reason: "invalid_result"
      })
    }))

  it.effect("a returned header that is invalid or would replace Authorization is refused", () =>
    Effect.gen(function*() {
      expect(yield* errorOf(ServiceToken.layerFunction(() => ["Authorization", "x"]))).toMatchObject({
        reason: "invalid_header"
      })
      const swapped = yield* errorOf(ServiceToken.layerFunction(() => ["tok en-value-1234", "X-Header"]))
      expect(swapped.message).toContain("did it return [token, header]?")
      expect(swapped.message).not.toContain("tok en-value-1234")
      expect(yield* errorOf(ServiceToken.layerFunction(() => ["Bad Header", "x"]))).toMatchObject({
        reason: "invalid_header"
      })
    }))

  it.effect("a hanging function times out with ServiceTokenError", () =>
    Effect.gen(function*() {
      const layer = ServiceToken.layerFunction(() => new Promise<string>(() => {}), { timeout: "2 seconds" })
      const fiber = yield* Effect.fork(errorOf(layer))
      yield* TestClock.adjust("2 seconds")
      const error = yield* fiber
      expect(error).toMatchObject({ _tag: "ServiceTokenError", reason: "function_failed" })
      expect(error.message).toContain("no token within 2s")
    }))

  it.effect("layerEffect: an Effect per request, its failures wrapped", () =>
    Effect.gen(function*() {
      const ok = ServiceToken.layerEffect((req) => Effect.succeed(`for ${req.mcpMethod}`))
      expect(yield* headerOf(ok)).toEqual(Option.some(["X-Service-Account-Token", "for tools/call"]))
      const failing = ServiceToken.layerEffect(() => Effect.fail("vault sealed"))
      expect((yield* errorOf(failing)).message).toBe("Failed to get service token from function: vault sealed")
    }))

  it.effect("layerFromConfig: static, function (JS), and a string reference needs a loader", () =>
    Effect.gen(function*() {
      expect(yield* headerOf(ServiceToken.layerFromConfig(config({ service_token: { token: "st" } })))).toEqual(
        Option.some(["X-Service-Account-Token", "st"])
      )
      const fn: ServiceTokenFunction = (kwargs) => ["X-From-Fn", String(kwargs.k)]
      expect(
        yield* headerOf(ServiceToken.layerFromConfig(config({ service_token: { function: fn, kwargs: { k: "v" } } })))
      ).toEqual(Option.some(["X-From-Fn", "v"]))
      const error = yield* Effect.flip(
        Layer.build(ServiceToken.layerFromConfig(config({ service_token: { function: "./x.ts#y" } }))).pipe(
          Effect.scoped
        )
      )
      expect(error).toMatchObject({ _tag: "ServiceTokenError", reason: "load_failed" })
      const loaded = ServiceToken.layerFromConfig(config({ service_token: { function: "./x.ts#y" } }), {
        loadFunction: () => Effect.succeed(() => "from-loader")
      })
      expect(yield* headerOf(loaded)).toEqual(Option.some(["X-Service-Account-Token", "from-loader"]))
    }))
})

describe("AuthHeaders", () => {
  const withProvider = (serviceToken: Layer.Layer<ServiceToken.ServiceToken, any>) =>
    Effect.gen(function*() {
      const fake = yield* FakeTokenEndpoint.tokens()
      const layer = AuthHeaders.layer.pipe(
        Layer.provide(serviceToken),
        Layer.provideMerge(TokenProvider.layer(config()).pipe(Layer.provide(fake.layer)))
      )
      return { fake, layer }
    })

  it.effect("orders Authorization first, then the service header, values redacted until written", () =>
    Effect.gen(function*() {
      const { layer } = yield* withProvider(ServiceToken.layerStatic("svc-token"))
      const set = yield* Effect.flatMap(AuthHeaders.AuthHeaders, (a) => a.forRequest(request)).pipe(
        Effect.provide(layer)
      )
      expect(set.headers.map(([name]) => name)).toEqual(["Authorization", "X-Service-Account-Token"])
      expect(String(set.headers[0]![1])).toBe("<redacted>")
      expect(AuthHeaders.toRecord(set)).toEqual({
        Authorization: "Bearer tok-1",
        "X-Service-Account-Token": "svc-token"
      })
    }))

  it.effect("the single pattern yields only Authorization", () =>
    Effect.gen(function*() {
      const { layer } = yield* withProvider(ServiceToken.none)
      const set = yield* Effect.flatMap(AuthHeaders.AuthHeaders, (a) => a.forRequest(request)).pipe(
        Effect.provide(layer)
      )
      expect(AuthHeaders.toRecord(set)).toEqual({ Authorization: "Bearer tok-1" })
    }))

  it.scoped("peek: the synchronous accessor returns the set forRequest would, and nothing it would have to decide", () =>
    Effect.gen(function*() {
      const { fake, layer } = yield* withProvider(ServiceToken.layerStatic("svc-token"))
      const context = yield* Layer.build(layer)
      const auth = Context.get(context, AuthHeaders.AuthHeaders)
      expect(auth.peek()).toBeUndefined() // no token yet: only forRequest fetches one
      expect(auth.peekRecord()).toBeUndefined()
      const set = yield* auth.forRequest(request)
      expect(auth.peek()).toBe(set)
      expect(AuthHeaders.toRecord(auth.peek()!)).toEqual({
        Authorization: "Bearer tok-1",
        "X-Service-Account-Token": "svc-token"
      })
      // in clear, a new record each time: a caller changing it changes nothing
      const record = auth.peekRecord()!
      expect(record).toEqual({ Authorization: "Bearer tok-1", "X-Service-Account-Token": "svc-token" })
      record.Authorization = "changed"
      expect(auth.peekRecord()!.Authorization).toBe("Bearer tok-1")
      // the headers in clear are never printed with the object (util.inspect is what loggers use)
      expect(Util.inspect(auth, { showHidden: true, depth: 4 })).not.toContain("svc-token")
      yield* TestClock.adjust("3590 seconds") // past the refresh point: a decision is due, so peek defers to forRequest
      expect(auth.peek()).toBeUndefined()
      expect(auth.peekRecord()).toBeUndefined()
      yield* auth.forRequest(request) // starts the background refresh
      yield* settle
      expect(yield* fake.calls).toBe(2)
    }))

  it.scoped("peek never serves a token the provider dropped or replaced", () =>
    Effect.gen(function*() {
      const { layer } = yield* withProvider(ServiceToken.layerStatic("svc-token"))
      const context = yield* Layer.build(layer)
      const auth = Context.get(context, AuthHeaders.AuthHeaders)
      const first = yield* auth.forRequest(request)
      expect(auth.peek()).toBe(first)
      expect((yield* auth.invalidate(first.token))._tag).toBe("Dropped")
      expect(auth.peek()).toBeUndefined() // dropped: only forRequest fetches the next one
      expect(auth.peekRecord()).toBeUndefined()
      const second = yield* auth.forRequest(request)
      expect(AuthHeaders.toRecord(second).Authorization).toBe("Bearer tok-2")
      expect(auth.peek()).toBe(second)
      expect(auth.peekRecord()!.Authorization).toBe("Bearer tok-2")
    }))

  it.scoped("peek is undefined when the service header depends on the request (a function)", () =>
    Effect.gen(function*() {
      const { layer } = yield* withProvider(ServiceToken.layerFunction(() => "per-request"))
      const auth = Context.get(yield* Layer.build(layer), AuthHeaders.AuthHeaders)
      yield* auth.forRequest(request)
      expect(auth.peek()).toBeUndefined()
    }))

  it.scoped("the HttpClient middleware applies the headers and recovers once from a 401", () =>
    Effect.gen(function*() {
      const { fake, layer } = yield* withProvider(ServiceToken.layerStatic("svc-token"))
      const seen: Array<Record<string, string>> = []
      const api = HttpClient.make((req) =>
        Effect.sync(() => {
          seen.push({ ...req.headers })
          const status = req.headers["authorization"] === "Bearer tok-1" ? 401 : 200
          return HttpClientResponse.fromWeb(req, new Response("{}", { status }))
        })
      )
      const context = yield* Layer.build(layer) // the provider lives as long as the test's scope
      const client = yield* AuthHeaders.withAuthHeaders(api).pipe(Effect.provide(context))
      const response = yield* client.execute(HttpClientRequest.get("https://api.example.com/v1/things"))
      expect(response.status).toBe(200)
      expect(seen.map((h) => h["authorization"])).toEqual(["Bearer tok-1", "Bearer tok-2"])
      expect(seen.every((h) => h["x-service-account-token"] === "svc-token")).toBe(true)
      expect(yield* fake.calls).toBe(2)
    }))

  it.scoped("the HttpClient middleware does not replay when the drop is throttled (the server rejects fresh tokens)", () =>
    Effect.gen(function*() {
      const { fake, layer } = yield* withProvider(ServiceToken.none)
      const seen: Array<string | undefined> = []
      const api = HttpClient.make((req) =>
        Effect.sync(() => {
          seen.push(req.headers["authorization"])
          return HttpClientResponse.fromWeb(req, new Response("{}", { status: 401 }))
        })
      )
      const context = yield* Layer.build(layer)
      const client = yield* AuthHeaders.withAuthHeaders(api).pipe(Effect.provide(context))
      const request = HttpClientRequest.get("https://api.example.com/v1/things")
      expect((yield* client.execute(request)).status).toBe(401) // tok-1 dropped, replayed with tok-2, rejected too
      expect((yield* client.execute(request)).status).toBe(401) // tok-2 fetched after the drop: throttled, no replay
      expect(seen).toEqual(["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"])
      expect(yield* fake.calls).toBe(2)
    }))
})

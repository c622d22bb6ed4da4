import { describe, expect, it } from "@effect/vitest"
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient, HostileServer } from "@mcp-auth/testing"
import { ConfigProvider, Effect, Either, Layer, Redacted, Schema, TestClock } from "effect"
import type * as http from "node:http"

const SECRET = "s3cr:t%+ü/ with=space&more"
const MiB = 1024 * 1024

const configFor = (origin: string, extra: Record<string, unknown> = {}) =>
  ServiceAccountConfig.decodeSync({
    client_id: "svc hostile",
    client_secret: SECRET,
    token_url: `${origin}/token`,
    allow_insecure_http: true,
    // the bound must come from the byte limit, never from the timeout
    timeout_seconds: 120,
    retry: { max_attempts: 1 },
    ...extra
  })

/** Every rendering of an error a log, a CLI or a JSON API could show. */
const renderings = (error: unknown): ReadonlyArray<string> => {
  const e = error as Error
  const encoded = ServiceAccountError.isServiceAccountError(error)
    ? JSON.stringify(Schema.encodeSync(ServiceAccountError.ServiceAccountError)(error))
    : ""
  return [e.message, String(error), JSON.stringify(error), encoded]
}

const expectAbsent = (error: unknown, values: ReadonlyArray<string>) => {
  for (const text of renderings(error)) {
    for (const value of values) {
      for (const form of Scrub.forms(value)) expect(text, `${form} in ${text}`).not.toContain(form)
    }
  }
}

/** Starts a hostile server whose handler answers with an endless body; `written` resolves when the client hangs up. */
const endlessServer = (options: HostileServer.EndlessOptions) =>
  Effect.gen(function*() {
    let written: Promise<number> | undefined
    const server = yield* HostileServer.make((_, res) => {
      written = HostileServer.endless(res, options)
    })
    const bytesWritten = Effect.promise(() => written ?? Promise.resolve(-1)).pipe(
      Effect.timeoutFail({
        duration: "60 seconds",
        onTimeout: () => new Error("the client never closed the connection")
      })
    )
    return { server, bytesWritten }
  })

/** A provider over the real Node client, both living as long as the test's scope. */
const providerFor = (config: ServiceAccountConfig.ServiceAccountConfig) =>
  Effect.flatMap(
    Layer.build(TokenHttpClient.layer()),
    (client) => TokenProvider.make(config).pipe(Effect.provide(client))
  )

const bound = () => MiB + HostileServer.defaultChunkBytes + HostileServer.socketBufferBytes()

describe("hostile token endpoints (real sockets on 127.0.0.1, the package's Node HTTP client)", () => {
  describe("bounded reads (finding 1)", () => {
    it.scopedLive("an endless 200 body: too_large, and the connection is closed near the 1 MiB limit", () =>
      Effect.gen(function*() {
        const { bytesWritten, server } = yield* endlessServer({ prefix: "{\"access_token\":\"" })
        const error = yield* Effect.flip(
          TokenEndpoint.request(configFor(server.origin)).pipe(Effect.provide(TokenHttpClient.layer()))
        )
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "too_large" })
        expect(error.message).toContain("larger than 1048576 bytes")
        const written = yield* bytesWritten
        expect(written).toBeGreaterThan(MiB)
        expect(written).toBeLessThanOrEqual(bound())
      }))

    it.scopedLive("a 200 MB body with its content-length declared is cut the same way", () =>
      Effect.gen(function*() {
        const { bytesWritten, server } = yield* endlessServer({ headers: { "content-length": String(200_000_000) } })
        const error = yield* Effect.flip(
          TokenEndpoint.request(configFor(server.origin)).pipe(Effect.provide(TokenHttpClient.layer()))
        )
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "too_large" })
        const written = yield* bytesWritten
        expect(written).toBeLessThanOrEqual(bound())
        expect(written).toBeLessThan(200_000_000)
      }))

    it.scopedLive("an endless 503 body is reported by its status (transient), read no further than the limit", () =>
      Effect.gen(function*() {
        const { bytesWritten, server } = yield* endlessServer({ status: 503 })
        const error = yield* Effect.flip(
          TokenEndpoint.request(configFor(server.origin)).pipe(Effect.provide(TokenHttpClient.layer()))
        )
        expect(error).toMatchObject({ _tag: "TokenEndpointError", status: 503 })
        expect(ServiceAccountError.isTokenError(error) && ServiceAccountError.isTransient(error)).toBe(true)
        expect(yield* bytesWritten).toBeLessThanOrEqual(bound())
      }))

    it.scopedLive("through a TokenProvider: the caller gets the typed error, the server sees the client hang up", () =>
      Effect.gen(function*() {
        const { bytesWritten, server } = yield* endlessServer({})
        const provider = yield* providerFor(configFor(server.origin))
        const error = yield* Effect.flip(provider.get)
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "too_large" })
        expect(yield* bytesWritten).toBeLessThanOrEqual(bound())
      }))
  })

  describe("strict access_token syntax (finding 2)", () => {
    const bad: ReadonlyArray<readonly [string, string, RegExp]> = [
      ["NUL", "tok-PART-A\u0000rest-of-the-token", /control character/],
      ["CR/LF", "tok-PART-B\r\nX-Injected: yes", /control character/],
      ["a space", "tok-PART-C with-space", /a space/],
      ["non-ASCII", "tok-PART-D-ünïcödé-€", /non-ASCII/],
      ["over 16 KiB", `tok-PART-E-${"x".repeat(16 * 1024)}`, /more than the 16384 accepted/]
    ]
    for (const [name, token, detail] of bad) {
      it.scopedLive(`an access_token with ${name} is a MalformedResponseError that never shows it`, () =>
        Effect.gen(function*() {
          const server = yield* HostileServer.make((_, res) => {
            res.writeHead(200, { "content-type": "application/json" })
            res.end(JSON.stringify({ access_token: token, token_type: token, expires_in: token, scope: token }))
          })
          const error = yield* Effect.flip(
            TokenEndpoint.request(configFor(server.origin)).pipe(Effect.provide(TokenHttpClient.layer()))
          )
          expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "access_token" })
          expect(error.message).toMatch(detail)
          expectAbsent(error, [token])
          // not even partially
          for (const text of renderings(error)) expect(text).not.toMatch(/PART-|Injected|ünïcödé|xxxxxxxx/)
        }))
    }

    it.scopedLive("a valid token's echo in token_type is scrubbed", () =>
      Effect.gen(function*() {
        const token = "eyJ.visible-ascii_token~+/="
        const server = yield* HostileServer.make((_, res) => {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ access_token: token, token_type: `mac ${token}`, expires_in: 60 }))
        })
        const error = yield* Effect.flip(
          TokenEndpoint.request(configFor(server.origin)).pipe(Effect.provide(TokenHttpClient.layer()))
        )
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "token_type" })
        expect(error.message).toContain("\"mac <redacted>\"")
        expectAbsent(error, [token])
      }))

    it.scopedLive("a granted scope with terminal escape sequences is refused, not printed", () =>
      Effect.gen(function*() {
        const server = yield* HostileServer.make((_, res) => {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({
            access_token: "tok-1",
            token_type: "Bearer",
            expires_in: 60,
            scope: "mcp:tools \u001b]0;pwned\u0007"
          }))
        })
        const error = yield* Effect.flip(
          TokenEndpoint.request(configFor(server.origin)).pipe(Effect.provide(TokenHttpClient.layer()))
        )
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "scope" })
        for (const text of renderings(error)) {
          expect(text).not.toContain("pwned")
          expect(text).not.toContain("\u001b")
        }
      }))
  })

  describe("secrets echoed by the token endpoint (finding 6)", () => {
    /** Answers 400 with every echo at once in error_description, and the Basic header in a 200's token_type. */
    const echo = (record: HostileServer.RequestRecord, res: http.ServerResponse) => {
      const basic = String(record.headers["authorization"] ?? "")
      const description = [
        `raw=${SECRET}`,
        `form=${record.body}`,
        `percent=${encodeURIComponent(SECRET)}`,
        `base64=${Buffer.from(SECRET).toString("base64")}`,
        `basic=${basic}`
      ].join(" ")
      res.writeHead(400, { "content-type": "application/json" })
      res.end(JSON.stringify({ error: "invalid_request", error_description: description }))
    }

    for (const authMethod of ["client_secret_basic", "client_secret_post"] as const) {
      it.scopedLive(`${authMethod}: no form of the secret or the Basic credential reaches the error`, () =>
        Effect.gen(function*() {
          const server = yield* HostileServer.make(echo)
          const config = configFor(server.origin, { auth_method: authMethod })
          const error = yield* Effect.flip(TokenEndpoint.request(config).pipe(Effect.provide(TokenHttpClient.layer())))
          expect(error).toMatchObject({ _tag: "TokenEndpointError", status: 400, error: "invalid_request" })
          // the echo really happened: the scrubbed description shows where each piece was
          expect(error.message).toContain("raw=<redacted>")
          expect(error.message).toContain("percent=<redacted>")
          expect(error.message).toContain("base64=<redacted>")
          const basic = Redacted.value(TokenEndpoint.basicCredential(config.clientId, config.clientSecret!))
          expectAbsent(error, [SECRET, basic])
          if (authMethod === "client_secret_post") {
            expect(server.requests[0]!.body).toContain(new URLSearchParams([["s", SECRET]]).toString().slice(2))
          } else {
            expect(error.message).toContain("basic=Basic <redacted>")
          }
        }))
    }

    it.scopedLive("the provider's previous and current tokens are scrubbed from the next request's errors", () =>
      Effect.gen(function*() {
        const first = "tok-previous-0123456789"
        const second = "tok-current-9876543210"
        let n = 0
        const server = yield* HostileServer.make((_, res) => {
          n++
          res.writeHead(n <= 2 ? 200 : 503, { "content-type": "application/json" })
          res.end(JSON.stringify(
            n <= 2
              ? { access_token: n === 1 ? first : second, token_type: "Bearer", expires_in: 3600 }
              : { error: "temporarily_unavailable", error_description: `had ${first} and ${second}` }
          ))
        })
        const provider = yield* providerFor(configFor(server.origin))
        const one = yield* provider.get
        expect(Redacted.value(one.token)).toBe(first)
        expect(yield* provider.invalidate(one)).toEqual({ _tag: "Dropped" })
        const two = yield* provider.get
        expect(Redacted.value(two.token)).toBe(second)
        yield* Effect.sleep("1100 millis") // 401-driven drops are at most one per second
        expect(yield* provider.invalidate(two)).toEqual({ _tag: "Dropped" })
        const error = yield* Effect.flip(provider.get)
        expect(error).toMatchObject({ _tag: "TokenEndpointError", status: 503 })
        expect(error.message).toContain("had <redacted> and <redacted>")
        expectAbsent(error, [first, second])
      }))

    it("Scrub.text redacts a secret that the clean-up of control characters would spell", () => {
      expect(Scrub.text("echo: with\tspace and with\u0000\u0001space", ["with space"])).toBe(
        "echo: <redacted> and <redacted>"
      )
    })

    it.effect("a transport failure's message is scrubbed of every secret form and the known tokens", () =>
      Effect.gen(function*() {
        const known = "tok-known-abcdefghijkl"
        const config = configFor("http://127.0.0.1:9")
        const basic = Redacted.value(TokenEndpoint.basicCredential(config.clientId, config.clientSecret!))
        const fake = yield* FakeHttpClient.make(() =>
          Effect.succeed({
            fail: "ECONNRESET",
            message: `reset after ${encodeURIComponent(SECRET)} ${basic} ${known} \u001b[2J`
          })
        )
        const error = yield* Effect.flip(
          TokenEndpoint.request(config, { knownTokens: [Redacted.make(known)] }).pipe(Effect.provide(fake.layer))
        )
        expect(error).toMatchObject({ _tag: "NetworkError", code: "ECONNRESET" })
        const reason = (error as ServiceAccountError.NetworkError).reason
        expect(reason.startsWith("reset after <redacted> <redacted> <redacted>")).toBe(true)
        expect(reason).not.toContain("\u001b")
        expectAbsent(error, [SECRET, basic, known])
      }))
  })
})

describe("absurd lifetimes (finding 3)", () => {
  const config = (extra: Record<string, unknown> = {}) =>
    ServiceAccountConfig.decodeSync({
      client_id: "svc",
      client_secret: SECRET,
      token_url: "https://idp.example.com/token",
      ...extra
    })

  const lifetimes: ReadonlyArray<readonly [string, unknown]> = [
    ["1e20", 1e20],
    ["2^53", 2 ** 53],
    ["1e308", 1e308],
    ["the string \"1e400\"", "1e400"],
    ["the string \"9007199254740993\"", "9007199254740993"],
    ["the JSON literal 1e400 (Infinity once parsed)", undefined]
  ]

  for (const [name, expiresIn] of lifetimes) {
    it.scoped(`expires_in ${name} is clamped to max_token_lifetime_seconds, and the token is refreshed on schedule`, () =>
      Effect.gen(function*() {
        const reply = (n: number): FakeHttpClient.Reply =>
          expiresIn === undefined
            ? { status: 200, body: `{"access_token":"tok-${n}","token_type":"Bearer","expires_in":1e400}` }
            : FakeHttpClient.token(n, expiresIn)
        const fake = yield* FakeHttpClient.make((n) => Effect.succeed(reply(n)))
        const provider = yield* TokenProvider.make(config()).pipe(Effect.provide(fake.layer))
        const token = yield* provider.get
        expect(token.expiresAt - token.issuedAt).toBe(86_400_000)
        expect(Number.isSafeInteger(token.expiresAt)).toBe(true)
        expect(new Date(token.expiresAt).toISOString()).toBe(new Date(token.issuedAt + 86_400_000).toISOString())
        expect(yield* fake.calls).toBe(1)
        // refreshed within the day (lead = token_cache_buffer_seconds), never kept forever
        yield* TestClock.adjust("23 hours")
        yield* provider.get
        expect(yield* fake.calls).toBe(1)
        // the refresh point lies in [expiry - 300 s, expiry - 240 s] (jittered lead)
        yield* TestClock.adjust("57 minutes")
        yield* provider.get
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        expect(yield* fake.calls).toBe(2)
        const next = yield* provider.get
        expect(Redacted.value(next.token)).toBe("tok-2")
        expect(next.expiresAt - next.issuedAt).toBe(86_400_000)
      }))
  }

  it.effect("a configured max_token_lifetime_seconds is honoured, and refresh_in is clamped to the lifetime", () =>
    Effect.gen(function*() {
      const fake = yield* FakeHttpClient.make(() => Effect.succeed(FakeHttpClient.token(1, 1e12, { refresh_in: 1e15 })))
      const token = yield* TokenEndpoint.request(config({ max_token_lifetime_seconds: 600 })).pipe(
        Effect.provide(fake.layer)
      )
      expect(AccessToken.lifetimeMillis(token)).toBe(600_000)
      expect(token.refreshIn).toBe(600)
    }))

  it.effect("a default_expires_in_seconds above the maximum is clamped too", () =>
    Effect.gen(function*() {
      const fake = yield* FakeHttpClient.make(() =>
        Effect.succeed({ status: 200, body: { access_token: "tok-1", token_type: "Bearer" } })
      )
      const token = yield* TokenEndpoint.request(
        config({ default_expires_in_seconds: 1e9, max_token_lifetime_seconds: 7200 })
      ).pipe(Effect.provide(fake.layer))
      expect(AccessToken.lifetimeMillis(token)).toBe(7_200_000)
    }))

  it("AccessToken.make clamps whatever it is given: expiresAt is a safe integer a Date can hold", () => {
    for (const seconds of [1e20, 2 ** 53, 1e308, Infinity, -Infinity, NaN, -1e20]) {
      const token = AccessToken.make({ token: "t", issuedAt: 1_700_000_000_000, expiresInSeconds: seconds })
      expect(Number.isSafeInteger(token.expiresAt), String(seconds)).toBe(true)
      expect(Number.isNaN(new Date(token.expiresAt).getTime()), String(seconds)).toBe(false)
      expect(Math.abs(AccessToken.lifetimeMillis(token))).toBeLessThanOrEqual(AccessToken.MAX_LIFETIME_SECONDS * 1000)
    }
    const refresh = AccessToken.make({ token: "t", issuedAt: 0, expiresInSeconds: 60, refreshIn: Infinity })
    expect(refresh.refreshIn).toBe(60)
  })

  it("max_token_lifetime_seconds is validated: positive, at most ten years, above token_cache_buffer_seconds", () => {
    const issues = (extra: Record<string, unknown>) =>
      Either.match(
        ServiceAccountConfig.decodeEither({
          client_id: "c",
          client_secret: "s",
          token_url: "https://idp.example.com/token",
          ...extra
        }),
        { onLeft: (e) => e.issues.map(String), onRight: () => [] }
      )
    expect(ServiceAccountConfig.decodeSync({ client_id: "c", client_secret: "s", token_url: "https://a/t" }))
      .toMatchObject({ maxTokenLifetimeSeconds: 86400 })
    expect(issues({ max_token_lifetime_seconds: "3600" })).toEqual([])
    expect(issues({ max_token_lifetime_seconds: 0 })).toEqual([
      "max_token_lifetime_seconds: max_token_lifetime_seconds must be a number of seconds > 0 and ≤ 315360000, got 0"
    ])
    expect(issues({ max_token_lifetime_seconds: 1e20 })).toEqual([
      "max_token_lifetime_seconds: max_token_lifetime_seconds must be a number of seconds > 0 and ≤ 315360000, got 100000000000000000000"
    ])
    expect(issues({ max_token_lifetime_seconds: 300 })).toEqual([
      "max_token_lifetime_seconds: max_token_lifetime_seconds (300) must be greater than token_cache_buffer_seconds " +
      "(300): a token would be refreshed before it was issued"
    ])
    expect(issues({ token_cache_buffer_seconds: 100_000 })).toHaveLength(1)
    const doc = ServiceAccountConfig.fieldDocs.find((f) => f.name === "max_token_lifetime_seconds")
    expect(doc).toMatchObject({ type: "float", default: 86400, required: false })
    expect(doc?.description).toMatch(/clamped/)
    expect(ServiceAccountConfig.envVariables).toContainEqual({
      key: "max_token_lifetime_seconds",
      variable: "SERVICE_ACCOUNT_MAX_TOKEN_LIFETIME_SECONDS"
    })
  })
})

describe("misclassified errors (finding 8, service token)", () => {
  const base = { client_id: "c", client_secret: "s", token_url: "https://idp.example.com/token" }
  const issuesOf = (input: Record<string, unknown>) =>
    Either.match(ServiceAccountConfig.decodeEither(input), {
      onLeft: (e) => e,
      onRight: () => undefined
    })

  it("a static service token with CR/LF, NUL or another control character is a ConfigurationError naming the key", () => {
    for (const token of ["svc-tok\r\nX-Injected: 1", "svc-tok\n", "svc\u0000tok", "svc\u001btok", "svc-€-tok"]) {
      const error = issuesOf({ ...base, service_token: { token } })
      expect(error?._tag, JSON.stringify(token)).toBe("ConfigurationError")
      expect(error!.issues.map((i) => i.path)).toEqual(["service_token.token"])
      expect(error!.message).toContain("service_token.token cannot be sent in an HTTP header")
      expect(error!.message).not.toContain("function")
      expectAbsent(error, [token])
      for (const text of renderings(error)) expect(text).not.toContain("svc")
    }
    // obs-text (Latin-1) can be sent, as Node's clients do
    expect(issuesOf({ ...base, service_token: { token: "svc-tök" } })).toBeUndefined()
  })

  it("from the environment too (SERVICE_ACCOUNT_SERVICE_TOKEN)", () => {
    const result = Effect.runSync(
      Effect.either(ServiceAccountConfig.fromEnv).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["SERVICE_ACCOUNT_CLIENT_ID", "c"],
            ["SERVICE_ACCOUNT_CLIENT_SECRET", "s"],
            ["SERVICE_ACCOUNT_TOKEN_URL", "https://idp.example.com/token"],
            ["SERVICE_ACCOUNT_SERVICE_TOKEN", "svc-tok-from-env\r\n"]
          ])
        ))
      )
    )
    expect(Either.isLeft(result)).toBe(true)
    const text = Either.isLeft(result) ? String(result.left) : ""
    expect(text).toContain("service_token.token cannot be sent in an HTTP header")
    expect(text).not.toContain("svc-tok-from-env")
  })

  it.effect("layerStatic with such a token fails as a static token, not as a function's result", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.flatMap(ServiceToken.ServiceToken, (st) => st.get({} as never)).pipe(
          Effect.provide(ServiceToken.layerStatic("svc-tok\r\nX: 1"))
        )
      )
      expect(error).toMatchObject({ _tag: "ServiceTokenError", reason: "invalid_token" })
      expect(error.message).toMatch(/^Service token for header X-Service-Account-Token cannot be sent: /)
      expect(error.message).not.toMatch(/function/i)
      expectAbsent(error, ["svc-tok\r\nX: 1"])
    }))

  it("a reserved header is named, with why it is reserved (Mcp-Session-Id is not about Authorization)", () => {
    const error = issuesOf({ ...base, service_token: { token: "t", header: "Mcp-Session-Id" } })
    expect(error!.issues.map(String)).toEqual([
      "service_token.header: service_token.header must not be \"Mcp-Session-Id\": that header is reserved (the MCP " +
      "transport sends the session id the server assigned in Mcp-Session-Id); use e.g. X-Service-Account-Token"
    ])
    for (const header of ["Host", "Content-Length", "Accept", "MCP-Protocol-Version", "Last-Event-ID", "Connection"]) {
      const message = issuesOf({ ...base, service_token: { token: "t", header } })!.message
      expect(message, header).toContain(`must not be "${header}": that header is reserved (`)
      expect(message, header).not.toContain("bearer token")
    }
  })

  it.effect("layerStatic and a function's [header, token] name the reserved header too", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.flatMap(ServiceToken.ServiceToken, (st) => st.get({} as never)).pipe(
          Effect.provide(ServiceToken.layerStatic("t", "mcp-session-id"))
        )
      )
      expect(error.message).toBe(
        "Invalid service token header: mcp-session-id is reserved (the MCP transport sends the session id the " +
          "server assigned in Mcp-Session-Id); use e.g. X-Service-Account-Token"
      )
    }))

  it("a ServiceTokenError's cause never serialises a thrown object's properties", () => {
    const secret = "vault-token-must-not-leak"
    const thrownObject = { token: secret, nested: { value: secret } }
    const thrownError = Object.assign(new Error("vault refused"), { token: secret })
    for (const cause of [thrownObject, thrownError, [secret]]) {
      const error = new ServiceAccountError.ServiceTokenError({ reason: "function_failed", detail: "failed", cause })
      for (const text of renderings(error)) expect(text).not.toContain(secret)
      expect(JSON.parse(JSON.stringify(error))).toMatchObject({ _tag: "ServiceTokenError", reason: "function_failed" })
    }
    const error = new ServiceAccountError.ServiceTokenError({
      reason: "function_failed",
      detail: "x",
      cause: thrownError
    })
    expect(JSON.parse(JSON.stringify(error)).cause).toEqual({ name: "Error", message: "vault refused" })
  })
})

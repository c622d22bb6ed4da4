import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import type { TokenError } from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import { FakeHttpClient as FakeTokenEndpoint } from "@mcp-auth/testing"
import { Duration, Effect, Either, Option, Redacted, TestClock } from "effect"
import { parseResponse, parseRetryAfter } from "../src/internal/tokenEndpoint.js"

const config = (extra: Record<string, unknown> = {}) =>
  ServiceAccountConfig.decodeSync({
    client_id: "svc client",
    client_secret: "s3cr:t%+ü",
    token_url: "https://idp.example.com/oauth/token?tenant=x",
    scopes: ["mcp:tools", "mcp:read"],
    ...extra
  })

/** Runs one token request against a fake answering `reply`. */
const requestWith = (reply: FakeTokenEndpoint.Reply, extra: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const fake = yield* FakeTokenEndpoint.make(() => Effect.succeed(reply))
    const result = yield* Effect.either(TokenEndpoint.request(config(extra)).pipe(Effect.provide(fake.layer)))
    return { result, requests: yield* fake.requests }
  })

const failWith = (reply: FakeTokenEndpoint.Reply, extra: Record<string, unknown> = {}) =>
  Effect.flatMap(
    requestWith(reply, extra),
    ({ result }) => Either.isLeft(result) ? Effect.succeed(result.left) : Effect.die("expected a failure")
  )

const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, " "))

describe("TokenEndpoint", () => {
  describe("the request (RFC 6749 §4.4)", () => {
    it.effect("POSTs grant_type and space-joined scope with an RFC 6749 §2.3.1 Basic credential", () =>
      Effect.gen(function*() {
        const { requests, result } = yield* requestWith(FakeTokenEndpoint.token(1))
        expect(Either.isRight(result)).toBe(true)
        const [req] = requests
        expect(req!.method).toBe("POST")
        expect(req!.url).toBe("https://idp.example.com/oauth/token?tenant=x")
        expect(req!.form.get("grant_type")).toBe("client_credentials")
        expect(req!.form.get("scope")).toBe("mcp:tools mcp:read")
        expect(req!.form.has("client_secret")).toBe(false)
        expect(req!.headers["accept"]).toBe("application/json")
        expect(req!.headers["content-type"]).toBe("application/x-www-form-urlencoded")
        const basic = req!.headers["authorization"]!
        expect(basic.startsWith("Basic ")).toBe(true)
        const decoded = new TextDecoder().decode(Uint8Array.from(atob(basic.slice(6)), (c) => c.charCodeAt(0)))
        // form-encoded before base64: the ':' inside the secret cannot split the pair
        expect(decoded).toBe("svc+client:s3cr%3At%25%2B%C3%BC")
        const [id, secret] = decoded.split(":")
        expect(formDecode(id!)).toBe("svc client")
        expect(formDecode(secret!)).toBe("s3cr:t%+ü")
      }))

    it.effect("sends no tracing headers to the identity provider", () =>
      Effect.gen(function*() {
        const { requests } = yield* requestWith(FakeTokenEndpoint.token(1)).pipe(Effect.withSpan("caller"))
        expect(Object.keys(requests[0]!.headers).sort()).toEqual([
          "accept",
          "authorization",
          "content-length",
          "content-type"
        ])
      }))

    it.effect("client_secret_post puts id and secret in the body, not a header", () =>
      Effect.gen(function*() {
        const { requests } = yield* requestWith(FakeTokenEndpoint.token(1), { auth_method: "client_secret_post" })
        expect(requests[0]!.headers["authorization"]).toBeUndefined()
        expect(requests[0]!.form.get("client_id")).toBe("svc client")
        expect(requests[0]!.form.get("client_secret")).toBe("s3cr:t%+ü")
      }))

    it.effect("omits scope when there are none, and sends audience and resource when set", () =>
      Effect.gen(function*() {
        const { requests } = yield* requestWith(FakeTokenEndpoint.token(1), {
          scopes: [],
          audience: "https://api.example.com",
          resource: "https://mcp.example.com/mcp"
        })
        const form = requests[0]!.form
        expect(form.has("scope")).toBe(false)
        expect(form.get("audience")).toBe("https://api.example.com")
        expect(form.get("resource")).toBe("https://mcp.example.com/mcp")
      }))

    it.effect("computes expiry from the instant just before the request was sent", () =>
      Effect.gen(function*() {
        const fake = yield* FakeTokenEndpoint.make((n) =>
          // the response takes 7 s to arrive
          Effect.as(TestClock.adjust("7 seconds"), FakeTokenEndpoint.token(n, 100))
        )
        yield* TestClock.setTime(1_000_000)
        const token = yield* TokenEndpoint.request(config()).pipe(Effect.provide(fake.layer))
        expect(token.issuedAt).toBe(1_000_000)
        expect(token.expiresAt).toBe(1_000_000 + 100_000)
        expect(Redacted.value(token.token)).toBe("tok-1")
        expect(token.tokenType).toBe("Bearer")
      }))

    it.effect("times out after timeout_seconds with TokenTimeoutError", () =>
      Effect.gen(function*() {
        const fake = yield* FakeTokenEndpoint.make(() => Effect.as(Effect.never, FakeTokenEndpoint.token(1)))
        const fiber = yield* Effect.fork(
          Effect.flip(TokenEndpoint.request(config({ timeout_seconds: 5 })).pipe(Effect.provide(fake.layer)))
        )
        yield* TestClock.adjust("5 seconds")
        const error = yield* fiber.await.pipe(Effect.flatten)
        expect(error._tag).toBe("TokenTimeoutError")
        expect(error.message).toBe(
          "Service account token request timed out after 5s (https://idp.example.com/oauth/token?<redacted>): check that the token endpoint is reachable, or raise timeout_seconds"
        )
      }))
  })

  describe("response validation", () => {
    it.effect("accepts a valid response: bearer case-insensitively, numeric string expires_in, scope, refresh_in", () =>
      Effect.gen(function*() {
        const { result } = yield* requestWith({
          status: 200,
          body: { access_token: "abc", token_type: "bEaReR", expires_in: "120", scope: "a  b", refresh_in: 60 }
        })
        const token = Either.getOrThrow(result)
        expect(token.expiresAt - token.issuedAt).toBe(120_000)
        expect(token.scopes).toEqual(["a", "b"])
        expect(token.refreshIn).toBe(60)
      }))

    it.effect("defaults a missing expires_in to 3600 s, configurable", () =>
      Effect.gen(function*() {
        const a = Either.getOrThrow(
          (yield* requestWith({ status: 200, body: { access_token: "a", token_type: "Bearer" } })).result
        )
        expect(a.expiresAt - a.issuedAt).toBe(3_600_000)
        expect(a.scopes).toEqual(["mcp:tools", "mcp:read"])
        const b = Either.getOrThrow(
          (yield* requestWith({ status: 200, body: { access_token: "a", token_type: "Bearer" } }, {
            default_expires_in_seconds: 60
          })).result
        )
        expect(b.expiresAt - b.issuedAt).toBe(60_000)
      }))

    const malformed: ReadonlyArray<[string, FakeTokenEndpoint.Reply, string, string]> = [
      [
        "a non-JSON 200",
        { status: 200, body: "<html>ok</html>" },
        "not_json",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: the response is not JSON (text/html, 15 bytes)"
      ],
      [
        "a JSON array",
        { status: 200, body: [{ access_token: "leak-me" }] },
        "not_object",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: the response is an array, expected a JSON object"
      ],
      [
        "a missing access_token",
        { status: 200, body: { token_type: "Bearer" } },
        "missing_access_token",
        "Access token not found in token response from https://idp.example.com/oauth/token?<redacted>: the response has no access_token"
      ],
      [
        "an empty access_token",
        { status: 200, body: { access_token: "", token_type: "Bearer" } },
        "missing_access_token",
        "Access token not found in token response from https://idp.example.com/oauth/token?<redacted>: access_token must be a non-empty string"
      ],
      [
        "token_type mac",
        { status: 200, body: { access_token: "tok-mac", token_type: "mac" } },
        "token_type",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: token_type \"mac\" is not supported: only Bearer tokens can be sent"
      ],
      [
        "a missing token_type",
        { status: 200, body: { access_token: "tok-without-type" } },
        "token_type",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: token_type is missing (expected Bearer)"
      ],
      [
        "a non-numeric expires_in",
        { status: 200, body: { access_token: "tok", token_type: "Bearer", expires_in: "soon" } },
        "expires_in",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: expires_in must be a number of seconds > 0, got \"soon\""
      ],
      [
        "a negative expires_in",
        { status: 200, body: { access_token: "tok", token_type: "Bearer", expires_in: -5 } },
        "expires_in",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: expires_in is -5: the identity provider issued a token that is already expired; give the client a positive access token lifetime at the identity provider"
      ],
      [
        "expires_in 0",
        { status: 200, body: { access_token: "tok", token_type: "Bearer", expires_in: 0 } },
        "expires_in",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: expires_in is 0: the identity provider issued a token that is already expired; give the client a positive access token lifetime at the identity provider"
      ],
      [
        "a negative numeric-string expires_in",
        { status: 200, body: { access_token: "tok", token_type: "Bearer", expires_in: " -30 " } },
        "expires_in",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: expires_in is -30: the identity provider issued a token that is already expired; give the client a positive access token lifetime at the identity provider"
      ],
      [
        "a non-string scope",
        { status: 200, body: { access_token: "tok", token_type: "Bearer", scope: ["a"] } },
        "scope",
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: scope must be a space-delimited string, got an array"
      ]
    ]
    for (const [name, reply, reason, message] of malformed) {
      it.effect(`rejects ${name} with MalformedResponseError`, () =>
        Effect.gen(function*() {
          const error = yield* failWith(reply)
          expect(error._tag).toBe("MalformedResponseError")
          expect(error._tag === "MalformedResponseError" && error.reason).toBe(reason)
          expect(error.message).toBe(message)
          expect(JSON.stringify(error)).not.toContain("leak-me")
          expect(JSON.stringify(error)).not.toContain("tok-mac")
        }))
    }
  })

  describe("a token that is expired on arrival is never returned", () => {
    /** One request whose response takes `tookMillis` to arrive, answering a token with `expires_in` `lifetime`. */
    const slow = (lifetime: unknown, tookMillis: number) =>
      Effect.gen(function*() {
        const fake = yield* FakeTokenEndpoint.make((n) =>
          Effect.as(TestClock.adjust(Duration.millis(tookMillis)), FakeTokenEndpoint.token(n, lifetime))
        )
        yield* TestClock.setTime(1_000_000)
        return yield* Effect.either(TokenEndpoint.request(config()).pipe(Effect.provide(fake.layer)))
      })

    // A slow (overloaded) endpoint may answer in time on the next attempt: arrived_late is retried, not a 60 s
    // permanent cool-down for the whole fleet (the soak test's finding).
    it.effect("rejects a 1 s token whose response took 2 s as arrived_late, a transient failure naming both durations", () =>
      Effect.gen(function*() {
        const result = yield* slow(1, 2000)
        const error = Either.getLeft(result).pipe(Option.getOrThrow)
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "arrived_late" })
        expect(error.message).toBe(
          "The token from https://idp.example.com/oauth/token?<redacted> arrived too late to use: the token expired before its response arrived: its lifetime is 1000 ms but the request took 2000 ms; give the client a longer access token lifetime at the identity provider, or find why the token endpoint answers so slowly"
        )
        expect(JSON.stringify(error)).not.toContain("tok-1")
        expect(ServiceAccountError.isTransient(error)).toBe(true)
        expect(ServiceAccountError.failureKind(error)).toBe("transient")
      }))

    it.effect("rejects a token whose lifetime ends exactly when the response arrives, as arrived_late", () =>
      Effect.gen(function*() {
        const error = Either.getLeft(yield* slow(1, 1000)).pipe(Option.getOrThrow)
        expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "arrived_late" })
        expect(ServiceAccountError.isTransient(error)).toBe(true)
        expect(error.message).toContain("its lifetime is 1000 ms but the request took 1000 ms")
      }))

    it.effect("accepts a 2 s token whose response took 1 s, with its expiry counted from before the request", () =>
      Effect.gen(function*() {
        const token = Either.getOrThrow(yield* slow(2, 1000))
        expect(token.issuedAt).toBe(1_000_000)
        expect(token.expiresAt).toBe(1_002_000)
        expect(Redacted.value(token.token)).toBe("tok-1")
      }))

    it.effect("rejects expires_in 0 and negative values even when the response is instant", () =>
      Effect.gen(function*() {
        for (const lifetime of [0, -1, -3600, "0", "-0.5"]) {
          const error = Either.getLeft(yield* slow(lifetime, 0)).pipe(Option.getOrThrow)
          expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "expires_in" })
          expect(error.message).toContain("the identity provider issued a token that is already expired")
          // not a slow answer but the identity provider's configuration: retrying cannot help
          expect(ServiceAccountError.isTransient(error)).toBe(false)
          expect(ServiceAccountError.failureKind(error)).toBe("permanent")
        }
      }))

    it("a missing expires_in with a default_expires_in_seconds of 0 is refused, naming the setting to fix", () => {
      const zero = { ...config(), defaultExpiresInSeconds: 0 }
      const body = JSON.stringify({ access_token: "tok-default", token_type: "Bearer" })
      const result = parseResponse(zero, { status: 200, headers: {}, body }, 1_000, 1_000)
      const error = Either.getLeft(result).pipe(Option.getOrThrow)
      expect(error).toMatchObject({ _tag: "MalformedResponseError", reason: "expires_in" })
      expect(ServiceAccountError.failureKind(error)).toBe("permanent")
      expect(error.message).toBe(
        "Malformed token response from https://idp.example.com/oauth/token?<redacted>: the response has no expires_in and default_expires_in_seconds is 0: set default_expires_in_seconds to the lifetime of the identity provider's tokens"
      )
      // the default also counts against the time the request took
      const short = { ...config(), defaultExpiresInSeconds: 1 }
      const late = Either.getLeft(parseResponse(short, { status: 200, headers: {}, body }, 1_000, 2_000)).pipe(
        Option.getOrThrow
      )
      expect(late).toMatchObject({ _tag: "MalformedResponseError", reason: "arrived_late" })
      expect(late.message).toContain("its lifetime is 1000 ms but the request took 1000 ms")
      expect(ServiceAccountError.failureKind(late)).toBe("transient")
      expect(Either.isRight(parseResponse(short, { status: 200, headers: {}, body }, 1_000, 1_999))).toBe(true)
    })
  })

  describe("status mapping", () => {
    const cases: ReadonlyArray<[string, FakeTokenEndpoint.Reply, Partial<TokenError>, string]> = [
      [
        "401 without a body",
        { status: 401, body: "" },
        { _tag: "InvalidCredentialsError", status: 401 },
        "Invalid service account credentials (HTTP 401 from https://idp.example.com/oauth/token?<redacted>): check client_id and client_secret, and that the client may use the client_credentials grant"
      ],
      [
        "401 invalid_client",
        { status: 401, body: { error: "invalid_client", error_description: "client authentication failed" } },
        { _tag: "InvalidCredentialsError", status: 401, error: "invalid_client" },
        "Invalid service account credentials (invalid_client: client authentication failed, HTTP 401 from https://idp.example.com/oauth/token?<redacted>): check client_id and client_secret, and that the client may use the client_credentials grant"
      ],
      [
        "400 invalid_client",
        { status: 400, body: { error: "invalid_client" } },
        { _tag: "InvalidCredentialsError", status: 400, error: "invalid_client" },
        "Invalid service account credentials (invalid_client, HTTP 400 from https://idp.example.com/oauth/token?<redacted>): check client_id and client_secret, and that the client may use the client_credentials grant"
      ],
      [
        "400 unauthorized_client",
        { status: 400, body: { error: "unauthorized_client" } },
        { _tag: "InvalidCredentialsError", status: 400, error: "unauthorized_client" },
        "Invalid service account credentials (unauthorized_client, HTTP 400 from https://idp.example.com/oauth/token?<redacted>): check client_id and client_secret, and that the client may use the client_credentials grant"
      ],
      [
        "400 invalid_scope",
        { status: 400, body: { error: "invalid_scope", error_description: "mcp:admin not allowed" } },
        { _tag: "TokenEndpointError", status: 400, error: "invalid_scope", errorDescription: "mcp:admin not allowed" },
        "Service account token request failed: HTTP 400 from https://idp.example.com/oauth/token?<redacted> (OAuth error invalid_scope: mcp:admin not allowed): check scopes against what the client is allowed to request"
      ],
      [
        "429 with Retry-After seconds",
        { status: 429, headers: { "retry-after": "7" }, body: "" },
        { _tag: "RateLimitedError", status: 429, retryAfter: Duration.seconds(7) },
        "Service account rate limit exceeded (HTTP 429 from https://idp.example.com/oauth/token?<redacted>): retry after 7s"
      ],
      [
        "429 without Retry-After",
        { status: 429, body: { error: "slow_down" } },
        { _tag: "RateLimitedError", status: 429 },
        "Service account rate limit exceeded (HTTP 429 from https://idp.example.com/oauth/token?<redacted>): wait before retrying"
      ],
      [
        "502 with an HTML body",
        { status: 502, body: "<html><body>Bad gateway tok-secret</body></html>" },
        { _tag: "TokenEndpointError", status: 502 },
        "Service account token request failed: HTTP 502 from https://idp.example.com/oauth/token?<redacted> (no OAuth error in the response body): the identity provider failed; it is retried automatically"
      ],
      [
        "503 with Retry-After",
        { status: 503, headers: { "retry-after": "3" }, body: "" },
        { _tag: "TokenEndpointError", status: 503, retryAfter: Duration.seconds(3) },
        "Service account token request failed: HTTP 503 from https://idp.example.com/oauth/token?<redacted> (no OAuth error in the response body): the identity provider failed; it is retried automatically"
      ],
      [
        "a 200-range status other than 200",
        { status: 201, body: { access_token: "tok-201", token_type: "Bearer" } },
        { _tag: "TokenEndpointError", status: 201 },
        "Service account token request failed: HTTP 201 from https://idp.example.com/oauth/token?<redacted> (no OAuth error in the response body): check token_url"
      ]
    ]
    for (const [name, reply, fields, message] of cases) {
      it.effect(`maps ${name}`, () =>
        Effect.gen(function*() {
          const error = yield* failWith(reply)
          expect(error).toMatchObject(fields)
          expect(error.message).toBe(message)
          expect(JSON.stringify(error)).not.toContain("tok-")
        }))
    }

    it.effect("maps a TLS failure found in the cause chain to TlsError with its code", () =>
      Effect.gen(function*() {
        const error = yield* failWith({
          fail: "SELF_SIGNED_CERT_IN_CHAIN",
          message: "self-signed certificate in certificate chain"
        })
        expect(error).toMatchObject({ _tag: "TlsError", code: "SELF_SIGNED_CERT_IN_CHAIN" })
        expect(error.message).toBe(
          "TLS certificate verification failed for https://idp.example.com/oauth/token?<redacted> (SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain): if the server uses an internal certificate authority, set ca_file to its PEM bundle"
        )
      }))

    it.effect("maps a refused connection to NetworkError", () =>
      Effect.gen(function*() {
        const error = yield* failWith({ fail: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:9" })
        expect(error).toMatchObject({ _tag: "NetworkError", code: "ECONNREFUSED" })
        expect(error.message).toBe(
          "Service account token request failed: could not reach https://idp.example.com/oauth/token?<redacted> (ECONNREFUSED): check token_url, DNS, proxies and firewalls"
        )
      }))

    it.effect("scrubs the client secret from server text it repeats", () =>
      Effect.gen(function*() {
        const error = yield* failWith({
          status: 400,
          body: { error: "invalid_request", error_description: "bad secret s3cr:t%+ü given" }
        })
        expect(error.message).toContain("bad secret <redacted> given")
        expect(error.message).not.toContain("s3cr:t%+ü")
      }))
  })

  describe("Retry-After", () => {
    it("parses delta-seconds, HTTP-dates and retry-after-ms, capped at one hour", () => {
      const now = Date.parse("2026-11-26T10:00:00Z")
      const ms = (h: Record<string, string>) => {
        const d = parseRetryAfter(h, now)
        return d === undefined ? undefined : Duration.toMillis(d)
      }
      expect(ms({ "retry-after": "2" })).toBe(2000)
      expect(ms({ "retry-after": "Thu, 26 Nov 2026 10:00:05 GMT" })).toBe(5000)
      expect(ms({ "retry-after": "Thu, 26 Nov 2026 09:00:05 GMT" })).toBe(0)
      expect(ms({ "retry-after-ms": "250", "retry-after": "9" })).toBe(250)
      expect(ms({ "retry-after": "99999" })).toBe(3_600_000)
      expect(ms({ "retry-after": "soon" })).toBeUndefined()
      expect(ms({})).toBeUndefined()
    })
  })
})

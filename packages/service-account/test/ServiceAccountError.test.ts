import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import { Duration, FastCheck as fc, Schema } from "effect"

const {
  ConfigIssue,
  ConfigurationError,
  ClientCredentialError,
  DiscoveryError,
  InvalidCredentialsError,
  MalformedResponseError,
  NetworkError,
  RateLimitedError,
  ServiceTokenError,
  TlsError,
  TokenEndpointError,
  TokenTimeoutError
} = ServiceAccountError

const text = fc.string({ maxLength: 40 })
const url = fc.webUrl()
const status = fc.integer({ min: 100, max: 599 })
/** Whole milliseconds (`Millis`), fractional ones (`Nanos`, a bigint) and zero. */
const duration = fc.oneof(
  fc.nat({ max: 3_600_000 }).map(Duration.millis),
  fc.double({ min: 0.001, max: 60_000, noNaN: true }).map(Duration.millis),
  fc.constant(Duration.zero)
)
const tokenErrors: ReadonlyArray<fc.Arbitrary<ServiceAccountError.TokenError>> = [
  fc.record({ tokenUrl: url, status, error: text, errorDescription: text }, { requiredKeys: ["tokenUrl", "status"] })
    .map((f) => new InvalidCredentialsError(f)),
  fc.record({ tokenUrl: url, status: fc.constant(429), retryAfter: duration }, { requiredKeys: ["tokenUrl", "status"] })
    .map((f) => new RateLimitedError(f)),
  fc.record({ url, code: text, reason: text }).map((f) => new TlsError(f)),
  fc.record({ tokenUrl: url, timeout: duration }).map((f) => new TokenTimeoutError(f)),
  fc.record({ url, code: text, reason: text }, { requiredKeys: ["url", "reason"] }).map((f) => new NetworkError(f)),
  fc.record({ tokenUrl: url, reason: fc.constantFrom(...ServiceAccountError.MalformedReason.literals), detail: text })
    .map((f) => new MalformedResponseError(f)),
  fc.record(
    { tokenUrl: url, status, error: text, errorDescription: text, retryAfter: duration },
    { requiredKeys: ["tokenUrl", "status"] }
  ).map((f) => new TokenEndpointError(f)),
  fc.record({ tokenUrl: url, field: text, file: text, reason: text }, { requiredKeys: ["tokenUrl", "field", "reason"] })
    .map((f) => new ClientCredentialError(f)),
  fc.record({ reason: fc.constantFrom(...ServiceAccountError.DiscoveryReason.literals), url, detail: text })
    .map((f) => new DiscoveryError(f))
]

const cause = fc.oneof(
  text,
  fc.tuple(fc.constantFrom("Error", "TypeError", "RangeError"), text).map(([name, message]) => {
    const error = new Error(message)
    error.name = name
    return error
  })
)

const allErrors: ReadonlyArray<fc.Arbitrary<ServiceAccountError.ServiceAccountError>> = [
  ...tokenErrors,
  fc.record({
    reason: fc.constantFrom(...ServiceTokenError.fields.reason.literals),
    detail: text,
    header: text,
    cause
  }, { requiredKeys: ["reason", "detail"] }).map((f) => new ServiceTokenError(f)),
  fc.array(fc.record({ path: text, message: text }).map((f) => new ConfigIssue(f)), { maxLength: 4 })
    .map((issues) => new ConfigurationError({ issues }))
]

const toJson = <A, I>(schema: Schema.Schema<A, I>, value: A): string => JSON.stringify(Schema.encodeSync(schema)(value))

const fromJson = <A, I>(schema: Schema.Schema<A, I>, json: string): A =>
  Schema.decodeUnknownSync(schema)(JSON.parse(json))

/** Same class, tag, fields (Durations and ConfigIssues compared by value) and message; `cause` by name and message. */
const expectSameError = (decoded: ServiceAccountError.ServiceAccountError, original: typeof decoded) => {
  expect(Object.getPrototypeOf(decoded)).toBe(Object.getPrototypeOf(original))
  expect(decoded._tag).toBe(original._tag)
  expect({ ...decoded }).toEqual({ ...original })
  expect(decoded.message).toBe(original.message)
  expect(ServiceAccountError.isServiceAccountError(decoded)).toBe(true)
  expect(ServiceAccountError.isTokenError(decoded)).toBe(ServiceAccountError.isTokenError(original))
  const before: unknown = original.cause
  const after: unknown = decoded.cause
  if (before instanceof Error) {
    expect(after).toBeInstanceOf(Error)
    expect({ name: (after as Error).name, message: (after as Error).message })
      .toEqual({ name: before.name, message: before.message })
  } else {
    expect(after).toEqual(before)
  }
}

describe("ServiceAccountError", () => {
  describe("JSON round trip (encode → stringify → parse → decode)", () => {
    it("the samples cover every member of both unions", () => {
      const tags = (arbs: ReadonlyArray<fc.Arbitrary<{ readonly _tag: string }>>) =>
        new Set(arbs.map((arb) => fc.sample(arb, 1)[0]!._tag))
      const memberTags = (union: { readonly members: ReadonlyArray<{ readonly _tag: string }> }) =>
        new Set(union.members.map((member) => member._tag))
      expect(tags(tokenErrors)).toEqual(memberTags(ServiceAccountError.TokenError))
      expect(tags(allErrors)).toEqual(memberTags(ServiceAccountError.ServiceAccountError))
    })

    it.prop(
      "every TokenError comes back equal through the TokenError schema",
      [fc.oneof(...tokenErrors)],
      ([error]) => {
        const json = toJson(ServiceAccountError.TokenError, error)
        const decoded = fromJson(ServiceAccountError.TokenError, json)
        expectSameError(decoded, error)
        expect(toJson(ServiceAccountError.TokenError, decoded)).toBe(json)
      },
      { fastCheck: { numRuns: 500 } }
    )

    it.prop(
      "every ServiceAccountError comes back equal through the ServiceAccountError schema",
      [fc.oneof(...allErrors)],
      ([error]) => {
        const json = toJson(ServiceAccountError.ServiceAccountError, error)
        const decoded = fromJson(ServiceAccountError.ServiceAccountError, json)
        expectSameError(decoded, error)
        expect(toJson(ServiceAccountError.ServiceAccountError, decoded)).toBe(json)
      },
      { fastCheck: { numRuns: 500 } }
    )

    it("durations encode to Effect's tagged JSON form and decode to the same wait", () => {
      const limited = new RateLimitedError({
        tokenUrl: "https://idp.example.com/token",
        status: 429,
        retryAfter: Duration.seconds(7)
      })
      const json = toJson(ServiceAccountError.TokenError, limited)
      expect(JSON.parse(json)).toEqual({
        _tag: "RateLimitedError",
        tokenUrl: "https://idp.example.com/token",
        status: 429,
        retryAfter: { _tag: "Millis", millis: 7000 }
      })
      const decoded = fromJson(ServiceAccountError.TokenError, json)
      expect(Duration.toMillis(ServiceAccountError.retryAfter(decoded)!)).toBe(7000)
      expect(decoded.message).toBe(
        "Service account rate limit exceeded (HTTP 429 from https://idp.example.com/token): retry after 7s"
      )
      const timeout = new TokenTimeoutError({
        tokenUrl: "https://idp.example.com/token",
        timeout: Duration.millis(2.5)
      })
      expect(JSON.parse(toJson(ServiceAccountError.TokenError, timeout)).timeout).toEqual({
        _tag: "Nanos",
        nanos: "2500000"
      })
    })

    it("a ServiceTokenError's cause encodes as its name and message only: no stack, no nested cause", () => {
      const secret = "svc-token-that-must-not-leak"
      const failure = new TypeError("the vault refused the request", { cause: { token: secret } })
      failure.stack = `TypeError: ${secret}\n    at vault.ts:1:1`
      const error = new ServiceTokenError({ reason: "function_failed", detail: "the vault refused", cause: failure })
      const json = toJson(ServiceAccountError.ServiceAccountError, error)
      expect(json).not.toContain(secret)
      expect(JSON.parse(json).cause).toEqual({ name: "TypeError", message: "the vault refused the request" })
      expectSameError(fromJson(ServiceAccountError.ServiceAccountError, json), error)
    })
  })

  describe("failureKind", () => {
    const tokenUrl = "https://idp.example.com/token"
    const cases: ReadonlyArray<[ServiceAccountError.TokenError, "transient" | "permanent"]> = [
      [new NetworkError({ url: tokenUrl, reason: "connect ECONNREFUSED" }), "transient"],
      [new TokenTimeoutError({ tokenUrl, timeout: Duration.seconds(30) }), "transient"],
      [new RateLimitedError({ tokenUrl, status: 429 }), "transient"],
      [new TokenEndpointError({ tokenUrl, status: 503 }), "transient"],
      [new TokenEndpointError({ tokenUrl, status: 500 }), "transient"],
      [new TokenEndpointError({ tokenUrl, status: 408 }), "transient"],
      [new TokenEndpointError({ tokenUrl, status: 400, error: "invalid_scope" }), "permanent"],
      [new TokenEndpointError({ tokenUrl, status: 404 }), "permanent"],
      [new TokenEndpointError({ tokenUrl, status: 201 }), "permanent"],
      [new InvalidCredentialsError({ tokenUrl, status: 401 }), "permanent"],
      [new TlsError({ url: tokenUrl, code: "CERT_HAS_EXPIRED", reason: "certificate has expired" }), "permanent"],
      [new MalformedResponseError({ tokenUrl, reason: "expires_in", detail: "already expired" }), "permanent"],
      [new MalformedResponseError({ tokenUrl, reason: "arrived_late", detail: "1 ms of 1000 ms left" }), "transient"],
      [new MalformedResponseError({ tokenUrl, reason: "not_json", detail: "html" }), "permanent"]
    ]
    for (const [error, kind] of cases) {
      const status = "status" in error ? ` ${error.status}` : "reason" in error ? ` ${error.reason}` : ""
      it(`${error._tag}${status} is ${kind}`, () => {
        expect(ServiceAccountError.failureKind(error)).toBe(kind)
      })
    }

    it.prop(
      "is transient exactly when isTransient holds",
      [fc.oneof(...tokenErrors)],
      ([error]) => {
        expect(ServiceAccountError.failureKind(error) === "transient").toBe(ServiceAccountError.isTransient(error))
      },
      { fastCheck: { numRuns: 500 } }
    )
  })
})

/**
 * The pure parts of `mcp-auth doctor` (internal/doctor/claims.ts): a JWT's payload, its claims against the
 * configuration and the local clock, a server's `Date` against the local clock, the `WWW-Authenticate` challenge of a
 * refused MCP request.
 */
import { describe, expect, it } from "vitest"
import {
  bearerError,
  type ClaimsInput,
  decodeJwt,
  evaluateClaims,
  maxSkewSeconds,
  parseChallenges,
  skewSeconds
} from "../src/internal/doctor/claims.js"

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const jwt = (payload: unknown) => `${part({ alg: "RS256", typ: "at+jwt" })}.${part(payload)}.c2lnbmF0dXJl`

const now = 1_800_000_000
const mcpUrl = "https://mcp.example/mcp"
const base: ClaimsInput = {
  claims: { iss: "https://as.example", sub: "svc", aud: mcpUrl, scope: "mcp:tools", iat: now, exp: now + 3600 },
  expectedAudience: { value: mcpUrl, from: "resource" },
  requestedScopes: ["mcp:tools"],
  responseScopes: ["mcp:tools"],
  responseLifetimeSeconds: 3600,
  bufferSeconds: 300,
  now
}
const withClaims = (claims: Record<string, unknown>): ClaimsInput => ({
  ...base,
  claims: { ...base.claims, ...claims }
})
const problems = (input: ClaimsInput) => evaluateClaims(input).problems.map((p) => p.problem)

describe("decodeJwt", () => {
  it("decodes the payload of a JWT without verifying it", () => {
    expect(decodeJwt(jwt({ sub: "svc", exp: 5 }))).toEqual({ sub: "svc", exp: 5 })
  })

  it("gives undefined for anything that is not a JWT with an object payload", () => {
    for (
      const token of [
        "opaque-token",
        "a.b",
        "a.b.c.d",
        `${part({})}..sig`,
        `${part({})}.${Buffer.from("not json").toString("base64url")}.sig`,
        `${part({})}.${part([1, 2])}.sig`,
        `${part({})}.${part("text")}.sig`,
        `${part({})}.${part({ a: 1 })}+.sig`
      ]
    ) expect(decodeJwt(token), token).toBeUndefined()
  })
})

describe("evaluateClaims", () => {
  it("passes a token for the resource, with the scopes and a lifetime above the buffer", () => {
    const report = evaluateClaims(base)
    expect(report.problems).toEqual([])
    expect(report.facts).toEqual([
      "JWT from https://as.example, sub svc",
      "aud matches resource",
      "scopes granted: mcp:tools",
      "lifetime 3600 s (token_cache_buffer_seconds 300 s)"
    ])
  })

  it("accepts the expected audience in an aud array, with or without a trailing slash", () => {
    expect(problems(withClaims({ aud: ["https://other.example", `${mcpUrl}/`] }))).toEqual([])
  })

  it("fails an aud that does not name the expected audience, with a fix per source", () => {
    const other = evaluateClaims(withClaims({ aud: "https://other.example/mcp" })).problems
    expect(other).toHaveLength(1)
    expect(other[0]!.problem).toBe(`aud is https://other.example/mcp, not ${mcpUrl} (resource)`)
    expect(other[0]!.fix).toContain("the authorization server ignored resource")
    const missing = evaluateClaims({
      ...withClaims({ aud: undefined }),
      expectedAudience: { value: mcpUrl, from: "server.url" }
    }).problems
    expect(missing[0]!.problem).toBe(`aud is missing, not ${mcpUrl} (server.url)`)
    expect(missing[0]!.fix).toContain(`set resource: ${mcpUrl}`)
  })

  it("compares requested scopes with scope, scp (array or string), else the token response", () => {
    const requested = { ...base, requestedScopes: ["mcp:tools", "mcp:admin"] }
    const missing = "missing: mcp:admin"
    expect(problems({ ...requested, claims: { ...base.claims, scope: "mcp:tools" } })[0]).toContain(missing)
    expect(problems({ ...requested, claims: { ...base.claims, scope: undefined, scp: ["mcp:tools"] } })[0]).toContain(
      missing
    )
    expect(problems({ ...requested, claims: { ...base.claims, scope: undefined, scp: "mcp:admin mcp:tools" } }))
      .toEqual([])
    // no scope claim: the token response's scopes
    expect(problems({ ...requested, claims: { ...base.claims, scope: undefined } })[0]).toBe(
      "scopes granted: mcp:tools; missing: mcp:admin"
    )
    expect(problems({ ...requested, claims: undefined, responseScopes: ["mcp:admin", "mcp:tools"] })).toEqual([])
  })

  it("does not compare …/.default requests (Entra ID grants the API's scopes instead)", () => {
    expect(problems({ ...base, requestedScopes: ["api://mcp/.default"] })).toEqual([])
  })

  it("fails a lifetime not above token_cache_buffer_seconds, from iat/exp else expires_in", () => {
    const short = evaluateClaims(withClaims({ exp: now + 300 })).problems
    expect(short.map((p) => p.problem)).toEqual([
      "the token lives 300 s, not more than token_cache_buffer_seconds (300 s): it is refreshed all the time"
    ])
    expect(short[0]!.fix).toContain("lower token_cache_buffer_seconds below 150")
    expect(problems(withClaims({ exp: now + 301 }))).toEqual([])
    expect(problems({ ...base, claims: undefined, responseLifetimeSeconds: 120 })[0]).toContain("the token lives 120 s")
  })

  it("fails an iat or nbf more than the tolerance in the future of the local clock", () => {
    const ahead = maxSkewSeconds + 1
    expect(problems(withClaims({ iat: now + ahead, exp: now + ahead + 3600 }))).toEqual([
      `iat is ${ahead} s in the future of the local clock`
    ])
    expect(problems(withClaims({ nbf: now + 7200 }))).toEqual(["nbf is 7200 s in the future of the local clock"])
    expect(evaluateClaims(withClaims({ nbf: now + 7200 })).problems[0]!.fix).toContain("set the local clock right")
  })

  it("accepts an iat or nbf within the tolerance (clocks a little apart)", () => {
    expect(problems(withClaims({ iat: now + maxSkewSeconds, exp: now + maxSkewSeconds + 3600 }))).toEqual([])
    expect(problems(withClaims({ nbf: now + maxSkewSeconds }))).toEqual([])
    expect(problems(withClaims({ nbf: now - 3600 }))).toEqual([])
  })

  it("fails an exp at or before the local clock", () => {
    expect(problems(withClaims({ iat: now - 7200, exp: now - 600 }))).toEqual([
      "exp is 600 s in the past of the local clock"
    ])
    expect(problems(withClaims({ iat: now - 3600, exp: now }))).toEqual(["exp is 0 s in the past of the local clock"])
  })

  it("ignores claims of the wrong type", () => {
    expect(problems(withClaims({ iat: "soon", nbf: "later", exp: "never" }))).toEqual([])
  })

  it("checks an opaque token for the response's lifetime and scopes only", () => {
    const report = evaluateClaims({ ...base, claims: undefined })
    expect(report.problems).toEqual([])
    expect(report.facts[0]).toBe("opaque token (not a JWT): lifetime and scopes from the token response")
    expect(report.facts.some((f) => f.startsWith("aud"))).toBe(false)
  })
})

describe("skewSeconds", () => {
  const at = Date.parse("Tue, 01 Dec 2026 12:00:00 GMT")

  it("gives the server's Date minus the local time, rounded to seconds", () => {
    expect(skewSeconds("Tue, 01 Dec 2026 12:00:00 GMT", at)).toBe(0)
    expect(skewSeconds("Tue, 01 Dec 2026 12:00:00 GMT", at + 400)).toBe(0)
    expect(skewSeconds("Tue, 01 Dec 2026 09:00:00 GMT", at)).toBe(-10_800)
    expect(skewSeconds("Tue, 01 Dec 2026 12:02:00 GMT", at)).toBe(120)
  })

  it("gives undefined without a usable Date", () => {
    expect(skewSeconds(undefined, at)).toBeUndefined()
    expect(skewSeconds("yesterday-ish", at)).toBeUndefined()
  })
})

describe("bearerError", () => {
  it("decodes quoted parameters, unescaping them", () => {
    expect(
      bearerError(
        "Bearer realm=\"mcp\", error=\"invalid_token\", error_description=\"the \\\"aud\\\" is wrong, sorry\""
      )
    ).toEqual({ error: "invalid_token", description: "the \"aud\" is wrong, sorry" })
  })

  it("decodes unquoted (token) values and the scope of insufficient_scope", () => {
    expect(bearerError("Bearer error=insufficient_scope, scope=\"mcp:tools mcp:admin\"")).toEqual({
      error: "insufficient_scope",
      description: undefined,
      scope: "mcp:tools mcp:admin"
    })
    expect(bearerError("bearer error=invalid_token,error_description=expired")).toEqual({
      error: "invalid_token",
      description: "expired"
    })
  })

  it("finds the Bearer challenge among others, whatever their parameters or token68", () => {
    expect(bearerError("Basic realm=\"x, y\", Bearer error=\"invalid_token\"")).toEqual({
      error: "invalid_token",
      description: undefined
    })
    expect(bearerError("Negotiate abc+/def==, DPoP algs=\"ES256\", Bearer error=invalid_token")).toEqual({
      error: "invalid_token",
      description: undefined
    })
  })

  it("gives nothing without a Bearer challenge, and no error for a bare one or a token68", () => {
    expect(bearerError(undefined)).toEqual({})
    expect(bearerError("Basic realm=\"x\"")).toEqual({})
    expect(bearerError("Bearerish error=\"invalid_token\"")).toEqual({})
    expect(bearerError("Bearer")).toEqual({ error: undefined, description: undefined })
    expect(bearerError("Bearer dG9rZW4=")).toEqual({ error: undefined, description: undefined })
  })
})

describe("parseChallenges", () => {
  it("splits a header into schemes with parameters (names in lower case) or token68", () => {
    expect(parseChallenges("Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Bearer Realm=\"a,b\" , Error=x")).toEqual([
      { scheme: "Basic", params: {}, token68: "YWxhZGRpbjpvcGVuc2VzYW1l==" },
      { scheme: "Bearer", params: { realm: "a,b", error: "x" } }
    ])
  })

  it("stops at what is neither a parameter nor a scheme", () => {
    expect(parseChallenges("Bearer error=\"invalid_token\", \"stray")).toEqual([
      { scheme: "Bearer", params: { error: "invalid_token" } }
    ])
    expect(parseChallenges("")).toEqual([])
  })
})

/**
 * The pure parts of `mcp-auth doctor`: a token's claims against the configuration, a server's `Date` against the local
 * clock, the `WWW-Authenticate` error of a refused MCP request.
 *
 * @internal
 */
import * as Discovery from "@mcp-auth/service-account/Discovery"

/** The most a server's clock, or a token's `iat`/`nbf`, may be off the local clock before the doctor fails. @internal */
export const maxSkewSeconds = 60

/** A JWT's payload, decoded without verifying its signature; `undefined` when the token is not a JWT. @internal */
export const decodeJwt = (token: string): Record<string, unknown> | undefined => {
  const parts = token.split(".")
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || parts[1]!.length === 0) return undefined
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"))
    return typeof payload === "object" && payload !== null && !Array.isArray(payload)
      ? payload as Record<string, unknown>
      : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export interface ClaimsInput {
  /** The decoded payload, or `undefined` for an opaque token. */
  readonly claims: Record<string, unknown> | undefined
  /** What the `aud` must contain, and the key that says so (`resource`, `audience`, `server.url`). */
  readonly expectedAudience: { readonly value: string; readonly from: string } | undefined
  readonly requestedScopes: ReadonlyArray<string>
  /** The scopes of the token response (or the requested ones when it named none). */
  readonly responseScopes: ReadonlyArray<string>
  /** `expires_in` as the token response said it, in seconds. */
  readonly responseLifetimeSeconds: number
  readonly bufferSeconds: number
  /** Epoch seconds. */
  readonly now: number
}

/** @internal */
export interface Finding {
  readonly problem: string
  readonly fix: string
}

/** @internal */
export interface ClaimsReport {
  readonly facts: ReadonlyArray<string>
  readonly problems: ReadonlyArray<Finding>
}

const seconds = (n: number) => `${Math.round(n)} s`

/**
 * The token against the configuration: `aud` contains the expected audience, the granted scopes contain the requested
 * ones (`…/.default` requests are not compared), the lifetime is longer than `token_cache_buffer_seconds`, and `iat`,
 * `nbf` and `exp` agree with the local clock (within {@link maxSkewSeconds}). An opaque token is checked for its
 * lifetime and the response's scopes only.
 *
 * @internal
 */
export const evaluateClaims = (input: ClaimsInput): ClaimsReport => {
  const facts: Array<string> = []
  const problems: Array<Finding> = []
  const claims = input.claims
  if (claims === undefined) facts.push("opaque token (not a JWT): lifetime and scopes from the token response")
  else {
    const iss = typeof claims.iss === "string" ? claims.iss : undefined
    const sub = typeof claims.sub === "string" ? claims.sub : undefined
    facts.push(`JWT${iss === undefined ? "" : ` from ${iss}`}${sub === undefined ? "" : `, sub ${sub}`}`)
    const aud = typeof claims.aud === "string"
      ? [claims.aud]
      : Array.isArray(claims.aud)
      ? claims.aud.filter((a): a is string => typeof a === "string")
      : []
    const expected = input.expectedAudience
    if (expected !== undefined) {
      if (aud.some((a) => Discovery.sameUrl(a, expected.value))) facts.push(`aud matches ${expected.from}`)
      else {
        problems.push({
          problem: `aud is ${aud.length === 0 ? "missing" : aud.join(", ")}, not ${expected.value} (${expected.from})`,
          fix: expected.from === "server.url"
            ? `ask for a token for this MCP server: set resource: ${expected.value} (RFC 8707), or audience: as ` +
              "your authorization server names it"
            : `the authorization server ignored ${expected.from}: check that it knows ${expected.value} as a ` +
              "resource/API and that the client may request it"
        })
      }
    }
  }
  const claimed = claims === undefined
    ? undefined
    : typeof claims.scope === "string"
    ? claims.scope.split(" ").filter((s) => s.length > 0)
    : Array.isArray(claims.scp)
    ? claims.scp.filter((s): s is string => typeof s === "string")
    : typeof claims.scp === "string"
    ? claims.scp.split(" ").filter((s) => s.length > 0)
    : undefined
  const granted = claimed ?? input.responseScopes
  const comparable = input.requestedScopes.filter((s) => !s.endsWith("/.default"))
  const missing = comparable.filter((s) => !granted.includes(s))
  if (missing.length > 0) {
    problems.push({
      problem: `scopes granted: ${granted.join(" ") || "(none)"}; missing: ${missing.join(" ")}`,
      fix: `grant the client the scopes ${missing.join(" ")} at the authorization server, or remove them from scopes`
    })
  } else if (comparable.length > 0) facts.push(`scopes granted: ${granted.join(" ")}`)
  const iat = claims !== undefined && typeof claims.iat === "number" ? claims.iat : undefined
  const exp = claims !== undefined && typeof claims.exp === "number" ? claims.exp : undefined
  const nbf = claims !== undefined && typeof claims.nbf === "number" ? claims.nbf : undefined
  const lifetime = iat !== undefined && exp !== undefined ? exp - iat : input.responseLifetimeSeconds
  if (lifetime <= input.bufferSeconds) {
    problems.push({
      problem: `the token lives ${seconds(lifetime)}, not more than token_cache_buffer_seconds (${
        seconds(input.bufferSeconds)
      }): it is refreshed all the time`,
      fix: `lower token_cache_buffer_seconds below ${Math.max(0, Math.floor(lifetime / 2))}, or have the ` +
        "authorization server issue longer-lived tokens"
    })
  } else facts.push(`lifetime ${seconds(lifetime)} (token_cache_buffer_seconds ${seconds(input.bufferSeconds)})`)
  const clockFix = "set the local clock right (NTP), or the authorization server's"
  if (iat !== undefined && iat > input.now + maxSkewSeconds) {
    problems.push({ problem: `iat is ${seconds(iat - input.now)} in the future of the local clock`, fix: clockFix })
  }
  if (nbf !== undefined && nbf > input.now + maxSkewSeconds) {
    problems.push({ problem: `nbf is ${seconds(nbf - input.now)} in the future of the local clock`, fix: clockFix })
  }
  if (exp !== undefined && exp <= input.now) {
    problems.push({ problem: `exp is ${seconds(input.now - exp)} in the past of the local clock`, fix: clockFix })
  }
  return { facts, problems }
}

/** The difference of a server's `Date` header and the local time, in seconds; `undefined` without one. @internal */
export const skewSeconds = (date: string | undefined, localMillis: number): number | undefined => {
  if (date === undefined) return undefined
  const server = Date.parse(date)
  // the header has whole seconds: half a second of rounding either way is no skew
  // (`+ 0` turns the -0 of a server a little behind into 0)
  return Number.isNaN(server) ? undefined : Math.round((server - localMillis) / 1000) + 0
}

const tchar = "[!#$%&'*+.^_`|~0-9A-Za-z-]"

/**
 * The challenges of a `WWW-Authenticate` header (RFC 9110 §11.6.1): each scheme with its parameters (names in lower
 * case, quoted values unescaped, unquoted tokens as they are) or its token68. Several challenges may share one header,
 * separated by commas; parsing stops at the first thing that is neither.
 *
 * @internal
 */
export const parseChallenges = (
  header: string
): Array<{ readonly scheme: string; readonly params: Record<string, string>; readonly token68?: string }> => {
  const challenges: Array<{ scheme: string; params: Record<string, string>; token68?: string }> = []
  const param = new RegExp(`[\\s,]*(${tchar}+)[ \\t]*=[ \\t]*(?:"((?:[^"\\\\]|\\\\.)*)"|(${tchar}+))`, "y")
  const scheme = new RegExp(`[\\s,]*(${tchar}+)`, "y")
  const token68 = /[ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*(?=,|$)/y
  let at = 0
  while (at < header.length) {
    param.lastIndex = at
    const p = challenges.length > 0 ? param.exec(header) : null
    if (p !== null) {
      challenges[challenges.length - 1]!.params[p[1]!.toLowerCase()] = p[2] === undefined
        ? p[3]!
        : p[2].replace(/\\(.)/g, "$1")
      at = param.lastIndex
      continue
    }
    scheme.lastIndex = at
    const s = scheme.exec(header)
    if (s === null) break
    const challenge: { scheme: string; params: Record<string, string>; token68?: string } = {
      scheme: s[1]!,
      params: {}
    }
    challenges.push(challenge)
    at = scheme.lastIndex
    token68.lastIndex = at
    const t = token68.exec(header)
    if (t !== null) {
      challenge.token68 = t[1]!
      at = token68.lastIndex
    }
  }
  return challenges
}

/**
 * `error`, `error_description` and `scope` of the `Bearer` challenge of a `WWW-Authenticate` header (RFC 6750 §3),
 * quoted or not; empty without a `Bearer` challenge.
 *
 * @internal
 */
export const bearerError = (
  header: string | undefined
): { readonly error?: string | undefined; readonly description?: string | undefined; readonly scope?: string } => {
  const bearer = header === undefined
    ? undefined
    : parseChallenges(header).find((c) => c.scheme.toLowerCase() === "bearer")
  if (bearer === undefined) return {}
  const { error, error_description: description, scope } = bearer.params
  return { error, description, ...(scope ? { scope } : {}) }
}

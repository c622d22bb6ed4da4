import * as Scrub from "../Scrub.js"

/** @internal */
export const levenshtein = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/**
 * The closest candidate within a small edit distance, for "did you mean" hints.
 *
 * @internal
 */
export const closest = (input: string, candidates: Iterable<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Infinity
  const needle = input.toLowerCase()
  for (const candidate of candidates) {
    const d = levenshtein(needle, candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(input.length / 3)) ? best : undefined
}

/**
 * A URL as it may appear in messages and logs (`Scrub.url`).
 *
 * @internal
 */
export const displayUrl = (url: URL | string): string => Scrub.url(url)

/**
 * The token endpoint of a configuration as errors and labels show it: `token_url`, or before discovery found it, what
 * it is found from (the issuer, or the trusted issuers of an MCP server's metadata).
 *
 * @internal
 */
export const endpointOf = (config: {
  readonly tokenUrl?: URL | undefined
  readonly discovery?: { readonly from: string; readonly trusted: ReadonlyArray<string> } | undefined
}): string =>
  config.tokenUrl !== undefined
    ? displayUrl(config.tokenUrl)
    : `discovered (${config.discovery?.trusted.map((issuer) => displayUrl(issuer)).join(", ") ?? "?"})`

/**
 * Server-provided text made safe for messages (`Scrub.text`): bounded, single-line, printable, and with every known
 * secret removed in each form it travels in.
 *
 * @internal
 */
export const scrub = (text: string, secrets: ReadonlyArray<string>, max = 200): string =>
  Scrub.text(text, secrets, { max })

/**
 * Replaces JWT-shaped text (what a failed token or OIDC request a user function made may echo in its error) with
 * `<jwt>`.
 *
 * @internal
 */
export const redactJwts = (text: string): string =>
  text.replace(/eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, "<jwt>")

/** @internal */
export const isLoopbackHost = (hostname: string): boolean => {
  const host = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname
  if (host === "localhost" || host.endsWith(".localhost")) return true
  if (host === "::1" || host === "0:0:0:0:0:0:0:1") return true
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)
  return v4 !== null && v4.slice(1).every((octet) => Number(octet) <= 255)
}

/** RFC 9110 §5.6.2 token characters. @internal */
export const isHeaderName = (name: string): boolean => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)

/**
 * Headers a service token must never replace, each with why: the bearer credential, and headers the HTTP client or
 * the MCP transport owns.
 *
 * @internal
 */
export const reservedHeaderReasons: ReadonlyMap<string, string> = new Map([
  ["authorization", "Authorization carries the bearer token"],
  ["proxy-authorization", "Proxy-Authorization carries the credentials of an HTTP proxy"],
  ["host", "the HTTP client sets Host from the server URL"],
  ["content-length", "the HTTP client sets Content-Length from the request body"],
  ["content-type", "the MCP transport sets Content-Type for its JSON-RPC body"],
  ["transfer-encoding", "the HTTP client sets Transfer-Encoding for the request body"],
  ["connection", "the HTTP client manages the connection"],
  ["accept", "the MCP transport sets Accept to the response types it reads (JSON and SSE)"],
  ["mcp-session-id", "the MCP transport sends the session id the server assigned in Mcp-Session-Id"],
  ["mcp-protocol-version", "the MCP transport sends the negotiated protocol version in MCP-Protocol-Version"],
  ["last-event-id", "the MCP transport sends Last-Event-ID to resume an SSE stream"]
])

/** @internal */
export const reservedHeaders: ReadonlySet<string> = new Set(reservedHeaderReasons.keys())

/**
 * Why a header name is reserved, or `undefined` if it is not.
 *
 * @internal
 */
export const reservedHeaderReason = (name: string): string | undefined => reservedHeaderReasons.get(name.toLowerCase())

/**
 * A header value that can be sent as-is: HTAB, visible ASCII, space and obs-text (U+0080–U+00FF), as Node's HTTP
 * clients accept; never CR, LF, NUL or another control character (RFC 9110 §5.5).
 *
 * @internal
 */
export const isHeaderValue = (value: string): boolean => /^[\t\x20-\x7e\x80-\xff]*$/.test(value)

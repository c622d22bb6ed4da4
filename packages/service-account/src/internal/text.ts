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
 * A URL as it may appear in messages and logs: no user info, no query, no fragment.
 *
 * @internal
 */
export const displayUrl = (url: URL | string): string => {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return "<invalid url>"
  }
}

/**
 * Server-provided text made safe for messages: bounded, single-line, printable, and with every known secret removed.
 *
 * @internal
 */
export const scrub = (text: string, secrets: ReadonlyArray<string>, max = 200): string => {
  let out = text
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join("<redacted>")
  }
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u001f\u007f]+/g, " ").trim()
  return out.length > max ? `${out.slice(0, max)}…` : out
}

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
 * Headers a service token must never replace: the bearer credential, and headers the HTTP client or MCP transport
 * owns.
 *
 * @internal
 */
export const reservedHeaders: ReadonlySet<string> = new Set([
  "authorization",
  "proxy-authorization",
  "host",
  "content-length",
  "content-type",
  "transfer-encoding",
  "connection",
  "accept",
  "mcp-session-id",
  "mcp-protocol-version",
  "last-event-id"
])

/** A header value that can be sent as-is (no CR/LF/NUL). @internal */
export const isHeaderValue = (value: string): boolean => !/[\r\n\0]/.test(value)

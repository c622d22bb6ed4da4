/**
 * One scrubber for everything a server says. Token endpoints and MCP servers can echo what they were sent (the client
 * secret, the bearer token, a service token) and can send terminal control sequences; every piece of server text that
 * reaches an error message, a log line or the CLI's output goes through {@link text} first.
 *
 * A secret is removed in each form it can travel in: raw, `application/x-www-form-urlencoded` (a `client_secret_post`
 * body), percent-encoded (a query string), base64 and base64url. The `client_secret_basic` credential is a secret of its
 * own: pass it too (`TokenEndpoint.basicCredential`).
 *
 * @since 0.2.0
 */

const formEncode = (value: string): string => new URLSearchParams([["", value]]).toString().slice(1)

const base64 = (value: string): string => {
  const bytes = new TextEncoder().encode(value)
  let binary = ""
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

/**
 * Every form a secret can travel in, longest first, without duplicates.
 *
 * @since 0.2.0
 * @category Combinators
 */
export const forms = (secret: string): ReadonlyArray<string> => {
  if (secret.length === 0) return []
  const b64 = base64(secret)
  const b64url = b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
  const all = new Set([secret, formEncode(secret), encodeURIComponent(secret), b64, b64.replace(/=+$/, ""), b64url])
  return [...all].sort((a, b) => b.length - a.length)
}

/**
 * Terminal escape sequences, removed whole so no parameter bytes are left behind: CSI (`ESC [` or U+009B, e.g.
 * `ESC[2J`), OSC / DCS / APC / PM / SOS strings up to their terminator (`ESC ]8;;url ESC \` hyperlinks, window
 * titles), and the other two- and three-byte escapes.
 */
const escapes = new RegExp(
  [
    "(?:\\u001b\\[|\\u009b)[\\u0030-\\u003f]*[\\u0020-\\u002f]*[\\u0040-\\u007e]?",
    "(?:\\u001b[\\]PX^_]|[\\u0090\\u0098\\u009d-\\u009f])[^\\u0007\\u001b\\u009c]*(?:\\u0007|\\u001b\\\\|\\u009c)?",
    "\\u001b[\\u0020-\\u002f]*[\\u0030-\\u007e]?"
  ].join("|"),
  "g"
)

/**
 * C0 and C1 control characters (ESC and CSI start terminal escape sequences), DEL, and the invisible format characters
 * that reorder or hide text (bidi overrides and isolates, zero-width characters, BOM).
 */
// eslint-disable-next-line no-control-regex
const unsafe = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+/g
// eslint-disable-next-line no-control-regex
const unsafeMultiline = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+/g

/**
 * @since 0.2.0
 * @category Models
 */
export interface Options {
  /** Characters kept at most (default 200); longer text ends with `…`. */
  readonly max?: number | undefined
  /** Keep line breaks and tabs (tool output); by default the text is made one line. */
  readonly multiline?: boolean | undefined
}

/**
 * Server-provided text made safe to print: every secret in each of its {@link forms} replaced by `<redacted>`, control
 * and invisible format characters replaced by a space (line breaks and tabs kept with `multiline`), and at most `max`
 * characters kept (never splitting a surrogate pair).
 *
 * @since 0.2.0
 * @category Combinators
 */
export const text = (value: string, secrets: Iterable<string | undefined>, options?: Options): string => {
  const all: Array<string> = []
  for (const secret of secrets) if (secret !== undefined) all.push(...forms(secret))
  all.sort((a, b) => b.length - a.length)
  const redact = (text: string): string => {
    for (const form of all) {
      if (text.includes(form)) text = text.split(form).join("<redacted>")
    }
    return text
  }
  // before and after the clean-up: replacing control characters by a space can spell a secret that has spaces
  // ("a\tb" becomes "a b")
  let out = redact(value)
  out = redact(
    options?.multiline === true
      ? out.replace(escapes, "").replace(/\r\n?/g, "\n").replace(unsafeMultiline, " ")
      : out.replace(escapes, "").replace(unsafe, " ").trim()
  )
  const max = options?.max ?? 200
  if (out.length <= max) return out
  const cut = /[\ud800-\udbff]/.test(out[max - 1] ?? "") ? max - 1 : max
  return `${out.slice(0, cut)}…`
}

/**
 * A URL as it may appear in messages and logs: never the user info; the query and the fragment shown as
 * `?<redacted>` and `#<redacted>` (they often carry API keys). Text that is not a URL prints as `<invalid url>`.
 *
 * @since 0.2.0
 * @category Combinators
 */
export const url = (value: URL | string): string => {
  try {
    const u = new URL(value)
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? "?<redacted>" : ""}${u.hash ? "#<redacted>" : ""}`
  } catch {
    return "<invalid url>"
  }
}

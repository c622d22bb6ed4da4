/**
 * A programmable token endpoint for fault tests and benchmarks.
 *
 * Each request consumes the next scripted {@link Step} (see `enqueue`); once the script is empty the fallback answers
 * (default: {@link success}, unique tokens `tok-1`, `tok-2`, …). A fallback may be a {@link Responder} function, which
 * gives a time-based rule mode (see {@link rateLimitWindow}). The endpoint answers on every path and method; {@link
 * FaultTokenEndpoint.url} is `<origin>/token`.
 *
 * A {@link forward} step relays a request to a real token endpoint (e.g. {@link AuthorizationServer}), so faults can
 * be mixed with JWTs that {@link McpServer} accepts.
 *
 * Every request is recorded with its headers, raw and parsed form body and RFC 6749 §2.3.1-decoded Basic credential.
 *
 * @since 0.1.0
 */
import * as Undici from "@effect/platform-node/Undici"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import type * as http from "node:http"
import * as BasicCredentials from "./BasicCredentials.js"
import * as internal from "./internal/server.js"
import type { TlsCredentials } from "./TestPki.js"
import type { RecordedRequest, Started } from "./TestServer.js"

/**
 * Answer with a status, headers and body. A non-string body is sent as JSON (`content-type: application/json` unless
 * given). `delayMs` waits before the headers; `bodyDelayMs` sends the headers, then stalls before the body.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Reply {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly body?: unknown
  readonly delayMs?: number | undefined
  readonly bodyDelayMs?: number | undefined
}

/**
 * Issue a fresh access token: `{ access_token, token_type, expires_in, scope? }` (plus `extra`). A field set to
 * `undefined` explicitly in `token` is left out of the body.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Issue {
  readonly issue: TokenOptions
  readonly status?: number | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly delayMs?: number | undefined
  readonly bodyDelayMs?: number | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface TokenOptions {
  /** Default: the next unique token (`tok-N`, or random with `randomTokens`). */
  readonly accessToken?: string | undefined
  /** Default `"Bearer"`. */
  readonly tokenType?: unknown
  /** Default: the endpoint's `expiresIn` option (3600). */
  readonly expiresIn?: unknown
  readonly scope?: string | undefined
  /** Leave these fields out of the body. */
  readonly omit?: ReadonlyArray<"access_token" | "token_type" | "expires_in" | "scope"> | undefined
  readonly extra?: Readonly<Record<string, unknown>> | undefined
}

/**
 * Destroy the socket without any response (after `delayMs`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Reset {
  readonly reset: true
  readonly delayMs?: number | undefined
}

/**
 * Never answer (the socket is destroyed when the server closes).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Hang {
  readonly hang: true
}

/**
 * Forward the request (method, headers, body) to a real token endpoint, e.g. an {@link AuthorizationServer}'s
 * `tokenUrl`, and relay its answer, so fault steps can be mixed with tokens an {@link McpServer} accepts.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Forward {
  readonly forward: string
  /** CA (PEM) to trust when the target is `https`. */
  readonly ca?: string | undefined
  readonly delayMs?: number | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export type Step = Reply | Issue | Reset | Hang | Forward

/**
 * What a {@link Responder} knows about the request.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ResponderContext {
  /** 0-based index of this request among all recorded requests. */
  readonly index: number
  /** Milliseconds since the first recorded request (0 for the first). */
  readonly sinceFirstMs: number
  readonly request: TokenRequestRecord
}

/**
 * A rule that picks the step for each request.
 *
 * @since 0.1.0
 * @category Models
 */
export type Responder = (context: ResponderContext) => Step

/**
 * @since 0.1.0
 * @category Models
 */
export interface TokenRequestRecord extends RecordedRequest {
  readonly index: number
  readonly body: string
  /** Parsed form body (repeated keys joined with `,`). */
  readonly form: Readonly<Record<string, string>>
  /** The `Authorization: Basic` credential decoded per RFC 6749 §2.3.1, if any. */
  readonly basic: BasicCredentials.ClientCredentials | undefined
  /**
   * What the endpoint did: `"reply 429"`, `"issue tok-3"`, `"forward 200"`, `"reset"`, `"hang"`,
   * `"invalid_client"` (set once the step runs).
   */
  readonly outcome: string | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Steps answered first, in order. */
  readonly script?: ReadonlyArray<Step> | undefined
  /** Used once the script is exhausted (default {@link success}). */
  readonly fallback?: Step | Responder | undefined
  /** Added before every response (also before a reset). */
  readonly latencyMs?: number | undefined
  /** `expires_in` of issued tokens (default 3600). */
  readonly expiresIn?: number | undefined
  /** Prefix of the generated tokens (default `"tok-"`). */
  readonly tokenPrefix?: string | undefined
  /** Random tokens instead of `tok-1`, `tok-2`, … */
  readonly randomTokens?: boolean | undefined
  /**
   * When set, requests whose credentials (Basic, or `client_id`/`client_secret` in the form) do not match get
   * `401 invalid_client` without consuming a step.
   */
  readonly expectCredentials?: BasicCredentials.ClientCredentials | undefined
  readonly https?: TlsCredentials | undefined
  /**
   * The clock (epoch milliseconds) behind the records' `time` and a {@link Responder}'s `sinceFirstMs` (default
   * `Date.now`): a controllable clock runs time rules such as {@link rateLimitWindow} without waiting.
   */
  readonly now?: (() => number) | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface FaultTokenEndpoint {
  /** `<origin>/token` */
  readonly url: string
  readonly origin: string
  readonly port: number
  /** All requests, oldest first (a copy). */
  readonly requests: ReadonlyArray<TokenRequestRecord>
  readonly count: number
  /** Access tokens issued so far, in order. */
  readonly issuedTokens: ReadonlyArray<string>
  /** Scripted steps not yet consumed. */
  readonly pending: number
  readonly enqueue: (...steps: ReadonlyArray<Step>) => void
  /** Replaces the remaining script. */
  readonly setScript: (steps: ReadonlyArray<Step>) => void
  readonly setFallback: (fallback: Step | Responder) => void
  readonly setLatency: (ms: number) => void
  readonly setExpectCredentials: (credentials: BasicCredentials.ClientCredentials | undefined) => void
  /** Clears records, counts and the "first request" time (the token counter keeps going, so tokens stay unique). */
  readonly clearRecords: () => void
  /** `clearRecords` + empty script + the fallback, latency and expected credentials from the options. */
  readonly reset: () => void
}

/**
 * Starts the endpoint from plain async code; call `close()` when done.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const start = async (options: Options = {}): Promise<Started<FaultTokenEndpoint>> => {
  const records: Array<internal.MutableRecord<TokenRequestRecord>> = []
  const issued: Array<string> = []
  let script: Array<Step> = [...(options.script ?? [])]
  let fallback: Step | Responder = options.fallback ?? success()
  let latencyMs = options.latencyMs ?? 0
  let expectCredentials = options.expectCredentials
  let firstAt: number | undefined
  let tokenCounter = 0
  const timers = internal.makeTimers()

  const nextToken = () => {
    tokenCounter += 1
    return options.randomTokens === true
      ? `${options.tokenPrefix ?? "tok-"}${crypto.randomBytes(12).toString("base64url")}`
      : `${options.tokenPrefix ?? "tok-"}${tokenCounter}`
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const base = options.now === undefined ? internal.recordOf(req) : { ...internal.recordOf(req), time: options.now() }
    let body = ""
    try {
      body = (await internal.readBody(req)).toString("utf8")
    } catch {
      // keep what we have
    }
    const record: internal.MutableRecord<TokenRequestRecord> = {
      ...base,
      index: records.length,
      body,
      form: internal.parseForm(body),
      basic: BasicCredentials.decode(base.headers.authorization),
      outcome: undefined
    }
    records.push(record)
    internal.trackStatus(res, record)
    if (firstAt === undefined) firstAt = record.time
    const sinceFirstMs = record.time - firstAt

    let step: Step
    if (expectCredentials !== undefined && !credentialsMatch(record, expectCredentials)) {
      step = invalidClient(401)
      record.outcome = "invalid_client"
    } else {
      const scripted = script.shift()
      step = scripted ?? (typeof fallback === "function"
        ? fallback({ index: record.index, sinceFirstMs, request: record })
        : fallback)
    }

    await timers.sleep(latencyMs)
    if ("hang" in step) {
      record.outcome = "hang"
      return
    }
    await timers.sleep(step.delayMs ?? 0)
    if ("reset" in step) {
      record.outcome = "reset"
      req.socket.destroy()
      return
    }
    if ("forward" in step) {
      const forwarded = await forwardRequest(step, record)
      if (typeof forwarded.token === "string") issued.push(forwarded.token)
      record.outcome = `forward ${forwarded.status}`
      res.writeHead(forwarded.status, forwarded.headers)
      res.end(forwarded.body)
      return
    }
    let status: number
    let headers: Record<string, string>
    let payload: string
    if ("issue" in step) {
      const token = tokenBody(step.issue, nextToken, options.expiresIn ?? 3600)
      if (typeof token.access_token === "string") issued.push(token.access_token)
      record.outcome ??= `issue ${String(token.access_token)}`
      status = step.status ?? 200
      payload = JSON.stringify(token)
      headers = { "content-type": "application/json", "cache-control": "no-store", ...step.headers }
    } else {
      status = step.status
      const isString = typeof step.body === "string"
      payload = step.body === undefined ? "" : isString ? step.body as string : JSON.stringify(step.body)
      headers = {
        ...(step.body === undefined || isString ? {} : { "content-type": "application/json" }),
        ...step.headers
      }
      record.outcome ??= `reply ${status}`
    }
    const lowerNames = Object.keys(headers).map((name) => name.toLowerCase())
    if (!lowerNames.includes("content-length")) headers["content-length"] = String(Buffer.byteLength(payload))
    if (step.bodyDelayMs !== undefined && step.bodyDelayMs > 0) {
      res.writeHead(status, headers)
      res.flushHeaders()
      await timers.sleep(step.bodyDelayMs)
      res.end(payload)
    } else {
      res.writeHead(status, headers)
      res.end(payload)
    }
  }

  const listener = await internal.listen((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) internal.sendJson(res, 500, { error: "server_error" })
      else res.destroy()
    })
  }, options.https)
  listener.onClose(timers.clear)

  const clearRecords = () => {
    records.length = 0
    firstAt = undefined
  }
  return {
    url: `${listener.origin}/token`,
    origin: listener.origin,
    port: listener.port,
    get requests() {
      return records.slice()
    },
    get count() {
      return records.length
    },
    get issuedTokens() {
      return issued.slice()
    },
    get pending() {
      return script.length
    },
    enqueue: (...steps) => {
      script.push(...steps)
    },
    setScript: (steps) => {
      script = [...steps]
    },
    setFallback: (value) => {
      fallback = value
    },
    setLatency: (ms) => {
      latencyMs = ms
    },
    setExpectCredentials: (credentials) => {
      expectCredentials = credentials
    },
    clearRecords,
    reset: () => {
      clearRecords()
      issued.length = 0
      script = []
      fallback = options.fallback ?? success()
      latencyMs = options.latencyMs ?? 0
      expectCredentials = options.expectCredentials
    },
    close: listener.close
  }
}

/**
 * The endpoint as a scoped resource, closed when the scope closes.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<FaultTokenEndpoint, never, Scope.Scope> = internal.scoped(
  (options: Options | undefined) => start(options)
)

// -----------------------------------------------------------------------------
// steps
// -----------------------------------------------------------------------------

/**
 * A valid token response with a fresh unique token: `200 { access_token, token_type: "Bearer", expires_in, scope? }`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const success = (token: TokenOptions = {}): Issue => ({ issue: token })

/**
 * Wraps a step with a delay before the response (or reset).
 *
 * @since 0.1.0
 * @category Steps
 */
export const delayed = (delayMs: number, step: Reply | Issue | Reset): Step => ({ ...step, delayMs })

/**
 * Sends the headers at once, then stalls `bodyDelayMs` before the body.
 *
 * @since 0.1.0
 * @category Steps
 */
export const slowBody = (bodyDelayMs: number, step: Reply | Issue = success()): Step => ({ ...step, bodyDelayMs })

/**
 * `Retry-After` value: seconds as a number, or a `Date` sent as an HTTP-date (`Date.toUTCString()`).
 *
 * @since 0.1.0
 * @category Models
 */
export type RetryAfter = number | Date | string

const retryAfterHeader = (retryAfter: RetryAfter | undefined): Record<string, string> =>
  retryAfter === undefined
    ? {}
    : { "retry-after": retryAfter instanceof Date ? retryAfter.toUTCString() : String(retryAfter) }

/**
 * `429 {"error":"slow_down"}` with an optional `Retry-After`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const tooManyRequests = (retryAfter?: RetryAfter, body: unknown = { error: "slow_down" }): Reply => ({
  status: 429,
  headers: retryAfterHeader(retryAfter),
  body
})

/**
 * `503 {"error":"temporarily_unavailable"}` with an optional `Retry-After`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const serviceUnavailable = (
  retryAfter?: RetryAfter,
  body: unknown = { error: "temporarily_unavailable" }
): Reply => ({ status: 503, headers: retryAfterHeader(retryAfter), body })

/**
 * `502` with an HTML body (a proxy error page).
 *
 * @since 0.1.0
 * @category Steps
 */
export const badGatewayHtml = (): Reply => ({
  status: 502,
  headers: { "content-type": "text/html" },
  body: "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
})

/**
 * `200` whose body is not JSON (default: `text/html` sign-in page; pass a content type such as
 * `application/json` to make it lie).
 *
 * @since 0.1.0
 * @category Steps
 */
export const nonJsonSuccess = (contentType = "text/html"): Reply => ({
  status: 200,
  headers: { "content-type": contentType },
  body: "<html><body>Please sign in</body></html>"
})

/**
 * `200` with `token_type: "mac"`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const macTokenType = (): Issue => success({ tokenType: "mac" })

/**
 * `200` with `expires_in` as a string (`"3600"` by default; some servers do this, RFC 6749 says number).
 *
 * @since 0.1.0
 * @category Steps
 */
export const stringExpiresIn = (value = "3600"): Issue => success({ expiresIn: value })

/**
 * `200` without `access_token`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const missingAccessToken = (): Issue => success({ omit: ["access_token"] })

/**
 * `200` without `expires_in`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const missingExpiresIn = (): Issue => success({ omit: ["expires_in"] })

/**
 * An RFC 6749 §5.2 error response.
 *
 * @since 0.1.0
 * @category Steps
 */
export const oauthError = (
  error: string,
  status = 400,
  description?: string,
  headers?: Readonly<Record<string, string>>
): Reply => ({
  status,
  headers: { "cache-control": "no-store", ...headers },
  body: description === undefined ? { error } : { error, error_description: description }
})

/**
 * `invalid_client`: 401 (with `WWW-Authenticate: Basic`) or 400.
 *
 * @since 0.1.0
 * @category Steps
 */
export const invalidClient = (status: 401 | 400 = 401): Reply =>
  oauthError(
    "invalid_client",
    status,
    "client authentication failed",
    status === 401 ? { "www-authenticate": "Basic realm=\"token\", error=\"invalid_client\"" } : {}
  )

/**
 * Forward to a real token endpoint and relay its answer (see {@link Forward}).
 *
 * @since 0.1.0
 * @category Steps
 */
export const forward = (url: string, options: { readonly ca?: string | undefined } = {}): Forward =>
  options.ca === undefined ? { forward: url } : { forward: url, ca: options.ca }

/**
 * Destroy the connection without answering.
 *
 * @since 0.1.0
 * @category Steps
 */
export const resetConnection = (delayMs?: number): Reset =>
  delayMs === undefined ? { reset: true } : { reset: true, delayMs }

/**
 * Never answer.
 *
 * @since 0.1.0
 * @category Steps
 */
export const hang = (): Hang => ({ hang: true })

/**
 * A time-based rule: answer `429` with `Retry-After: retryAfter` (default 2) while less than `windowMs` has passed
 * since the first request, then `after` (default {@link success}).
 *
 * @example
 * ```ts
 * import { FaultTokenEndpoint } from "@mcp-auth/testing"
 *
 * const endpoint = await FaultTokenEndpoint.start()
 * // 429 with Retry-After: 2 for 3 s after the first request, then tokens again
 * endpoint.setFallback(FaultTokenEndpoint.rateLimitWindow({ windowMs: 3000, retryAfter: 2 }))
 * await endpoint.close()
 * ```
 *
 * @since 0.1.0
 * @category Steps
 */
export const rateLimitWindow = (options: {
  readonly windowMs: number
  readonly retryAfter?: RetryAfter | undefined
  readonly status?: number | undefined
  readonly after?: Step | Responder | undefined
}): Responder =>
(context) => {
  if (context.sinceFirstMs < options.windowMs) {
    return { ...tooManyRequests(options.retryAfter ?? 2), status: options.status ?? 429 }
  }
  const after = options.after ?? success()
  return typeof after === "function" ? after(context) : after
}

/**
 * Cycles through steps forever (`index` modulo length), e.g. `cycle([success(), serviceUnavailable()])`.
 *
 * @since 0.1.0
 * @category Steps
 */
export const cycle = (steps: ReadonlyArray<Step>): Responder => (context) => steps[context.index % steps.length]!

// -----------------------------------------------------------------------------
// internal
// -----------------------------------------------------------------------------

const tokenBody = (
  options: TokenOptions,
  nextToken: () => string,
  defaultExpiresIn: number
): Record<string, unknown> => {
  const omit = new Set(options.omit ?? [])
  const body: Record<string, unknown> = {}
  const has = (key: keyof TokenOptions) => Object.prototype.hasOwnProperty.call(options, key)
  if (!omit.has("access_token")) body.access_token = options.accessToken ?? nextToken()
  if (!omit.has("token_type") && !(has("tokenType") && options.tokenType === undefined)) {
    body.token_type = options.tokenType ?? "Bearer"
  }
  if (!omit.has("expires_in") && !(has("expiresIn") && options.expiresIn === undefined)) {
    body.expires_in = options.expiresIn ?? defaultExpiresIn
  }
  if (!omit.has("scope") && options.scope !== undefined) body.scope = options.scope
  return { ...body, ...options.extra }
}

const hopByHop = new Set(["host", "connection", "content-length", "transfer-encoding", "keep-alive"])

const forwardRequest = async (step: Forward, record: TokenRequestRecord) => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(record.headers)) {
    if (!hopByHop.has(name)) headers[name] = value
  }
  const dispatcher = step.ca === undefined ? undefined : new Undici.Agent({ connect: { ca: step.ca } })
  try {
    const response = await Undici.fetch(step.forward, {
      method: record.method,
      headers,
      ...(record.method === "GET" || record.method === "HEAD" ? {} : { body: record.body }),
      ...(dispatcher === undefined ? {} : { dispatcher })
    })
    const body = await response.text()
    const relayed: Record<string, string> = {}
    for (const name of ["content-type", "cache-control", "pragma", "www-authenticate", "retry-after"]) {
      const value = response.headers.get(name)
      if (value !== null) relayed[name] = value
    }
    relayed["content-length"] = String(Buffer.byteLength(body))
    let token: unknown = undefined
    try {
      token = (JSON.parse(body) as { access_token?: unknown }).access_token
    } catch {
      // not JSON
    }
    return { status: response.status, headers: relayed, body, token }
  } finally {
    await dispatcher?.destroy()
  }
}

const credentialsMatch = (record: TokenRequestRecord, expected: BasicCredentials.ClientCredentials): boolean => {
  const actual = record.basic ?? (record.form.client_id !== undefined && record.form.client_secret !== undefined
    ? { clientId: record.form.client_id, clientSecret: record.form.client_secret }
    : undefined)
  return actual !== undefined && actual.clientId === expected.clientId && actual.clientSecret === expected.clientSecret
}

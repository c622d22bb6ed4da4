/**
 * An "other origin" server that answers every path and method and records what it saw, to prove that credentials
 * (the bearer token, the service token) never travel to another origin, e.g. after a redirect or through a
 * misconfigured URL.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/server.js"
import type { TlsCredentials } from "./TestPki.js"
import type { RecordedRequest, Started } from "./TestServer.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface RequestRecord extends RecordedRequest {
  readonly body: string
}

/**
 * The response to send (default `200 {"ok":true}`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Response {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** A non-string body is sent as JSON. */
  readonly body?: unknown
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly respond?: Response | ((request: RequestRecord) => Response) | undefined
  readonly https?: TlsCredentials | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface RecordingServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly url: string
  readonly origin: string
  readonly port: number
  readonly requests: ReadonlyArray<RequestRecord>
  readonly count: number
  /** Requests that carried this header (case-insensitive name). */
  readonly requestsWithHeader: (name: string) => ReadonlyArray<RequestRecord>
  readonly setResponse: (respond: Response | ((request: RequestRecord) => Response)) => void
  readonly clearRecords: () => void
}

/**
 * Starts the server from plain async code; call `close()` when done.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const start = async (options: Options = {}): Promise<Started<RecordingServer>> => {
  const records: Array<internal.MutableRecord<RequestRecord>> = []
  let respond: Response | ((request: RequestRecord) => Response) = options.respond ??
    { status: 200, body: { ok: true } }
  const listener = await internal.listen((req, res) => {
    const base = internal.recordOf(req)
    internal.readBody(req).then(
      (buffer) => buffer.toString("utf8"),
      () => ""
    ).then((body) => {
      const record: internal.MutableRecord<RequestRecord> = { ...base, body }
      records.push(record)
      internal.trackStatus(res, record)
      const response = typeof respond === "function" ? respond(record) : respond
      const isString = typeof response.body === "string"
      const text = response.body === undefined ? "" : isString ? response.body as string : JSON.stringify(response.body)
      res.writeHead(response.status, {
        ...(response.body === undefined || isString ? {} : { "content-type": "application/json" }),
        ...response.headers
      })
      res.end(text)
    }).catch(() => res.destroy())
  }, options.https)
  return {
    url: listener.origin,
    origin: listener.origin,
    port: listener.port,
    get requests() {
      return records.slice()
    },
    get count() {
      return records.length
    },
    requestsWithHeader: (name) => records.filter((r) => r.headers[name.toLowerCase()] !== undefined),
    setResponse: (value) => {
      respond = value
    },
    clearRecords: () => {
      records.length = 0
    },
    close: listener.close
  }
}

/**
 * The server as a scoped resource, closed when the scope closes.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<RecordingServer, never, Scope.Scope> = internal.scoped(
  (options: Options | undefined) => start(options)
)

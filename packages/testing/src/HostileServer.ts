/**
 * A small hostile HTTP server for tests of what a client does when the server misbehaves: bodies that never end,
 * connections closed mid-response, echoes of what it was sent. The handler is plain Node code; the server counts the
 * bytes it wrote per response, so a test can assert how much it managed to send before the client hung up.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import type * as http from "node:http"
import * as internal from "./internal/server.js"
import type { TlsCredentials } from "./TestPki.js"
import type { RecordedRequest, Started } from "./TestServer.js"

/**
 * A request as the hostile server saw it, with its body.
 *
 * @since 0.2.0
 * @category Models
 */
export interface RequestRecord extends RecordedRequest {
  readonly body: string
}

/**
 * @since 0.2.0
 * @category Models
 */
export type Handler = (request: RequestRecord, res: http.ServerResponse) => void | Promise<void>

/**
 * @since 0.2.0
 * @category Models
 */
export interface HostileServer {
  /** `http(s)://127.0.0.1:PORT` (no trailing slash). */
  readonly origin: string
  readonly port: number
  readonly requests: ReadonlyArray<RequestRecord>
  /** Requests whose path is `path`. */
  readonly requestsTo: (path: string) => ReadonlyArray<RequestRecord>
  readonly setHandler: (handler: Handler) => void
}

/**
 * Starts a hostile server on 127.0.0.1 (a random port). The handler's errors destroy the connection.
 *
 * @since 0.2.0
 * @category Constructors
 */
export const start = async (
  handler: Handler,
  options: { readonly https?: TlsCredentials | undefined } = {}
): Promise<Started<HostileServer>> => {
  const records: Array<RequestRecord> = []
  let current = handler
  const listener = await internal.listen((req, res) => {
    const base = internal.recordOf(req)
    internal.readBody(req).then((buffer) => {
      const record: RequestRecord = { ...base, body: buffer.toString("utf8") }
      records.push(record)
      return current(record, res)
    }).catch(() => res.destroy())
  }, options.https)
  return {
    origin: listener.origin,
    port: listener.port,
    get requests() {
      return records.slice()
    },
    requestsTo: (path) => records.filter((r) => r.path === path),
    setHandler: (next) => {
      current = next
    },
    close: listener.close
  }
}

/**
 * {@link start} in a scope (closed with it).
 *
 * @since 0.2.0
 * @category Constructors
 */
export const make = (
  handler: Handler,
  options?: { readonly https?: TlsCredentials | undefined }
): Effect.Effect<HostileServer, never, Scope.Scope> => internal.scoped(() => start(handler, options))(undefined)

/**
 * @since 0.2.0
 * @category Models
 */
export interface EndlessOptions {
  readonly status?: number | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Written first (e.g. `{"access_token":"`), counted in the total. */
  readonly prefix?: string | undefined
  /** The repeated unit (default 64 KiB of `a`). */
  readonly chunk?: Uint8Array | undefined
}

/**
 * The default {@link EndlessOptions.chunk} size: 64 KiB.
 *
 * @since 0.2.0
 * @category Constants
 */
export const defaultChunkBytes = 64 * 1024

/**
 * Answers with a body that never ends: writes the chunk again whenever the socket drains, until the client closes the
 * connection. Resolves with the body bytes written (handed to the socket) by then.
 *
 * @since 0.2.0
 * @category Combinators
 */
export const endless = (res: http.ServerResponse, options: EndlessOptions = {}): Promise<number> =>
  new Promise((resolve) => {
    const chunk = options.chunk ?? new Uint8Array(defaultChunkBytes).fill(0x61)
    let written = 0
    const socket = res.socket
    res.writeHead(options.status ?? 200, { "content-type": "application/json", ...options.headers })
    if (options.prefix !== undefined) {
      const prefix = Buffer.from(options.prefix)
      written += prefix.length
      res.write(prefix)
    }
    const pump = () => {
      while (socket !== null && !socket.destroyed && !res.destroyed) {
        written += chunk.length
        if (!res.write(chunk)) {
          res.once("drain", pump)
          return
        }
      }
    }
    res.once("close", () => resolve(written))
    pump()
  })

/**
 * How many bytes the kernel can hold in flight on one loopback TCP connection: the largest send buffer plus the largest
 * receive buffer (`net.ipv4.tcp_wmem` and `tcp_rmem`). A server's writes run ahead of what the client has read by at
 * most this much, whatever the scheduling; bounded-read tests add it to their limit. 64 MiB where `/proc` is absent.
 *
 * @since 0.2.0
 * @category Constants
 */
export const socketBufferBytes = (): number => {
  const max = (file: string) => Number(fs.readFileSync(file, "utf8").trim().split(/\s+/)[2])
  try {
    const total = max("/proc/sys/net/ipv4/tcp_wmem") + max("/proc/sys/net/ipv4/tcp_rmem")
    return Number.isFinite(total) ? total : 64 * 1024 * 1024
  } catch {
    return 64 * 1024 * 1024
  }
}

/**
 * A real HTTP forward proxy on 127.0.0.1 for tests (the `proxy` npm package by TooTallNate): `CONNECT host:port`
 * tunnels (what clients use for `https://` targets) and plain proxied requests (absolute-form `GET http://…`), each
 * recorded with the `Proxy-Authorization` header it carried.
 *
 * With {@link Options.credentials}, every request must carry `Proxy-Authorization: Basic base64(user:password)`;
 * otherwise the proxy answers `407` with `Proxy-Authenticate: Basic realm="proxy"` and does not connect. Refused
 * requests are recorded too (`authorized: false`).
 *
 * @since 0.3.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import type * as net from "node:net"
import { createProxy } from "proxy"
import * as internal from "./internal/server.js"
import type { Started } from "./TestServer.js"

/**
 * @since 0.3.0
 * @category Models
 */
export interface Options {
  /** Require Basic proxy authentication with these credentials (default: none required). */
  readonly credentials?: { readonly username: string; readonly password: string } | undefined
}

/**
 * One request the proxy received.
 *
 * @since 0.3.0
 * @category Models
 */
export interface ProxyRequest {
  /** Arrival time, epoch milliseconds. */
  readonly time: number
  /** `CONNECT`, or the method of a plain proxied request. */
  readonly method: string
  /** `host:port` for `CONNECT`; the absolute URL of a plain proxied request. */
  readonly target: string
  /** The `Proxy-Authorization` header, if any. */
  readonly proxyAuthorization: string | undefined
  /** Whether the proxy let it through (credentials matched, or none required). */
  readonly authorized: boolean
}

/**
 * @since 0.3.0
 * @category Models
 */
export interface TestProxy {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly port: number
  /** `http://user:password@127.0.0.1:PORT` (user and password percent-encoded) when credentials are set, else `url`. */
  readonly urlWithCredentials: string
  /** Every request, oldest first (a copy). */
  readonly requests: ReadonlyArray<ProxyRequest>
  /** `CONNECT` requests, oldest first (refused ones included). */
  readonly connects: ReadonlyArray<ProxyRequest>
  readonly connectCount: number
  /** `host:port` of each `CONNECT` the proxy let through, oldest first. */
  readonly connectTargets: ReadonlyArray<string>
  /** Plain (non-`CONNECT`) proxied requests, oldest first (refused ones included). */
  readonly plainRequests: ReadonlyArray<ProxyRequest>
  readonly plainRequestCount: number
  /** The `Proxy-Authorization` headers seen, oldest first. */
  readonly proxyAuthorizations: ReadonlyArray<string>
  /** Requests answered with 407. */
  readonly refusedCount: number
  readonly clearRecords: () => void
}

/**
 * Starts the proxy from plain async code; call `close()` when done (it destroys open tunnels).
 *
 * @since 0.3.0
 * @category Constructors
 */
export const start = async (options: Options = {}): Promise<Started<TestProxy>> => {
  const records: Array<ProxyRequest> = []
  const expected = options.credentials === undefined
    ? undefined
    : `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString("base64")}`
  const check = (req: http.IncomingMessage): boolean =>
    expected === undefined || req.headers["proxy-authorization"] === expected

  const server = http.createServer()
  const sockets = new Set<net.Socket>()
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  })
  const record = (req: http.IncomingMessage, method: string, target: string) => {
    records.push({
      time: Date.now(),
      method,
      target,
      proxyAuthorization: req.headers["proxy-authorization"],
      authorized: check(req)
    })
  }
  // registered before createProxy's own listeners, so they run first
  server.on("connect", (req: http.IncomingMessage) => record(req, "CONNECT", req.url ?? ""))
  server.on("request", (req: http.IncomingMessage) => record(req, req.method ?? "GET", req.url ?? ""))
  const proxy = createProxy(server)
  proxy.authenticate = check

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const port = (server.address() as net.AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  let closing: Promise<void> | undefined
  const close = () => {
    if (closing === undefined) {
      closing = new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        // CONNECT tunnels are detached from the HTTP server: destroy them too
        for (const socket of sockets) socket.destroy()
      })
    }
    return closing
  }
  const connects = () => records.filter((r) => r.method === "CONNECT")
  const plain = () => records.filter((r) => r.method !== "CONNECT")
  return {
    url,
    port,
    urlWithCredentials: options.credentials === undefined
      ? url
      : `http://${encodeURIComponent(options.credentials.username)}:${
        encodeURIComponent(options.credentials.password)
      }@127.0.0.1:${port}`,
    get requests() {
      return records.slice()
    },
    get connects() {
      return connects()
    },
    get connectCount() {
      return connects().length
    },
    get connectTargets() {
      return connects().flatMap((r) => r.authorized ? [r.target] : [])
    },
    get plainRequests() {
      return plain()
    },
    get plainRequestCount() {
      return plain().length
    },
    get proxyAuthorizations() {
      return records.flatMap((r) => r.proxyAuthorization === undefined ? [] : [r.proxyAuthorization])
    },
    get refusedCount() {
      return records.filter((r) => !r.authorized).length
    },
    clearRecords: () => {
      records.length = 0
    },
    close
  }
}

/**
 * {@link start} in a scope (closed with it).
 *
 * @since 0.3.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<TestProxy, never, Scope.Scope> = internal.scoped(
  (options: Options | undefined) => start(options)
)

import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as http from "node:http"
import * as https from "node:https"
import type * as net from "node:net"
import type * as nodeTls from "node:tls"
import type { TlsCredentials } from "../TestPki.js"
import type { Closeable, RecordedRequest, Started } from "../TestServer.js"

/** @internal */
export interface Listener {
  readonly server: http.Server
  readonly port: number
  /** e.g. `http://127.0.0.1:PORT` */
  readonly origin: string
  readonly close: () => Promise<void>
  /** Register a cleanup run (before sockets are destroyed) on close. */
  readonly onClose: (cleanup: () => void | Promise<void>) => void
}

/**
 * Client-certificate settings of an HTTPS listener: `requestCert` asks every peer for a certificate but never rejects
 * the handshake (`rejectUnauthorized: false`); the application reads `socket.authorized` / `getPeerCertificate()`.
 * `ca` = the CAs a client certificate is verified against (`socket.authorized`).
 *
 * @internal
 */
export interface ClientCertificateOptions {
  readonly requestCert?: boolean | undefined
  readonly ca?: string | ReadonlyArray<string> | undefined
}

/** @internal */
export const listen = async (
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  tls: TlsCredentials | undefined,
  clientCertificates: ClientCertificateOptions = {}
): Promise<Listener> => {
  const server: http.Server = tls === undefined
    ? http.createServer(handler)
    : https.createServer({
      cert: tls.certPem,
      key: tls.keyPem,
      ...(clientCertificates.requestCert === true
        ? {
          requestCert: true,
          rejectUnauthorized: false,
          ...(clientCertificates.ca === undefined
            ? {}
            : { ca: typeof clientCertificates.ca === "string" ? clientCertificates.ca : [...clientCertificates.ca] })
        }
        : {})
    }, handler)
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const port = (server.address() as net.AddressInfo).port
  const origin = `${tls === undefined ? "http" : "https"}://127.0.0.1:${port}`
  const cleanups: Array<() => void | Promise<void>> = []
  let closing: Promise<void> | undefined
  const close = () => {
    if (closing === undefined) {
      closing = (async () => {
        for (const cleanup of cleanups) {
          try {
            await cleanup()
          } catch {
            // best effort
          }
        }
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
      })()
    }
    return closing
  }
  return { server, port, origin, close, onClose: (cleanup) => cleanups.push(cleanup) }
}

/**
 * The SHA-256 thumbprint (base64url of the DER, RFC 8705 `x5t#S256`) of the certificate the TLS peer presented on
 * this request's connection, or `undefined` (plain HTTP, or no certificate).
 *
 * @internal
 */
export const peerCertificateThumbprint = (req: http.IncomingMessage): string | undefined => {
  const raw = peerCertificateDer(req)
  return raw === undefined ? undefined : crypto.createHash("sha256").update(raw).digest("base64url")
}

/** The DER of the TLS peer's certificate, if any. @internal */
export const peerCertificateDer = (req: http.IncomingMessage): Buffer | undefined => {
  const socket = req.socket as nodeTls.TLSSocket
  if (typeof socket.getPeerCertificate !== "function") return undefined
  const certificate = socket.getPeerCertificate(false) as Partial<nodeTls.PeerCertificate> | null
  const raw = certificate?.raw
  return raw === undefined || raw.length === 0 ? undefined : raw
}

/** @internal */
export type MutableRecord<A> = { -readonly [K in keyof A]: A[K] }

/** @internal */
export const recordOf = (req: http.IncomingMessage): MutableRecord<RecordedRequest> => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value
  }
  const rawHeaders: Array<readonly [string, string]> = []
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    rawHeaders.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!])
  }
  const url = req.url ?? "/"
  const q = url.indexOf("?")
  return {
    time: Date.now(),
    method: req.method ?? "GET",
    path: q === -1 ? url : url.slice(0, q),
    url,
    headers,
    rawHeaders,
    status: undefined
  }
}

/** Sets `record.status` when the response is done (or the socket closes). @internal */
export const trackStatus = (res: http.ServerResponse, record: MutableRecord<RecordedRequest>): void => {
  const set = () => {
    if (record.status === undefined && res.headersSent) record.status = res.statusCode
  }
  res.once("finish", set)
  res.once("close", set)
}

/** @internal */
export const readBody = (req: http.IncomingMessage, limit = 1024 * 1024): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        reject(new Error("request body too large"))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.once("end", () => resolve(Buffer.concat(chunks)))
    req.once("error", reject)
  })

/** @internal */
export const parseForm = (body: string): Record<string, string> => {
  const form: Record<string, string> = {}
  for (const [key, value] of new URLSearchParams(body)) {
    form[key] = key in form ? `${form[key]},${value}` : value
  }
  return form
}

/** @internal */
export const sendJson = (
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {}
): void => {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers
  })
  res.end(text)
}

/** Wraps a `start` function as a scoped resource closed on scope release. @internal */
export const scoped =
  <A, O>(start: (options: O) => Promise<Started<A>>) => (options: O): Effect.Effect<A, never, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.promise((): Promise<A & Closeable> => start(options)),
      (server) => Effect.promise(() => server.close())
    )

/** A timer set that can be cancelled all at once (on close). @internal */
export const makeTimers = () => {
  const timers = new Set<NodeJS.Timeout>()
  const sleep = (ms: number): Promise<void> =>
    ms <= 0 ? Promise.resolve() : new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t)
        resolve()
      }, ms)
      timers.add(t)
    })
  const clear = () => {
    for (const t of timers) clearTimeout(t)
    timers.clear()
  }
  return { sleep, clear }
}

/**
 * The network probes of `mcp-auth doctor`: DNS and TCP to a host, a TLS handshake that reports what the server
 * presented, and which proxy (if any) a token request goes through. Nothing is sent over these connections, except
 * by {@link unverifiedDate}: a bare `HEAD`.
 *
 * @internal
 */
import type * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Dns from "node:dns"
import * as Http from "node:http"
import * as Https from "node:https"
import * as Net from "node:net"
import * as Tls from "node:tls"

/** @internal */
export interface Endpoint {
  readonly host: string
  readonly port: number
}

/** The host and port of an http(s) URL (IPv6 brackets removed). @internal */
export const endpointOf = (url: URL): Endpoint => ({
  host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
  port: url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port)
})

/** Whether `NO_PROXY` exempts `host` (`*`, a host, a `.domain` or `domain` suffix, optionally with `:port`). */
const exempt = (noProxy: string | undefined, { host, port }: Endpoint): boolean =>
  (noProxy ?? "").split(/[\s,]+/).filter((e) => e.length > 0).some((entry) => {
    if (entry === "*") return true
    const [name, entryPort] = /^(.*?)(?::(\d+))?$/.exec(entry.replace(/^\[(.*)\](:\d+)?$/, "$1$2"))!.slice(1)
    if (entryPort !== undefined && Number(entryPort) !== port) return false
    const domain = name!.replace(/^\*?\./, "").toLowerCase()
    const h = host.toLowerCase()
    return h === domain || h.endsWith(`.${domain}`)
  })

/**
 * The proxy a request to `url` goes through with this provider's settings (`proxy_url`, else `HTTPS_PROXY` /
 * `HTTP_PROXY` unless `NO_PROXY` exempts the host), as an endpoint and a printable URL; `undefined` for a direct
 * connection.
 *
 * @internal
 */
export const proxyFor = (
  provider: ServiceAccountConfig.ServiceAccountConfig,
  url: URL
): (Endpoint & { readonly shown: string; readonly from: string }) | undefined => {
  const fromConfig = provider.proxyUrl === undefined ? undefined : Redacted.value(provider.proxyUrl)
  const env = TokenHttpClient.proxyEnvironment()
  const target = endpointOf(url)
  const raw = fromConfig ??
    (exempt(env.noProxy, target)
      ? undefined
      : url.protocol === "https:"
      ? env.httpsProxy ?? env.httpProxy
      : env.httpProxy)
  if (raw === undefined) return undefined
  const from = fromConfig !== undefined ? "proxy_url" : url.protocol === "https:" ? "HTTPS_PROXY" : "HTTP_PROXY"
  try {
    const parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`)
    return { ...endpointOf(parsed), shown: `${parsed.protocol}//${parsed.host}`, from }
  } catch {
    return { host: "", port: 0, shown: "<invalid url>", from }
  }
}

/** @internal */
export class ProbeError extends Error {
  constructor(readonly code: string, message: string) {
    super(message)
  }
}

const codeOf = (cause: unknown): string => (cause as NodeJS.ErrnoException | undefined)?.code ?? "error"

/** The addresses a host name resolves to (an IP address resolves to itself), at least one. @internal */
export const lookup = (host: string, timeoutMs: number): Effect.Effect<ReadonlyArray<string>, ProbeError> =>
  Net.isIP(host) !== 0 ? Effect.succeed([host]) : Effect.tryPromise({
    try: () => Dns.promises.lookup(host, { all: true }).then((all) => all.map((a) => a.address)),
    catch: (cause) => new ProbeError(codeOf(cause), `${host} does not resolve (${codeOf(cause)})`)
  }).pipe(
    Effect.filterOrFail(
      (addresses) => addresses.length > 0,
      () => new ProbeError("ENOTFOUND", `${host} resolves to no address`)
    ),
    Effect.timeoutFail({
      duration: timeoutMs,
      onTimeout: () => new ProbeError("EAI_AGAIN", `${host} did not resolve in ${timeoutMs / 1000} s`)
    })
  )

/** A TCP connection to `address:port`, closed at once. @internal */
export const connect = (address: string, port: number, timeoutMs: number): Effect.Effect<void, ProbeError> =>
  Effect.async<void, ProbeError>((resume) => {
    const socket = Net.connect({ host: address, port })
    socket.setTimeout(timeoutMs)
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("timeout", () => {
      socket.destroy()
      resume(Effect.fail(new ProbeError("ETIMEDOUT", `no answer from ${address}:${port} in ${timeoutMs / 1000} s`)))
    })
    socket.once("error", (cause) => {
      socket.destroy()
      resume(Effect.fail(new ProbeError(codeOf(cause), `cannot connect to ${address}:${port} (${codeOf(cause)})`)))
    })
    return Effect.sync(() => socket.destroy())
  })

/** What a TLS handshake showed. @internal */
export interface Handshake {
  readonly authorized: boolean
  readonly authorizationError: string | undefined
  readonly subject: string
  readonly issuer: string
  readonly validFrom: Date | undefined
  readonly validTo: Date | undefined
  readonly altNames: string | undefined
  /** Why the certificate is not for the host, when it is not. */
  readonly hostnameError: string | undefined
}

/** `authorizationError` is a string code, an Error with a code, or null when the chain verified. */
const errorCode = (error: unknown): string | undefined =>
  error === null || error === undefined
    ? undefined
    : typeof error === "object" && typeof (error as { code?: unknown }).code === "string"
    ? (error as { code: string }).code
    : String(error)

const cn = (name: Tls.Certificate | undefined): string => {
  const value = name?.CN ?? name?.O
  return value === undefined ? "?" : Array.isArray(value) ? value.join(",") : String(value)
}

/**
 * A TLS handshake with `host:port` trusting `options.ca` (Node's roots when absent) and presenting `options.cert`:
 * the chain is not refused during the handshake, so that what the server presented can be reported; the caller
 * decides. Nothing is sent; the connection is closed after the handshake.
 *
 * @internal
 */
export const handshake = (
  endpoint: Endpoint,
  options: TokenHttpClient.ConnectOptions,
  timeoutMs: number
): Effect.Effect<Handshake, ProbeError> =>
  Effect.async<Handshake, ProbeError>((resume) => {
    const socket = Tls.connect({
      host: endpoint.host,
      port: endpoint.port,
      ...(Net.isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
      ...options,
      rejectUnauthorized: false
    })
    socket.setTimeout(timeoutMs)
    socket.once("secureConnect", () => {
      try {
        resume(Effect.succeed(inspect(socket, endpoint)))
      } catch (cause) {
        resume(Effect.fail(new ProbeError("error", `the server's certificate cannot be read (${String(cause)})`)))
      } finally {
        socket.destroy()
      }
    })
    socket.once("timeout", () => {
      socket.destroy()
      resume(Effect.fail(new ProbeError("ETIMEDOUT", `no TLS handshake in ${timeoutMs / 1000} s`)))
    })
    socket.once("error", (cause) => {
      socket.destroy()
      resume(Effect.fail(new ProbeError(codeOf(cause), `the TLS handshake failed (${codeOf(cause)})`)))
    })
    return Effect.sync(() => socket.destroy())
  })

const inspect = (socket: Tls.TLSSocket, endpoint: Endpoint): Handshake => {
  const peer = socket.getPeerCertificate(false)
  const identity = peer !== undefined && Object.keys(peer).length > 0
    ? Tls.checkServerIdentity(endpoint.host, peer)
    : new Error("the server presented no certificate")
  const date = (value: string | undefined) => {
    const parsed = value === undefined ? undefined : new Date(value)
    return parsed === undefined || Number.isNaN(parsed.getTime()) ? undefined : parsed
  }
  const result: Handshake = {
    authorized: socket.authorized,
    authorizationError: errorCode(socket.authorizationError),
    subject: cn(peer?.subject),
    issuer: cn(peer?.issuer),
    validFrom: date(peer?.valid_from),
    validTo: date(peer?.valid_to),
    altNames: peer?.subjectaltname,
    hostnameError: identity === undefined ? undefined : identity.message
  }
  return result
}

/**
 * The certificate errors a wrong local clock causes: the server's certificate looks expired or not yet valid.
 *
 * @internal
 */
export const clockCertificateErrors: ReadonlySet<string> = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"])

/**
 * The `Date` header of a `HEAD` to `url` over a connection whose certificate is NOT verified, for when the only
 * problem is its validity dates (which a wrong local clock causes). No credentials, no client certificate, no proxy;
 * nothing else is sent and the body is not read.
 *
 * @internal
 */
export const unverifiedDate = (url: URL, timeoutMs: number): Effect.Effect<string | undefined, ProbeError> =>
  Effect.async<string | undefined, ProbeError>((resume) => {
    const request = (url.protocol === "https:" ? Https : Http).request(url, {
      method: "HEAD",
      agent: false,
      rejectUnauthorized: false,
      timeout: timeoutMs
    })
    request.once("response", (response) => {
      const date = response.headers.date
      request.destroy()
      resume(Effect.succeed(date))
    })
    request.once("timeout", () => {
      request.destroy()
      resume(Effect.fail(new ProbeError("ETIMEDOUT", `no answer in ${timeoutMs / 1000} s`)))
    })
    request.once("error", (cause) => {
      request.destroy()
      resume(Effect.fail(new ProbeError(codeOf(cause), `no answer (${codeOf(cause)})`)))
    })
    request.end()
    return Effect.sync(() => request.destroy())
  })

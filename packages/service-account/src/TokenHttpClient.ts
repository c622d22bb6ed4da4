/**
 * A Node `HttpClient` (undici) that trusts the system roots plus an extra PEM bundle (`ca_file`), presents a TLS client
 * certificate (RFC 8705) and goes through a proxy (`proxy_url`, else `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`), for
 * identity providers and MCP servers behind an internal certificate authority or a corporate proxy. Node only: needs
 * `@effect/platform-node`.
 *
 * `ca_file` adds to the trusted roots (Node's bundled roots, and `NODE_EXTRA_CA_CERTS` if set); it does not replace
 * them.
 *
 * @since 0.1.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Tls from "node:tls"
import type { ServiceAccountConfig, TlsClientCertificate } from "./ServiceAccountConfig.js"
import { ConfigIssue, ConfigurationError } from "./ServiceAccountError.js"

/**
 * How connections are made: extra trusted roots, a TLS client certificate, a proxy.
 *
 * @since 0.1.0
 * @category Models
 */
export interface TlsOptions {
  /** Path of a PEM bundle to trust in addition to the system roots. */
  readonly caFile?: string | undefined
  /** A TLS client certificate presented to every server that asks for one (RFC 8705 mTLS). */
  readonly clientCertificate?: TlsClientCertificate | undefined
  /**
   * The proxy: a URL (credentials allowed, `http://user:password@host:port`), used for every request; `undefined`
   * (the default) honours `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (either case) as they are when the client is
   * made; `false` connects directly whatever the environment says.
   */
  readonly proxy?: Redacted.Redacted<string> | string | false | undefined
  /**
   * The proxy variables to honour when `proxy` is `undefined` (see {@link proxyEnvironment}); default: as they are
   * when the dispatcher is made. {@link optionsFromConfig} takes them when it is called.
   */
  readonly environment?: ProxyEnvironment | undefined
}

/**
 * The proxy variables, read once: `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`, the lower-case spelling first (as curl
 * and undici read them).
 *
 * @since 0.3.0
 * @category Models
 */
export interface ProxyEnvironment {
  readonly httpsProxy?: string | undefined
  readonly httpProxy?: string | undefined
  readonly noProxy?: string | undefined
}

const variable = (env: NodeJS.ProcessEnv, name: string): string | undefined => {
  const value = (env[name.toLowerCase()] ?? env[name])?.trim()
  return value === undefined || value.length === 0 ? undefined : value
}

/**
 * The proxy variables as they are now.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const proxyEnvironment = (env: NodeJS.ProcessEnv = process.env): ProxyEnvironment => ({
  httpsProxy: variable(env, "HTTPS_PROXY"),
  httpProxy: variable(env, "HTTP_PROXY"),
  noProxy: variable(env, "NO_PROXY")
})

const readFile = (path: string, key: string, what: string): Effect.Effect<string, ConfigurationError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (cause) =>
      new ConfigurationError({
        issues: [
          new ConfigIssue({
            path: key,
            message: `cannot read ${path} (${
              (cause as NodeJS.ErrnoException).code ?? "error"
            }): give the path of ${what}`
          })
        ]
      })
  })

const readPem = (path: string, key: string): Effect.Effect<string, ConfigurationError> =>
  readFile(path, key, "a PEM CA bundle").pipe(
    Effect.filterOrFail(
      (pem) => pem.includes("-----BEGIN CERTIFICATE-----"),
      () =>
        new ConfigurationError({
          issues: [
            new ConfigIssue({ path: key, message: `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` })
          ]
        })
    )
  )

/**
 * The certificates to trust: undefined (Node's defaults) without `caFile`, else the system roots,
 * `NODE_EXTRA_CA_CERTS` and the bundle.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const trustedCertificates = (
  options: TlsOptions
): Effect.Effect<ReadonlyArray<string> | undefined, ConfigurationError> =>
  options.caFile === undefined
    ? Effect.succeed(undefined)
    : Effect.gen(function*() {
      const extra = process.env.NODE_EXTRA_CA_CERTS
      const fromEnv = extra ? [yield* readPem(extra, "NODE_EXTRA_CA_CERTS")] : []
      return [...Tls.rootCertificates, ...fromEnv, yield* readPem(options.caFile!, "ca_file")]
    })

/**
 * The TLS options of a connection (what undici's `connect` and `requestTls` take).
 *
 * @since 0.3.0
 * @category Models
 */
export interface ConnectOptions {
  readonly ca?: Array<string>
  readonly cert?: string
  readonly key?: string
  readonly passphrase?: string
}

/**
 * The TLS options of a connection: trusted roots and the client certificate (checked: both files readable, the key
 * usable with its passphrase and matching the certificate). Messages name the field and the file, never the contents.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const connectOptions = (
  options: TlsOptions
): Effect.Effect<ConnectOptions, ConfigurationError> =>
  Effect.gen(function*() {
    const ca = yield* trustedCertificates(options)
    const tls: { -readonly [K in keyof ConnectOptions]: ConnectOptions[K] } = {}
    if (ca !== undefined) tls.ca = [...ca]
    const client = options.clientCertificate
    if (client !== undefined) {
      const cert = yield* readFile(client.certificateFile, "tls_client_certificate_file", "a PEM certificate")
      const key = yield* readFile(client.keyFile, "tls_client_key_file", "the certificate's PEM private key")
      const passphrase = client.passphrase === undefined ? undefined : Redacted.value(client.passphrase)
      const problem = certificateProblem(cert, key, passphrase)
      if (problem !== undefined) {
        return yield* Effect.fail(
          new ConfigurationError({
            issues: [
              new ConfigIssue({
                path: problem.field,
                message: `${problem.field} (${
                  problem.field === "tls_client_key_file" ? client.keyFile : client.certificateFile
                }) ${problem.reason}`
              })
            ]
          })
        )
      }
      tls.cert = cert
      tls.key = key
      if (passphrase !== undefined) tls.passphrase = passphrase
    }
    return tls
  })

const certificateProblem = (
  cert: string,
  key: string,
  passphrase: string | undefined
): { readonly field: string; readonly reason: string } | undefined => {
  let privateKey: Crypto.KeyObject
  try {
    privateKey = Crypto.createPrivateKey({ key, ...(passphrase === undefined ? {} : { passphrase }) })
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? "parse error"
    return {
      field: "tls_client_key_file",
      reason: `is not a usable PEM private key (${code}${
        passphrase === undefined ? "; set tls_client_key_passphrase if it is encrypted" : ""
      })`
    }
  }
  let certificate: Crypto.X509Certificate
  try {
    certificate = new Crypto.X509Certificate(cert)
  } catch (cause) {
    return {
      field: "tls_client_certificate_file",
      reason: `holds no PEM certificate (${(cause as NodeJS.ErrnoException).code ?? "parse error"})`
    }
  }
  return certificate.checkPrivateKey(privateKey)
    ? undefined
    : { field: "tls_client_certificate_file", reason: "is not the certificate of tls_client_key_file" }
}

/**
 * An undici dispatcher trusting the configured roots, presenting the client certificate and going through the
 * proxy, closed with the scope. Through a proxy, the TLS options apply to the tunnelled connection to the server.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeDispatcher = (
  options: TlsOptions
): Effect.Effect<Undici.Dispatcher, ConfigurationError, Scope.Scope> =>
  Effect.flatMap(connectOptions(options), (tls) =>
    Effect.acquireRelease(
      Effect.suspend((): Effect.Effect<Undici.Dispatcher, ConfigurationError> => {
        const connect = Object.keys(tls).length === 0 ? undefined : tls
        const through = connect === undefined ? {} : {
          // to the server, through the tunnel; and the proxy's own TLS, for an https:// proxy of the internal CA
          requestTls: connect,
          ...(connect.ca === undefined ? {} : { proxyTls: { ca: connect.ca } })
        }
        const proxy = options.proxy
        if (proxy !== undefined && proxy !== false) {
          const uri = proxyUrl("proxy_url", typeof proxy === "string" ? proxy : Redacted.value(proxy))
          return Effect.map(uri, (uri) => new Undici.ProxyAgent({ uri, ...through }))
        }
        const env = proxy === false ? {} : options.environment ?? proxyEnvironment()
        if (env.httpsProxy === undefined && env.httpProxy === undefined) {
          return Effect.succeed(connect === undefined ? new Undici.Agent() : new Undici.Agent({ connect }))
        }
        return Effect.map(
          Effect.all({
            httpsProxy: env.httpsProxy === undefined ? Effect.succeed("") : proxyUrl("HTTPS_PROXY", env.httpsProxy),
            httpProxy: env.httpProxy === undefined ? Effect.succeed("") : proxyUrl("HTTP_PROXY", env.httpProxy)
          }),
          // every value given, even empty: undici then reads no variable itself, neither now nor per request
          (urls) =>
            new Undici.EnvHttpProxyAgent({
              ...urls,
              noProxy: env.noProxy ?? "",
              ...(connect === undefined ? {} : { connect }),
              ...through
            })
        )
      }),
      (agent) => Effect.promise(() => agent.destroy())
    ))

/**
 * A proxy URL as undici takes it: `host:port` gets `http://` (as curl reads it); anything but http(s) is refused
 * with a message that never quotes the value (it may hold the proxy's password).
 */
const proxyUrl = (name: string, value: string): Effect.Effect<string, ConfigurationError> => {
  const uri = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  let url: URL | undefined
  try {
    url = new URL(uri)
  } catch {
    // not quoted below
  }
  return url !== undefined && (url.protocol === "http:" || url.protocol === "https:") && url.hostname.length > 0
    ? Effect.succeed(uri)
    : Effect.fail(
      new ConfigurationError({
        issues: [
          new ConfigIssue({
            path: name,
            message: `${name} must be an http:// or https:// proxy URL, e.g. http://user:password@proxy.internal:3128`
          })
        ]
      })
    )
}

/**
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: TlsOptions = {}): Layer.Layer<HttpClient.HttpClient, ConfigurationError> =>
  NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
    Layer.provide(Layer.scoped(NodeHttpClient.Dispatcher, makeDispatcher(options)))
  )

/**
 * The client for a provider's token endpoint, honouring its `ca_file`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFromConfig = (config: ServiceAccountConfig): Layer.Layer<HttpClient.HttpClient, ConfigurationError> =>
  layer(optionsFromConfig(config))

/**
 * The connection options a provider's configuration names: `ca_file`, the TLS client certificate
 * (`tls_client_certificate_file`, `tls_client_key_file`, `tls_client_key_passphrase`) and `proxy_url` (else the proxy
 * variables, read now). The MCP connection uses the same certificate and proxy (see the client package's `TrustedFetch`).
 *
 * @since 0.3.0
 * @category Constructors
 */
export const optionsFromConfig = (config: ServiceAccountConfig): TlsOptions => ({
  caFile: config.caFile,
  clientCertificate: config.tlsClientCertificate,
  proxy: config.proxyUrl,
  environment: config.proxyUrl === undefined ? proxyEnvironment() : undefined
})

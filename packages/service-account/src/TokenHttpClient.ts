/**
 * A Node `HttpClient` (undici) that trusts the system roots plus an extra PEM bundle (`ca_file`), for identity
 * providers and MCP servers behind an internal certificate authority. Node only: needs `@effect/platform-node`.
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
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Tls from "node:tls"
import type { ServiceAccountConfig } from "./ServiceAccountConfig.js"
import { ConfigIssue, ConfigurationError } from "./ServiceAccountError.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface TlsOptions {
  /** Path of a PEM bundle to trust in addition to the system roots. */
  readonly caFile?: string | undefined
}

const readPem = (path: string, key: string): Effect.Effect<string, ConfigurationError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (cause) =>
      new ConfigurationError({
        issues: [
          new ConfigIssue({
            path: key,
            message: `cannot read ${path} (${
              (cause as NodeJS.ErrnoException).code ?? "error"
            }): give the path of a PEM CA bundle`
          })
        ]
      })
  }).pipe(
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
 * An undici dispatcher trusting the configured roots, closed with the scope.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeDispatcher = (
  options: TlsOptions
): Effect.Effect<Undici.Dispatcher, ConfigurationError, Scope.Scope> =>
  Effect.flatMap(trustedCertificates(options), (ca) =>
    Effect.acquireRelease(
      Effect.sync(() => ca === undefined ? new Undici.Agent() : new Undici.Agent({ connect: { ca: [...ca] } })),
      (agent) => Effect.promise(() => agent.destroy())
    ))

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
  layer({ caFile: config.caFile })

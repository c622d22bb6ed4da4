/**
 * A Node `fetch` (undici) for MCP servers behind an internal certificate authority, a corporate proxy or mutual TLS:
 * it trusts the system roots plus an extra PEM bundle, presents a TLS client certificate (RFC 8705) and goes through
 * a proxy (`proxy_url`, else `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`, either case, read when the fetch is made).
 * Pass it as the base `fetch` of {@link AuthenticatedFetch} / `McpClient`.
 *
 * @since 0.1.0
 */
import * as Undici from "@effect/platform-node/Undici"
import type { ServiceAccountConfig } from "@mcp-auth/service-account/ServiceAccountConfig"
import type { ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * A fetch over an undici dispatcher (closed with the scope).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromDispatcher = (dispatcher: Undici.Dispatcher): FetchLike => (url, init) =>
  Undici.fetch(url, { ...(init as Undici.RequestInit), dispatcher }) as unknown as Promise<Response>

/**
 * A fetch with these connection options (extra roots, client certificate, proxy); its connections close with the
 * scope. A file that cannot be read, or a key that does not match its certificate, is a `ConfigurationError` naming
 * the field and the file.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: TokenHttpClient.TlsOptions): Effect.Effect<FetchLike, ConfigurationError, Scope.Scope> =>
  Effect.map(TokenHttpClient.makeDispatcher(options), fromDispatcher)

/**
 * @since 0.3.0
 * @category Models
 */
export interface FromConfigOptions {
  /**
   * The PEM bundle trusted for the MCP server. Default: the provider's `ca_file` (which is for its token endpoint:
   * give this when the MCP server's certificate comes from another authority).
   */
  readonly caFile?: string | undefined
}

/**
 * The fetch for the MCP server a provider authenticates to: it presents the provider's TLS client certificate
 * (`tls_client_certificate_file` / `tls_client_key_file`), so that certificate-bound tokens (`cnf.x5t#S256`, RFC 8705
 * §3) are accepted, and goes through the provider's `proxy_url` (else the proxy variables). It trusts
 * `options.caFile` if given, else the provider's `ca_file`.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const fromConfig = (
  config: ServiceAccountConfig,
  options: FromConfigOptions = {}
): Effect.Effect<FetchLike, ConfigurationError, Scope.Scope> =>
  make({ ...TokenHttpClient.optionsFromConfig(config), caFile: options.caFile ?? config.caFile })

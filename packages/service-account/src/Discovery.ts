/**
 * Discovery of an authorization server (RFC 8414, OpenID Connect discovery as the fallback) and of an MCP server's
 * protected-resource metadata (RFC 9728), each document validated:
 *
 * - the metadata's `issuer` must equal the issuer it was fetched for (RFC 8414 §3.3), and a protected resource's
 *   `resource` the MCP server URL (RFC 9728 §3.3);
 * - {@link fromMcpServer} contacts only an authorization server the caller pins (`allowedIssuers`): an MCP server
 *   naming another one gets `issuer_not_trusted`, and no request at all goes to what it named;
 * - a token endpoint must be https (http only on a loopback host with `allowInsecureHttp`);
 * - documents are read up to 256 KiB, each request bounded by `timeout` (10 s by default).
 *
 * A configuration without `token_url` uses it through the token provider (`issuer`, or `discover` with
 * `allowed_issuers`); `mcp-auth doctor` and programs that want to check an issuer's metadata can call it directly.
 *
 * @since 0.3.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as internal from "./internal/discovery.js"
import type * as ServiceAccountConfig from "./ServiceAccountConfig.js"
import * as ServiceAccountError from "./ServiceAccountError.js"

/**
 * A discovery step that failed: `reason`, the URL, and what to configure.
 *
 * @since 0.3.0
 * @category Errors
 */
export const DiscoveryError: typeof ServiceAccountError.DiscoveryError = ServiceAccountError.DiscoveryError

/**
 * @since 0.3.0
 * @category Errors
 */
export type DiscoveryError = ServiceAccountError.DiscoveryError

/**
 * @since 0.3.0
 * @category Models
 */
export type Reason = ServiceAccountError.DiscoveryReason

/**
 * @since 0.3.0
 * @category Models
 */
export type AuthorizationServerMetadata = internal.AuthorizationServerMetadata

/**
 * @since 0.3.0
 * @category Models
 */
export type ProtectedResourceMetadata = internal.ProtectedResourceMetadata

/**
 * @since 0.3.0
 * @category Models
 */
export type Fetched<A> = internal.Fetched<A>

/**
 * @since 0.3.0
 * @category Models
 */
export type Options = internal.Options

/**
 * @since 0.3.0
 * @category Models
 */
export type Discovered = internal.Discovered

/**
 * The authorization server's metadata for a pinned issuer: RFC 8414, then OpenID Connect discovery.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const authorizationServer: (
  issuer: string,
  options?: Options
) => Effect.Effect<Fetched<AuthorizationServerMetadata>, DiscoveryError, HttpClient.HttpClient> =
  internal.authorizationServer

/**
 * An MCP server's protected-resource metadata, at `metadataUrl` or its well-known URL.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const protectedResource: (
  mcpUrl: string,
  metadataUrl: string | undefined,
  options?: Options
) => Effect.Effect<Fetched<ProtectedResourceMetadata>, DiscoveryError, HttpClient.HttpClient> =
  internal.protectedResource

/**
 * From an MCP server to its token endpoint, through the first authorization server `allowedIssuers` pins.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const fromMcpServer: (
  mcpUrl: string,
  allowedIssuers: ReadonlyArray<string>,
  options?: Options
) => Effect.Effect<Discovered, DiscoveryError, HttpClient.HttpClient> = internal.fromMcpServer

/**
 * The configuration with its token endpoint: itself when `token_url` is configured; else discovered from `issuer`'s
 * metadata, or from `mcpUrl`'s protected-resource metadata (`discover`, `allowed_issuers`), and completed with what
 * was found (`issuer`, and when not configured `resource`, `scopes` and `authMethod`). What the token provider does
 * before its first token request, for programs (and `mcp-auth doctor`) that want to see it.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const resolve = (
  config: ServiceAccountConfig.ServiceAccountConfig,
  mcpUrl?: string | URL
): Effect.Effect<ServiceAccountConfig.Resolved, DiscoveryError, HttpClient.HttpClient> =>
  Effect.flatMap(internal.resolver(config, mcpUrl), (resolver) => resolver.resolve)

/**
 * Whether two identifiers (issuers, resources, endpoints) are the same: compared as URLs (origin, path without a
 * trailing slash, query), else as text.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const sameUrl: (a: string, b: string) => boolean = internal.sameUrl

/**
 * `resource_metadata`, `scope` and `error` of a `WWW-Authenticate: Bearer …` challenge.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const parseChallenge: (
  header: string | undefined
) => { readonly resourceMetadata?: string; readonly scope?: string; readonly error?: string } = internal.parseChallenge

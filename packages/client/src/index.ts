/**
 * @since 0.1.0
 */
export * as AuthenticatedFetch from "./AuthenticatedFetch.js"

/**
 * @since 0.1.0
 */
export * as McpClient from "./McpClient.js"

/**
 * `McpClient`'s defaults, without the MCP SDK (the workflow schema reads them).
 *
 * @since 0.1.0
 */
export * as McpClientDefaults from "./McpClientDefaults.js"

/**
 * @since 0.1.0
 */
export * as McpClientError from "./McpClientError.js"

/**
 * @since 0.1.0
 */
export * as OAuthProviderAdapter from "./OAuthProviderAdapter.js"

/**
 * @since 0.1.0
 */
export * as ServiceAccountAuth from "./ServiceAccountAuth.js"

/**
 * @since 0.1.0
 */
export * as TrustedFetch from "./TrustedFetch.js"

/**
 * The Promise API's entry point.
 *
 * @since 0.1.0
 */
export { createServiceAccountAuth } from "./ServiceAccountAuth.js"

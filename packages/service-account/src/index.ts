/**
 * @since 0.1.0
 */
export * as AccessToken from "./AccessToken.js"

/**
 * @since 0.1.0
 */
export * as AuthHeaders from "./AuthHeaders.js"

/**
 * How a token request authenticates the client, for every `auth_method` and the `jwt_bearer` grant.
 *
 * @since 0.3.0
 */
export * as ClientAuthentication from "./ClientAuthentication.js"

/**
 * Discovery of an authorization server (RFC 8414) and of an MCP server's protected-resource metadata (RFC 9728).
 *
 * @since 0.3.0
 */
export * as Discovery from "./Discovery.js"

/**
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * @since 0.1.0
 */
export * as RequestContext from "./RequestContext.js"

/**
 * @since 0.1.0
 */
export * as RetrySchedule from "./RetrySchedule.js"

/**
 * @since 0.2.0
 */
export * as Scrub from "./Scrub.js"

/**
 * @since 0.1.0
 */
export * as ServiceAccountConfig from "./ServiceAccountConfig.js"

/**
 * @since 0.1.0
 */
export * as ServiceAccountError from "./ServiceAccountError.js"

/**
 * @since 0.1.0
 */
export * as ServiceToken from "./ServiceToken.js"

/**
 * The token cache a fleet of processes shares (issue 15): the store interface and the in-memory store.
 *
 * @since 0.3.0
 */
export * as SharedTokenStore from "./SharedTokenStore.js"

/**
 * The shared token store on Redis (ioredis, loaded only when used).
 *
 * @since 0.3.0
 */
export * as SharedTokenStoreRedis from "./SharedTokenStoreRedis.js"

/**
 * @since 0.1.0
 */
export * as TokenEndpoint from "./TokenEndpoint.js"

/**
 * @since 0.1.0
 */
export * as TokenProvider from "./TokenProvider.js"

/**
 * The metrics mcp-auth records, as Effect `Metric`s. Most carry a `provider` tag (the provider's name, by default its
 * `client_id`); the cache-hit counter, the waiter counter and the latency histograms carry `token_url` instead (the
 * token endpoint without query or user info), so a process with thousands of providers of one identity provider keeps
 * one series of each (a series costs the process about 0.8 KiB).
 * Labels never hold a secret or a token. Export them with any Effect metrics exporter, for
 * example `@effect/opentelemetry`'s `NodeSdk.layer({ metricReader })`, or read them with `Metric.value` /
 * `Metric.snapshot`.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

const latencyBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 })

/**
 * Token endpoint requests by `outcome`: `success`, or the error tag (`InvalidCredentialsError`, `RateLimitedError`, …).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const tokenRequests = Metric.counter("mcp_auth_token_requests_total", {
  description: "Token endpoint requests, by outcome",
  incremental: true
})

/**
 * Fetches through the fleet's shared token store (`shared_cache`), by `provider` and `outcome`: `adopted` (a token
 * another process published, no request), `fetched` (this process held the lock and requested), `fetched_after_wait`
 * (the holder published nothing in time), `blocked` (a stored 429 or invalid-credential failure, no request) and
 * `fail_open` (a store operation failed or was slow and the provider went on without it; counted per operation, so
 * one fetch may add several).
 *
 * @since 0.3.0
 * @category Metrics
 */
export const sharedCache = Metric.counter("mcp_auth_shared_cache_total", {
  description: "Fetches through the fleet's shared token store by outcome (fail_open: per store operation)",
  incremental: true
})

/**
 * `get` / `peek` calls answered from the cached token without waiting. Counted in batches, by each provider and each
 * object it keeps told of its token (`TokenProvider.mirror`: the Promise API's auth, `AuthHeaders`): added every 256
 * hits and whenever the provider's state changes (at least once per token lifetime), so each may trail the true count
 * by up to 255 hits (with thousands of providers, the series by that many times more), and the hits of an
 * `AuthHeaders` dropped between two changes are not counted.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cacheHits = Metric.counter("mcp_auth_token_cache_hits_total", {
  description: "Token requests answered from the cache",
  incremental: true
})

/**
 * Callers that had to wait for a token (no usable token in the cache), by `token_url` and `role`: `leader` started
 * the fetch, `coalesced` joined a fetch already in flight.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const waiters = Metric.counter("mcp_auth_token_waiters_total", {
  description: "Callers that waited for a token fetch; role=coalesced joined one already in flight",
  incremental: true
})

/**
 * Seconds callers spent waiting for a token.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const waitSeconds = Metric.histogram(
  "mcp_auth_token_wait_seconds",
  latencyBoundaries,
  "Seconds a caller waited for a token"
)

/**
 * Seconds one token fetch took, retries and Retry-After waits included (blocking or background).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const fetchSeconds = Metric.histogram(
  "mcp_auth_token_fetch_seconds",
  latencyBoundaries,
  "Seconds a token fetch took, retries included"
)

/**
 * 1 while a background refresh is failing and the still-valid token is being served, else 0.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const degraded = Metric.gauge("mcp_auth_token_degraded", {
  description: "1 while serving a still-valid token because refreshing it fails"
})

/**
 * When the cached token expires, in Unix seconds (0 while none is cached). Set when the token changes, so an alert can
 * compare it with the scrape time (`mcp_auth_token_expiry_timestamp_seconds - time() < 60`).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const tokenExpiry = Metric.gauge("mcp_auth_token_expiry_timestamp_seconds", {
  description: "Unix time at which the cached token expires; 0 while none is cached"
})

/**
 * When the current cool-down ends, in Unix seconds (0 while none runs): no token request is sent before it. Set when
 * a cool-down starts or ends.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cooldownUntil = Metric.gauge("mcp_auth_token_cooldown_until_timestamp_seconds", {
  description: "Unix time at which the token endpoint cool-down ends; 0 while none runs"
})

/**
 * Cool-downs started, by `kind` (`permanent`: invalid credentials, OAuth errors, TLS, malformed responses, doubling
 * while they repeat; `transient`: a 429/503 `Retry-After` or retries exhausted) and `reason` (the error tag).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cooldowns = Metric.counter("mcp_auth_token_cooldowns_total", {
  description: "Token endpoint cool-downs started, by kind and reason",
  incremental: true
})

/**
 * Cached tokens dropped because a resource server rejected them (401), after compare-and-invalidate.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const unauthorizedRefreshes = Metric.counter("mcp_auth_unauthorized_refreshes_total", {
  description: "Cached tokens dropped after a 401 from the resource server",
  incremental: true
})

/**
 * Service-token function calls by `outcome` (`success` or the failure reason).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const serviceTokenCalls = Metric.counter("mcp_auth_service_token_calls_total", {
  description: "Service token resolutions, by outcome",
  incremental: true
})

/**
 * `McpClient`'s defaults, written once: the client uses them, and the workflow schema (`mcp_client`'s
 * `tool_call_timeout` and `reconnect_*` keys), `mcp-auth info components` and the README read them from here.
 *
 * A module of its own, without the MCP SDK, so that loading a workflow config (`mcp-auth validate`, `info`) does not
 * load the SDK; `McpClient` re-exports everything here.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"

/**
 * NAT's reconnect settings (`reconnect_enabled`, `reconnect_max_attempts`, `reconnect_initial_backoff`,
 * `reconnect_max_backoff`).
 *
 * When an operation fails in a way a fresh connection may cure, the client closes the connection and reconnects up
 * to `maxAttempts` times, then retries the operation once. A `tools/call` is the exception: it is retried only when
 * the failure proves it never reached the server (connection refused, name not resolved); otherwise it fails, and the
 * session is replaced (the same way) before the next operation. Unlike NAT, which waits exactly `initialBackoff × 2^(n−1)`
 * (capped at `maxBackoff`) before the n-th reconnect, the wait is drawn uniformly from `[0, that ceiling]` ("full
 * jitter", `RetrySchedule` from `@mcp-auth/service-account`): a fleet of clients that lost the same server at the
 * same moment then does not reconnect in lockstep. Draws use Effect's `Random` service.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ReconnectOptions {
  readonly enabled: boolean
  /** Reconnect attempts after a failure (the failed operation not counted). */
  readonly maxAttempts: number
  /** Backoff ceiling of the first reconnect; it doubles per attempt. */
  readonly initialBackoff: Duration.DurationInput
  /** Cap on the backoff ceiling. */
  readonly maxBackoff: Duration.DurationInput
}

/**
 * NAT's defaults: enabled, 2 attempts, a 0.5 s ceiling doubling up to 50 s.
 *
 * @since 0.1.0
 * @category Constants
 */
export const defaultReconnect: {
  readonly enabled: boolean
  readonly maxAttempts: number
  readonly initialBackoff: Duration.Duration
  readonly maxBackoff: Duration.Duration
} = {
  enabled: true,
  maxAttempts: 2,
  initialBackoff: Duration.millis(500),
  maxBackoff: Duration.seconds(50)
}

/**
 * Timeout of `listTools` and `callTool` (NAT `tool_call_timeout`): 60 s.
 *
 * @since 0.1.0
 * @category Constants
 */
export const defaultToolCallTimeout: Duration.Duration = Duration.seconds(60)

/**
 * The most bytes read from one MCP response (McpClient `maxResponseBytes`, YAML `max_response_bytes`): 8 MiB. A JSON
 * response is cut when its body exceeds it, an SSE stream when one event does (a stream may stay open for long; its
 * total is bounded in time by the timeout).
 *
 * @since 0.2.0
 * @category Constants
 */
export const defaultMaxResponseBytes: number = 8 * 1024 * 1024

/**
 * Errors of the MCP side: the server refused a fresh token (401) or the request (403), or the MCP exchange itself
 * failed. Token and service-token failures keep their own types (`InvalidCredentialsError`, `ServiceTokenError`, …)
 * and reach callers unchanged.
 *
 * @since 0.1.0
 */
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category Type IDs
 */
export const TypeId: unique symbol = Symbol.for("@mcp-auth/client/McpClientError")

/**
 * @since 0.1.0
 * @category Type IDs
 */
export type TypeId = typeof TypeId

/** The server's `WWW-Authenticate` challenge, as ` (error: description)`. */
const challenge = (e: { readonly error?: string | undefined; readonly errorDescription?: string | undefined }) =>
  e.error ? ` (${e.error}${e.errorDescription ? `: ${e.errorDescription}` : ""})` : ""

/**
 * The MCP server answered 401 to a token that was fetched fresh after its first 401, or to a request that could not
 * be replayed. Usually a token the server will never accept: wrong audience, issuer or scopes.
 *
 * @since 0.1.0
 * @category Errors
 */
export class McpUnauthorizedError extends Schema.TaggedError<McpUnauthorizedError>(
  "@mcp-auth/client/McpUnauthorizedError"
)("McpUnauthorizedError", {
  url: Schema.String,
  error: Schema.optional(Schema.String),
  errorDescription: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `The MCP server at ${this.url} rejected a freshly fetched token${challenge(this)}` +
      ": check that the token's audience/resource and scopes match what the server expects"
  }
}

/**
 * The MCP server answered 403: it accepted the bearer token but refused the request, typically a missing or wrong
 * service token (dual pattern) or insufficient scope. Not retried.
 *
 * @since 0.1.0
 * @category Errors
 */
export class McpForbiddenError extends Schema.TaggedError<McpForbiddenError>("@mcp-auth/client/McpForbiddenError")(
  "McpForbiddenError",
  {
    url: Schema.String,
    error: Schema.optional(Schema.String),
    errorDescription: Schema.optional(Schema.String)
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `The MCP server at ${this.url} refused the request (HTTP 403)${challenge(this)}` +
      ": check the service token and header (dual pattern) and the scopes"
  }
}

/**
 * An MCP operation failed for a reason other than auth:
 *
 * - `connect`: no connection (refused, DNS, TLS, an HTTP error status from the server);
 * - `timeout`: no answer within `tool_call_timeout`;
 * - `protocol`: a JSON-RPC error from the server or an invalid message;
 * - `closed`: the connection or session closed while the request was in flight (a `tools/call` is then not sent
 *   again: the server may have run it);
 * - `too_large`: a response (or one SSE event) exceeded `max_response_bytes`; the connection was closed;
 * - `invalid_request`: the request could not be built or serialized (e.g. arguments nested too deeply); not sent.
 *
 * Everything in `detail` that came from the server has been scrubbed (`Scrub.text`): no token, no service token, no
 * control characters, capped.
 *
 * @since 0.1.0
 * @category Errors
 */
export class McpRequestError extends Schema.TaggedError<McpRequestError>("@mcp-auth/client/McpRequestError")(
  "McpRequestError",
  {
    url: Schema.String,
    operation: Schema.String,
    reason: Schema.Literal("connect", "timeout", "protocol", "closed", "too_large", "invalid_request"),
    detail: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    switch (this.reason) {
      case "connect":
        return `Unable to connect to MCP server at ${this.url}: ${this.detail}`
      case "timeout":
        return `MCP ${this.operation} timed out (${this.url}): ${this.detail}`
      case "closed":
        return `MCP ${this.operation} failed: the connection to ${this.url} closed (${this.detail})` +
          (this.operation === "tools/call" ? "; the call was not sent again: the server may have run it" : "")
      case "too_large":
        return `MCP ${this.operation} failed (${this.url}): ${this.detail}; the connection was closed. ` +
          "Raise max_response_bytes (McpClient option maxResponseBytes) if the server legitimately sends more"
      case "invalid_request":
        return `MCP ${this.operation} was not sent to ${this.url}: the request could not be serialized ` +
          `(arguments nested too deeply, circular or not JSON): ${this.detail}`
      case "protocol":
        return `MCP ${this.operation} failed (${this.url}): ${this.detail}`
    }
  }
}

/**
 * @since 0.1.0
 * @category Errors
 */
export type McpClientError = McpUnauthorizedError | McpForbiddenError | McpRequestError

/**
 * Everything an MCP call made through mcp-auth can fail with.
 *
 * @since 0.1.0
 * @category Errors
 */
export type McpCallError =
  | McpClientError
  | ServiceAccountError.TokenError
  | ServiceAccountError.ServiceTokenError
  | ServiceAccountError.ConfigurationError

/**
 * @since 0.1.0
 * @category Guards
 */
export const isMcpClientError = (u: unknown): u is McpClientError => Predicate.hasProperty(u, TypeId)

/**
 * Whether an error is one of ours (MCP or service account), to be passed through unchanged.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isMcpCallError = (u: unknown): u is McpCallError =>
  isMcpClientError(u) || ServiceAccountError.isServiceAccountError(u)

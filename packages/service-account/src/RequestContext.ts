/**
 * What a request that needs auth headers is about. Passed explicitly to service-token functions (NAT leaves them to
 * read an ambient context, which is the connect-time context on the MCP writer task).
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category Models
 */
export interface RequestContext {
  /** The URL the request goes to. */
  readonly url: URL
  /** The HTTP method (`POST`, `GET`, `DELETE`, …). */
  readonly method: string
  /** The MCP JSON-RPC method (`initialize`, `tools/call`, …) when the request carries one. */
  readonly mcpMethod?: string | undefined
  /** The tool name, for `tools/call`. */
  readonly toolName?: string | undefined
}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  url: URL | string,
  method = "POST",
  mcp?: { readonly mcpMethod?: string | undefined; readonly toolName?: string | undefined }
): RequestContext => ({
  url: typeof url === "string" ? new URL(url) : url,
  method: method.toUpperCase(),
  mcpMethod: mcp?.mcpMethod,
  toolName: mcp?.toolName
})

/**
 * The dynamic service-token function of `config-mcp-service-account-jira-function.yml`, ported from NAT's example.
 *
 * mcp-auth calls it on every HTTP request to the MCP server with the configured `kwargs` and the request context
 * (URL, method, MCP method and tool), and sends what it returns next to `Authorization: Bearer …`. It may be sync or
 * async and return the token (sent under `service_token.header`) or `[headerName, token]`.
 *
 * Like NAT's, this example reads the environment. A production version would fetch from a vault at
 * `kwargs.vault_path`, perhaps choosing the token by `context.toolName`.
 */
import type { RequestContext } from "@mcp-auth/service-account/RequestContext"

export const getJiraServiceToken = async (
  _kwargs: Readonly<Record<string, unknown>>,
  _context: RequestContext
): Promise<readonly [string, string]> => {
  const header = process.env.SERVICE_TOKEN_HEADER
  if (!header) throw new Error("SERVICE_TOKEN_HEADER environment variable not set.")
  const token = process.env.JIRA_SERVICE_TOKEN
  if (!token) throw new Error("JIRA_SERVICE_TOKEN environment variable not set.")
  return [header, token]
}

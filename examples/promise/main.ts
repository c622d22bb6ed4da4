/**
 * mcp-auth without Effect: the Promise API gives the MCP SDK's transport an authenticated fetch.
 *
 * Run: SERVICE_ACCOUNT_CLIENT_ID=… SERVICE_ACCOUNT_CLIENT_SECRET=… SERVICE_ACCOUNT_TOKEN_URL=https://…/token \
 *      MCP_SERVER_URL=https://…/mcp npx tsx examples/promise/main.ts
 */
import { createServiceAccountAuth } from "@mcp-auth/client"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import { pathToFileURL } from "node:url"

export const main = async (env: Readonly<Record<string, string | undefined>> = process.env): Promise<Array<string>> => {
  const serverUrl = env.MCP_SERVER_URL ?? "https://mcp.example.com/mcp"
  // the provider block exactly as NAT users write it; a bad one throws a ConfigurationError listing every problem
  const auth = createServiceAccountAuth({
    client_id: env.SERVICE_ACCOUNT_CLIENT_ID,
    client_secret: env.SERVICE_ACCOUNT_CLIENT_SECRET,
    token_url: env.SERVICE_ACCOUNT_TOKEN_URL,
    scopes: env.SERVICE_ACCOUNT_SCOPES ?? "",
    allow_insecure_http: env.SERVICE_ACCOUNT_ALLOW_INSECURE_HTTP === "true",
    ...(env.JIRA_SERVICE_TOKEN ? { service_token: { token: env.JIRA_SERVICE_TOKEN } } : {})
  }, { serverUrl })
  const client = new Client({ name: "promise-example", version: "1.0.0" })
  const lines: Array<string> = []
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { fetch: auth.fetch }))
    const { tools } = await client.listTools()
    lines.push(`tools: ${tools.map((t) => t.name).join(", ")}`)
    const result = await client.callTool({ name: "echo", arguments: { text: "hello from Promises" } })
    const content = result.content as Array<{ type: string; text?: string }>
    lines.push(`echo: ${content.map((c) => c.text ?? "").join("")}`)
    const token = await auth.getToken()
    lines.push(`token expires at ${token.expiresAt.toISOString()}`)
  } catch (error) {
    // the same typed errors as the Effect API, as Error subclasses with a _tag
    const tag = (error as { _tag?: string })._tag
    if (tag === "InvalidCredentialsError") lines.push(`fix the credentials: ${(error as Error).message}`)
    else throw error
  } finally {
    await client.close()
    await auth.close()
  }
  return lines
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((lines) => lines.forEach((line) => console.log(line)))
}

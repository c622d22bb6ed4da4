/**
 * The MCP TypeScript SDK's own `ClientCredentialsProvider`, driven with the transport's semantics (as in the anchors
 * doc): the transport sends whatever `tokens()` holds and runs `auth()` (RFC 9728 + RFC 8414 discovery, then the
 * token request) only after a 401. The provider never looks at `expires_in`; with `serverRejectsExpired` the resource
 * server's 401 for an expired token is modelled from the token's own `expires_in`. The wasted MCP round trip of each
 * 401 is not counted here (E1/E2 run the real transport).
 */
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js"
import { auth } from "@modelcontextprotocol/sdk/client/auth.js"
import type { OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js"
import { CLIENT_ID, CLIENT_SECRET, type PeerOptions, SCOPE } from "../protocol.js"
import type { PeerClient } from "./Peer.js"

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const { issuer, serverUrl } = options.endpoint
  if (serverUrl === undefined || issuer === undefined) throw new Error("mcp-sdk needs serverUrl and issuer")
  const provider = new ClientCredentialsProvider({
    clientId: options.clientId ?? CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    scope: SCOPE,
    expectedIssuer: issuer
  })
  // when each stored token expires at the resource server (only used with serverRejectsExpired)
  const expiresAt = new WeakMap<OAuthTokens, number>()
  const save = provider.saveTokens.bind(provider)
  provider.saveTokens = (tokens: OAuthTokens) => {
    expiresAt.set(tokens, Date.now() + (tokens.expires_in ?? Infinity) * 1000)
    save(tokens)
  }
  const rejectsExpired = options.serverRejectsExpired === true
  const url = new URL(serverUrl)

  /** What the transport does on a 401: `auth()`, then it reads `tokens()` again for the retry. */
  const reauthorize = async (): Promise<string> => {
    const result = await auth(provider, { serverUrl: url })
    if (result !== "AUTHORIZED") throw new Error(`auth() returned ${result}`)
    const tokens = await provider.tokens()
    if (tokens === undefined) throw new Error("no tokens after auth()")
    return tokens.access_token
  }

  const token = async (): Promise<string> => {
    const current = await provider.tokens()
    if (current !== undefined && !(rejectsExpired && Date.now() >= (expiresAt.get(current) ?? Infinity))) {
      return current.access_token
    }
    return reauthorize()
  }

  return {
    header: async () => `Bearer ${await token()}`,
    token,
    // the transport's 401 path: auth() again (no invalidation, no single-flight), then retry with tokens()
    rejected: () => reauthorize(),
    close: async () => undefined
  }
}

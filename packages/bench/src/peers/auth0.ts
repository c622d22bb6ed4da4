/**
 * `auth0`'s management-API `TokenProvider` (refresh-ahead 10 s, fixed; single-flight via a pending promise). It only
 * speaks HTTPS to `https://<domain>/oauth/token`: the run serves the endpoint with a `TestPki` certificate and this
 * child trusts the CA through `NODE_EXTRA_CA_CERTS`. It has no invalidate / force-refresh API.
 */
import { TokenProvider } from "auth0"
import { CLIENT_ID, CLIENT_SECRET, type PeerOptions } from "../protocol.js"
import type { PeerClient } from "./Peer.js"

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const domain = options.endpoint.domain
  if (domain === undefined) throw new Error("auth0 needs a domain")
  const provider = new TokenProvider({
    domain,
    clientId: options.clientId ?? CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    audience: "https://mcp.bench.example/api"
  })
  return {
    header: async () => `Bearer ${await provider.getAccessToken()}`,
    token: () => provider.getAccessToken(),
    close: async () => undefined
  }
}

/**
 * `@badgateway/oauth2-client`: `OAuth2Client` (explicit token endpoint, `client_secret_basic`, no discovery) and
 * `OAuth2Fetch` with `getNewToken: () => client.clientCredentials()`. It reuses a token until `expiresAt` (no buffer);
 * its 401 path is `refreshToken()`, which is what the fetch wrapper calls.
 */
import { OAuth2Client, OAuth2Fetch } from "@badgateway/oauth2-client"
import { CLIENT_ID, CLIENT_SECRET, type PeerOptions, SCOPE } from "../protocol.js"
import type { PeerClient } from "./Peer.js"

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const url = new URL(options.endpoint.tokenUrl)
  const client = new OAuth2Client({
    server: url.origin,
    tokenEndpoint: url.pathname,
    clientId: options.clientId ?? CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    authenticationMethod: "client_secret_basic"
  })
  const wrapper = new OAuth2Fetch({
    client,
    getNewToken: () => client.clientCredentials({ scope: [SCOPE] }),
    scheduleRefresh: false
  })
  return {
    header: async () => `Bearer ${await wrapper.getAccessToken()}`,
    token: () => wrapper.getAccessToken(),
    rejected: async () => (await wrapper.refreshToken()).accessToken,
    close: async () => undefined
  }
}

/**
 * The AWS SDK v3 pattern: `@smithy/property-provider`'s `memoize(provider, isExpired, requiresRefresh)` over a plain
 * fetch-based client-credentials provider, expired `windowMs` before the token's expiry (AWS uses 5 min). A 401 is
 * handled with the memoized provider's `forceRefresh` option.
 */
import { memoize } from "@smithy/property-provider"
import { CLIENT_ID, CLIENT_SECRET, type PeerOptions, SCOPE } from "../protocol.js"
import type { PeerClient } from "./Peer.js"

interface Token {
  readonly accessToken: string
  readonly expiration: Date
}

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const { tokenUrl } = options.endpoint
  const fetchToken = async (): Promise<Token> => {
    const response = await fetch(tokenUrl, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${options.clientId ?? CLIENT_ID}:${CLIENT_SECRET}`).toString("base64")}`
      },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: SCOPE }).toString()
    })
    if (!response.ok) {
      await response.body?.cancel()
      throw new Error(`token endpoint answered ${response.status}`)
    }
    const body = await response.json() as { access_token: string; expires_in: number }
    return { accessToken: body.access_token, expiration: new Date(Date.now() + body.expires_in * 1000) }
  }
  const provider = memoize(
    fetchToken,
    (token) => token.expiration.getTime() - Date.now() < options.windowMs,
    () => true
  )
  return {
    header: async () => `Bearer ${(await provider()).accessToken}`,
    token: async () => (await provider()).accessToken,
    rejected: async () => (await provider({ forceRefresh: true })).accessToken,
    close: async () => undefined
  }
}

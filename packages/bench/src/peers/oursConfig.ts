/**
 * The NAT-style provider block both of our columns use.
 */
import { CLIENT_ID, CLIENT_SECRET, type PeerOptions, SCOPE } from "../protocol.js"

export const oursConfig = (options: PeerOptions) => ({
  client_id: options.clientId ?? CLIENT_ID,
  client_secret: CLIENT_SECRET,
  token_url: options.endpoint.tokenUrl,
  scopes: [SCOPE],
  token_cache_buffer_seconds: Math.round(options.windowMs / 1000),
  allow_insecure_http: true
})

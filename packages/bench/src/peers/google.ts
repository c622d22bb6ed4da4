/**
 * google-auth-library's service-account `JWT` client (JWT-bearer grant signed with a locally generated RSA key; same
 * caching and retry machinery as its other clients): eager refresh `windowMs` before expiry (default 5 min, blocking),
 * single-flight per refresh token, gaxios retries. Its gaxios transporter gets a request interceptor that points
 * `https://oauth2.googleapis.com/token` at the local endpoint (a `URL` object: gaxios 7's redactor needs one). Its 401
 * path (`forceRefreshOnFailure`) is `refreshAccessToken()`.
 */
import { JWT } from "google-auth-library"
import * as crypto from "node:crypto"
import { type PeerOptions, SCOPE } from "../protocol.js"
import type { PeerClient } from "./Peer.js"

/** The service account's private key (what T4 looks for in error objects). */
export const privateKeyPem = crypto.generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" }
}).privateKey

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const target = new URL(options.endpoint.tokenUrl)
  const client = new JWT({
    email: `${options.clientId ?? "bench"}@mcp-bench.iam.gserviceaccount.com`,
    key: privateKeyPem,
    scopes: [SCOPE],
    eagerRefreshThresholdMillis: options.windowMs
  })
  client.transporter.interceptors.request.add({
    resolved: async (request) => {
      if (String(request.url).startsWith("https://oauth2.googleapis.com/token")) request.url = new URL(target)
      return request
    }
  })
  const token = async (): Promise<string> => {
    const { token } = await client.getAccessToken()
    if (typeof token !== "string") throw new Error("no access token")
    return token
  }
  return {
    header: async () => `Bearer ${await token()}`,
    token,
    rejected: async () => {
      const { credentials } = await client.refreshAccessToken()
      if (typeof credentials.access_token !== "string") throw new Error("no access token")
      return credentials.access_token
    },
    close: async () => undefined
  }
}

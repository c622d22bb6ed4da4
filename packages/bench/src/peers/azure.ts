/**
 * Azure's token cycler (`@azure/core-rest-pipeline`, reached through `@azure/identity`'s `getBearerTokenProvider`):
 * background refresh 2 min before expiry, blocking only in the last second, single refresh worker. The credential is
 * a custom `TokenCredential` whose `getToken` POSTs the client-credentials grant through a default core-rest-pipeline
 * pipeline (exponential retry plus the throttling policy that honours `Retry-After`, as Identity's HTTP layer has).
 * The cycler's windows are not configurable, and it has no invalidate API (only a CAE claims challenge drops a token).
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth"
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest
} from "@azure/core-rest-pipeline"
import { getBearerTokenProvider } from "@azure/identity"
import { CLIENT_ID, CLIENT_SECRET, type PeerOptions, SCOPE } from "../protocol.js"
import type { PeerClient } from "./Peer.js"

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const { tokenUrl } = options.endpoint
  const pipeline = createPipelineFromOptions({})
  const httpClient = createDefaultHttpClient()
  const credential: TokenCredential = {
    getToken: async (): Promise<AccessToken> => {
      const request = createPipelineRequest({
        url: tokenUrl,
        method: "POST",
        // the pipeline refuses http unless told; the endpoint is a loopback test server
        allowInsecureConnection: true,
        headers: createHttpHeaders({ "content-type": "application/x-www-form-urlencoded" }),
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: options.clientId ?? CLIENT_ID,
          client_secret: CLIENT_SECRET,
          scope: SCOPE
        }).toString()
      })
      const response = await pipeline.sendRequest(httpClient, request)
      if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}`)
      const body = JSON.parse(response.bodyAsText ?? "{}") as { access_token: string; expires_in: number }
      return {
        token: body.access_token,
        expiresOnTimestamp: Date.now() + body.expires_in * 1000,
        tokenType: "Bearer"
      }
    }
  }
  const getToken = getBearerTokenProvider(credential, "api://mcp-bench/.default")
  return {
    header: async () => `Bearer ${await getToken()}`,
    token: getToken,
    close: async () => undefined
  }
}

/**
 * Ours through the Promise API: `createServiceAccountAuth(config)` → `getHeaders()` / `getToken()` / `invalidate()`.
 */
import { createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import type { PeerOptions } from "../protocol.js"
import { waitersTotal } from "./ours-fiber.js"
import { oursConfig } from "./oursConfig.js"
import type { PeerClient } from "./Peer.js"

export const create = async (options: PeerOptions): Promise<PeerClient> => {
  const auth = createServiceAccountAuth(oursConfig(options))
  return {
    header: async () => (await auth.getHeaders()).Authorization!,
    token: async () => (await auth.getToken()).accessToken,
    rejected: async (token) => {
      await auth.invalidate(token)
      return (await auth.getToken()).accessToken
    },
    close: () => auth.close(),
    waiters: waitersTotal,
    refreshLead: async () => {
      const state = await auth.state()
      return "refreshAt" in state ? state.expiresAt - state.refreshAt : undefined
    }
  }
}

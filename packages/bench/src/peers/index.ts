/**
 * Peer adapters, loaded lazily so a child imports only the library it measures.
 */
import type { PeerId } from "../protocol.js"
import type { Peer } from "./Peer.js"

export const loadPeer = (id: PeerId): Promise<Peer> => {
  switch (id) {
    case "ours-fiber":
      return import("./ours-fiber.js")
    case "ours-promise":
      return import("./ours-promise.js")
    case "mcp-sdk":
      return import("./mcp-sdk.js")
    case "smithy":
      return import("./smithy.js")
    case "badgateway":
      return import("./badgateway.js")
    case "auth0":
      return import("./auth0.js")
    case "azure":
      return import("./azure.js")
    case "google":
      return import("./google.js")
  }
}

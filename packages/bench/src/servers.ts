/**
 * Parent side: the servers each run talks to, all on 127.0.0.1. Every run gets fresh ones, so their records are the
 * run's own.
 *
 * - A `FaultTokenEndpoint` (from `@mcp-auth/testing`) adding 50 ms to every token response; https with a `TestPki`
 *   certificate for auth0.
 * - For the MCP SDK peer, a discovery server in front of it: RFC 9728 protected-resource metadata for
 *   `<origin>/mcp` naming itself as authorization server, and RFC 8414 metadata whose `token_endpoint` is the token
 *   endpoint above.
 */
import * as FaultTokenEndpoint from "@mcp-auth/testing/FaultTokenEndpoint"
import type * as TestPki from "@mcp-auth/testing/TestPki"
import type { Started } from "@mcp-auth/testing/TestServer"
import * as http from "node:http"
import type * as net from "node:net"
import { type Endpoint, type PeerId, TOKEN_LATENCY_MS } from "./protocol.js"

export interface DiscoveryServer {
  readonly origin: string
  /** The MCP server URL (the protected resource). */
  readonly serverUrl: string
  /** Arrival times of the discovery requests. */
  readonly requests: ReadonlyArray<number>
  readonly close: () => Promise<void>
}

export const startDiscovery = async (tokenUrl: string): Promise<DiscoveryServer> => {
  const requests: Array<number> = []
  let origin = ""
  const server = http.createServer((req, res) => {
    requests.push(Date.now())
    const path = (req.url ?? "/").split("?")[0]
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body)
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
      res.end(text)
    }
    if (path === "/.well-known/oauth-protected-resource/mcp" || path === "/.well-known/oauth-protected-resource") {
      send(200, { resource: `${origin}/mcp`, authorization_servers: [origin], bearer_methods_supported: ["header"] })
    } else if (path === "/.well-known/oauth-authorization-server" || path === "/.well-known/openid-configuration") {
      send(200, {
        issuer: origin,
        authorization_endpoint: `${origin}/authorize`,
        token_endpoint: tokenUrl,
        response_types_supported: ["code"],
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"]
      })
    } else {
      send(404, { error: "not_found" })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  origin = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  return {
    origin,
    serverUrl: `${origin}/mcp`,
    get requests() {
      return requests
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

export interface RunEndpoint {
  readonly endpoint: Endpoint
  readonly token: Started<FaultTokenEndpoint.FaultTokenEndpoint>
  readonly discovery: DiscoveryServer | undefined
  readonly close: () => Promise<void>
}

export interface EndpointOptions {
  /** `expires_in` of issued tokens (default 3600). */
  readonly expiresIn?: number | undefined
  readonly fallback?: FaultTokenEndpoint.Step | FaultTokenEndpoint.Responder | undefined
}

/** A fresh token endpoint (and discovery, for the MCP SDK) for one peer's run. */
export const startEndpoint = async (
  peer: PeerId,
  pki: TestPki.TestPki,
  options: EndpointOptions = {}
): Promise<RunEndpoint> => {
  const token = await FaultTokenEndpoint.start({
    latencyMs: TOKEN_LATENCY_MS,
    expiresIn: options.expiresIn ?? 3600,
    fallback: options.fallback,
    https: peer === "auth0" ? pki.server : undefined
  })
  const discovery = peer === "mcp-sdk" ? await startDiscovery(token.url) : undefined
  return {
    endpoint: {
      tokenUrl: token.url,
      ...(peer === "auth0" ? { domain: `127.0.0.1:${token.port}` } : {}),
      ...(discovery === undefined ? {} : { serverUrl: discovery.serverUrl, issuer: discovery.origin })
    },
    token,
    discovery,
    close: async () => {
      await token.close()
      await discovery?.close()
    }
  }
}

/** Requests whose arrival time is in [from, to). */
export const between = <A extends { readonly time: number }>(
  records: ReadonlyArray<A>,
  from: number,
  to: number = Infinity
): ReadonlyArray<A> => records.filter((r) => r.time >= from && r.time < to)

export const timesBetween = (times: ReadonlyArray<number>, from: number, to: number = Infinity): number =>
  times.filter((t) => t >= from && t < to).length

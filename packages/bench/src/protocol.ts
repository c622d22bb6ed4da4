/**
 * What the orchestrator (parent) and a runner (child process) say to each other over IPC, and the constants every
 * scenario shares.
 */

/** The columns of every table, in order. */
export const peerIds = [
  "ours-fiber",
  "ours-promise",
  "mcp-sdk",
  "smithy",
  "badgateway",
  "auth0",
  "azure",
  "google"
] as const

export type PeerId = typeof peerIds[number]

export const peerLabels: Record<PeerId, string> = {
  "ours-fiber": "ours (Effect, in-fiber)",
  "ours-promise": "ours (Promise API)",
  "mcp-sdk": "MCP SDK ClientCredentialsProvider",
  smithy: "@smithy memoize (AWS pattern)",
  badgateway: "@badgateway/oauth2-client",
  auth0: "auth0 TokenProvider",
  azure: "Azure tokenCycler",
  google: "google-auth-library JWT"
}

export const isOurs = (peer: PeerId): boolean => peer === "ours-fiber" || peer === "ours-promise"

/** Fixed latency the token endpoint adds to every token response. */
export const TOKEN_LATENCY_MS = 50

export const CLIENT_ID = "bench-client"
/** Distinctive, URL-safe secret: its raw, form-encoded and Basic forms are searched for in error objects. */
export const CLIENT_SECRET = "bench-secret-7f3a9c2e41"
export const SCOPE = "mcp:tools"

/** The token endpoint of one run, and (for the MCP SDK peer) the RFC 9728 / RFC 8414 discovery in front of it. */
export interface Endpoint {
  readonly tokenUrl: string
  /** auth0 wants a bare host[:port] and https. */
  readonly domain?: string | undefined
  /** MCP SDK: the resource (MCP server URL) whose PRM names the authorization server. */
  readonly serverUrl?: string | undefined
  /** MCP SDK: `expectedIssuer`. */
  readonly issuer?: string | undefined
}

/** How a peer is built for one run. */
export interface PeerOptions {
  readonly endpoint: Endpoint
  /** Default {@link CLIENT_ID}; T9 gives each of its clients its own, so the endpoint can tell them apart. */
  readonly clientId?: string | undefined
  /**
   * Refresh lead ("buffer", "window", "leeway") in ms for peers that have such a knob (ours, smithy, google). Peers
   * without one (auth0 10 s, Azure 2 min / 1 s, badgateway 0, MCP SDK none) keep their fixed behaviour.
   */
  readonly windowMs: number
  /**
   * MCP SDK only: model the resource server rejecting an expired token (the transport then runs `auth()`), because
   * the provider itself never looks at `expires_in`.
   */
  readonly serverRejectsExpired?: boolean | undefined
}

export type ScenarioId = "t1" | "t2" | "t3" | "t4" | "t6" | "t7" | "t9" | "t11" | "memory" | "many" | "e1" | "e2"

/** Parent → child: what to run. */
export interface Job {
  readonly scenario: ScenarioId
  readonly peer: PeerId
  /** Named endpoints (e.g. `n100`, `n10000`). */
  readonly endpoints: Readonly<Record<string, Endpoint>>
  readonly params: Readonly<Record<string, unknown>>
}

/** Child → parent. */
export type ChildMessage =
  | { readonly type: "ready" }
  | { readonly type: "mark"; readonly name: string; readonly at: number }
  | { readonly type: "result"; readonly data: unknown }
  /** One repetition's measurement, when the parent interleaves repetitions across children. */
  | { readonly type: "sample"; readonly data: unknown }
  | { readonly type: "error"; readonly message: string }

/**
 * Parent → child after `job`: `go` starts measuring (a barrier, so concurrent children start together; with
 * interleaved repetitions, one `go` per repetition), `stop` ends the repetitions.
 */
export type ParentMessage =
  | { readonly type: "job"; readonly job: Job }
  | { readonly type: "go" }
  | { readonly type: "stop" }

/**
 * Many-providers scenario: providers built, used and closed before the heap baseline is taken, so that the code V8
 * compiles for building providers (a one-off, however many there are) is not counted per provider.
 */
export const MANY_WARM_UP = 500

/**
 * The soak's settings and what its two processes say to each other over IPC: the parent (`main.ts`) runs the 200
 * clients and measures itself; the child (`servers.ts`) runs the testing servers and the fault rules.
 */

/** What a token request met at the fault endpoint. */
export type FaultKind = "ok" | "slow" | "5xx" | "reset" | "outage"

export interface FaultRates {
  /** Share of token requests answered 5xx (500, 502 HTML, 503, 504; no `Retry-After`). */
  readonly serverError: number
  /** Share whose connection is destroyed without an answer. */
  readonly reset: number
  /** Share forwarded after an extra delay drawn from `slowMs`. */
  readonly slow: number
}

export interface Settings {
  readonly seconds: number
  readonly clients: number
  readonly tokenSeconds: number
  readonly seed: number
  readonly faults: FaultRates
  /** Extra delay of a slow answer, uniform in [min, max] ms. */
  readonly slowMs: readonly [number, number]
  /** Fixed latency the token endpoint adds to every answer (a real identity provider is not on loopback). */
  readonly tokenLatencyMs: number
  /** Token endpoint outage: every request answered 503, from `outageAt` for `outageSeconds` (seconds into the run). */
  readonly outageAt: number
  readonly outageSeconds: number
  /** Seconds into the run at which the MCP server revokes every token still valid. */
  readonly revocationsAt: ReadonlyArray<number>
  /** Heap and fiber samples every this many ms. */
  readonly sampleEveryMs: number
  /** The MCP server's clock tolerance for `exp` (JWT `exp` is whole seconds; see `servers.ts`). */
  readonly clockToleranceSeconds: number
}

export const CLIENT_ID = "soak-client"
export const CLIENT_SECRET = "soak-secret-5d81b0"
export const SCOPE = "mcp:tools"

/** One token request as the fault endpoint saw it (times are epoch ms on this machine, shared by both processes). */
export interface TokenRequest {
  readonly at: number
  readonly kind: FaultKind
  /** What the endpoint did (`forward 200`, `reply 503`, `reset`, …), once known. */
  readonly outcome: string
  /** The answer's status, 0 for a reset. */
  readonly status: number
}

export interface LoopLag {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

export type ToChild =
  | { readonly _tag: "Faults"; readonly on: boolean }
  | { readonly _tag: "Outage"; readonly on: boolean }
  | { readonly _tag: "Revoke"; readonly id: number }
  | { readonly _tag: "Report" }
  | { readonly _tag: "Close" }

export type ToParent =
  | { readonly _tag: "Ready"; readonly tokenUrl: string; readonly mcpUrl: string }
  | { readonly _tag: "Revoked"; readonly id: number; readonly at: number; readonly tokens: number }
  | {
    readonly _tag: "Report"
    readonly tokenRequests: ReadonlyArray<TokenRequest>
    /** MCP requests answered 401, by the server's reason (`revoked`, `expired`, …). */
    readonly unauthorized: Readonly<Record<string, number>>
    readonly mcpRequests: number
    readonly sessions: number
    readonly childRssMiB: number
    /** The servers' process while faults were on: event-loop delay (ms) and CPU (% of one core). */
    readonly lag: LoopLag
    readonly cpuPercent: number
  }

/**
 * The soak's output: the terminal table and the `<!-- soak:start -->` … `<!-- soak:end -->` block at the end of
 * `BENCHMARKS.md` (rendered from the results object; the rest of that file belongs to the main bench's report).
 */
import type { Bar, CallFigures, FailedCall, Flatness, RevocationResult, Sample, TokenFigures } from "./analyze.js"
import type { LoopLag, Settings, TokenRequest } from "./protocol.js"

export interface SoakResults {
  readonly generatedAt: string
  readonly node: string
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly platform: string
  }
  readonly settings: Settings
  readonly flatRule: { readonly factor: number; readonly heapSlackMiB: number; readonly fiberSlack: number }
  readonly bufferSeconds: number
  readonly wallSeconds: number
  readonly calls: CallFigures & {
    readonly callsPerSecond: number
    readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number }
    readonly errors: Readonly<Record<string, number>>
    readonly failures: ReadonlyArray<FailedCall>
  }
  readonly unauthorized: {
    /** 401 responses the clients' fetch saw, by the challenge's reason. */
    readonly responses: Readonly<Record<string, number>>
    /** 401 responses the MCP server sent, by its auth outcome. */
    readonly server: Readonly<Record<string, number>>
    readonly callsWith401: number
    readonly recovered: number
    readonly failed: number
  }
  readonly revocations: ReadonlyArray<RevocationResult>
  readonly tokens: TokenFigures
  readonly tokenRequests: ReadonlyArray<TokenRequest & { readonly t: number }>
  /** `state().status` samples (every 20 ms) during the outage. */
  readonly outageStatus: Readonly<Record<string, number>>
  readonly samples: ReadonlyArray<Sample>
  readonly heap: Flatness
  readonly fibers: Flatness
  readonly logs: Readonly<Record<string, number>>
  readonly logMessages: Readonly<Record<string, number>>
  /** The auth's own metrics at the end (counters, gauges; histograms as count/min/max/mean seconds). */
  readonly metrics: Readonly<Record<string, unknown>>
  /** Entries left in the SDK clients' private `_responseHandlers` maps after the run (see main.ts). */
  readonly sdkResponseHandlersLeft: number
  readonly server: { readonly mcpRequests: number; readonly sessions: number; readonly childRssMiB: number }
  /** Event-loop delay and CPU (% of one core) of each process while the soak ran. */
  readonly load: {
    readonly clients: { readonly lag: LoopLag; readonly cpuPercent: number }
    readonly servers: { readonly lag: LoopLag; readonly cpuPercent: number }
  }
  readonly bars: ReadonlyArray<Bar>
}

export const START = "<!-- soak:start -->"
export const END = "<!-- soak:end -->"

const int = (n: number) => Math.round(n).toLocaleString("en-US")
const pct = (n: number, of: number) => (of === 0 ? "–" : `${((100 * n) / of).toFixed(1)} %`)
const entries = (record: Readonly<Record<string, number>>) =>
  Object.entries(record).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${int(v)}`).join(", ") || "none"
const lag = (l: LoopLag) => `${l.p50Ms} / ${l.p99Ms} / ${l.maxMs}`
const escape = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

const setup = (r: SoakResults): string => {
  const s = r.settings
  const f = s.faults
  return `${s.seconds} s, ${s.clients} MCP clients through one service account, ${s.tokenSeconds} s tokens ` +
    `(seed ${s.seed}). Token endpoint: ${f.serverError * 100} % 5xx, ${f.reset * 100} % connection resets, ` +
    `${f.slow * 100} % slow (+${s.slowMs[0] / 1000}–${
      s.slowMs[1] / 1000
    } s), +${s.tokenLatencyMs} ms on every answer; ` +
    `outage ${s.outageAt.toFixed(1)}–${(s.outageAt + s.outageSeconds).toFixed(1)} s (every request 503); ` +
    `revocations at ${s.revocationsAt.map((t) => t.toFixed(1)).join(", ")} s.`
}

/** Label → value rows shared by the terminal and the Markdown. */
const rows = (r: SoakResults): ReadonlyArray<readonly [string, string]> => {
  const c = r.calls
  const t = r.tokens
  const lead = Math.min(r.bufferSeconds, r.settings.tokenSeconds / 2)
  const outageSamples = Object.values(r.outageStatus).reduce((a, b) => a + b, 0)
  return [
    ["tool calls", `${int(c.total)} (${int(c.callsPerSecond)}/s), ${int(c.ok)} ok`],
    [
      "tool call latency p50 / p90 / p99 / max (ms)",
      `${int(c.latencyMs.p50)} / ${int(c.latencyMs.p90)} / ${int(c.latencyMs.p99)} / ${int(c.latencyMs.max)}`
    ],
    ["failed calls outside the outage", int(c.failedOutside)],
    ["failed calls in the outage, cached token still valid", int(c.failedOutageValid)],
    ["failed calls in the outage, cached token expired (reported, not a bar)", int(c.failedOutageExpired)],
    [
      "token requests, by what the endpoint did",
      `${int(t.total)}: ${entries(t.byKind)} (${int(t.succeeded)} got a token)`
    ],
    ["token requests during the outage", `${int(t.inOutage)} in ${r.settings.outageSeconds} s`],
    [
      `token lifetimes elapsed (${t.spanSeconds.toFixed(1)} s / ${r.settings.tokenSeconds} s)`,
      t.lifetimesElapsed.toFixed(1)
    ],
    [
      `refresh periods elapsed (${t.spanSeconds.toFixed(1)} s / (${r.settings.tokenSeconds} s − ${lead} s lead))`,
      t.refreshPeriodsElapsed.toFixed(1)
    ],
    ["retries (token requests that got no token)", int(t.failed)],
    ["401 responses seen by the clients, by reason", entries(r.unauthorized.responses)],
    ["401 responses sent by the MCP server, by reason", entries(r.unauthorized.server)],
    [
      "tool calls that met a 401",
      `${int(r.unauthorized.callsWith401)}: ${int(r.unauthorized.recovered)} recovered, ${
        int(r.unauthorized.failed)
      } failed`
    ],
    ...r.revocations.map((v, i) =>
      [
        `revocation ${i + 1} at ${v.t.toFixed(1)} s`,
        `${v.liveTokens} live token(s) revoked; ${int(v.callsWith401)} calls met a 401: ${
          int(v.recovered)
        } recovered, ${int(v.failed)} failed; last 401 ${
          v.last401AfterMs === null ? "–" : `${v.last401AfterMs} ms`
        } after`
      ] as const
    ),
    [
      "token state during the outage (state() every 20 ms)",
      Object.entries(r.outageStatus).map(([k, v]) => `${k} ${pct(v, outageSamples)}`).join(", ") || "–"
    ],
    [
      `heap after gc, MiB (every ${r.settings.sampleEveryMs / 1000} s)`,
      `2nd-quarter median ${r.heap.q2Median.toFixed(2)}, last-quarter median ${r.heap.q4Median.toFixed(2)}, ` +
      `2nd-half slope ${r.heap.slopePerMinute >= 0 ? "+" : ""}${r.heap.slopePerMinute.toFixed(2)} MiB/min`
    ],
    [
      "live fibers (Fiber.roots + descendants; least of 20 counts over 1 s per sample)",
      `2nd-quarter median ${r.fibers.q2Median}, last-quarter median ${r.fibers.q4Median}, ` +
      `2nd-half slope ${r.fibers.slopePerMinute >= 0 ? "+" : ""}${
        r.fibers.slopePerMinute.toFixed(2)
      }/min, most in one count ${Math.max(...r.samples.map((s) => s.fibersMax))}`
    ],
    [
      "MCP SDK response handlers left after the run (SDK leak on a failed send)",
      int(r.sdkResponseHandlersLeft)
    ],
    ["log lines of the auth (warning and above)", entries(r.logs)],
    ["the auth's metrics: token requests by outcome", metricEntries(r, "mcp_auth_token_requests_total")],
    ["the auth's metrics: callers that waited for a token", metricEntries(r, "mcp_auth_token_waiters_total")],
    ["the auth's metrics: cool-downs started", metricEntries(r, "mcp_auth_token_cooldowns_total")],
    ["the auth's metrics: token fetch seconds", histogram(r, "mcp_auth_token_fetch_seconds")],
    ["the auth's metrics: caller wait seconds", histogram(r, "mcp_auth_token_wait_seconds")],
    [
      "event-loop delay p50 / p99 / max (ms), CPU",
      `clients ${lag(r.load.clients.lag)}, ${r.load.clients.cpuPercent} %; servers ${
        lag(r.load.servers.lag)
      }, ${r.load.servers.cpuPercent} %`
    ]
  ]
}

const metricEntries = (r: SoakResults, name: string): string => {
  const found = Object.entries(r.metrics).filter(([key]) => key === name || key.startsWith(`${name}{`))
  return found.map(([key, value]) => `${key.slice(name.length).replace(/^\{|\}$/g, "") || "all"} ${int(Number(value))}`)
    .join(", ") || "–"
}

const histogram = (r: SoakResults, name: string): string => {
  const key = Object.keys(r.metrics).find((k) => k === name || k.startsWith(`${name}{`))
  const h = (key === undefined ? undefined : r.metrics[key]) as
    | { count: number; minSeconds: number; maxSeconds: number; meanSeconds: number }
    | undefined
  return h === undefined ? "–" : `${int(h.count)}: mean ${h.meanSeconds} s, max ${h.maxSeconds} s`
}

const topErrors = (r: SoakResults, n = 8): ReadonlyArray<readonly [string, number]> =>
  Object.entries(r.calls.errors).sort((a, b) => b[1] - a[1]).slice(0, n)

const barLine = (b: Bar) => `${b.met ? "✅" : "❌"} ${b.name}: ${b.measured} (bar ${b.bar})`

export const terminal = (r: SoakResults): string => {
  const out: Array<string> = []
  out.push("")
  out.push("Soak: the token lifecycle under faults")
  out.push(setup(r))
  out.push("")
  const table = rows(r)
  const width = Math.max(...table.map(([label]) => label.length))
  for (const [label, value] of table) out.push(`  ${label.padEnd(width)}  ${value}`)
  const errors = topErrors(r)
  if (errors.length > 0) {
    out.push("")
    out.push("Failed calls by error:")
    for (const [text, count] of errors) out.push(`  ${int(count).padStart(7)}  ${text}`)
  }
  out.push("")
  out.push(
    `Samples (t s: heap MiB / fibers least-most / max event-loop delay ms): ${
      r.samples.map((s) => `${s.t}: ${s.heapMiB.toFixed(1)}/${s.fibers}-${s.fibersMax}/${s.lagMaxMs}`).join(", ")
    }`
  )
  out.push("")
  out.push("Bars:")
  for (const b of r.bars) out.push(`  ${barLine(b)}`)
  out.push("")
  return out.join("\n")
}

export const markdown = (r: SoakResults): string => {
  const out: Array<string> = []
  const met = r.bars.every((b) => b.met)
  out.push("## Soak: the token lifecycle under faults")
  out.push("")
  out.push(setup(r))
  out.push("")
  out.push(
    `- Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB RAM (${r.machine.platform}); ` +
      `Node ${r.node}; ${r.generatedAt}`
  )
  out.push(
    "- Reproduce: `npx -y pnpm@12.4.2 soak` at the repository root (exits 1 if a bar fails); raw figures in " +
      "[`results/soak.json`](./results/soak.json)"
  )
  out.push(`- Verdict: ${met ? "✅ every bar met" : "❌ " + r.bars.filter((b) => !b.met).length + " bar(s) missed"}`)
  out.push("")
  out.push("| bar | measured | bar | met? |")
  out.push("|---|---|---|---|")
  for (const b of r.bars) {
    out.push(`| ${escape(b.name)} | ${escape(b.measured)} | ${escape(b.bar)} | ${b.met ? "✅" : "❌"} |`)
  }
  out.push("")
  out.push("| measure | value |")
  out.push("|---|---|")
  for (const [label, value] of rows(r)) out.push(`| ${escape(label)} | ${escape(value)} |`)
  out.push("")
  const errors = topErrors(r)
  if (errors.length > 0) {
    out.push("Failed calls by error:")
    out.push("")
    for (const [text, count] of errors) out.push(`- ${int(count)} × \`${escape(text)}\``)
    out.push("")
  }
  out.push(
    `Heap (MiB after \`gc()\`) / live fibers (least–most of 20 counts), every ${r.settings.sampleEveryMs / 1000} s: ` +
      r.samples.map((s) => `${s.t} s ${s.heapMiB.toFixed(1)}/${s.fibers}–${s.fibersMax}`).join(" · ")
  )
  out.push("")
  out.push("Method and caveats:")
  out.push("")
  for (const line of method(r)) out.push(`- ${line}`)
  return out.join("\n")
}

const method = (r: SoakResults): ReadonlyArray<string> => [
  `Clients: ${r.settings.clients} MCP SDK \`Client\`s, one stateful Streamable HTTP session each, calling \`echo\`, ` +
  "`jira_get_issue` and `jama_get_item` back to back, all through one `createServiceAccountAuth(...).fetch` " +
  "(the Promise API most users run; one service account, like a worker with that many concurrent calls). Config: " +
  "the defaults (`token_cache_buffer_seconds` 300, clamped to half the token lifetime; `retry` and " +
  "`failure_cooldown` defaults).",
  "Servers, in a child process so the heap and fibers measured are the clients' and the auth's only: " +
  "`AuthorizationServer` (oidc-provider, 2 s RS256 JWTs), `McpServer` (SDK server, verifies them against the JWKS " +
  `with ${r.settings.clockToleranceSeconds} s clock tolerance: a JWT's \`exp\` is whole seconds, so a 2 s token can ` +
  "otherwise die up to 1 s before the `expires_in` the client was told), and `FaultTokenEndpoint` as the token URL, " +
  "whose responder draws each request's fate from a seeded PRNG and forwards the rest to the authorization server. " +
  "Revocation: `McpServer.revoke` of every token issued so far.",
  "A call fails when `callTool` rejects or returns `isError`. It is counted by when it started: inside the outage or " +
  "not; inside, whether the cached token (`state().expiresAt`, read every 20 ms) had not expired yet.",
  "Token requests are counted at the fault endpoint. A request that got no token (5xx, reset, outage 503) counts as " +
  "one retry. The issue's bar reads \"≤ token lifetimes elapsed + retries\"; the documented schedule refreshes " +
  "`min(buffer, lifetime / 2)` ahead of expiry (jittered 80–100 %), so a 2 s token is replaced every ≥ 1 s, not " +
  "every 2 s. The bar applied is therefore refresh periods elapsed (span / (lifetime − lead)) + retries + one per " +
  "revocation + the cold start; both figures are in the table.",
  `Flat: every ${r.settings.sampleEveryMs / 1000} s, \`gc()\`, then \`heapUsed\`, then the live fibers ` +
  "(`Fiber.roots` and their children, recursively: the auth's runtime fibers, since the clients are Promise code) " +
  "counted 20 times 50 ms apart; the sample keeps the least (resident fibers: a leaked fiber is in every count, a " +
  "caller waiting on a token fetch, two fibers each, is not) and the most. Bar: last-quarter median ≤ " +
  `${r.flatRule.factor} × second-quarter median + ${r.flatRule.heapSlackMiB} MiB (heap) / + ` +
  `${r.flatRule.fiberSlack} (fibers). A median of ~${
    Math.round(r.settings.seconds / 4 / (r.settings.sampleEveryMs / 1000))
  } samples ignores one taken in a burst; 20 % is above the noise of 200 calls in flight, yet a leak of ~100 B ` +
  "per call (tens of thousands of calls in the second half) or of one fiber per refresh (≈ 60) exceeds it. The " +
  "second-half slope is shown for reference. Caveat: the MCP SDK (1.32) keeps a response handler for every request " +
  "whose send rejects (e.g. the auth failed), so failed calls grow the heap; the table counts those handlers.",
  "Failed calls pause 50 ms before the next call (a failure without any request returns at once). Calls run 5 s " +
  "before the soak starts (uncounted, no faults), the clients starting spread over 1 s. Load is back-to-back calls " +
  "on a 2-core machine shared by both processes: the event-loop delay and CPU rows say how loaded they were.",
  `Wall time: ${r.wallSeconds} s of calls (plus connecting the clients); MCP requests served ${
    int(r.server.mcpRequests)
  }; servers' process RSS at the end ${r.server.childRssMiB} MiB.`
]

/** Replaces the soak block of `BENCHMARKS.md` (or appends it at the end). */
export const spliceBlock = (document: string, r: SoakResults): string => {
  const block = `${START}\n${markdown(r)}\n${END}`
  const start = document.indexOf(START)
  const end = document.indexOf(END)
  if (start !== -1 && end > start) {
    return document.slice(0, start) + block + document.slice(end + END.length)
  }
  const trimmed = document.replace(/\s*$/, "")
  return `${trimmed}${trimmed.length === 0 ? "" : "\n\n"}${block}\n`
}

/**
 * Parent side of E1 (auth overhead on MCP tool calls), E2 (ours vs the SDK's `ClientCredentialsProvider` across
 * token expiries) and the memory check.
 */
import * as AuthorizationServer from "@mcp-auth/testing/AuthorizationServer"
import * as FaultTokenEndpoint from "@mcp-auth/testing/FaultTokenEndpoint"
import * as McpServer from "@mcp-auth/testing/McpServer"
import { runBatch, runSequential } from "./children.js"
import { type BenchEnv, round } from "./plans.js"
import { CLIENT_ID, CLIENT_SECRET, SCOPE, TOKEN_LATENCY_MS } from "./protocol.js"
import type { ScenarioResult } from "./results.js"
import { between, startEndpoint } from "./servers.js"

const startAs = (ttl: number) =>
  AuthorizationServer.start({
    clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }],
    scopes: [SCOPE],
    accessTokenTtlSeconds: ttl
  })

/** A token endpoint in front of the authorization server: the same 50 ms latency, and its own request count. */
const startRelay = (as: AuthorizationServer.AuthorizationServer) =>
  FaultTokenEndpoint.start({ latencyMs: TOKEN_LATENCY_MS, fallback: FaultTokenEndpoint.forward(as.tokenUrl) })

// ---------------------------------------------------------------------------------------------------------------------
// E1
// ---------------------------------------------------------------------------------------------------------------------

export const e1 = async (): Promise<ScenarioResult> => {
  const start = Date.now()
  const as = await startAs(3600)
  const secured = await McpServer.start({ authorizationServer: as, mode: "stateful" })
  as.setAudience(secured.url)
  const open = await McpServer.start({ requireAuth: false, mode: "stateful" })
  const relay = await startRelay(as)
  const concurrency = 8
  const durationMs = 2000
  const rounds = 4
  // the servers record every request; clear them between slices so their heaps do not grow through the run
  let unauthorized = 0
  const clear = () => {
    unauthorized += secured.unauthorizedCount
    secured.clearRecords()
    open.clearRecords()
    as.clearRecords()
  }
  const [outcome] = await runBatch([{
    onMark: clear,
    job: {
      scenario: "e1",
      peer: "ours-promise",
      endpoints: {
        auth: { tokenUrl: relay.url, serverUrl: secured.url },
        noauth: { tokenUrl: relay.url, serverUrl: open.url }
      },
      params: { concurrency, durationMs, rounds }
    },
    timeoutMs: 120_000
  }])
  clear()
  const tokenRequests = relay.count
  await relay.close()
  await secured.close()
  await open.close()
  await as.close()
  const result = outcome!.result as { callsPerSecond: Record<string, number>; samples: unknown } | undefined
  const rate = (name: string) => result?.callsPerSecond[name] ?? null
  const noauth = rate("no auth")
  const ours = rate("ours")
  const control = rate("static bearer")
  const overhead = (value: number | null) =>
    value === null || noauth === null ? null : round(100 * (noauth - value) / noauth, 1)
  const columns = [
    { key: "no auth", label: "no auth (server auth disabled)" },
    { key: "ours", label: "ours (Promise-API fetch)" },
    { key: "static bearer", label: "static bearer header (control)" }
  ]
  return {
    id: "E1",
    title: "MCP tool calls per second over Streamable HTTP: auth overhead",
    target: "ours ≤ 5 % slower than no auth",
    columns,
    rows: [
      {
        label: `tool calls / s (median of ${rounds} windows)`,
        values: {
          "no auth": noauth && round(noauth, 0),
          ours: ours && round(ours, 0),
          "static bearer": control && round(control, 0)
        },
        headline: true
      },
      {
        label: "overhead vs no auth (%)",
        values: { "no auth": 0, ours: overhead(ours), "static bearer": overhead(control) },
        headline: true
      },
      {
        label: "ours vs static bearer (%, client-side cost alone)",
        values: { ours: ours === null || control === null ? null : round(100 * (control - ours) / control, 1) },
        headline: false
      },
      { label: "token requests / 401s", values: { ours: `${tokenRequests} / ${unauthorized}` }, headline: false }
    ],
    notApplicable: {},
    errors: outcome!.error === undefined ? {} : { ours: outcome!.error },
    method: [
      `One child process is the client (SDK \`Client\` + \`StreamableHTTPClientTransport\`); the parent serves two \`McpServer\`s from \`@mcp-auth/testing\`, both stateful with SSE responses: one verifying bearer JWTs from the \`AuthorizationServer\` (oidc-provider) on every request, one with \`requireAuth: false\`. The three variants run at the same time, ${concurrency} callers each calling the \`echo\` tool back to back: 2 s of warm-up, then ${rounds} windows of ${
        durationMs / 1000
      } s; median calls/s per variant. Side by side, each variant gets the share of client and server time its per-call cost leaves it, and all see the same machine state (taking turns instead, the rates drifted from round to round as JIT and GC settled). Server records are cleared between windows.`,
      "ours = `createServiceAccountAuth(config, { serverUrl }).fetch` as the transport's `fetch` (token from the authorization server through a relay adding 50 ms). The static-bearer control sends one fixed token through `requestInit.headers` to the same secured server, separating the server's JWT verification (control vs no auth) from our client-side cost (ours vs control)."
    ],
    verdict: {
      ours: ours === null ? "error" : `${overhead(ours)} % overhead (static-bearer control: ${overhead(control)} %)`,
      met: ours === null ? null : (overhead(ours) ?? Infinity) <= 5
    },
    data: { result, tokenRequests, unauthorized },
    wallSeconds: Math.round((Date.now() - start) / 100) / 10
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// E2
// ---------------------------------------------------------------------------------------------------------------------

export const e2 = async (): Promise<ScenarioResult> => {
  const start = Date.now()
  const ttl = 3
  const durationMs = 10_000
  const concurrency = 8
  const as = await startAs(ttl)
  // one MCP server per client, identical, so 401s and discovery are attributed without doubt
  const oursMcp = await McpServer.start({ authorizationServer: as, mode: "stateful" })
  const sdkMcp = await McpServer.start({ authorizationServer: as, mode: "stateful" })
  as.setAudience(oursMcp.url) // ours sends no resource; the SDK sends its server's PRM resource
  const oursRelay = await startRelay(as)
  const sdkRelay = await startRelay(as)
  const [outcome] = await runBatch([{
    job: {
      scenario: "e2",
      peer: "ours-promise",
      endpoints: {
        ours: { tokenUrl: oursRelay.url, serverUrl: oursMcp.url },
        sdk: { tokenUrl: sdkRelay.url, serverUrl: sdkMcp.url, issuer: as.issuer }
      },
      params: { concurrency, durationMs, asTokenUrl: as.tokenUrl }
    },
    timeoutMs: 120_000
  }])
  const from = outcome!.marks.measure ?? 0
  const to = outcome!.marks.end ?? Infinity
  const count = (mcp: typeof oursMcp, relay: typeof oursRelay, sdk: boolean) => {
    const inPhase = between(mcp.requests, from, to)
    return {
      tokenRequests: between(relay.requests, from, to).length,
      discoveryRequests: inPhase.filter((r) => r.path.includes("well-known")).length +
        (sdk
          ? between(as.requests, from, to).filter((r) => r.method === "GET" && r.path.includes("well-known")).length
          : 0),
      unauthorized: inPhase.filter((r) => r.status === 401).length,
      mcpRequests: inPhase.filter((r) => r.path === "/mcp").length
    }
  }
  const counts = { ours: count(oursMcp, oursRelay, false), "mcp-sdk": count(sdkMcp, sdkRelay, true) }
  await oursRelay.close()
  await sdkRelay.close()
  await oursMcp.close()
  await sdkMcp.close()
  await as.close()
  interface Load {
    readonly ok: number
    readonly failed: number
    readonly callsPerSecond: number
    readonly errors: Record<string, number>
  }
  const result = outcome!.result as { ours: Load; sdk: Load } | undefined
  const ours = result?.ours
  const sdk = result?.sdk
  const ratio = ours === undefined || sdk === undefined ? null : round(ours.callsPerSecond / sdk.callsPerSecond, 2)
  const columns = [
    { key: "ours", label: "ours (Promise-API fetch)" },
    { key: "mcp-sdk", label: "MCP SDK ClientCredentialsProvider" }
  ]
  const c = (name: "ours" | "mcp-sdk") => counts[name]!
  return {
    id: "E2",
    title: `MCP tool calls across token expiries (${ttl} s tokens, ${durationMs / 1000} s of load)`,
    target: "ours ≥ 1.0× the SDK's throughput, 0 failed calls",
    columns,
    rows: [
      {
        label: "tool calls / s",
        values: {
          ours: ours === undefined ? null : round(ours.callsPerSecond, 0),
          "mcp-sdk": sdk === undefined ? null : round(sdk.callsPerSecond, 0)
        },
        headline: true
      },
      { label: "× the SDK", values: { ours: ratio, "mcp-sdk": 1 }, headline: true },
      { label: "failed calls", values: { ours: ours?.failed ?? null, "mcp-sdk": sdk?.failed ?? null }, headline: true },
      {
        label: "token requests",
        values: { ours: c("ours").tokenRequests, "mcp-sdk": c("mcp-sdk").tokenRequests },
        headline: true
      },
      {
        label: "401s from the MCP server",
        values: { ours: c("ours").unauthorized, "mcp-sdk": c("mcp-sdk").unauthorized },
        headline: true
      },
      {
        label: "discovery requests (RFC 9728 + RFC 8414)",
        values: { ours: c("ours").discoveryRequests, "mcp-sdk": c("mcp-sdk").discoveryRequests },
        headline: false
      },
      {
        label: "successful calls",
        values: { ours: ours?.ok ?? null, "mcp-sdk": sdk?.ok ?? null },
        headline: false
      },
      {
        label: "errors seen",
        values: {
          ours: ours === undefined ? null : describeErrors(ours.errors),
          "mcp-sdk": sdk === undefined ? null : describeErrors(sdk.errors)
        },
        headline: false
      }
    ],
    notApplicable: {},
    errors: outcome!.error === undefined ? {} : { ours: outcome!.error },
    method: [
      `The \`AuthorizationServer\` issues ${ttl} s JWTs; two identical stateful \`McpServer\`s verify them, one per client. One child connects an SDK \`Client\` through ours and another with the SDK's \`ClientCredentialsProvider\` (\`expectedIssuer\` set; it discovers the authorization server through its server's RFC 9728 metadata), and runs both at the same time, ${concurrency} callers each calling \`echo\` back to back: 2 s of warm-up, then ${
        durationMs / 1000
      } s measured (tokens expire about ${
        Math.floor(durationMs / 1000 / ttl)
      } times). Running them side by side gives both the same machine state (JIT, GC, server load) at every instant, so the ratio does not drift with run order; each gets the share of client and server time its own per-call cost and stalls leave it.`,
      "Both get tokens through their own relay adding 50 ms (the SDK's discovered token endpoint is rewritten to its relay in the transport's `fetch`, which carries all its OAuth traffic). A call that throws counts as failed; the load goes on."
    ],
    verdict: {
      ours: ours === undefined ? "error" : `${ratio}× the SDK, ${ours.failed} failed`,
      met: ours === undefined || ratio === null ? null : ratio >= 1.0 && ours.failed === 0
    },
    data: { result, counts },
    wallSeconds: Math.round((Date.now() - start) / 100) / 10
  }
}

const describeErrors = (errors: Record<string, number>): string => {
  const entries = Object.entries(errors)
  return entries.length === 0 ? "none" : entries.map(([text, n]) => `${n} × ${text}`).join("; ")
}

// ---------------------------------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------------------------------

export const memory = async (env: BenchEnv): Promise<ScenarioResult> => {
  const start = Date.now()
  const total = 1_000_000
  const baseline = 1000
  const peers = ["ours-fiber", "ours-promise"] as const
  const endpoints = await Promise.all(peers.map((peer) => startEndpoint(peer, env.pki)))
  const outcomes = await runSequential(peers.map((peer, i) => ({
    job: {
      scenario: "memory",
      peer,
      endpoints: { main: endpoints[i]!.endpoint },
      params: { total, baseline }
    },
    timeoutMs: 120_000
  })))
  await Promise.all(endpoints.map((e) => e.close()))
  const data = Object.fromEntries(peers.map((peer, i) => {
    const r = outcomes[i]!.result as
      | { before: number; after: number; afterTwice: number; elapsedMs: number }
      | undefined
    return [
      peer,
      r === undefined ? null : {
        ...r,
        growthKiB: round((r.after - r.before) / 1024, 1),
        secondMillionKiB: round((r.afterTwice - r.after) / 1024, 1)
      }
    ]
  }))
  const mib = (bytes: number) => round(bytes / 1024 / 1024, 2)
  const noiseKiB = 512
  const growth = (peer: string) => data[peer]?.growthKiB ?? null
  const met = peers.every((peer) => growth(peer) !== null && growth(peer)! < noiseKiB)
  return {
    id: "Memory",
    title: "Heap after 1 000 000 header resolutions vs after 1 000",
    target: `no growth beyond noise (< ${noiseKiB} KiB)`,
    columns: peers.map((peer) => ({
      key: peer,
      label: peer === "ours-fiber" ? "ours (Effect, in-fiber)" : "ours (Promise API)"
    })),
    rows: [
      {
        label: "heap growth (KiB)",
        values: Object.fromEntries(peers.map((peer) => [peer, growth(peer)])),
        headline: true
      },
      {
        label: "heap growth over a second million (KiB)",
        values: Object.fromEntries(peers.map((peer) => [peer, data[peer]?.secondMillionKiB ?? null])),
        headline: false
      },
      {
        label: "heap used after 1 000 / after 1 000 000 (MiB)",
        values: Object.fromEntries(peers.map((peer) => [
          peer,
          data[peer] == null ? null : `${mib(data[peer]!.before)} / ${mib(data[peer]!.after)}`
        ])),
        headline: false
      },
      {
        label: "seconds for the 999 000 resolutions",
        values: Object.fromEntries(
          peers.map((peer) => [peer, data[peer] == null ? null : round(data[peer]!.elapsedMs / 1000, 2)])
        ),
        headline: false
      }
    ],
    notApplicable: {},
    errors: Object.fromEntries(
      peers.flatMap((peer, i) => outcomes[i]!.error === undefined ? [] : [[peer, outcomes[i]!.error!]])
    ),
    method: [
      `A warm client resolves ${
        baseline.toLocaleString("en-US")
      } headers, then \`global.gc()\` (twice) and \`process.memoryUsage().heapUsed\`; then ${
        (total - baseline).toLocaleString("en-US")
      } more, gc again, heap again; then a second million, to tell a one-off step (compiled code, caches) from growth that keeps going. In-fiber: \`AuthHeaders.forRequest\` in one fiber; Promise API: \`getHeaders()\`.`
    ],
    verdict: {
      ours: peers.map((peer) => `${peer === "ours-fiber" ? "fiber" : "promise"} ${growth(peer) ?? "–"} KiB`).join(", "),
      met: peers.some((peer) => growth(peer) === null) ? null : met
    },
    data,
    wallSeconds: Math.round((Date.now() - start) / 100) / 10
  }
}

/**
 * `pnpm soak`: the token lifecycle under faults, for two minutes.
 *
 * 200 MCP SDK `Client`s (one session each, Streamable HTTP) call tools back to back through ONE
 * `createServiceAccountAuth(...).fetch` (one service account: a worker with 200 concurrent calls). The Promise API is
 * what most users run, and its `fetch` is the path every SDK transport takes (401 → invalidate → one replay). 2 s
 * tokens; the token endpoint fails at random (10 % 5xx, 2 % connection resets, 5 % slow), has one 10 s outage, and
 * the MCP server revokes every token three times. The servers run in a child process (`servers.ts`), so the heap and
 * fibers measured here are the clients' and the auth's only.
 *
 * Prints its table and exits 1 if a bar fails. `SOAK_SECONDS` (default 120) shortens a run for a quick check; its
 * events are placed at the same fractions of the run (the outage lasts min(10 s, max(4 s, 1/12 of the run))). Only
 * the full run (120 s, 200 clients) writes `results/soak.json` and the soak block of `BENCHMARKS.md`; other runs
 * write their JSON to the temp dir (`SOAK_WRITE=1` forces the committed files).
 */
import { createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import { fork } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { createHistogram, monitorEventLoopDelay } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import {
  bars,
  type CallFigures,
  type FailedCall,
  flatness,
  type RevocationResult,
  type Sample,
  tokenFigures
} from "./analyze.js"
import { CLIENT_ID, CLIENT_SECRET, SCOPE, type Settings, type ToChild, type ToParent } from "./protocol.js"
import { type SoakResults, spliceBlock, terminal } from "./report.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const benchDir = path.join(here, "..", "..")

const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`)
  return value
}

const seconds = envNumber("SOAK_SECONDS", 120)
const outageSeconds = Math.min(10, Math.max(4, seconds / 12))
const settings: Settings = {
  seconds,
  clients: Math.round(envNumber("SOAK_CLIENTS", 200)),
  tokenSeconds: 2,
  seed: Math.round(envNumber("SOAK_SEED", 11)),
  faults: { serverError: 0.10, reset: 0.02, slow: 0.05 },
  slowMs: [500, 1500],
  tokenLatencyMs: 50,
  outageAt: seconds / 3,
  outageSeconds,
  revocationsAt: [seconds / 6, seconds * 0.6, seconds * 0.8],
  sampleEveryMs: 5000,
  clockToleranceSeconds: 1
}
/** token_cache_buffer_seconds: the default (300), which the schedule clamps to half the token lifetime. */
const BUFFER_SECONDS = 300
const FLAT = { factor: 1.2, heapSlackMiB: 1, fiberSlack: 5 } as const
const full = settings.seconds === 120 && settings.clients === 200 && process.env.SOAK_AUTH_CONFIG === undefined
const CLIENT_HEADER = "x-soak-client"
/** Fiber counts per sample (50 ms apart): the sample keeps the least and the most. */
const FIBER_READS = 20
/** What a client waits after a failed call before its next one. */
const FAILURE_PAUSE_MS = 50

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc (npx -y pnpm@12.4.2 soak does)")

// -------------------------------------------------------------------------------------------------------------------
// the servers' process
// -------------------------------------------------------------------------------------------------------------------

const child = fork(path.join(here, "servers.ts"), [], {
  execArgv: ["--import", "tsx"],
  env: { ...process.env, SOAK_SETTINGS: JSON.stringify(settings) },
  stdio: ["ignore", "inherit", "inherit", "ipc"]
})
const tell = (message: ToChild) => child.send(message)
const waitFor = <T extends ToParent["_tag"]>(tag: T, timeoutMs = 30_000) =>
  new Promise<Extract<ToParent, { _tag: T }>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`servers: no ${tag} within ${timeoutMs} ms`)), timeoutMs)
    const listener = (message: ToParent) => {
      if (message._tag !== tag) return
      clearTimeout(timer)
      child.off("message", listener)
      resolve(message as Extract<ToParent, { _tag: T }>)
    }
    child.on("message", listener)
  })
child.once("exit", (code) => {
  if (!finished) {
    process.stderr.write(`soak: the servers' process exited early (code ${code})\n`)
    process.exit(2)
  }
})
let finished = false

const ready = await waitFor("Ready", 60_000)

// -------------------------------------------------------------------------------------------------------------------
// what the clients see
// -------------------------------------------------------------------------------------------------------------------

/** Per client: the 401s its current call met (each client has one call in flight at a time). */
interface CurrentCall {
  unauthorized: number
  revoked: number
}
const current: Array<CurrentCall> = Array.from({ length: settings.clients }, () => ({ unauthorized: 0, revoked: 0 }))
const unauthorizedResponses: Record<string, number> = {}
const revocations: Array<
  { at: number; liveTokens: number; callsWith401: number; recovered: number; failed: number; last401: number | null }
> = []
const logs: Record<string, number> = {}
const logMessages: Record<string, number> = {}

const reasonOf = (response: Response): string => {
  const challenge = response.headers.get("www-authenticate") ?? ""
  return /revoked/i.test(challenge) ? "revoked" : /expired/i.test(challenge) ? "expired" : "other"
}

/** The fetch under ours: sees every MCP request after the auth headers are added, and every 401. */
const observing = async (url: string | URL, init?: RequestInit): Promise<Response> => {
  const response = await fetch(url, init)
  if (response.status === 401) {
    const reason = reasonOf(response)
    unauthorizedResponses[reason] = (unauthorizedResponses[reason] ?? 0) + 1
    const index = Number(new Headers(init?.headers).get(CLIENT_HEADER))
    const isToolCall = typeof init?.body === "string" && init.body.includes("\"tools/call\"")
    const call = current[index]
    if (isToolCall && call !== undefined) {
      call.unauthorized++
      if (reason === "revoked") {
        call.revoked++
        const revocation = revocations.at(-1)
        if (revocation !== undefined) revocation.last401 = Date.now() - revocation.at
      }
    }
  }
  return response
}

const countLog = (level: string) => (message: string) => {
  logs[level] = (logs[level] ?? 0) + 1
  const key = `${level}: ${message.replace(/\d+(\.\d+)?/g, "N").slice(0, 100)}`
  if (logMessages[key] !== undefined || Object.keys(logMessages).length < 50) {
    logMessages[key] = (logMessages[key] ?? 0) + 1
  }
}

/** Extra provider-block keys for experiments (`SOAK_AUTH_CONFIG='{"failure_cooldown":{"initial_seconds":0}}'`). */
const extraConfig = JSON.parse(process.env.SOAK_AUTH_CONFIG ?? "{}") as Record<string, unknown>
const authConfig = {
  client_id: CLIENT_ID,
  client_secret: CLIENT_SECRET,
  token_url: ready.tokenUrl,
  scopes: [SCOPE],
  allow_insecure_http: true,
  ...extraConfig
}
const auth = createServiceAccountAuth(authConfig, {
  serverUrl: ready.mcpUrl,
  fetch: observing,
  logLevel: "warning",
  logger: { debug: countLog("debug"), info: countLog("info"), warn: countLog("warn"), error: countLog("error") }
})

const connect = async (index: number): Promise<Client> => {
  const client = new Client({ name: `soak-${index}`, version: "0.0.0" })
  const transport = new StreamableHTTPClientTransport(new URL(ready.mcpUrl), {
    fetch: (url, init) => {
      const headers = new Headers(init?.headers)
      headers.set(CLIENT_HEADER, String(index))
      return auth.fetch(url, { ...init, headers })
    }
  })
  await client.connect(transport)
  return client
}

const clients: Array<Client> = []
for (let i = 0; i < settings.clients; i += 20) {
  clients.push(
    ...await Promise.all(Array.from({ length: Math.min(20, settings.clients - i) }, (_, k) => connect(i + k)))
  )
}

// -------------------------------------------------------------------------------------------------------------------
// samplers
// -------------------------------------------------------------------------------------------------------------------

/** Live fibers in this process: `Fiber.roots` and their descendants, the sampling fiber itself left out. */
const countFibers = Effect.gen(function*() {
  const self = yield* Effect.fiberId
  const stack = [...(yield* Fiber.roots)]
  let count = 0
  while (stack.length > 0) {
    const fiber = stack.pop()!
    if (Equal.equals(fiber.id(), self)) continue
    count++
    stack.push(...(yield* fiber.children))
  }
  return count
})

/** The cached token's expiry as `state()` reports it, read every 20 ms (the last one known when there is none). */
let cachedExpiresAt: number | null = null
const outageStatus: Record<string, number> = {}
let inOutage = false
const stateTimer = setInterval(() => {
  auth.state().then((state) => {
    if ("expiresAt" in state) cachedExpiresAt = state.expiresAt
    if (inOutage) outageStatus[state.status] = (outageStatus[state.status] ?? 0) + 1
  }, () => undefined)
}, 20)

/** Event-loop delay of this process: per sample window, and over the whole run. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
const loopDelayRun = monitorEventLoopDelay({ resolution: 10 })
const ms = (nanos: number) => Math.round(nanos / 1e6)

const samples: Array<Sample> = []
const sample = async () => {
  const lagP99Ms = ms(loopDelay.percentile(99))
  const lagMaxMs = ms(loopDelay.max)
  loopDelay.reset()
  gc()
  const heapMiB = process.memoryUsage().heapUsed / 1048576
  const t = Math.round((Date.now() - startedAt) / 100) / 10
  // resident fibers: the least of 20 counts over 1 s. A leaked fiber stays in every count; a caller waiting on a token
  // fetch (two fibers each, up to 200 callers) is gone from at least one of them unless the wait lasts the whole second
  const counts: Array<number> = []
  for (let i = 0; i < FIBER_READS; i++) {
    counts.push(await Effect.runPromise(countFibers))
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  samples.push({
    t,
    heapMiB: Math.round(heapMiB * 100) / 100,
    fibers: Math.min(...counts),
    fibersMax: Math.max(...counts),
    lagP99Ms,
    lagMaxMs
  })
}

// -------------------------------------------------------------------------------------------------------------------
// the run
// -------------------------------------------------------------------------------------------------------------------

const tools = [
  { name: "echo", arguments: { text: "soak" } },
  { name: "jira_get_issue", arguments: { key: "OCSW-2116" } },
  { name: "jama_get_item", arguments: { id: 42 } }
] as const

let total = 0
let ok = 0
let withUnauthorized = 0
let recoveredUnauthorized = 0
let failedUnauthorized = 0
const failedCounts = { outside: 0, outageValid: 0, outageExpired: 0 }
const errors: Record<string, number> = {}
const failures: Array<FailedCall> = []
/** Tool call latency (ms), counted calls only. */
const latency = createHistogram()
const MAX_FAILURE_DETAILS = 2000

/** Calls run this long before the soak starts (JIT, connection pools), uncounted and without faults. */
const WARMUP_MS = 5000
const startedAt = Date.now() + WARMUP_MS
const endAt = startedAt + settings.seconds * 1000
const outageFrom = startedAt + settings.outageAt * 1000
const outageTo = outageFrom + settings.outageSeconds * 1000

const describeError = (error: unknown): string => {
  const text = error instanceof Error
    ? `${(error as { _tag?: string })._tag ?? error.constructor.name}: ${error.message}`
    : String(error)
  return text.replace(/\s+/g, " ").slice(0, 400)
}
/** The grouping key of an error: its text with numbers (ports, times) masked. */
const errorKey = (text: string): string => text.replace(/\d+/g, "N").slice(0, 200)

const loop = async (index: number) => {
  const client = clients[index]!
  const call = current[index]!
  let n = index
  // the clients start spread over the first second of the warm-up, not all in one tick
  await new Promise((resolve) => setTimeout(resolve, (index * 1000) / settings.clients))
  while (Date.now() < endAt) {
    const begin = Date.now()
    if (begin < startedAt) {
      await client.callTool(tools[n++ % tools.length]!).catch(() => undefined)
      continue
    }
    const expiresAt = cachedExpiresAt
    call.unauthorized = 0
    call.revoked = 0
    let error: unknown = undefined
    try {
      const result = await client.callTool(tools[n++ % tools.length]!)
      if (result.isError === true) error = new Error(`tool error: ${JSON.stringify(result.content).slice(0, 80)}`)
    } catch (e) {
      error = e
    }
    total++
    latency.record(Math.max(1, Date.now() - begin))
    if (call.unauthorized > 0) {
      withUnauthorized++
      if (error === undefined) recoveredUnauthorized++
      else failedUnauthorized++
      const revocation = call.revoked > 0 ? revocations.at(-1) : undefined
      if (revocation !== undefined) {
        revocation.callsWith401++
        if (error === undefined) revocation.recovered++
        else revocation.failed++
      }
    }
    if (error === undefined) {
      ok++
      // let timers run (samplers, events) even when every call completes without I/O
      await new Promise((resolve) => setImmediate(resolve))
      continue
    }
    const duringOutage = begin >= outageFrom && begin < outageTo
    const valid = expiresAt !== null && begin < expiresAt
    if (!duringOutage) failedCounts.outside++
    else if (valid) failedCounts.outageValid++
    else failedCounts.outageExpired++
    const text = describeError(error)
    const key = errorKey(text)
    errors[key] = (errors[key] ?? 0) + 1
    if (failures.length < MAX_FAILURE_DETAILS) {
      failures.push({
        t: Math.round((begin - startedAt) / 10) / 100,
        inOutage: duringOutage,
        msToExpiry: expiresAt === null ? null : expiresAt - begin,
        error: text
      })
    }
    // a failed call returns at once when the auth fails without a request: pause like a caller would, so a run of
    // failures neither starves the timers nor turns into a count of loop iterations
    await new Promise((resolve) => setTimeout(resolve, FAILURE_PAUSE_MS))
  }
}

/**
 * Revokes at the MCP server every token issued so far, once the client holds a fresh one (within 3 s): revoking
 * while a fetch is in flight would miss the token about to arrive and test nothing.
 */
const revoke = async (id: number) => {
  const deadline = Date.now() + 3000
  while (Date.now() < deadline && (await auth.state()).status !== "fresh") {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  revocations[id] = { at: Date.now(), liveTokens: 0, callsWith401: 0, recovered: 0, failed: 0, last401: null }
  tell({ _tag: "Revoke", id })
}

const at = (secondsIn: number, action: () => void) =>
  setTimeout(action, Math.max(0, startedAt + secondsIn * 1000 - Date.now()))

process.stderr.write(
  `soak: ${settings.seconds} s, ${settings.clients} clients, ${settings.tokenSeconds} s tokens, seed ${settings.seed}` +
    ` (outage ${settings.outageAt.toFixed(1)}–${(settings.outageAt + settings.outageSeconds).toFixed(1)} s, ` +
    `revocations at ${settings.revocationsAt.map((t) => t.toFixed(1)).join(", ")} s)\n`
)
let cpuFrom = process.cpuUsage()
const timers = [
  at(0, () => {
    tell({ _tag: "Faults", on: true })
    loopDelay.enable()
    loopDelayRun.enable()
    cpuFrom = process.cpuUsage()
  }),
  at(settings.outageAt, () => {
    inOutage = true
    tell({ _tag: "Outage", on: true })
  }),
  at(settings.outageAt + settings.outageSeconds, () => {
    inOutage = false
    tell({ _tag: "Outage", on: false })
  }),
  ...settings.revocationsAt.map((t, id) => at(t, () => void revoke(id)))
]
child.on("message", (message: ToParent) => {
  if (message._tag === "Revoked") {
    const revocation = revocations[message.id]
    if (revocation !== undefined) revocation.liveTokens = message.tokens
  }
})
let sampling = Promise.resolve()
let sampleTimer: ReturnType<typeof setInterval> | undefined
timers.push(at(0, () => {
  sampleTimer = setInterval(() => {
    sampling = sampling.then(sample)
  }, settings.sampleEveryMs)
}))
const progress = setInterval(() => {
  process.stderr.write(
    `  ${Math.round((Date.now() - startedAt) / 1000)} s: ${total} calls, ${total - ok} failed, ` +
      `heap ${samples.at(-1)?.heapMiB ?? "–"} MiB, fibers ${samples.at(-1)?.fibers ?? "–"}\n`
  )
}, 10_000)

await Promise.all(clients.map((_, i) => loop(i)))
const endedAt = Date.now()
loopDelay.disable()
loopDelayRun.disable()
const cpuUsed = process.cpuUsage(cpuFrom)
clearInterval(sampleTimer!)
clearInterval(progress)
clearInterval(stateTimer)
for (const timer of timers) clearTimeout(timer)
await sampling
tell({ _tag: "Faults", on: false })

const reportPromise = waitFor("Report")
tell({ _tag: "Report" })
const report = await reportPromise

/** The auth's own metrics (`@mcp-auth/service-account/Metrics`, Effect's global registry), for the whole process life. */
const metrics: Record<string, unknown> = {}
for (const pair of Effect.runSync(Metric.snapshot)) {
  const name = pair.metricKey.name
  if (!name.startsWith("mcp_auth_")) continue
  // provider and token_url name this run's provider and port: left out so the keys are the same in every run
  const tags = pair.metricKey.tags.filter((tag) => tag.key !== "provider" && tag.key !== "token_url")
    .map((tag) => `${tag.key}=${tag.value}`)
  const key = tags.length === 0 ? name : `${name}{${tags.join(",")}}`
  const state = pair.metricState
  if (MetricState.isCounterState(state)) metrics[key] = Number(state.count)
  else if (MetricState.isGaugeState(state)) metrics[key] = Number(state.value)
  else if (MetricState.isHistogramState(state)) {
    metrics[key] = {
      count: state.count,
      minSeconds: Math.round(state.min * 1000) / 1000,
      maxSeconds: Math.round(state.max * 1000) / 1000,
      meanSeconds: state.count === 0 ? 0 : Math.round((state.sum / state.count) * 1000) / 1000
    }
  }
}

/**
 * Leak check on the MCP SDK: a request whose `transport.send` rejects (here: the auth failed before any HTTP request)
 * keeps its entry in the SDK `Protocol`'s private `_responseHandlers` map (SDK 1.32: only the timeout is cleaned up).
 * Read once at the end, from all clients; 0 in flight by now.
 */
const sdkResponseHandlersLeft = clients.reduce(
  (sum, client) =>
    sum + ((client as unknown as { _responseHandlers?: Map<unknown, unknown> })._responseHandlers?.size ?? 0),
  0
)

await Promise.all(clients.map((client) => client.close().catch(() => undefined)))
await auth.close()
finished = true
tell({ _tag: "Close" })

// -------------------------------------------------------------------------------------------------------------------
// figures, bars, output
// -------------------------------------------------------------------------------------------------------------------

const tokens = tokenFigures(
  report.tokenRequests.filter((r) => r.at <= endedAt),
  settings,
  endedAt,
  { from: outageFrom, to: outageTo },
  settings.revocationsAt.length,
  BUFFER_SECONDS
)
const calls: CallFigures = {
  total,
  ok,
  failedOutside: failedCounts.outside,
  failedOutageValid: failedCounts.outageValid,
  failedOutageExpired: failedCounts.outageExpired
}
const heap = flatness(samples, settings.seconds, (s) => s.heapMiB, FLAT.factor, FLAT.heapSlackMiB)
const fibers = flatness(samples, settings.seconds, (s) => s.fibers, FLAT.factor, FLAT.fiberSlack)
const revocationResults: Array<RevocationResult> = revocations.map((r) => ({
  t: Math.round((r.at - startedAt) / 100) / 10,
  liveTokens: r.liveTokens,
  callsWith401: r.callsWith401,
  recovered: r.recovered,
  failed: r.failed,
  last401AfterMs: r.last401
}))
const results: SoakResults = {
  generatedAt: new Date().toISOString(),
  node: process.version,
  machine: {
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 1073741824),
    platform: `${os.platform()} ${os.release()}`
  },
  settings,
  flatRule: FLAT,
  bufferSeconds: BUFFER_SECONDS,
  wallSeconds: Math.round((endedAt - startedAt) / 100) / 10,
  calls: {
    ...calls,
    callsPerSecond: Math.round(total / ((endedAt - startedAt) / 1000)),
    latencyMs: {
      p50: latency.percentile(50),
      p90: latency.percentile(90),
      p99: latency.percentile(99),
      max: latency.max
    },
    errors,
    failures
  },
  unauthorized: {
    responses: unauthorizedResponses,
    server: report.unauthorized,
    callsWith401: withUnauthorized,
    recovered: recoveredUnauthorized,
    failed: failedUnauthorized
  },
  revocations: revocationResults,
  tokens,
  tokenRequests: report.tokenRequests.map((r) => ({ ...r, t: Math.round((r.at - startedAt) / 10) / 100 })),
  outageStatus,
  samples,
  heap,
  fibers,
  logs,
  logMessages,
  metrics,
  sdkResponseHandlersLeft,
  server: { mcpRequests: report.mcpRequests, sessions: report.sessions, childRssMiB: report.childRssMiB },
  load: {
    clients: {
      lag: {
        p50Ms: ms(loopDelayRun.percentile(50)),
        p99Ms: ms(loopDelayRun.percentile(99)),
        maxMs: ms(loopDelayRun.max)
      },
      cpuPercent: Math.round((cpuUsed.user + cpuUsed.system) / 10 / (endedAt - startedAt))
    },
    servers: { lag: report.lag, cpuPercent: report.cpuPercent }
  },
  bars: bars(calls, tokens, heap, fibers, FLAT)
}

process.stdout.write(terminal(results))
const write = full || process.env.SOAK_WRITE === "1"
const jsonPath = write
  ? path.join(benchDir, "results", "soak.json")
  : path.join(os.tmpdir(), `mcp-auth-soak-${settings.seconds}s.json`)
fs.mkdirSync(path.dirname(jsonPath), { recursive: true })
fs.writeFileSync(jsonPath, JSON.stringify(results, null, 2) + "\n")
process.stdout.write(`\nresults: ${jsonPath}\n`)
if (write) {
  const mdPath = path.join(benchDir, "BENCHMARKS.md")
  const before = fs.existsSync(mdPath) ? fs.readFileSync(mdPath, "utf8") : ""
  fs.writeFileSync(mdPath, spliceBlock(before, results))
  process.stdout.write(`soak block: ${mdPath}\n`)
}
process.exit(results.bars.every((bar) => bar.met) ? 0 : 1)

/**
 * Parent side of the Fleet scenario (issue 15, `pnpm bench fleet`): a token cache shared by many processes through
 * Redis, measured with the shared cache on and off in the same run.
 *
 * Every worker is a Node process of its own (`fleet.ts`) holding Promise-API auths (`createServiceAccountAuth`),
 * started once for the whole scenario; each measurement gives its auths their own `client_id` (so their own key in
 * Redis, and the endpoint's records split by client). The parent runs one `redis-server` (`RedisServer` from
 * `@mcp-auth/testing`), one token endpoint (`FaultTokenEndpoint`, the bench's fixed 50 ms) that issues random tokens
 * and records them, and a small API server that accepts a tool call only with a token the endpoint issued, not
 * expired and not revoked (401 otherwise). Counts are the endpoint's.
 */
import * as FaultTokenEndpoint from "@mcp-auth/testing/FaultTokenEndpoint"
import * as RedisServer from "@mcp-auth/testing/RedisServer"
import { type ChildProcess, fork } from "node:child_process"
import * as crypto from "node:crypto"
import * as http from "node:http"
import { createRequire } from "node:module"
import type * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { prepareRunner } from "./children.js"
import { type CallTally, type Command, type Metrics, type Reply, WORKER_HEADER } from "./fleetProtocol.js"
import { round } from "./plans.js"
import { CLIENT_SECRET, SCOPE, TOKEN_LATENCY_MS } from "./protocol.js"
import type { Cell, Row, ScenarioResult } from "./results.js"
import { max, sum } from "./stats.js"

/** Processes started for the whole scenario. */
const POOL = 50
/** Processes of the steady-load, revocation, 429, Redis-outage and crash cases. */
const FLEET = 20
/** Short tokens of the lifetime and outage cases, and their refresh lead (`token_cache_buffer_seconds`). */
const SHORT_LIFETIME_S = 8
const SHORT_BUFFER_S = 2
const LIFETIMES = 3
const CALL_INTERVAL_MS = 100
/** Redis outage in the outage case, from the start of its load, and the length of that load. */
const KILL_AT_MS = 2_000
const RESTART_AT_MS = 8_000
const OUTAGE_LOAD_MS = 20_000
/**
 * `shared_cache.timeout_ms` in this scenario: the default, 200. On a 2-core machine busy with other work a process may
 * wait longer than that to be scheduled, which the provider counts as a slow Redis (a fail-open, shown per case);
 * `BENCH_FLEET_TIMEOUT_MS` raises it for such a run, and the method notes say which value a run used.
 */
const TIMEOUT_MS = Number(process.env.BENCH_FLEET_TIMEOUT_MS ?? 200)
const RETRY_AFTER_S = 2
/** The shared_cache defaults the crashed-holder case runs with. */
const LEASE_S = 30
const WAIT_S = 5
const MICRO_CALLS = 200_000
const MICRO_REPS = 11
const MICRO_BAR = 1.1

// -----------------------------------------------------------------------------
// workers
// -----------------------------------------------------------------------------

interface Worker {
  readonly id: number
  readonly ask: <A>(command: Command) => Promise<A>
  readonly kill: () => void
  readonly alive: () => boolean
  readonly stderr: () => string
}

const startWorker = (script: string, execArgv: ReadonlyArray<string>, id: number): Promise<Worker> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = fork(script, [], {
      execArgv: [...execArgv],
      env: { ...process.env, FLEET_WORKER_ID: String(id) },
      stdio: ["ignore", "ignore", "pipe", "ipc"]
    })
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2000)
    })
    let alive = true
    let nextId = 0
    const pending = new Map<number, { resolve: (data: unknown) => void; reject: (error: Error) => void }>()
    const worker: Worker = {
      id,
      ask: <A>(command: Command) =>
        new Promise<A>((res, rej) => {
          if (!alive) return rej(new Error(`worker ${id} is gone`))
          const requestId = nextId++
          pending.set(requestId, { resolve: res as (data: unknown) => void, reject: rej })
          child.send({ id: requestId, command })
        }),
      kill: () => child.kill("SIGKILL"),
      alive: () => alive,
      stderr: () => stderr
    }
    child.on("message", (message: Reply) => {
      if (message.type === "ready") resolve(worker)
      else {
        const waiter = pending.get(message.id)
        pending.delete(message.id)
        if (message.type === "reply") waiter?.resolve(message.data)
        else waiter?.reject(new Error(`worker ${id}: ${message.message}`))
      }
    })
    child.on("exit", (code, signal) => {
      alive = false
      const error = new Error(`worker ${id} exited (${signal ?? code})${stderr.length > 0 ? `: ${stderr.trim()}` : ""}`)
      for (const waiter of pending.values()) waiter.reject(error)
      pending.clear()
      reject(error)
    })
  })

/**
 * The worker's script: `fleet.ts` and everything it imports bundled into one file with esbuild (which tsx ships), so
 * that a process loads in ≈ 0.3 s of CPU instead of ≈ 1.3 s for effect's hundreds of modules (50 processes on 2
 * cores). The code is the same; without esbuild, the transpiled `fleet.js` of the runner.
 */
const workerScript = async (transpiled: string): Promise<{ readonly script: string; readonly bundled: boolean }> => {
  if (transpiled.endsWith(".ts")) return { script: transpiled, bundled: false }
  const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
  const outfile = path.join(benchDir, "build", "fleet", "fleet.bundle.mjs")
  try {
    const fromTsx = createRequire(createRequire(import.meta.url).resolve("tsx/package.json"))
    const esbuild = fromTsx("esbuild") as { build: (options: Record<string, unknown>) => Promise<unknown> }
    await esbuild.build({
      entryPoints: [transpiled],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile,
      logLevel: "error",
      // CommonJS dependencies (ioredis, undici) call require
      banner: {
        js:
          "import { createRequire as __createRequire } from \"node:module\"; const require = __createRequire(import.meta.url);"
      }
    })
    return { script: outfile, bundled: true }
  } catch {
    return { script: transpiled, bundled: false }
  }
}

// -----------------------------------------------------------------------------
// servers
// -----------------------------------------------------------------------------

interface Issued {
  readonly client: string
  /** When the endpoint answered (epoch ms). */
  readonly at: number
  readonly expiresAt: number
}

const clientOf = (r: FaultTokenEndpoint.TokenRequestRecord): string => r.basic?.clientId ?? r.form.client_id ?? "?"

/** The tool server: 200 for a token the endpoint issued, not expired and not revoked; else 401. */
const startApi = async (issued: Map<string, Issued>, revoked: Set<string>) => {
  let rejected = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      const token = (req.headers.authorization ?? "").replace(/^Bearer /, "")
      const found = issued.get(token)
      const ok = found !== undefined && Date.now() < found.expiresAt && !revoked.has(token)
      if (!ok) rejected += 1
      const body = ok ? "{\"result\":\"ok\"}" : "{\"error\":\"invalid_token\"}"
      res.writeHead(ok ? 200 : 401, {
        "content-type": "application/json",
        "content-length": String(body.length),
        ...(ok ? {} : { "www-authenticate": "Bearer error=\"invalid_token\"" })
      })
      res.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/tool`,
    rejected: () => rejected,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

// -----------------------------------------------------------------------------
// figures
// -----------------------------------------------------------------------------

const combine = (tallies: ReadonlyArray<CallTally>): CallTally => ({
  ok: sum(tallies.map((t) => t.ok)),
  failed: sum(tallies.map((t) => t.failed)),
  retried: sum(tallies.map((t) => t.retried)),
  maxHeadersMs: round(max(tallies.map((t) => t.maxHeadersMs)), 1),
  errors: tallies.flatMap((t) => t.errors).slice(0, 5)
})

/** Request times grouped into bursts (when each starts, how many): a gap of more than `gapMs` starts the next one. */
const burstsOf = (times: ReadonlyArray<number>, gapMs: number): Array<{ start: number; count: number }> => {
  const sorted = [...times].sort((a, b) => a - b)
  const out: Array<{ start: number; count: number }> = []
  sorted.forEach((t, i) => {
    if (i === 0 || t - sorted[i - 1]! > gapMs) out.push({ start: t, count: 1 })
    else out[out.length - 1]!.count += 1
  })
  return out
}
const bursts = (times: ReadonlyArray<number>, gapMs: number): Array<number> =>
  burstsOf(times, gapMs).map((b) => b.count)

interface TokenReply {
  readonly token?: string
  readonly error?: string
  readonly ms: number
}

// -----------------------------------------------------------------------------
// the scenario
// -----------------------------------------------------------------------------

export const fleet = async (): Promise<ScenarioResult> => {
  const started = Date.now()
  const entry = await prepareRunner()
  const { bundled, script } = await workerScript(
    path.join(path.dirname(entry.script), entry.script.endsWith(".ts") ? "fleet.ts" : "fleet.js")
  )

  const issued = new Map<string, Issued>()
  const revoked = new Set<string>()
  /** `expires_in` by client id (default 3600). */
  const lifetimes = new Map<string, number>()
  /** A scripted answer for some requests (429, hang); `undefined`: issue a token. */
  let special: (record: FaultTokenEndpoint.TokenRequestRecord, client: string) => FaultTokenEndpoint.Step | undefined =
    () => undefined
  const endpoint = await FaultTokenEndpoint.start({
    latencyMs: TOKEN_LATENCY_MS,
    fallback: ({ request }) => {
      const client = clientOf(request)
      const step = special(request, client)
      if (step !== undefined) return step
      const expiresIn = lifetimes.get(client) ?? 3600
      const accessToken = `fleet-${crypto.randomBytes(18).toString("base64url")}`
      const at = request.time + TOKEN_LATENCY_MS
      issued.set(accessToken, { client, at, expiresAt: at + expiresIn * 1000 })
      return FaultTokenEndpoint.success({ accessToken, expiresIn })
    }
  })
  const redis = await RedisServer.start()
  const api = await startApi(issued, revoked)
  const requestsOf = (client: string, from = 0, to = Infinity) =>
    endpoint.requests.filter((r) => clientOf(r) === client && r.time >= from && r.time < to)
  const encryptionKey = crypto.randomBytes(32).toString("base64")
  const config = (client: string, shared: "off" | "on" | "encrypted", options: {
    readonly lifetime?: number
    readonly buffer?: number
    readonly prefix?: string
  } = {}) => {
    if (options.lifetime !== undefined) lifetimes.set(client, options.lifetime)
    return {
      client_id: client,
      client_secret: CLIENT_SECRET,
      token_url: endpoint.url,
      scopes: [SCOPE],
      token_cache_buffer_seconds: options.buffer ?? 300,
      allow_insecure_http: true,
      ...(shared === "off" ? {} : {
        shared_cache: {
          url: redis.url,
          key_prefix: options.prefix ?? "bench",
          timeout_ms: TIMEOUT_MS,
          ...(shared === "encrypted" ? { encryption_key: encryptionKey } : {})
        }
      })
    }
  }

  const errors: Record<string, string> = {}
  const data: Record<string, unknown> = {}
  const poolStarted = Date.now()
  const workers = await Promise.all(Array.from({ length: POOL }, (_, i) => startWorker(script, entry.execArgv, i)))
  data.poolStartSeconds = round((Date.now() - poolStarted) / 1000, 1)
  data.bundled = bundled
  const open = (ws: ReadonlyArray<Worker>, slot: string, cfg: Record<string, unknown>) =>
    Promise.all(ws.map((w) => w.ask({ op: "open", slot, config: cfg })))
  const close = (ws: ReadonlyArray<Worker>, slot: string) =>
    Promise.all(ws.filter((w) => w.alive()).map((w) => w.ask({ op: "close", slot })))
  /** A moment shortly ahead, so every worker starts at the same time. */
  const soon = (ms = 300) => Date.now() + ms
  const fleetOf = workers.slice(0, FLEET)
  /** The fleet outcomes of one case (its slot's metric in every live worker) and the store failures since the last. */
  let reasonsBefore: Record<string, number> = {}
  const outcomesOf = async (slot: string) => {
    const all = await Promise.all(workers.filter((w) => w.alive()).map((w) => w.ask<Metrics>({ op: "metrics" })))
    const outcomes = Object.fromEntries(
      ["adopted", "fetched", "fetched_after_wait", "blocked", "fail_open"].map((
        o
      ) => [o, sum(all.map((m) => m.counters[`${slot}/${o}`] ?? 0))])
    )
    const reasons: Record<string, number> = {}
    for (const m of all) for (const [r, n] of Object.entries(m.reasons)) reasons[r] = (reasons[r] ?? 0) + n
    const failures = Object.fromEntries(
      Object.entries(reasons).flatMap(([r, n]) => n > (reasonsBefore[r] ?? 0) ? [[r, n - (reasonsBefore[r] ?? 0)]] : [])
    )
    reasonsBefore = reasons
    return { outcomes, failures }
  }

  try {
    // --- 8. warm getHeaders() cost, shared cache on vs off, in one process (while the machine is quiet) ---
    {
      const w = workers[0]!
      await w.ask({ op: "open", slot: "micro-on", config: config("micro-on", "on") })
      await w.ask({ op: "open", slot: "micro-off", config: config("micro-off", "off") })
      const micro = await w.ask<{ samples: Array<Array<number>>; medians: Array<number>; medianRatio: number }>({
        op: "micro",
        slots: ["micro-on", "micro-off"],
        calls: MICRO_CALLS,
        reps: MICRO_REPS
      })
      data.micro = {
        onUs: round(micro.medians[0]!, 3),
        offUs: round(micro.medians[1]!, 3),
        ratio: round(micro.medianRatio, 2),
        samples: micro.samples
      }
      await w.ask({ op: "close", slot: "micro-on" })
      await w.ask({ op: "close", slot: "micro-off" })
    }

    // warm-up: every process runs the code of a fetch once, with and without the shared cache (module loading, the
    // optimizing compiler, ioredis, Redis's script cache), so that "cold" below means a cold token cache only
    {
      for (const mode of ["off", "on"] as const) {
        const slot = `warm-${mode}`
        await open(workers, slot, config(slot, mode, { prefix: "bench-warm" }))
        await Promise.all(workers.map((w) => w.ask<TokenReply>({ op: "token", slot, at: 0 })))
        await close(workers, slot)
      }
      data.warmUp = await outcomesOf("warm-on")
    }

    // --- 1. 50 cold processes, one getToken() each; 7. the raw Redis values, with and without a key ---
    {
      const cold: Record<string, unknown> = {}
      for (const mode of ["off", "on", "encrypted"] as const) {
        const client = `cold-${mode}`
        await open(workers, client, config(client, mode, { prefix: `bench-${mode}` }))
        const at = soon(500)
        const replies = await Promise.all(workers.map((w) => w.ask<TokenReply>({ op: "token", slot: client, at })))
        cold[mode] = {
          requests: requestsOf(client).length,
          served: replies.filter((r) => r.token !== undefined).length,
          distinctTokens: new Set(replies.flatMap((r) => r.token === undefined ? [] : [r.token])).size,
          maxWaitMs: round(max(replies.map((r) => r.ms)), 1),
          errors: replies.flatMap((r) => r.error === undefined ? [] : [r.error]).slice(0, 3),
          ...(mode === "off" ? {} : await outcomesOf(client))
        }
      }
      data.cold = cold
      // what a reader of Redis sees: every key of each prefix, its raw value(s)
      const raw = async (prefix: string) => {
        const keys = (await redis.cli(["--scan", "--pattern", `${prefix}:*`])).split("\n").filter((k) => k !== "")
        const values: Array<string> = []
        for (const key of keys) {
          const type = await redis.cli(["TYPE", key])
          values.push(
            type === "hash"
              ? await redis.cli(["HGETALL", key])
              : type === "string"
              ? await redis.cli(["GET", key])
              : `(${type})`
          )
        }
        return { keys, dump: values.join("\n") }
      }
      const tokensOf = (client: string) => [...issued].flatMap(([token, i]) => i.client === client ? [token] : [])
      const clear = await raw("bench-on")
      const sealed = await raw("bench-encrypted")
      data.raw = {
        clear: {
          keys: clear.keys,
          containsToken: tokensOf("cold-on").some((t) => clear.dump.includes(t)),
          sample: clear.dump.slice(0, 300)
        },
        encrypted: {
          keys: sealed.keys,
          containsToken: tokensOf("cold-encrypted").some((t) => sealed.dump.includes(t)),
          sample: sealed.dump.slice(0, 300)
        }
      }
      for (const mode of ["off", "on", "encrypted"]) await close(workers, `cold-${mode}`)
    }

    // --- 2. 20 processes calling tools over 3 token lifetimes, on and off side by side ---
    {
      const slots = ["life-on", "life-off"]
      await open(fleetOf, "life-on", config("life-on", "on", { lifetime: SHORT_LIFETIME_S, buffer: SHORT_BUFFER_S }))
      await open(fleetOf, "life-off", config("life-off", "off", { lifetime: SHORT_LIFETIME_S, buffer: SHORT_BUFFER_S }))
      const at = soon(500)
      const until = at + LIFETIMES * SHORT_LIFETIME_S * 1000
      const tallies = await Promise.all(
        fleetOf.map((w) =>
          w.ask<Array<CallTally>>({ op: "run", slots, at, until, intervalMs: CALL_INTERVAL_MS, apiUrl: api.url })
        )
      )
      const fleetOutcomes = await outcomesOf("life-on")
      data.lifetimes = Object.fromEntries(slots.map((slot, i) => {
        const times = requestsOf(slot, 0, until).map((r) => r.time)
        return [slot, {
          requests: times.length,
          bursts: bursts(times, 1000),
          calls: combine(tallies.map((t) => t[i]!)),
          ...(slot === "life-on" ? fleetOutcomes : {})
        }]
      }))
      for (const slot of slots) await close(fleetOf, slot)
    }

    // --- 3. a revocation seen by all 20 processes ---
    {
      const slots = ["revoke-on", "revoke-off"]
      await open(fleetOf, "revoke-on", config("revoke-on", "on"))
      await open(fleetOf, "revoke-off", config("revoke-off", "off"))
      const warmAt = soon()
      const warm = await Promise.all(
        fleetOf.map((w) => Promise.all(slots.map((slot) => w.ask<TokenReply>({ op: "token", slot, at: warmAt }))))
      )
      // what one fetch costs here, for the crashed-holder bound: the longest getToken() of these cold processes
      // through the fleet (store round trips, one request, publish) and, for comparison, alone
      data.oneFetchMs = round(max(warm.map((r) => r[0]!.ms)), 1)
      data.oneFetchAloneMs = round(max(warm.map((r) => r[1]!.ms)), 1)
      const revokedAt = Date.now()
      for (const [token, i] of issued) if (slots.includes(i.client)) revoked.add(token)
      const at = soon()
      const tallies = await Promise.all(
        fleetOf.map((w) => w.ask<Array<CallTally>>({ op: "call", slots, at, apiUrl: api.url }))
      )
      const fleetOutcomes = await outcomesOf("revoke-on")
      data.revocation = Object.fromEntries(slots.map((slot, i) => [slot, {
        refreshes: requestsOf(slot, revokedAt).length,
        calls: combine(tallies.map((t) => t[i]!)),
        ...(slot === "revoke-on" ? fleetOutcomes : {})
      }]))
      for (const slot of slots) await close(fleetOf, slot)
    }

    // --- 4. 429 Retry-After: 2, answered once, to the first token request of 20 cold processes ---
    {
      const slots = ["r429-on", "r429-off"]
      const limited = new Set<string>()
      special = (_, client) => {
        if (!slots.includes(client) || limited.has(client)) return undefined
        limited.add(client)
        return {
          status: 429,
          headers: { "retry-after": String(RETRY_AFTER_S) },
          body: { error: "rate_limited" }
        }
      }
      await open(fleetOf, "r429-on", config("r429-on", "on"))
      await open(fleetOf, "r429-off", config("r429-off", "off"))
      const at = soon()
      const replies = await Promise.all(
        fleetOf.map((w) => Promise.all(slots.map((slot) => w.ask<TokenReply>({ op: "token", slot, at }))))
      )
      special = () => undefined
      const fleetOutcomes = await outcomesOf("r429-on")
      data.rateLimit = Object.fromEntries(slots.map((slot, i) => {
        const times = requestsOf(slot).map((r) => r.time).sort((a, b) => a - b)
        const first = times[0] ?? Number.NaN
        const mine = replies.map((r) => r[i]!)
        return [slot, {
          requests: times.length,
          inWindow: times.filter((t) => t > first && t < first + RETRY_AFTER_S * 1000).length,
          gapSeconds: times.length < 2 ? null : round((times[1]! - first) / 1000, 2),
          served: mine.filter((r) => r.token !== undefined).length,
          maxWaitMs: round(max(mine.map((r) => r.ms)), 1),
          errors: mine.flatMap((r) => r.error === undefined ? [] : [r.error]).slice(0, 3),
          ...(slot === "r429-on" ? fleetOutcomes : {})
        }]
      }))
      for (const slot of slots) await close(fleetOf, slot)
    }

    // --- 5. redis-server killed mid-run, then restarted, while 20 processes call tools ---
    {
      const slot = "outage-on"
      await open(fleetOf, slot, config(slot, "on", { lifetime: SHORT_LIFETIME_S, buffer: SHORT_BUFFER_S }))
      const at = soon(500)
      const until = at + OUTAGE_LOAD_MS
      const running = Promise.all(
        fleetOf.map((w) =>
          w.ask<Array<CallTally>>({
            op: "run",
            slots: [slot],
            at,
            until,
            intervalMs: CALL_INTERVAL_MS,
            apiUrl: api.url
          })
        )
      )
      const sleepUntil = (t: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, t - Date.now())))
      await sleepUntil(at + KILL_AT_MS)
      const killedAt = Date.now()
      await redis.kill()
      // after the first refresh, before the restart: what state() says while Redis is down
      await sleepUntil(at + RESTART_AT_MS - 500)
      type State = { sharedCache?: { lastSource?: string; unavailableSince?: number } }
      const during = await Promise.all(fleetOf.map((w) => w.ask<State>({ op: "state", slot })))
      await sleepUntil(at + RESTART_AT_MS)
      const restartedAt = Date.now()
      await redis.restart()
      const tallies = await running
      const after = await Promise.all(fleetOf.map((w) => w.ask<State>({ op: "state", slot })))
      const { failures, outcomes } = await outcomesOf(slot)
      const times = requestsOf(slot, 0, until).map((r) => r.time)
      data.outage = {
        requests: times.length,
        bursts: bursts(times, 1000),
        whileDown: times.filter((t) => t >= killedAt && t < restartedAt).length,
        // the refreshes that began once Redis was back (a refresh that began while it was down may end after)
        afterRestart: burstsOf(times, 1000).filter((b) => b.start >= restartedAt).map((b) => b.count),
        calls: combine(tallies.map((t) => t[0]!)),
        failOpen: outcomes.fail_open ?? 0,
        outcomes,
        failures,
        unavailableDuring: during.filter((s) => s.sharedCache?.unavailableSince !== undefined).length,
        unavailableAfter: after.filter((s) => s.sharedCache?.unavailableSince !== undefined).length,
        lastSourceAfter: Object.fromEntries(
          ["fleet", "endpoint"].map((s) => [s, after.filter((x) => x.sharedCache?.lastSource === s).length])
        )
      }
      await close(fleetOf, slot)
    }

    // --- 6. the lock holder SIGKILLed mid-fetch (the endpoint hangs its request) ---
    {
      const slot = "crash-on"
      const crew = workers.slice(POOL - FLEET)
      let hungAt: number | undefined
      let killed: number | undefined
      special = (record, client) => {
        if (client !== slot || hungAt !== undefined) return undefined
        hungAt = record.time
        killed = Number(record.headers[WORKER_HEADER])
        // the holder is mid-fetch (its request is here, unanswered): kill it now
        setImmediate(() => workers[killed!]?.kill())
        return { hang: true }
      }
      await open(crew, slot, config(slot, "on"))
      const at = soon()
      const replies = await Promise.allSettled(crew.map((w) => w.ask<TokenReply>({ op: "token", slot, at })))
      special = () => undefined
      const fleetOutcomes = await outcomesOf(slot)
      const survivors = replies.flatMap((r) => r.status === "fulfilled" ? [r.value] : [])
      const later = requestsOf(slot).filter((r) => hungAt !== undefined && r.time > hungAt)
      const after = later.map((r) => r.time)
      // each survivor's wait, split at its own token request (if it sent one): before it (the wait for the dead
      // holder, with the store's round trips) and the fetch itself
      const split = crew.flatMap((w, j) => {
        const reply = replies[j]!
        if (reply.status !== "fulfilled") return []
        const own = later.find((r) => r.headers[WORKER_HEADER] === String(w.id))
        const before = own === undefined ? reply.value.ms : own.time - at
        return [{ before, fetch: reply.value.ms - before }]
      })
      data.crash = {
        killedWorker: killed ?? null,
        processesKilled: replies.filter((r) => r.status === "rejected").length,
        nextRequestSeconds: hungAt === undefined || after.length === 0
          ? null
          : round((Math.min(...after) - hungAt) / 1000, 2),
        requestsAfter: after.length,
        served: survivors.filter((r) => r.token !== undefined).length,
        survivors: survivors.length,
        maxWaitMs: round(max(survivors.map((r) => r.ms)), 1),
        maxBeforeOwnRequestMs: round(max(split.map((x) => x.before)), 1),
        maxOwnFetchMs: round(max(split.map((x) => x.fetch)), 1),
        errors: survivors.flatMap((r) => r.error === undefined ? [] : [r.error]).slice(0, 3),
        ...fleetOutcomes
      }
      await close(crew, slot)
    }
  } catch (error) {
    errors.on = error instanceof Error ? error.message.split("\n")[0]! : String(error)
  } finally {
    for (const w of workers) if (w.alive()) w.kill()
    await api.close()
    await redis.close()
    await endpoint.close()
  }
  data.apiRejected = api.rejected()
  data.tokenRequests = endpoint.count

  return result(data, errors, round((Date.now() - started) / 1000, 1))
}

// -----------------------------------------------------------------------------
// the table
// -----------------------------------------------------------------------------

type Outcomes = Readonly<Record<"adopted" | "fetched" | "fetched_after_wait" | "blocked" | "fail_open", number>>

interface Figures {
  readonly micro?: { readonly onUs: number; readonly offUs: number; readonly ratio: number }
  readonly cold?: Record<"off" | "on" | "encrypted", {
    readonly requests: number
    readonly served: number
    readonly distinctTokens: number
    readonly maxWaitMs: number
    readonly outcomes?: Outcomes
  }>
  readonly raw?: Record<
    "clear" | "encrypted",
    { readonly keys: ReadonlyArray<string>; readonly containsToken: boolean }
  >
  readonly lifetimes?: Record<"life-on" | "life-off", {
    readonly requests: number
    readonly bursts: ReadonlyArray<number>
    readonly calls: CallTally
    readonly outcomes?: Outcomes
  }>
  readonly revocation?: Record<"revoke-on" | "revoke-off", {
    readonly refreshes: number
    readonly calls: CallTally
    readonly outcomes?: Outcomes
  }>
  readonly rateLimit?: Record<"r429-on" | "r429-off", {
    readonly requests: number
    readonly inWindow: number
    readonly gapSeconds: number | null
    readonly served: number
    readonly maxWaitMs: number
    readonly outcomes?: Outcomes
  }>
  readonly outage?: {
    readonly requests: number
    readonly bursts: ReadonlyArray<number>
    readonly whileDown: number
    readonly afterRestart: ReadonlyArray<number>
    readonly calls: CallTally
    readonly failOpen: number
    readonly unavailableDuring: number
    readonly unavailableAfter: number
    readonly outcomes: Outcomes
  }
  readonly crash?: {
    readonly nextRequestSeconds: number | null
    readonly requestsAfter: number
    readonly served: number
    readonly survivors: number
    readonly maxWaitMs: number
    readonly maxBeforeOwnRequestMs: number
    readonly maxOwnFetchMs: number
    readonly processesKilled: number
    readonly outcomes?: Outcomes
  }
  readonly poolStartSeconds?: number
  readonly bundled?: boolean
  readonly oneFetchMs?: number
  readonly oneFetchAloneMs?: number
}

const result = (data: Record<string, unknown>, errors: Record<string, string>, wallSeconds: number): ScenarioResult => {
  const f = data as Figures
  const rows: Array<Row> = []
  const row = (label: string, on: Cell | undefined, off: Cell | undefined, goal: string, headline = true) =>
    rows.push({ label, values: { on: on ?? null, off: off ?? null, goal }, headline })
  const checks: Array<boolean | undefined> = []
  const check = (ok: boolean | undefined) => {
    checks.push(ok)
    return ok
  }
  const joined = (list: ReadonlyArray<number> | undefined) => list === undefined ? undefined : list.join(" · ")
  const outcomeRow = (outcomes: Outcomes | undefined) =>
    row(
      "… fleet outcomes (mcp_auth_shared_cache_total): adopted / fetched / fetched after wait / blocked / fail open",
      outcomes === undefined
        ? undefined
        : `${outcomes.adopted} / ${outcomes.fetched} / ${outcomes.fetched_after_wait} / ${outcomes.blocked} / ${outcomes.fail_open}`,
      undefined,
      "–",
      false
    )

  const cold = f.cold
  check(cold === undefined ? undefined : cold.on.requests === 1 && cold.encrypted.requests === 1)
  row(
    `${POOL} processes started together, cold, one getToken() each: token requests`,
    cold === undefined ? undefined : `${cold.on.requests} (encrypted: ${cold.encrypted.requests})`,
    cold?.off.requests,
    `1 (without: ${POOL})`
  )
  row(
    "… callers served / distinct tokens / longest getToken() (ms)",
    cold === undefined
      ? undefined
      : `${cold.on.served} / ${cold.on.distinctTokens} / ${cold.on.maxWaitMs} (encrypted: ${cold.encrypted.served} / ${cold.encrypted.distinctTokens} / ${cold.encrypted.maxWaitMs})`,
    cold === undefined ? undefined : `${cold.off.served} / ${cold.off.distinctTokens} / ${cold.off.maxWaitMs}`,
    `${POOL}`,
    false
  )
  outcomeRow(cold?.on.outcomes)

  const life = f.lifetimes
  check(
    life === undefined
      ? undefined
      : life["life-on"].requests <= 4 && life["life-off"].requests >= 60 && life["life-on"].calls.failed === 0
  )
  row(
    `${FLEET} processes calling tools every ${CALL_INTERVAL_MS} ms over ${LIFETIMES} token lifetimes (${SHORT_LIFETIME_S} s tokens, ${
      LIFETIMES * SHORT_LIFETIME_S
    } s): token requests`,
    life?.["life-on"].requests,
    life?.["life-off"].requests,
    "≤ 4 (without: ≥ 60)"
  )
  row("… failed tool calls", life?.["life-on"].calls.failed, life?.["life-off"].calls.failed, "0")
  row(
    "… token requests per refresh (bursts 1 s apart)",
    joined(life?.["life-on"].bursts),
    joined(life?.["life-off"].bursts),
    "1 each",
    false
  )
  outcomeRow(life?.["life-on"].outcomes)
  row(
    "… tool calls served / longest getHeaders() (ms)",
    life === undefined ? undefined : `${life["life-on"].calls.ok} / ${life["life-on"].calls.maxHeadersMs}`,
    life === undefined ? undefined : `${life["life-off"].calls.ok} / ${life["life-off"].calls.maxHeadersMs}`,
    "–",
    false
  )

  const rev = f.revocation
  check(rev === undefined ? undefined : rev["revoke-on"].refreshes === 1 && rev["revoke-on"].calls.failed === 0)
  row(
    `Revocation seen by all ${FLEET} processes at once (401 → invalidate → retry): token requests`,
    rev?.["revoke-on"].refreshes,
    rev?.["revoke-off"].refreshes,
    `1 (without: ${FLEET})`
  )
  row(
    "… failed tool calls (after the retry) / calls retried",
    rev === undefined ? undefined : `${rev["revoke-on"].calls.failed} / ${rev["revoke-on"].calls.retried}`,
    rev === undefined ? undefined : `${rev["revoke-off"].calls.failed} / ${rev["revoke-off"].calls.retried}`,
    `0 / ${FLEET}`,
    false
  )
  outcomeRow(rev?.["revoke-on"].outcomes)

  const rl = f.rateLimit
  check(rl === undefined ? undefined : rl["r429-on"].inWindow === 0 && rl["r429-on"].served === FLEET)
  row(
    `429 Retry-After: ${RETRY_AFTER_S} to the first of ${FLEET} cold processes: token requests in the ${RETRY_AFTER_S} s after it`,
    rl?.["r429-on"].inWindow,
    rl?.["r429-off"].inWindow,
    "0"
  )
  row(
    "… gap from the 429 to the next token request (s)",
    rl?.["r429-on"].gapSeconds,
    rl?.["r429-off"].gapSeconds,
    `≥ ${RETRY_AFTER_S}`
  )
  row(
    "… token requests in all / callers served / longest getToken() (ms)",
    rl === undefined
      ? undefined
      : `${rl["r429-on"].requests} / ${rl["r429-on"].served} / ${rl["r429-on"].maxWaitMs}`,
    rl === undefined
      ? undefined
      : `${rl["r429-off"].requests} / ${rl["r429-off"].served} / ${rl["r429-off"].maxWaitMs}`,
    `– / ${FLEET} / –`,
    false
  )
  outcomeRow(rl?.["r429-on"].outcomes)

  const out = f.outage
  const sharingResumed = out !== undefined && out.afterRestart.length > 0 && out.afterRestart.every((n) => n === 1)
  check(out === undefined ? undefined : out.calls.failed === 0 && out.failOpen > 0 && sharingResumed)
  row(
    `redis-server killed ${KILL_AT_MS / 1000} s in, restarted ${
      RESTART_AT_MS / 1000
    } s in, ${FLEET} processes calling tools for ${OUTAGE_LOAD_MS / 1000} s: failed tool calls`,
    out?.calls.failed,
    undefined,
    "0"
  )
  row(
    "… token requests per refresh: cold · while Redis was down · after the restart",
    joined(out?.bursts),
    undefined,
    `1 · ${FLEET} (alone) · 1 · 1`
  )
  row(
    "… fail_open counted (mcp_auth_shared_cache_total) / processes whose state() showed sharedCache.unavailableSince while down / after",
    out === undefined ? undefined : `${out.failOpen} / ${out.unavailableDuring} / ${out.unavailableAfter}`,
    undefined,
    `> 0 / ${FLEET} / 0`
  )
  outcomeRow(out?.outcomes)

  const crash = f.crash
  check(
    crash === undefined || crash.nextRequestSeconds === null
      ? undefined
      : crash.nextRequestSeconds < LEASE_S && crash.maxBeforeOwnRequestMs <= WAIT_S * 1000 + TIMEOUT_MS &&
        crash.served === crash.survivors && crash.processesKilled === 1
  )
  row(
    `Lock holder SIGKILLed mid-fetch (${FLEET} cold processes, lease ${LEASE_S} s, wait ${WAIT_S} s): next token request after the hung one (s)`,
    crash?.nextRequestSeconds,
    undefined,
    `< ${LEASE_S}`
  )
  row(
    "… longest wait of a surviving caller before its own token request (ms; an adopting caller: its whole wait)",
    crash?.maxBeforeOwnRequestMs,
    undefined,
    `≤ wait_seconds + one store reply (${WAIT_S * 1000} + timeout_ms ${TIMEOUT_MS})`
  )
  row(
    "… longest wait of a surviving caller in all, and its longest own fetch (ms)",
    crash === undefined ? undefined : `${crash.maxWaitMs} (fetch ${crash.maxOwnFetchMs})`,
    undefined,
    `≤ ${WAIT_S * 1000} + one fetch (${f.oneFetchMs ?? "?"} ms through the fleet in this run; alone ${
      f.oneFetchAloneMs ?? "?"
    } ms)`
  )
  row(
    "… survivors served / token requests after the crash",
    crash === undefined ? undefined : `${crash.served} of ${crash.survivors} / ${crash.requestsAfter}`,
    undefined,
    `${FLEET - 1} of ${FLEET - 1} / ≥ 1`,
    false
  )
  outcomeRow(crash?.outcomes)

  const raw = f.raw
  check(raw === undefined ? undefined : !raw.encrypted.containsToken && raw.encrypted.keys.length > 0)
  row(
    "Raw Redis values (redis-cli SCAN + HGETALL/GET) contain the token: with encryption_key / without",
    raw === undefined ? undefined : `${raw.encrypted.containsToken} / ${raw.clear.containsToken}`,
    undefined,
    "false (without a key: true, stored in clear)"
  )

  const micro = f.micro
  const ratio = micro?.ratio
  check(ratio === undefined ? undefined : ratio <= MICRO_BAR)
  row(
    `Warm getHeaders() in one process (T2-style, median of ${MICRO_REPS} × ${
      MICRO_CALLS.toLocaleString("en-US")
    }, CPU time): shared cache on ÷ off (median of the per-repetition ratios)`,
    ratio,
    undefined,
    `≤ ${MICRO_BAR}×`
  )
  row(
    "… µs of CPU time per call (medians)",
    micro?.onUs,
    micro?.offUs,
    "–",
    false
  )

  const decided = checks.every((c) => c !== undefined)
  const met = decided ? checks.every((c) => c === true) : null
  return {
    id: "Fleet",
    title: "A fleet of processes sharing tokens through Redis (shared_cache)",
    target:
      `${POOL} cold processes → 1 token request; ${FLEET} processes over ${LIFETIMES} lifetimes → ≤ 4 (without ≥ 60), 0 failed; a revocation seen by all → 1 refresh; 429 Retry-After ${RETRY_AFTER_S} → no request for ${RETRY_AFTER_S} s; Redis killed and restarted → 0 failed, fail-open shown, sharing resumes; crashed lock holder → another fetches within the lease, no wait past wait_seconds + one fetch; no token in raw Redis values with a key; warm cost ≤ ${MICRO_BAR}× with the feature on`,
    columns: [
      { key: "on", label: "with shared_cache (Redis)" },
      { key: "off", label: "without" },
      { key: "goal", label: "goal" }
    ],
    rows,
    notApplicable: {},
    errors,
    method: [
      `Every worker is a Node process of its own (\`src/fleet.ts\`${
        f.bundled === true
          ? ", bundled into one file with esbuild so that a process loads in ≈ 0.3 s of CPU instead of ≈ 1.3 s; the same code"
          : ""
      }), with its own Promise-API auth per case (\`createServiceAccountAuth(config)\`; with \`shared_cache: { url }\` the auth opens its own Redis connection): ${POOL} processes are started once (in ${
        f.poolStartSeconds ?? "?"
      } s) and each case gives its auths a \`client_id\` of their own, so each case has its own key in Redis and its own records at the endpoint. An auth is built (\`state()\`: Redis connected) before its case starts; cases start all processes at one wall-clock instant sent ahead over IPC. Before the first case every process fetches one token with and one without the shared cache (another client id), so that "cold" means a cold token cache, not code loaded and compiled for the first time (that costs a process ≈ 1 s of CPU, 50 of them ≈ 25 s on 2 cores).`,
      `The parent runs one \`redis-server\` (\`RedisServer\` from \`@mcp-auth/testing\`: loopback, persistence off), one \`FaultTokenEndpoint\` (the bench's fixed ${TOKEN_LATENCY_MS} ms, random 24-byte tokens, recorded with their expiry) and a tool server that answers 200 only for a token the endpoint issued, not expired and not revoked, else 401. A tool call is \`getHeaders()\` then a POST to it; on a 401 the worker calls \`invalidate(token)\` and retries once with fresh headers (what an MCP transport does); failed = an error or a final status other than 200. Token requests are counted at the endpoint by client id; every worker adds an \`${WORKER_HEADER}\` header to its token requests (through the Promise API's \`httpClient\` option) so the endpoint knows which process sent one. "One fetch" (the crashed-holder comparison) is the longest \`getToken()\` of ${FLEET} cold processes started at once with the cache (the store's round trips, one request, the publish: what a waiter does once its wait is over), measured in the warm-up of the revocation case of the same run; the longest without the cache is shown beside it.`,
      `shared_cache: \`lock_lease_seconds\` ${LEASE_S}, \`wait_seconds\` ${WAIT_S}, \`timeout_ms\` ${TIMEOUT_MS}${
        TIMEOUT_MS === 200
          ? " (the defaults)"
          : " (timeout_ms raised from its default 200 with BENCH_FLEET_TIMEOUT_MS, for a machine busy with other work)"
      }: a store reply later than \`timeout_ms\`, including one late because the process was not scheduled in time, counts as a slow Redis and the process fetches alone; every fail-open is counted per case (outcome rows). Lifetime and outage cases: tokens of ${SHORT_LIFETIME_S} s, \`token_cache_buffer_seconds: ${SHORT_BUFFER_S}\` (background refresh ${
        SHORT_BUFFER_S * 0.8
      }–${SHORT_BUFFER_S} s before expiry), ${
        LIFETIMES * SHORT_LIFETIME_S
      } s of load = ${LIFETIMES} lifetimes: each process needs the cold token and ${LIFETIMES} refreshes without the cache. The on and off auths of the lifetime, revocation and 429 cases run side by side in the same ${FLEET} processes. "Per refresh": the endpoint's request times grouped into bursts (a gap over 1 s starts the next).`,
      `Revocation: all ${FLEET} processes warm with the fleet's token (without: each its own), then the tool server revokes them and all processes call at once. With the cache, the first \`invalidate\` deletes the stored token if it is still the rejected one (compare-and-delete), one process takes the lock and fetches, the others adopt its publish.`,
      `429: the first token request of each client gets \`429 Retry-After: ${RETRY_AFTER_S}\`, the rest tokens. With the cache that request is the lock holder's: it retries after ${RETRY_AFTER_S} s (the provider honours Retry-After) while the others wait for its publish; a failure that outlasts the retries is stored as a block every process waits out. Without, the other ${
        FLEET - 1
      } processes request at once.`,
      `Redis outage: ${OUTAGE_LOAD_MS / 1000} s of load, \`RedisServer.kill()\` (SIGKILL) ${
        KILL_AT_MS / 1000
      } s into it, \`restart()\` (same port, empty) ${RESTART_AT_MS / 1000} s in; the first refresh (≈ ${
        SHORT_LIFETIME_S - SHORT_BUFFER_S
      } s in) finds Redis down and every process fetches alone (fail open); \`state()\` is read on every process just before the restart and after the load; the metric is each process's \`mcp_auth_shared_cache_total{outcome="fail_open"}\`, summed.`,
      `Crashed holder: ${FLEET} cold processes; the endpoint never answers the first request and the parent SIGKILLs the process that sent it (known by its header) at once, so it dies holding the lock. The survivors wait for a publish up to \`wait_seconds\`, then read again and fetch themselves (each at most one request; one that reads another's publish first adopts it); the lock's lease (${LEASE_S} s) would free it for the next fetch otherwise. Each survivor's wait is split at its own token request (matched by its header): the verdict bounds the part before it (the wait for the dead holder plus the store's round trips) by \`wait_seconds\` + \`timeout_ms\` (the bound the provider puts on that wait); the whole wait is shown beside one fetch of this run, since on a loaded machine a fetch's own time varies by hundreds of ms.`,
      "Raw values: after the cold case, `redis-cli --scan` over each case's prefix, `HGETALL` / `GET` of every key, searched for every token the endpoint issued to that client. Without `encryption_key` the token hash holds the token in clear (`d` field, JSON): anyone who can read the Redis keys can use the tokens until they expire.",
      `Warm cost: two auths in one worker process (one with \`shared_cache\`, one without), each warm; ${MICRO_REPS} interleaved repetitions (order alternating) of ${
        MICRO_CALLS.toLocaleString("en-US")
      } sequential \`await auth.getHeaders()\` after 5 warm-up rounds, timed in process CPU time (user + system, \`process.cpuUsage()\`) rather than wall time: on this shared machine a loop of a few milliseconds is descheduled at random, which made wall-time medians bimodal; the figure is the median of the per-repetition ratios (each pair measured back to back), the µs row the medians. A cache hit never touches Redis, so the ratio should be ≈ 1.`
    ],
    verdict: {
      ours: [
        cold === undefined ? undefined : `cold ${POOL}: ${cold.on.requests} vs ${cold.off.requests}`,
        life === undefined
          ? undefined
          : `${LIFETIMES} lifetimes: ${life["life-on"].requests} vs ${life["life-off"].requests} (failed ${
            life["life-on"].calls.failed
          })`,
        rev === undefined ? undefined : `revocation: ${rev["revoke-on"].refreshes} vs ${rev["revoke-off"].refreshes}`,
        rl === undefined ? undefined : `429: ${rl["r429-on"].inWindow} requests in ${RETRY_AFTER_S} s`,
        out === undefined
          ? undefined
          : `Redis outage: ${out.calls.failed} failed, fail_open ${out.failOpen}, after restart ${
            joined(out.afterRestart)
          }`,
        crash === undefined ?
          undefined :
          `crashed holder: next fetch ${crash.nextRequestSeconds} s, max wait ${round(crash.maxWaitMs / 1000, 2)} s`,
        raw === undefined ? undefined : `token in raw Redis: ${raw.encrypted.containsToken} (encrypted)`,
        ratio === undefined ? undefined : `warm cost ${ratio}×`
      ].filter((s) => s !== undefined).join("; "),
      met
    },
    data,
    wallSeconds
  }
}

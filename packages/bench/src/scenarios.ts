/**
 * The child side of every scenario: build the peer, wait for the go signal, drive it, report. Counting token
 * requests is the parent's job (its endpoints record every request); the child reports what its callers saw.
 */
import * as util from "node:util"
import { loadPeer } from "./peers/index.js"
import type { PeerClient } from "./peers/Peer.js"
import { driversOf, sleep } from "./peers/Peer.js"
import { CLIENT_ID, CLIENT_SECRET, type Job, type PeerOptions } from "./protocol.js"

export interface ChildContext {
  readonly job: Job
  /** Signals the parent that setup is done and waits for the go signal. */
  readonly ready: () => Promise<void>
  /**
   * Reports one repetition's measurement and waits for the parent: true = measure another repetition (the parent
   * interleaves repetitions across children), false = stop.
   */
  readonly sample: (data: unknown) => Promise<boolean>
  /** Records "now" under a name (the parent splits the endpoint's records by these). */
  readonly mark: (name: string) => Promise<void>
}

const num = (job: Job, key: string, fallback: number): number => {
  const value = job.params[key]
  return typeof value === "number" ? value : fallback
}

const makeClient = async (job: Job, endpoint: string, extra: Partial<PeerOptions> = {}): Promise<PeerClient> => {
  const peer = await loadPeer(job.peer)
  const found = job.endpoints[endpoint]
  if (found === undefined) throw new Error(`no endpoint ${endpoint}`)
  return peer.create({ endpoint: found, windowMs: num(job, "windowMs", 300_000), ...extra })
}

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("run with --expose-gc")
  collect()
  collect()
}

const describeError = (error: unknown): { readonly errorClass: string; readonly message: string } => {
  if (!(error instanceof Error)) return { errorClass: typeof error, message: String(error).slice(0, 160) }
  const tag = (error as { _tag?: unknown })._tag
  const name = error.constructor.name
  return {
    errorClass: typeof tag === "string" && tag !== name ? `${name} (${tag})` : name,
    message: error.message.replace(/\s+/g, " ").slice(0, 160)
  }
}

/** Whether a secret shows up in `util.inspect(err, {depth: Infinity, showHidden: true})` or `JSON.stringify(err)`. */
const leakCheck = async (job: Job, error: unknown) => {
  const needles = [CLIENT_SECRET, Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString("base64")]
  if (job.peer === "google") {
    // the service account's private key is google's secret: look for a slice of its base64 body
    const { privateKeyPem } = await import("./peers/google.js")
    needles.push(privateKeyPem.split("\n").slice(2, 3).join(""))
  }
  const found = (text: string) => needles.some((needle) => text.includes(needle))
  const inspected = util.inspect(error, { depth: Infinity, showHidden: true })
  let json: string | undefined
  let jsonThrows = false
  try {
    json = JSON.stringify(error)
  } catch {
    jsonThrows = true
  }
  return {
    ...describeError(error),
    secretInInspect: found(inspected),
    secretInJson: jsonThrows ? "throws" : json !== undefined && found(json)
  }
}

const burstSummary = (result: Awaited<ReturnType<ReturnType<typeof driversOf>["burst"]>>) => ({
  ok: result.ok,
  failed: result.failed,
  distinctTokens: result.distinctTokens,
  elapsedMs: Math.round(result.elapsedMs),
  ...(result.error === undefined ? {} : { error: describeError(result.error) })
})

export const runScenario = async (context: ChildContext): Promise<unknown> => {
  const { job, mark, ready, sample } = context
  switch (job.scenario) {
    case "t1": {
      const sizes = job.params.sizes as ReadonlyArray<number>
      const connections = job.params.connections
      if (typeof connections === "number") {
        // see startSdkHerd: bound the connections of this child's global fetch (requests are unaffected)
        const Undici = await import("@effect/platform-node/Undici")
        Undici.setGlobalDispatcher(new Undici.Agent({ connections }))
      }
      const clients = await Promise.all(sizes.map((n) => makeClient(job, `n${n}`)))
      await ready()
      const out: Record<string, unknown> = {}
      for (const [i, n] of sizes.entries()) {
        out[`n${n}`] = burstSummary(await driversOf(clients[i]!).burst(n, 60_000))
      }
      await Promise.all(clients.map((c) => c.close()))
      return out
    }

    case "t2": {
      const n = num(job, "calls", 20_000)
      const client = await makeClient(job, "main")
      const drivers = driversOf(client)
      await client.header()
      // warm-up, so the optimizing compiler has run; no gc() between repetitions: a forced full GC shrinks the
      // young generation and penalizes whichever code allocates most for a while after
      for (let i = 0; i < 5; i++) {
        await drivers.loop(n)
        await drivers.floor(n)
      }
      const tokenLoop = async (): Promise<number> => {
        let sink = ""
        const start = process.hrtime.bigint()
        for (let k = 0; k < n; k++) sink = await client.token()
        if (sink.length === 0) throw new Error("empty token")
        return Number(process.hrtime.bigint() - start) / n / 1000
      }
      // secondary for the Promise API: getToken() instead of getHeaders()
      const withToken = job.peer === "ours-promise"
      if (withToken) { for (let i = 0; i < 5; i++) await tokenLoop() }
      // secondary for ours in-fiber: the synchronous accessor
      const loopSync = drivers.loopSync
      if (loopSync !== undefined) { for (let i = 0; i < 5; i++) await loopSync(n) }
      await ready()
      // one repetition per go: the parent interleaves repetitions across all peers, so load from outside the
      // benchmark hits every peer alike
      let more = true
      while (more) {
        const usPerCall = (await drivers.loop(n)) / n / 1000
        const floorUs = (await drivers.floor(n)) / n / 1000
        const syncUs = loopSync === undefined ? undefined : (await loopSync(n)) / n / 1000
        more = await sample({
          usPerCall,
          floorUs,
          ...(withToken ? { tokenOnly: await tokenLoop() } : {}),
          ...(syncUs === undefined ? {} : { syncUs })
        })
      }
      await client.close()
      return {}
    }

    case "t3": {
      const n = num(job, "callers", 100)
      const deadlineMs = num(job, "deadlineMs", 10_000)
      const client = await makeClient(job, "main")
      await ready()
      await mark("start")
      const result = await driversOf(client).burst(n, deadlineMs)
      await client.close()
      return burstSummary(result)
    }

    case "t4": {
      const client = await makeClient(job, "main")
      const drivers = driversOf(client)
      await ready()
      await mark("wave1")
      // generous deadlines: this scenario counts requests, and a caller still retrying when wave 2 starts would be
      // counted there
      const first = await drivers.burst(num(job, "callers", 100), 60_000)
      await mark("wave2")
      const second = await drivers.burst(num(job, "more", 10), 60_000)
      await mark("end")
      await client.close()
      return {
        wave1: burstSummary(first),
        wave2: burstSummary(second),
        error: first.error === undefined ? undefined : await leakCheck(job, first.error)
      }
    }

    case "t6": {
      const client = await makeClient(job, "main")
      if (client.rejected === undefined && client.drivers === undefined) {
        await ready()
        await client.close()
        return { unsupported: true }
      }
      const drivers = driversOf(client)
      const n = num(job, "callers", 100)
      const first = await client.token()
      await ready()
      await mark("a")
      const a = await drivers.rejectWave(first, n, 0)
      const second = await client.token()
      // waves 1.2 s apart: a client may rate-limit 401-driven drops (ours: one per second)
      const gap = num(job, "gapMs", 1200)
      await sleep(gap)
      await mark("b")
      const b = await drivers.rejectWave(second, n, num(job, "staggerMs", 2.5))
      await sleep(gap)
      await mark("c")
      // late 401s carrying `second`, which wave b already replaced
      const c = await drivers.rejectWave(second, num(job, "late", 10), 0)
      await mark("end")
      await client.close()
      return { a, b, c }
    }

    case "t7":
    case "t11": {
      const client = await makeClient(job, "main", { serverRejectsExpired: true })
      await ready()
      await mark("cold")
      await client.token() // the cold start
      const waitersBefore = client.waiters === undefined ? undefined : await client.waiters()
      await mark("steady")
      const steady = await driversOf(client).steady({
        workers: num(job, "workers", 4),
        intervalMs: num(job, "intervalMs", 20),
        durationMs: num(job, "durationMs", 12_000),
        slowMs: num(job, "slowMs", 25)
      })
      await mark("end")
      const waiters = client.waiters === undefined || waitersBefore === undefined
        ? undefined
        : (await client.waiters()) - waitersBefore
      await client.close()
      return { ...steady, waiters }
    }

    case "t9": {
      const k = num(job, "providers", 50)
      const clients = await Promise.all(
        Array.from({ length: k }, (_, i) => makeClient(job, "main", { clientId: `bench-client-${i}` }))
      )
      await ready()
      // each client's scheduled lead is read as soon as its own token is in
      const refreshLeads = await Promise.all(clients.map(async (c) => {
        await c.token()
        return c.refreshLead === undefined ? undefined : await c.refreshLead()
      }))
      await mark("cold")
      // the load runs long enough for every client's first proactive refresh (only the first one is used)
      const end = Date.now() + num(job, "durationMs", 4500)
      await Promise.all(clients.map(async (client) => {
        while (Date.now() < end) {
          await client.header()
          await sleep(num(job, "intervalMs", 10))
        }
      }))
      await mark("end")
      await Promise.all(clients.map((c) => c.close()))
      return { refreshLeads }
    }

    case "memory": {
      const total = num(job, "total", 1_000_000)
      const baseline = num(job, "baseline", 1000)
      const client = await makeClient(job, "main")
      const drivers = driversOf(client)
      await ready()
      await drivers.loop(baseline)
      gc()
      const before = process.memoryUsage().heapUsed
      const start = performance.now()
      await drivers.loop(total - baseline)
      const elapsedMs = performance.now() - start
      gc()
      const after = process.memoryUsage().heapUsed
      // one more million: growth that keeps going is a leak, a one-off step is warm-up (compiled code, caches)
      await drivers.loop(total)
      gc()
      const afterTwice = process.memoryUsage().heapUsed
      await client.close()
      return { before, after, afterTwice, elapsedMs }
    }

    case "many": {
      const { runMany } = await import("./many.js")
      return runMany(context)
    }

    case "e1":
    case "e2": {
      const { runMcp } = await import("./mcp.js")
      return runMcp(context)
    }
  }
}

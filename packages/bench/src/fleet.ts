/**
 * A worker process of the Fleet scenario (issue 15): holds Promise-API auths (`createServiceAccountAuth`), one per
 * "slot", and runs the parent's commands on them (see `fleetProtocol.ts`). Every token request it sends carries
 * {@link WORKER_HEADER}, so the parent's endpoint knows which process sent it (the crashed-holder case kills that one).
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { createServiceAccountAuth, type ServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import { type CallTally, type Command, type Reply, type Request, WORKER_HEADER } from "./fleetProtocol.js"
import { median } from "./stats.js"

const workerId = process.env.FLEET_WORKER_ID ?? "?"

const send = (message: Reply): void => {
  if (process.send === undefined) throw new Error("fleet.ts must be started with an IPC channel")
  process.send(message)
}

/** The token endpoint's HTTP client of every auth in this process: the default one, plus the worker header. */
const httpClient = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, HttpClient.mapRequest(HttpClientRequest.setHeader(WORKER_HEADER, workerId)))
).pipe(Layer.provide(TokenHttpClient.layer()))

/** Why the store failed (`operation: reason`, cumulative), from the providers' "fetching locally" warnings. */
const failOpenReasons: Record<string, number> = {}
const logger = {
  debug: () => undefined,
  info: () => undefined,
  error: () => undefined,
  warn: (message: string, fields?: Record<string, unknown>) => {
    if (!message.startsWith("Shared token store")) return
    const reason = `${String(fields?.operation ?? "?")}: ${String(fields?.reason ?? "?").slice(0, 80)}`
    failOpenReasons[reason] = (failOpenReasons[reason] ?? 0) + 1
  }
}

const slots = new Map<string, ServiceAccountAuth>()
const slotOf = (slot: string): ServiceAccountAuth => {
  const auth = slots.get(slot)
  if (auth === undefined) throw new Error(`no slot ${slot}`)
  return auth
}

const sleepUntil = (at: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))

const messageOf = (error: unknown): string =>
  (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).replace(/\s+/g, " ").slice(0, 200)

interface MutableTally {
  ok: number
  failed: number
  retried: number
  maxHeadersMs: number
  errors: Array<string>
}

const tally = (): MutableTally => ({ ok: 0, failed: 0, retried: 0, maxHeadersMs: 0, errors: [] })

/**
 * One tool call: `getHeaders()`, then the request to the parent's API; on a 401, `invalidate(token)` and one retry
 * with fresh headers (what an MCP transport does). Failed: any error, or a status other than 200 in the end.
 */
const toolCall = async (auth: ServiceAccountAuth, apiUrl: string, into: MutableTally): Promise<void> => {
  const headers = async () => {
    const started = performance.now()
    const result = await auth.getHeaders()
    into.maxHeadersMs = Math.max(into.maxHeadersMs, performance.now() - started)
    return result
  }
  const post = async (h: Record<string, string>) => {
    const response = await fetch(apiUrl, { method: "POST", headers: h })
    await response.arrayBuffer()
    return response.status
  }
  try {
    const first = await headers()
    let status = await post(first)
    if (status === 401) {
      await auth.invalidate(first.Authorization!.replace(/^Bearer /, ""))
      status = await post(await headers())
      if (status === 200) into.retried += 1
    }
    if (status === 200) into.ok += 1
    else {
      into.failed += 1
      if (into.errors.length < 3) into.errors.push(`status ${status}`)
    }
  } catch (error) {
    into.failed += 1
    if (into.errors.length < 3) into.errors.push(messageOf(error))
  }
}

const sharedCacheCounters = (): Record<string, number> =>
  Effect.runSync(Effect.map(Metric.snapshot, (pairs) => {
    const out: Record<string, number> = {}
    for (const pair of pairs) {
      if (pair.metricKey.name !== "mcp_auth_shared_cache_total" || !MetricState.isCounterState(pair.metricState)) {
        continue
      }
      const labels = Object.fromEntries(pair.metricKey.tags.map((tag) => [tag.key, tag.value]))
      out[`${labels.provider ?? "?"}/${labels.outcome ?? "?"}`] = Number(pair.metricState.count)
    }
    return out
  }))

const run = async (command: Command): Promise<unknown> => {
  switch (command.op) {
    case "open": {
      const auth = createServiceAccountAuth(command.config, {
        httpClient,
        logger,
        logLevel: "warning",
        name: command.slot
      })
      slots.set(command.slot, auth)
      await auth.state()
      return null
    }
    case "token": {
      const auth = slotOf(command.slot)
      await sleepUntil(command.at)
      const started = performance.now()
      try {
        const token = (await auth.getToken()).accessToken
        return { token, ms: performance.now() - started }
      } catch (error) {
        return { error: messageOf(error), ms: performance.now() - started }
      }
    }
    case "call": {
      await sleepUntil(command.at)
      return Promise.all(command.slots.map(async (slot) => {
        const into = tally()
        await toolCall(slotOf(slot), command.apiUrl, into)
        return into satisfies CallTally
      }))
    }
    case "run": {
      await sleepUntil(command.at)
      return Promise.all(command.slots.map(async (slot) => {
        const auth = slotOf(slot)
        const into = tally()
        // a random phase, so the workers' calls do not arrive in lockstep
        let next = command.at + Math.random() * command.intervalMs
        while (next < command.until) {
          await sleepUntil(next)
          await toolCall(auth, command.apiUrl, into)
          next += command.intervalMs
        }
        return into satisfies CallTally
      }))
    }
    case "state":
      return slotOf(command.slot).state()
    case "metrics":
      return { counters: sharedCacheCounters(), reasons: { ...failOpenReasons } }
    case "close": {
      const auth = slots.get(command.slot)
      slots.delete(command.slot)
      await auth?.close()
      return null
    }
    case "micro": {
      const auths = command.slots.map(slotOf)
      /**
       * µs of this process's CPU time (user + system) per call: unlike wall time, it leaves out the time the process
       * waits to be scheduled, which on a shared machine hits a few-millisecond loop at random.
       */
      const loop = async (auth: ServiceAccountAuth): Promise<number> => {
        let sink = ""
        const start = process.cpuUsage()
        for (let i = 0; i < command.calls; i++) sink = (await auth.getHeaders()).Authorization!
        const used = process.cpuUsage(start)
        if (sink.length === 0) throw new Error("empty header")
        return (used.user + used.system) / command.calls
      }
      for (const auth of auths) await auth.getHeaders()
      // warm-up, so the optimizing compiler has run
      for (let i = 0; i < 5; i++) for (const auth of auths) await loop(auth)
      const samples: Array<Array<number>> = auths.map(() => [])
      for (let rep = 0; rep < command.reps; rep++) {
        // alternate the order, so neither slot always runs first
        const order = rep % 2 === 0 ? auths.map((_, i) => i) : auths.map((_, i) => auths.length - 1 - i)
        for (const i of order) samples[i]!.push(await loop(auths[i]!))
      }
      // each repetition's pair was measured back to back: its ratio cancels slower drifts of the machine's load
      const ratios = samples[0]!.map((first, rep) => first / samples[1]![rep]!)
      return { samples, medians: samples.map(median), medianRatio: median(ratios) }
    }
  }
}

process.on("message", (message: Request) => {
  run(message.command).then(
    (data) => send({ type: "reply", id: message.id, data }),
    (error: unknown) => send({ type: "failed", id: message.id, message: messageOf(error) })
  )
})
process.on("disconnect", () => process.exit(0))
send({ type: "ready" })

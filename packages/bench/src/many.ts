/**
 * Child side of the many-providers scenario: N providers (each its own service account) in one process, against one
 * loopback token endpoint. One child per (API, N), so every heap figure is that child's own.
 *
 * - `promise`: N × `createServiceAccountAuth(config)`; the header resolution is `await auth.getHeaders()`.
 * - `shared`: one `ManagedRuntime` holding one `HttpClient`; N × `TokenProvider.make` + `AuthHeaders.make`, each in its
 *   own `Scope`; the header resolution is `yield* auth.forRequest(context)` inside one fiber.
 * - `pieces`: the shared runtime's per-provider parts built alone, N times each (for the per-piece breakdown).
 */
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as MetricLabel from "effect/MetricLabel"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import { CLIENT_SECRET, MANY_WARM_UP, SCOPE } from "./protocol.js"
import type { ChildContext } from "./scenarios.js"
import { median } from "./stats.js"

/** What one child reports. Bytes and µs. */
export interface ManyResult {
  readonly n: number
  /**
   * Heap used (after gc): before the first provider; with the first one, warm, and after `MANY_WARM_UP` more (ids not among the N) were built, used
   * and closed (modules, the shared parts and compiled code in place); with all N.
   */
  readonly heapBefore: number
  readonly heapAfterOne: number
  readonly heapAfterN: number
  readonly rssBefore: number
  readonly rssAfterN: number
  /** µs per warm header resolution on provider 0 alone, and cycling over all N (medians of `reps`). */
  readonly singleUs: number
  readonly acrossUs: number
  /**
   * `shared` only: the same through the synchronous accessor,
   * `(auth.peekRecord() ?? AuthHeaders.toRecord(yield* auth.forRequest(context))).Authorization`.
   */
  readonly singleAccessorUs?: number | undefined
  readonly acrossAccessorUs?: number | undefined
  /** Active resources keeping the event loop alive, by type, before any provider and once the N are idle. */
  readonly resourcesBefore: Readonly<Record<string, number>>
  readonly resourcesIdle: Readonly<Record<string, number>>
  /** `pieces` only: heap bytes per piece built alone. */
  readonly pieces?: Readonly<Record<string, number>> | undefined
}

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("run with --expose-gc")
  collect()
  collect()
}

/**
 * Heap used after `gc()`, taken in a task of its own: objects a `WeakRef` was read from stay alive until the end of the
 * job that read them, so measuring inside that job would count them.
 */
const heap = async (): Promise<number> => {
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  return process.memoryUsage().heapUsed
}

const resources = (): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const name of process.getActiveResourcesInfo()) out[name] = (out[name] ?? 0) + 1
  return out
}

const configOf = (tokenUrl: string, i: number) => ({
  client_id: `many-client-${i}`,
  client_secret: CLIENT_SECRET,
  token_url: tokenUrl,
  scopes: [SCOPE],
  allow_insecure_http: true
})

/** Runs `f` over `[from, to)` in chunks of at most `width` concurrent calls. */
const chunked = async (from: number, to: number, width: number, f: (i: number) => Promise<unknown>) => {
  for (let start = from; start < to; start += width) {
    await Promise.all(Array.from({ length: Math.min(width, to - start) }, (_, k) => f(start + k)))
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * A driver over N providers: build provider i (and fetch its token), close it, time `calls` resolutions over providers
 * [0, m).
 */
interface Fleet {
  readonly add: (i: number) => Promise<void>
  readonly remove: (i: number) => Promise<void>
  readonly time: (m: number, calls: number) => Promise<number>
  /** The same through the synchronous accessor, where the API has one. */
  readonly timeAccessor?: ((m: number, calls: number) => Promise<number>) | undefined
  readonly close: () => Promise<void>
}

/** Providers 0 … m − 1 as a packed array, made before the clock starts (the timed loop indexes it). */
const firstOf = <A>(fleet: ReadonlyMap<number, A>, m: number): ReadonlyArray<A> =>
  Array.from({ length: m }, (_, i) => fleet.get(i)!)

const promiseFleet = async (tokenUrl: string): Promise<Fleet> => {
  const { createServiceAccountAuth } = await import("@mcp-auth/client/ServiceAccountAuth")
  const auths = new Map<number, ReturnType<typeof createServiceAccountAuth>>()
  return {
    add: async (i) => {
      const auth = createServiceAccountAuth(configOf(tokenUrl, i))
      auths.set(i, auth)
      await auth.getHeaders()
    },
    remove: async (i) => {
      await auths.get(i)!.close()
      auths.delete(i)
    },
    time: async (m, calls) => {
      const list = firstOf(auths, m)
      let sink = ""
      const start = process.hrtime.bigint()
      for (let k = 0, i = 0; k < calls; k++) {
        sink = (await list[i]!.getHeaders()).Authorization!
        if (++i === m) i = 0
      }
      const elapsed = Number(process.hrtime.bigint() - start)
      if (sink.length === 0) throw new Error("empty header")
      return elapsed / calls / 1000
    },
    close: async () => {
      await Promise.all(Array.from(auths.values(), (auth) => auth.close()))
    }
  }
}

const sharedRuntime = () =>
  ManagedRuntime.make(Layer.merge(TokenHttpClient.layer(), Logger.minimumLogLevel(LogLevel.Warning)))

const sharedFleet = async (tokenUrl: string): Promise<Fleet> => {
  const runtime = sharedRuntime()
  const context = RequestContext.make("http://127.0.0.1/mcp", "POST")
  const auths = new Map<number, AuthHeaders.AuthHeaders>()
  const scopes = new Map<number, Scope.CloseableScope>()
  return {
    add: (i) =>
      runtime.runPromise(Effect.gen(function*() {
        const scope = yield* Scope.make()
        scopes.set(i, scope)
        const config = ServiceAccountConfig.decodeSync(configOf(tokenUrl, i))
        const provider = yield* TokenProvider.make(config).pipe(Scope.extend(scope))
        const auth = yield* AuthHeaders.make.pipe(
          Effect.provideService(TokenProvider.TokenProvider, provider),
          Effect.provide(ServiceToken.none)
        )
        auths.set(i, auth)
        yield* auth.forRequest(context)
      })),
    remove: async (i) => {
      await runtime.runPromise(Scope.close(scopes.get(i)!, Exit.void))
      scopes.delete(i)
      auths.delete(i)
    },
    time: (m, calls) =>
      runtime.runPromise(Effect.gen(function*() {
        const list = firstOf(auths, m)
        let sink = ""
        const start = process.hrtime.bigint()
        for (let k = 0, i = 0; k < calls; k++) {
          sink = Redacted.value((yield* list[i]!.forRequest(context)).headers[0]![1])
          if (++i === m) i = 0
        }
        const elapsed = Number(process.hrtime.bigint() - start)
        if (sink.length === 0) return yield* Effect.dieMessage("empty header")
        return elapsed / calls / 1000
      })),
    timeAccessor: (m, calls) =>
      runtime.runPromise(Effect.gen(function*() {
        const list = firstOf(auths, m)
        let sink = ""
        const start = process.hrtime.bigint()
        for (let k = 0, i = 0; k < calls; k++) {
          const auth = list[i]!
          sink = (auth.peekRecord() ?? AuthHeaders.toRecord(yield* auth.forRequest(context))).Authorization!
          if (++i === m) i = 0
        }
        const elapsed = Number(process.hrtime.bigint() - start)
        if (sink.length === 0) return yield* Effect.dieMessage("empty header")
        return elapsed / calls / 1000
      })),
    close: async () => {
      await runtime.runPromise(
        Effect.forEach(scopes.values(), (scope) => Scope.close(scope, Exit.void), { discard: true })
      )
      await runtime.dispose()
    }
  }
}

/**
 * The parts the shared runtime builds per provider, each built `n` times alone, in heap bytes per instance: what a
 * provider costs apart from its closures. Retained in arrays until measured.
 */
const pieces = async (tokenUrl: string, n: number): Promise<Record<string, number>> => {
  const runtime = sharedRuntime()
  await runtime.runPromise(Effect.void)
  const out: Record<string, number> = {}
  const measure = async (name: string, build: (i: number) => Promise<unknown> | unknown) => {
    const kept: Array<unknown> = []
    // one first, so that code and shared structures are in place
    kept.push(await build(-1))
    const before = await heap()
    for (let i = 0; i < n; i++) kept.push(await build(i))
    out[name] = Math.round(((await heap()) - before) / n)
    if (kept.length !== n + 1) throw new Error("lost a piece")
  }
  await measure("decoded config", (i) => ServiceAccountConfig.decodeSync(configOf(tokenUrl, i)))
  await measure("Scope", () => runtime.runPromise(Scope.make()))
  await measure("Ref", () => runtime.runPromise(Ref.make({ entry: undefined, refreshing: false })))
  const { Metrics } = await import("@mcp-auth/service-account")
  await measure(
    "the metric series of one provider label (token expiry; requests, outcome success)",
    (i) => {
      const labels = [MetricLabel.make("provider", `piece-${i}`)]
      Metrics.tokenExpiry.unsafeUpdate(1, labels)
      const outcome = [...labels, MetricLabel.make("outcome", "success")]
      Metrics.tokenRequests.unsafeUpdate(1, outcome)
      return [labels, outcome]
    }
  )
  await measure("TokenProvider.make, no token", (i) =>
    runtime.runPromise(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const config = ServiceAccountConfig.decodeSync(configOf(tokenUrl, 1_000_000 + i))
      return [scope, yield* TokenProvider.make(config).pipe(Scope.extend(scope))]
    })))
  await runtime.dispose()
  return out
}

export const runMany = async (context: ChildContext): Promise<ManyResult> => {
  const { job, ready } = context
  const n = job.params.n as number
  const api = job.params.api as "promise" | "shared" | "pieces"
  const calls = (job.params.calls as number | undefined) ?? 200_000
  const reps = (job.params.reps as number | undefined) ?? 5
  const tokenUrl = job.endpoints.main!.tokenUrl
  // modules loaded (the shared runtime itself is built with the first provider, and counted)
  const fleet = api === "promise"
    ? await promiseFleet(tokenUrl)
    : api === "shared"
    ? await sharedFleet(tokenUrl)
    : undefined
  await ready()
  const resourcesBefore = resources()
  const heapBefore = await heap()
  const rssBefore = process.memoryUsage().rss
  if (fleet === undefined) {
    return {
      n,
      heapBefore,
      heapAfterOne: heapBefore,
      heapAfterN: heapBefore,
      rssBefore,
      rssAfterN: process.memoryUsage().rss,
      singleUs: 0,
      acrossUs: 0,
      resourcesBefore,
      resourcesIdle: resources(),
      pieces: await pieces(tokenUrl, n)
    }
  }
  await fleet.add(0)
  // warm the code paths on provider 0, then the construction path (built, used, closed), then measure the baseline
  await fleet.time(1, 20_000)
  const warm = (i: number) => n + i
  await chunked(0, MANY_WARM_UP, 200, (i) => fleet.add(warm(i)))
  await chunked(0, MANY_WARM_UP, 200, (i) => fleet.remove(warm(i)))
  const heapAfterOne = await heap()
  await chunked(1, n, 200, fleet.add)
  const heapAfterN = await heap()
  const rssAfterN = process.memoryUsage().rss
  // warm-up of each loop, then interleaved repetitions
  const loops = [
    (m: number) => fleet.time(m, calls),
    ...(fleet.timeAccessor === undefined ? [] : [(m: number) => fleet.timeAccessor!(m, calls)])
  ]
  for (const loop of loops) {
    await loop(1)
    await loop(n)
  }
  const samples = loops.map(() => ({ single: [] as Array<number>, across: [] as Array<number> }))
  for (let r = 0; r < reps; r++) {
    for (const [k, loop] of loops.entries()) {
      samples[k]!.single.push(await loop(1))
      samples[k]!.across.push(await loop(n))
    }
  }
  // idle: tokens fetched, nobody asking; let short-lived handles (sockets' last reads, immediate timers) settle
  await sleep(200)
  const resourcesIdle = resources()
  await fleet.close()
  return {
    n,
    heapBefore,
    heapAfterOne,
    heapAfterN,
    rssBefore,
    rssAfterN,
    singleUs: median(samples[0]!.single),
    acrossUs: median(samples[0]!.across),
    singleAccessorUs: samples[1] === undefined ? undefined : median(samples[1].single),
    acrossAccessorUs: samples[1] === undefined ? undefined : median(samples[1].across),
    resourcesBefore,
    resourcesIdle
  }
}

/**
 * What every peer adapter offers a scenario (child side). The generic drivers below run any peer through its Promise
 * surface; ours in-fiber overrides them with Effect-native versions so that its column really runs inside fibers.
 */
import type { PeerOptions } from "../protocol.js"

export interface BurstResult {
  readonly ok: number
  readonly failed: number
  /** Distinct access tokens handed out to the callers. */
  readonly distinctTokens: number
  /** Milliseconds until the last caller settled. */
  readonly elapsedMs: number
  /** One error a caller got (inspected for secrets by T4). */
  readonly error?: unknown
}

export interface SteadyOptions {
  /** Concurrent callers. */
  readonly workers: number
  /** Pause after each call. */
  readonly intervalMs: number
  readonly durationMs: number
  /** A call slower than this counts as having waited (latency proxy). */
  readonly slowMs: number
}

export interface SteadyResult {
  readonly calls: number
  readonly failed: number
  /** Calls slower than `slowMs`. */
  readonly slow: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly distinctTokens: number
}

export interface WaveResult {
  readonly ok: number
  readonly failed: number
  /** Callers that ended up with a token other than the rejected one. */
  readonly newToken: number
  readonly distinctTokens: number
}

export interface Drivers {
  /** `n` concurrent cold callers, each given up after `deadlineMs`. */
  readonly burst: (n: number, deadlineMs: number) => Promise<BurstResult>
  /** `n` sequential header resolutions; returns elapsed nanoseconds. */
  readonly loop: (n: number) => Promise<number>
  /**
   * The same loop around a call that does nothing but hand back a cached header (an async function returning a
   * constant; in-fiber: \`yield*\` of \`Effect.succeed\`): the floor a header resolution cannot go below.
   */
  readonly floor: (n: number) => Promise<number>
  /**
   * Ours in-fiber only: the same loop through the documented synchronous accessor (`AuthHeaders.peek()`, falling back
   * to `forRequest` when it returns `undefined`), inside the same fiber.
   */
  readonly loopSync?: ((n: number) => Promise<number>) | undefined
  readonly steady: (options: SteadyOptions) => Promise<SteadyResult>
  /** `n` callers reporting a 401 for `token`, the i-th after `i × staggerMs`. */
  readonly rejectWave: (token: string, n: number, staggerMs: number) => Promise<WaveResult>
}

export interface PeerClient {
  /** One header resolution: the `Authorization` value. */
  readonly header: () => Promise<string>
  /** The access token a caller would send. */
  readonly token: () => Promise<string>
  /**
   * What the peer does after a resource server rejected `token` (its invalidate / force-refresh path), resolving to
   * the token to retry with. Undefined when the peer has no such API.
   */
  readonly rejected?: ((token: string) => Promise<string>) | undefined
  readonly close: () => Promise<void>
  /** Effect-native drivers (ours in-fiber). */
  readonly drivers?: Drivers | undefined
  /** Callers that waited for a token fetch, from our `Metrics.waiters` counter (ours only). */
  readonly waiters?: (() => Promise<number>) | undefined
  /** How long before the cached token's expiry its proactive refresh is due (ms), where the peer exposes it. */
  readonly refreshLead?: (() => Promise<number | undefined>) | undefined
}

export interface Peer {
  readonly create: (options: PeerOptions) => Promise<PeerClient>
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const deadline = <A>(promise: Promise<A>, ms: number): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no token within ${ms} ms`)), ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error) => {
        clearTimeout(timer)
        reject(error)
      }
    )
  })

export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

export const summarizeSteady = (
  latencies: Array<number>,
  failed: number,
  slowMs: number,
  tokens: Set<string>
): SteadyResult => {
  latencies.sort((a, b) => a - b)
  return {
    calls: latencies.length + failed,
    failed,
    slow: latencies.filter((ms) => ms > slowMs).length,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    maxMs: latencies.length === 0 ? 0 : latencies[latencies.length - 1]!,
    distinctTokens: tokens.size
  }
}

/** Drivers over the Promise surface, used for every peer except ours in-fiber. */
export const genericDrivers = (client: PeerClient): Drivers => ({
  burst: async (n, deadlineMs) => {
    const start = performance.now()
    let error: unknown = undefined
    const results = await Promise.all(
      Array.from({ length: n }, () =>
        deadline(client.token(), deadlineMs).then(
          (token) => token,
          (e: unknown) => {
            error ??= e
            return undefined
          }
        ))
    )
    const tokens = results.filter((t): t is string => t !== undefined)
    return {
      ok: tokens.length,
      failed: n - tokens.length,
      distinctTokens: new Set(tokens).size,
      elapsedMs: performance.now() - start,
      error
    }
  },
  loop: async (n) => {
    let sink = ""
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) sink = await client.header()
    const elapsed = Number(process.hrtime.bigint() - start)
    if (sink.length === 0) throw new Error("empty header")
    return elapsed
  },
  floor: async (n) => {
    const cached = await client.header()
    const nothing = async () => cached
    let sink = ""
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) sink = await nothing()
    const elapsed = Number(process.hrtime.bigint() - start)
    if (sink.length === 0) throw new Error("empty header")
    return elapsed
  },
  steady: async ({ durationMs, intervalMs, slowMs, workers }) => {
    const end = Date.now() + durationMs
    const latencies: Array<number> = []
    const tokens = new Set<string>()
    let failed = 0
    const worker = async () => {
      while (Date.now() < end) {
        const t0 = performance.now()
        try {
          tokens.add(await client.header())
          latencies.push(performance.now() - t0)
        } catch {
          failed++
        }
        await sleep(intervalMs)
      }
    }
    await Promise.all(Array.from({ length: workers }, worker))
    return summarizeSteady(latencies, failed, slowMs, tokens)
  },
  rejectWave: async (token, n, staggerMs) => {
    const rejected = client.rejected
    if (rejected === undefined) throw new Error("no invalidate / force-refresh API")
    const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
      if (staggerMs > 0) await sleep(i * staggerMs)
      try {
        return await rejected(token)
      } catch {
        return undefined
      }
    }))
    const ok = results.filter((t): t is string => t !== undefined)
    return {
      ok: ok.length,
      failed: n - ok.length,
      newToken: ok.filter((t) => t !== token).length,
      distinctTokens: new Set(ok).size
    }
  }
})

export const driversOf = (client: PeerClient): Drivers => client.drivers ?? genericDrivers(client)

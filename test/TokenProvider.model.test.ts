/**
 * Model-based property test of the token lifecycle: fast-check generates sequences of commands (get, advance the
 * clock, invalidate the current or a stale token, fail the next fetch, bursts of concurrent gets) and runs them
 * against a real TokenProvider over a counting fake endpoint, on the TestClock, checking the invariants after every
 * step.
 */
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient } from "@mcp-auth/testing"
import {
  Cause,
  Clock,
  Effect,
  Exit,
  FastCheck as fc,
  ManagedRuntime,
  Redacted,
  Scope,
  TestClock,
  TestContext
} from "effect"
import { expect, it } from "vitest"

const LIFETIME_S = 100
const BUFFER_S = 30
/** A token is never refreshed earlier than lifetime - lead after it was issued. */
const MIN_REFRESH_INTERVAL_MS = (LIFETIME_S - Math.min(BUFFER_S, LIFETIME_S / 2)) * 1000

interface Model {
  elapsedMs: number
  failures: number
  droppedByInvalidation: number
  handedOut: Array<AccessToken.AccessToken>
}

interface Real {
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<Exit.Exit<A, E>>
  readonly provider: TokenProvider.TokenProvider
  readonly calls: () => Promise<number>
  readonly failNext: { value: boolean }
}

const settle = Effect.repeatN(Effect.yieldNow(), 30)

const checkInvariants = async (model: Model, real: Real) => {
  const requests = await real.calls()
  const windows = Math.floor(model.elapsedMs / MIN_REFRESH_INTERVAL_MS)
  expect(requests).toBeLessThanOrEqual(1 + windows + model.failures + model.droppedByInvalidation)
}

/**
 * Hands out tokens and checks none of them is expired at the instant it is handed out. A get may wait out a
 * cool-down left by a failure, so the clock is moved in small steps while it is pending (and the model told).
 */
const getTokens = async (model: Model, real: Real, n: number) => {
  const fiber = await real.run(
    // a daemon: a plain fork would be interrupted as soon as this run returns
    Effect.forkDaemon(
      Effect.all(Array.from({ length: n }, () => real.provider.get), { concurrency: "unbounded" }).pipe(
        Effect.zip(Clock.currentTimeMillis)
      )
    )
  )
  if (Exit.isFailure(fiber)) throw new Error("fork failed")
  let exit: Exit.Exit<readonly [ReadonlyArray<AccessToken.AccessToken>, number], unknown> | undefined
  for (let step = 0; step < 400 && exit === undefined; step++) {
    await real.run(settle)
    const polled = await real.run(fiber.value.poll)
    if (Exit.isSuccess(polled) && polled.value._tag === "Some") exit = polled.value.value
    else {
      await real.run(TestClock.adjust(100))
      model.elapsedMs += 100
    }
  }
  expect(exit).toBeDefined()
  expect(exit !== undefined && Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(false)
  if (exit !== undefined && Exit.isSuccess(exit)) {
    const [tokens, now] = exit.value
    for (const token of tokens) {
      expect(token.expiresAt).toBeGreaterThan(now)
      model.handedOut.push(token)
    }
    expect(new Set(tokens.map((t) => Redacted.value(t.token))).size).toBeLessThanOrEqual(2)
  }
  await real.run(settle)
}

class Get implements fc.AsyncCommand<Model, Real> {
  check = () => true
  run = async (model: Model, real: Real) => {
    await getTokens(model, real, 1)
    await checkInvariants(model, real)
  }
  toString = () => "get"
}

class Burst implements fc.AsyncCommand<Model, Real> {
  constructor(readonly n: number) {}
  check = () => true
  run = async (model: Model, real: Real) => {
    await getTokens(model, real, this.n)
    await checkInvariants(model, real)
  }
  toString = () => `burst(${this.n})`
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true
  run = async (model: Model, real: Real) => {
    await real.run(Effect.zipRight(TestClock.adjust(this.ms), settle))
    model.elapsedMs += this.ms
    await checkInvariants(model, real)
  }
  toString = () => `advance(${this.ms})`
}

/** Moves the clock to just around the expiry of the last token handed out: where lifecycle bugs live. */
class AdvanceNearExpiry implements fc.AsyncCommand<Model, Real> {
  constructor(readonly offsetMs: number) {}
  check = (model: Readonly<Model>) => model.handedOut.length > 0
  run = async (model: Model, real: Real) => {
    const latest = model.handedOut[model.handedOut.length - 1]!
    const now = await real.run(Clock.currentTimeMillis)
    const ms = Math.max(1, (Exit.isSuccess(now) ? latest.expiresAt - now.value : 0) + this.offsetMs)
    await real.run(Effect.zipRight(TestClock.adjust(ms), settle))
    model.elapsedMs += ms
    await checkInvariants(model, real)
  }
  toString = () => `advanceNearExpiry(${this.offsetMs})`
}

class InvalidateCurrent implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>) => model.handedOut.length > 0
  run = async (model: Model, real: Real) => {
    const latest = model.handedOut[model.handedOut.length - 1]!
    const exit = await real.run(real.provider.invalidate(latest))
    if (Exit.isSuccess(exit) && exit.value._tag === "Dropped") model.droppedByInvalidation++
    await checkInvariants(model, real)
  }
  toString = () => "invalidate(current)"
}

class InvalidateStale implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>) => model.handedOut.length > 0
  run = async (model: Model, real: Real) => {
    const stale = AccessToken.make({ token: "tok-0-never-issued", issuedAt: 0, expiresInSeconds: 1 })
    const before = await real.run(real.provider.state)
    const exit = await real.run(real.provider.invalidate(stale))
    expect(Exit.isSuccess(exit) && exit.value._tag).toBe("NotCurrent")
    const after = await real.run(real.provider.state)
    // a stale invalidation never drops the current token
    if (Exit.isSuccess(before) && Exit.isSuccess(after) && "expiresAt" in before.value) {
      expect("expiresAt" in after.value && after.value.expiresAt).toBe(before.value.expiresAt)
    }
    await checkInvariants(model, real)
  }
  toString = () => "invalidate(stale)"
}

class FailNextFetch implements fc.AsyncCommand<Model, Real> {
  check = () => true
  run = async (_model: Model, real: Real) => {
    real.failNext.value = true
  }
  toString = () => "failNextFetch"
}

const commands = [
  fc.constant(new Get()),
  fc.integer({ min: 2, max: 50 }).map((n) => new Burst(n)),
  // small steps, steps around a lifetime (refresh window, forced window, expiry) and long idle gaps
  fc.oneof(
    fc.integer({ min: 1, max: 2_000 }),
    fc.integer({ min: 60_000, max: 101_000 }),
    fc.integer({ min: 1, max: 300_000 })
  ).map((ms) => new Advance(ms)),
  fc.integer({ min: -2_000, max: 2_000 }).map((ms) => new AdvanceNearExpiry(ms)),
  fc.constant(new InvalidateCurrent()),
  fc.constant(new InvalidateStale()),
  fc.constant(new FailNextFetch())
]

it("the token lifecycle keeps its invariants under any sequence of commands", async () => {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
      const runtime = ManagedRuntime.make(TestContext.TestContext)
      const scope = await runtime.runPromise(Scope.make())
      const model: Model = { elapsedMs: 0, failures: 0, droppedByInvalidation: 0, handedOut: [] }
      const failNext = { value: false }
      const fake = await runtime.runPromise(FakeHttpClient.make((n) =>
        Effect.sync(() => {
          if (failNext.value) {
            failNext.value = false
            model.failures++
            return { status: 500, body: "" }
          }
          return FakeHttpClient.token(n, LIFETIME_S)
        })
      ))
      const config = ServiceAccountConfig.decodeSync({
        client_id: "model",
        client_secret: "model-secret",
        token_url: "https://idp.example.com/token",
        token_cache_buffer_seconds: BUFFER_S,
        retry: { max_attempts: 1 }
      })
      const provider = await runtime.runPromise(
        TokenProvider.make(config, { name: "model" }).pipe(Effect.provide(fake.layer), Scope.extend(scope))
      )
      const real: Real = {
        run: (effect) => runtime.runPromiseExit(effect),
        provider,
        calls: () => runtime.runPromise(fake.calls),
        failNext
      }
      try {
        await fc.asyncModelRun(() => ({ model, real }), cmds)
      } finally {
        await runtime.runPromise(Scope.close(scope, Exit.void))
        await runtime.dispose()
      }
    }),
    { numRuns: 200 }
  )
}, 300_000) // CPU-bound: a liveness bound for a loaded 2-core machine (about 6 s when idle)

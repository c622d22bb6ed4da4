/**
 * The token lifecycle's pure transition function (`internal/lifecycle.ts`), tested directly: no fibers, no clock.
 *
 * - A reference model of the policy (`utils/lifecycleModel.ts`, written from the issue and the `TokenProvider` docs)
 *   predicts the commands of every step of random event sequences.
 * - Invariants over random runs: single flight, only unexpired tokens served (and usable ones, unless no new one can
 *   be had), unusable arrivals never installed and retried as transient, the last resort (a cool-down or a failed
 *   fetch hands out the cached token until it expires), permanent cool-downs (doubling, capped, reset by a success),
 *   invalidate's answers and its once-a-second limit, refreshes only for the current token, close, `lease` agreeing
 *   with `transition`, `describe`.
 * - Examples that read as the policy's documentation, one per fix of issue 11.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  isTransient,
  NetworkError,
  TokenEndpointError,
  type TokenError
} from "@mcp-auth/service-account/ServiceAccountError"
import { Duration, FastCheck as fc } from "effect"
import * as assert from "node:assert/strict"
import * as Lifecycle from "../src/internal/lifecycle.js"
import {
  ARRIVED_LATE,
  drive,
  errorArb,
  errorFactories,
  errorKey,
  isPermanent,
  lifetimeArb,
  Model,
  normalize,
  runArb,
  settings,
  settingsArb,
  token,
  TOKEN_URL,
  tokenValue,
  usableUntil
} from "./utils/lifecycleModel.js"

const RUNS = { fastCheck: { numRuns: 1000 } }

const get: Lifecycle.Event = { _tag: "Get" }

const tags = (step: Lifecycle.Step) => step.commands.filter((c) => c._tag !== "Log").map((c) => c._tag)

const starts = (step: Lifecycle.Step) => step.commands.flatMap((c) => (c._tag === "Start" ? [c.fetch] : []))

const usableAt = (s: Lifecycle.State, now: number) => s.entry !== undefined && now < s.entry.usableUntil

/** The cached token if it has not expired yet (usable or not). */
const notExpired = (s: Lifecycle.State, now: number) =>
  s.entry !== undefined && now < s.entry.token.expiresAt ? s.entry.token : undefined

const coolingDown = (s: Lifecycle.State, now: number) => s.cooldown !== undefined && now < s.cooldown.until

/** Whether `event` ends the fetch in flight without a token to install: it failed, or its token came too late. */
const fetchFailure = (before: Lifecycle.State, event: Lifecycle.Event, now: number) =>
  before.fetch !== undefined && (
    (event._tag === "FetchFailed" && event.id === before.fetch.id) ||
    (event._tag === "FetchSucceeded" && event.id === before.fetch.id && now >= usableUntil(event.token))
  )

/** A little driver: events at explicit instants, the state threaded through. */
const runner = (settingsUsed: Lifecycle.Settings = settings()) => {
  let state = Lifecycle.initial
  let requests = 0
  return {
    at: (now: number, event: Lifecycle.Event) => {
      const step = Lifecycle.transition(state, event, now, settingsUsed)
      requests += starts(step).length
      state = step.state
      return step
    },
    get state() {
      return state
    },
    get requests() {
      return requests
    }
  }
}

const fetchId = (step: Lifecycle.Step) => starts(step)[0]!.id

describe("lifecycle: the transition function against the reference model", () => {
  it.prop("every step emits the commands the model predicts", [settingsArb, runArb], ([s, run]) => {
    const model = new Model(s)
    drive(s, run, ({ event, index, now, step }) => {
      assert.deepStrictEqual(
        normalize(step.commands),
        model.step(event, now),
        `step ${index} (${event._tag} at ${now})`
      )
    })
  }, RUNS)

  it("the model's classification of failures agrees with isTransient", () => {
    for (const make of errorFactories) {
      const error = make(5)
      expect(isPermanent(error), error._tag).toBe(!isTransient(error))
    }
  })
})

// Per-step checks use node:assert: vitest's expect costs ~20 µs a call, too much for 1000 runs of 60 steps.
describe("lifecycle: invariants over random runs", () => {
  it.prop(
    "at most one fetch in flight: no Start while a fetch runs, at most one per step",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, step }) => {
        const started = starts(step)
        assert.ok(started.length <= 1, "two fetches started at once")
        if (before.fetch !== undefined) assert.deepStrictEqual(started, [], `fetch ${before.fetch.id} is in flight`)
        if (started.length === 1) {
          assert.deepStrictEqual(step.state.fetch, started[0])
          assert.ok(started[0]!.id > before.fetches)
        }
      })
    },
    RUNS
  )

  it.prop(
    "a served or settled token has not expired, is the cached one, and is usable unless no new one could be had",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, event, now, step }) => {
        for (const c of step.commands) {
          const handed = c._tag === "Serve" ? c.token : c._tag === "Settle" && c.result._tag === "Token"
            ? c.result.token
            : undefined
          if (handed === undefined) continue
          assert.ok(now < handed.expiresAt, `${c._tag} of an expired token`)
          assert.equal(step.state.entry?.token, handed)
          if (now < usableUntil(handed)) continue
          // in its last second only as the last resort
          if (c._tag === "Serve") {
            // no new token can be had right now: a fetch is already under way, or a cool-down runs
            assert.ok(
              before.fetch !== undefined || coolingDown(before, now),
              "served in its last second while a new token could have been fetched"
            )
          } else {
            assert.ok(
              fetchFailure(before, event, now),
              "settled a fetch that delivered with a token in its last second"
            )
          }
        }
      })
    },
    RUNS
  )

  it.prop(
    "a token unusable on arrival is never installed nor replaces the cached one; it fails the fetch as transient",
    [settingsArb, runArb],
    ([s, run]) => {
      const rejected = new Set<string>()
      drive(s, run, ({ before, event, now, step }) => {
        const arrival = (event._tag === "FetchSucceeded" && before.fetch?.id === event.id) || event._tag === "Adopt"
        if (arrival && now >= usableUntil(event.token)) {
          rejected.add(tokenValue(event.token))
          assert.equal(step.state.entry, before.entry, "an unusable token replaced the cached one")
          if (event._tag === "FetchSucceeded") {
            // arrived_late: retried, so no strike and no permanent cool-down
            assert.ok(step.state.lastError !== undefined && isTransient(step.state.lastError))
            assert.equal(errorKey(step.state.lastError), ARRIVED_LATE)
            assert.equal(step.state.strikes, before.strikes)
            assert.notEqual(step.state.cooldown?.kind, "permanent")
            assert.equal(step.state.fetch, undefined)
          }
        }
        const cached = step.state.entry?.token
        if (cached !== undefined) assert.ok(!rejected.has(tokenValue(cached)), "an unusable token is cached")
      })
    },
    RUNS
  )

  it.prop(
    "the waiters of a failed fetch get the cached token while it has not expired, else the error",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, event, now, step }) => {
        if (!fetchFailure(before, event, now)) return
        const settles = step.commands.flatMap((c) => (c._tag === "Settle" ? [c] : []))
        assert.equal(settles.length, 1)
        assert.equal(settles[0]!.id, before.fetch!.id)
        const result = settles[0]!.result
        const last = notExpired(before, now)
        if (last !== undefined) assert.deepStrictEqual(result, { _tag: "Token", token: last })
        else {
          assert.ok(result._tag === "Error", "a failed fetch settled with a token")
          if (event._tag === "FetchFailed") assert.equal(result.error, event.error)
          else assert.equal(errorKey(result.error), ARRIVED_LATE)
        }
      })
    },
    RUNS
  )

  it.prop(
    "in a cool-down a get without a usable token serves the cached one while it has not expired, starting nothing",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, event, now, step }) => {
        if (
          event._tag !== "Get" || before.closed || !coolingDown(before, now) || usableAt(before, now) ||
          before.fetch !== undefined
        ) return
        const last = notExpired(before, now)
        if (last === undefined) return
        assert.deepStrictEqual(step.commands, [{ _tag: "Serve", token: last }])
        assert.equal(step.state, before)
      })
    },
    RUNS
  )

  it.prop(
    "in a permanent cool-down a get without an unexpired token fails with the same error and starts nothing",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, event, now, step }) => {
        const cooldown = before.cooldown
        if (
          event._tag !== "Get" || before.closed || cooldown === undefined || cooldown.kind !== "permanent" ||
          now >= cooldown.until || notExpired(before, now) !== undefined || before.fetch !== undefined
        ) return
        assert.deepStrictEqual(tags(step), ["Fail"])
        const fail = step.commands.find((c) => c._tag === "Fail")
        assert.equal(fail?._tag === "Fail" && fail.error, cooldown.error)
        assert.equal(step.state, before)
      })
    },
    RUNS
  )

  it.prop(
    "N sequential gets during a permanent cool-down (invalid_scope, …) make 1 request",
    [
      settingsArb.filter((s) => s.cooldownInitialMillis > 0),
      fc.constantFrom(...errorFactories.map((f) => f(0)).filter(isPermanent)),
      fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 100 })
    ],
    ([s, error, gaps]) => {
      const r = runner(s)
      let now = 5_000
      r.at(now, get)
      r.at(now, { _tag: "FetchFailed", id: 1, error, attempts: 1, u: 0.5 })
      const until = now + s.cooldownInitialMillis
      for (const gap of gaps) {
        now = Math.min(until - 1, now + gap)
        assert.deepStrictEqual(tags(r.at(now, get)), ["Fail"])
      }
      expect(r.requests).toBe(1)
      expect(tags(r.at(until, get))).toStrictEqual(["Start", "Join"])
      expect(r.requests).toBe(2)
    },
    RUNS
  )

  it.prop(
    "permanent cool-downs double per consecutive failure, never exceed the cap, and a success resets them",
    [settingsArb, runArb],
    ([s, run]) => {
      // consecutive: since the last success (a transient failure in between neither counts nor resets)
      let consecutive = 0
      let previous = 0
      drive(s, run, ({ before, event, now, step }) => {
        // an adopted token that is usable is a success too
        if (event._tag === "Adopt" && !step.state.closed && now < usableUntil(event.token)) consecutive = 0
        // judged by the fetch's outcome, not the settle: a failed fetch may settle with the cached token
        const ours = (event._tag === "FetchSucceeded" || event._tag === "FetchFailed") && before.fetch?.id === event.id
        if (ours) {
          if (event._tag === "FetchSucceeded" && now < usableUntil(event.token)) {
            consecutive = 0
            assert.equal(step.state.cooldown, undefined)
          } else if (event._tag === "FetchFailed" && isPermanent(event.error)) {
            consecutive++
            const length = (step.state.cooldown?.until ?? now) - now
            assert.ok(length <= s.cooldownMaxMillis, `a ${length} ms cool-down`)
            if (s.cooldownInitialMillis === 0) assert.equal(step.state.cooldown, undefined)
            else {
              assert.equal(step.state.cooldown?.kind, "permanent")
              assert.equal(step.state.cooldown?.error, event.error)
              const expected = consecutive === 1
                ? s.cooldownInitialMillis
                : Math.min(s.cooldownMaxMillis, 2 * previous)
              assert.equal(length, expected, `permanent failure ${consecutive}`)
            }
            previous = length
          }
        }
        assert.equal(step.state.strikes, consecutive)
      })
    },
    RUNS
  )

  it.prop(
    "invalidate drops at most one token per second and answers Dropped / NotCurrent / Throttled correctly",
    [settingsArb, runArb],
    ([s, run]) => {
      let lastDrop = -Infinity
      drive(s, run, ({ before, event, now, step }) => {
        if (event._tag !== "Invalidate") {
          assert.ok(step.state.entry !== undefined || before.entry === undefined, `${event._tag} dropped the token`)
          return
        }
        const replies = step.commands.flatMap((c) => (c._tag === "Reply" ? [c.result] : []))
        assert.equal(replies.length, 1)
        const reply = replies[0]!
        const current = before.entry !== undefined && tokenValue(before.entry.token) === tokenValue(event.rejected)
        if (!current) {
          assert.deepStrictEqual(reply, { _tag: "NotCurrent" })
          assert.equal(step.state.entry, before.entry)
        } else if (now - lastDrop < 1000 && before.entry!.token.issuedAt >= lastDrop) {
          assert.deepStrictEqual(reply, { _tag: "Throttled", retryAfterMillis: lastDrop + 1000 - now })
          assert.ok(reply._tag === "Throttled" && reply.retryAfterMillis > 0 && reply.retryAfterMillis <= 1000)
          assert.equal(step.state.entry, before.entry)
        } else {
          assert.deepStrictEqual(reply, { _tag: "Dropped" })
          assert.equal(step.state.entry, undefined)
          lastDrop = now
        }
      })
    },
    RUNS
  )

  it.prop(
    "invalidate of the current token: Throttled with the time left within a second of the last drop, else Dropped",
    [fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 3_000 })],
    ([gap, fetchMillis]) => {
      const r = runner()
      const first = token(0, 3_600_000)
      r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: first, u: 0.5 })
      expect(r.at(10_000, { _tag: "Invalidate", rejected: first }).commands).toContainEqual({
        _tag: "Reply",
        result: { _tag: "Dropped" }
      })
      const arrival = 10_000 + Math.min(gap, fetchMillis)
      const second = token(arrival, 3_600_000)
      r.at(arrival, { _tag: "FetchSucceeded", id: fetchId(r.at(10_000, get)), token: second, u: 0.5 })
      const replies = r.at(10_000 + gap, { _tag: "Invalidate", rejected: second }).commands.filter((c) =>
        c._tag === "Reply"
      )
      expect(replies).toStrictEqual([{
        _tag: "Reply",
        result: gap < 1000 ? { _tag: "Throttled", retryAfterMillis: 1000 - gap } : { _tag: "Dropped" }
      }])
      expect(r.state.entry?.token).toBe(gap < 1000 ? second : undefined)
    },
    RUNS
  )

  it.prop(
    "a background refresh starts only for the current token, in its refresh window, with nothing else running",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, now, step }) => {
        for (const fetch of starts(step)) {
          if (fetch.mode !== "background") continue
          const entry = before.entry
          assert.ok(entry !== undefined, "a background refresh without a cached token")
          assert.equal(before.fetch, undefined)
          assert.ok(now >= entry.refreshAt, "a background refresh before the refresh point")
          assert.ok(now >= before.refreshNotBefore, "a background refresh during its backoff")
          assert.ok(now < entry.usableUntil)
          assert.equal(step.state.entry, entry)
          assert.ok(step.commands.some((c) => c._tag === "Serve" && c.token === entry.token))
        }
      })
    },
    RUNS
  )

  // Guards against keeping a longer-lived cached token over the one just fetched: its refresh point has passed, so
  // every get would start another request while the server issues shorter-lived tokens (issue 11, fix 3).
  it.prop(
    "no redundant refresh: a refresh that delivered a token not yet due for refresh is not followed by another one",
    [
      settingsArb,
      fc.integer({ min: 10_000, max: 7_200_000 }),
      lifetimeArb,
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.integer({ min: 0, max: 5_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
    ],
    ([s, firstLifetime, nextLifetime, into, requestMillis, u1, u2]) => {
      const r = runner(s)
      r.at(0, get)
      r.at(0, { _tag: "FetchSucceeded", id: 1, token: token(0, firstLifetime), u: u1 })
      const { refreshAt, usableUntil: end } = r.state.entry!
      // some get in the refresh window starts the background refresh
      const t = Math.floor(refreshAt + into * (end - refreshAt))
      if (starts(r.at(t, get)).length === 0) return
      const now = t + requestMillis
      const delivered = token(t, nextLifetime)
      const settled = r.at(now, { _tag: "FetchSucceeded", id: 2, token: delivered, u: u2 })
      const due = Lifecycle.schedule(delivered, s.bufferMillis, u2).refreshAt
      if (!tags(settled).includes("Settle") || r.state.cooldown !== undefined || now >= due) return
      expect(starts(r.at(now, get)), `the refresh delivered a token due for refresh at ${due}`).toStrictEqual([])
    },
    RUNS
  )

  it.prop("after Close every get and adopt dies and nothing starts", [settingsArb, runArb], ([s, run]) => {
    drive(
      s,
      [...run, { advance: { _tag: "By", millis: 0 }, action: { _tag: "Close" } }, ...run],
      ({ before, event, step }) => {
        if (!before.closed) return
        assert.ok(step.state.closed)
        assert.deepStrictEqual(starts(step), [])
        if (event._tag === "Get" || event._tag === "Adopt") assert.deepStrictEqual(step.commands, [{ _tag: "Die" }])
        assert.equal(step.state.fetch, undefined)
      }
    )
  }, RUNS)

  it.prop(
    "lease agrees with transition: before lease.until a get serves lease.token and changes nothing",
    [settingsArb, runArb],
    ([s, run]) => {
      drive(s, run, ({ before, now }) => {
        const lease = Lifecycle.lease(before)
        if (lease === undefined) return
        for (const t of [now, lease.until - 1]) {
          if (t < now || t >= lease.until) continue
          const step = Lifecycle.transition(before, get, t, s)
          assert.deepStrictEqual(step.commands, [{ _tag: "Serve", token: lease.token }], `lease until ${lease.until}`)
          assert.deepStrictEqual(step.state, before)
        }
      })
    },
    RUNS
  )

  it.prop(
    "describe never throws and reports the cool-down exactly while it runs",
    [settingsArb, runArb, fc.array(fc.integer({ min: 0, max: 2_000_000 }), { maxLength: 2 })],
    ([s, run, offsets]) => {
      drive(s, run, ({ now, step }) => {
        const state = step.state
        const probes = [now, ...offsets.map((o) => now + o)]
        if (state.cooldown !== undefined) probes.push(state.cooldown.until - 1, state.cooldown.until)
        for (const t of probes.filter((t) => t >= now)) {
          const d = Lifecycle.describe(state, t)
          const active = state.cooldown !== undefined && t < state.cooldown.until
          assert.equal(d.coolingDownUntil, active ? state.cooldown!.until : undefined, `at ${t}`)
          assert.equal(d.cooldownKind, active ? state.cooldown!.kind : undefined, `at ${t}`)
          assert.equal(d.consecutiveFailures, state.strikes > 0 ? state.strikes : undefined)
          assert.equal(d.lastError, state.lastError)
          const expected = state.entry === undefined ? "empty" : t >= state.entry.usableUntil ? "expired" : undefined
          if (expected !== undefined) assert.equal(d.status, expected)
          else {
            assert.ok(d.status === "fresh" || d.status === "refreshing" || d.status === "degraded")
            assert.ok(d.timeLeftMillis > 0)
          }
        }
      })
    },
    RUNS
  )

  it.prop(
    "schedule: refresh before the usable end, never in the last second (or quarter), never absurdly early",
    [
      fc.integer({ min: 0, max: 2_000_000_000 }),
      lifetimeArb.filter((l) => l > 0),
      fc.option(fc.integer({ min: 0, max: 7_200 }), { nil: undefined }),
      fc.constantFrom(0, 1_000, 30_000, 300_000),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
    ],
    ([issuedAt, lifetime, refreshIn, buffer, u]) => {
      const t = token(issuedAt, lifetime, refreshIn)
      const entry = Lifecycle.schedule(t, buffer, u)
      expect(entry.usableUntil).toBe(t.expiresAt - Math.min(1000, lifetime / 4))
      expect(entry.refreshAt).toBeLessThanOrEqual(entry.usableUntil)
      expect(entry.usableUntil).toBeLessThan(t.expiresAt)
      const lead = Math.min(buffer, lifetime / 2)
      // refresh_in may bring the refresh forward, but not before 10 % of the lifetime or 1 s
      const floor = refreshIn === undefined ? Infinity : issuedAt + Math.max(lifetime / 10, 1000)
      expect(entry.refreshAt).toBeGreaterThanOrEqual(Math.min(entry.usableUntil, t.expiresAt - lead, floor))
    },
    RUNS
  )
})

describe("lifecycle: the policy by example", () => {
  const s = settings({ cooldownInitialMillis: 60_000, cooldownMaxMillis: 200_000, bufferMillis: 30_000 })
  const invalidScope = () => new TokenEndpointError({ tokenUrl: TOKEN_URL, status: 400, error: "invalid_scope" })

  it("permanent failures: a cool-down that doubles while the failure repeats, capped, reset by a success", () => {
    const r = runner(s)
    let now = 0
    const lengths: Array<number> = []
    for (let i = 0; i < 5; i++) {
      const id = fetchId(r.at(now, get))
      const error = invalidScope()
      r.at(now, { _tag: "FetchFailed", id, error, attempts: 1, u: 0.5 })
      lengths.push(r.state.cooldown!.until - now)
      // every caller in the cool-down gets the same error, without a request
      const before = r.requests
      for (let k = 0; k < 10; k++) expect(r.at(now + k * 1000, get).commands).toContainEqual({ _tag: "Fail", error })
      expect(r.requests).toBe(before)
      expect(Lifecycle.describe(r.state, now)).toMatchObject({
        cooldownKind: "permanent",
        coolingDownUntil: r.state.cooldown!.until,
        consecutiveFailures: i + 1
      })
      now = r.state.cooldown!.until
    }
    expect(lengths).toStrictEqual([60_000, 120_000, 200_000, 200_000, 200_000])
    const id = fetchId(r.at(now, get))
    r.at(now, { _tag: "FetchSucceeded", id, token: token(now, 3_600_000), u: 0.5 })
    expect(r.state.cooldown).toBeUndefined()
    expect(r.state.strikes).toBe(0)
    expect(Lifecycle.describe(r.state, now)).not.toHaveProperty("consecutiveFailures")
  })

  it("transient failures: callers wait out a short cool-down, and fail at once when it is longer than they may wait", () => {
    const r = runner(settings({ maxWaitMillis: 10_000 }))
    const id = fetchId(r.at(0, get))
    const busy = errorFactories.map((f) => f(5)).find((e: TokenError) => e._tag === "RateLimitedError")!
    r.at(0, { _tag: "FetchFailed", id, error: busy, attempts: 1, u: 0.5 })
    // 5 s left: wait for it, the request goes out when the cool-down ends
    expect(r.at(0, get).commands).toContainEqual({
      _tag: "Start",
      fetch: { id: 2, mode: "blocking", notBefore: 5_000 }
    })
    r.at(5_000, { _tag: "FetchFailed", id: 2, error: errorFactories[6]!(60), attempts: 3, u: 0.5 })
    // 60 s left, more than max wait: the error at once, saying how long is left
    const [fail] = r.at(15_000, get).commands
    expect(fail).toMatchObject({ _tag: "Fail", error: { _tag: "RateLimitedError" } })
    expect(fail?._tag === "Fail" && errorKey(fail.error)).toBe("RateLimitedError|429||||50000")
  })

  it("a token that arrives too late is arrived_late: transient, retried after a backoff, no permanent cool-down", () => {
    const r = runner(s)
    const id = fetchId(r.at(0, get))
    // a 2 s token whose response took 3 s (an overloaded endpoint): too late to use
    const settled = r.at(3_000, { _tag: "FetchSucceeded", id, token: token(0, 2_000), u: 0.5 })
    expect(settled.commands[0]).toMatchObject({
      _tag: "Settle",
      result: { _tag: "Error", error: { _tag: "MalformedResponseError", reason: "arrived_late" } }
    })
    const error = (settled.commands[0] as { result: { error: TokenError } }).result.error
    expect(isTransient(error)).toBe(true)
    expect(r.state.entry).toBeUndefined()
    expect(r.state.strikes).toBe(0)
    // a transient cool-down of the backoff after one attempt (250 ms), not the 60 s permanent one
    expect(r.state.cooldown).toMatchObject({ kind: "transient", until: 3_250 })
    expect(Lifecycle.describe(r.state, 3_000)).toMatchObject({ status: "empty", cooldownKind: "transient" })
    // the next caller waits the short cool-down out and the request goes again; this time it is in time
    const retry = r.at(3_000, get)
    expect(retry.commands).toContainEqual({ _tag: "Start", fetch: { id: 2, mode: "blocking", notBefore: 3_250 } })
    const fresh = token(3_250, 2_000)
    expect(r.at(3_400, { _tag: "FetchSucceeded", id: 2, token: fresh, u: 0.5 }).commands[0]).toStrictEqual({
      _tag: "Settle",
      id: 2,
      result: { _tag: "Token", token: fresh }
    })
    expect(r.state.cooldown).toBeUndefined()
  })

  it("a late token never replaces a valid one, and its refresh is retried after a backoff, not every get", () => {
    const r = runner(s)
    const valid = token(0, 100_000)
    r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: valid, u: 1 })
    // in the refresh window: one background refresh, answered with a 2 s token 2.5 s later
    const refresh = r.at(75_000, get)
    expect(tags(refresh)).toStrictEqual(["Start", "Serve"])
    r.at(77_500, { _tag: "FetchSucceeded", id: fetchId(refresh), token: token(75_000, 2_000), u: 0.5 })
    expect(r.state.entry?.token).toBe(valid)
    expect(r.state.lastError).toMatchObject({ _tag: "MalformedResponseError", reason: "arrived_late" })
    expect(Lifecycle.describe(r.state, 77_500)).toMatchObject({ status: "degraded", cooldownKind: "transient" })
    // the valid token keeps being served; the refresh goes again once the backoff (250 ms) is over
    for (let now = 77_500; now < 77_750; now += 50) expect(tags(r.at(now, get))).toStrictEqual(["Serve"])
    expect(r.requests).toBe(2)
    expect(tags(r.at(77_750, get))).toStrictEqual(["Start", "Serve"])
    expect(r.requests).toBe(3)
  })

  it("a token shorter than the forced window, or whose lifetime the request used up, is rejected as arrived_late", () => {
    for (const [issuedAt, lifetime, arrival] of [[0, 999, 750], [0, 4_000, 3_000], [0, 60_000, 59_500]] as const) {
      const r = runner(s)
      const id = fetchId(r.at(arrival, get))
      r.at(arrival, { _tag: "FetchSucceeded", id, token: token(issuedAt, lifetime), u: 0.5 })
      expect(r.state.entry).toBeUndefined()
      expect(r.state.cooldown?.kind).toBe("transient")
      expect(r.state.strikes).toBe(0)
    }
  })

  it("last resort: a caller in a cool-down (either kind) gets the cached token until it expires, then the error", () => {
    const unavailable = new TokenEndpointError({
      tokenUrl: TOKEN_URL,
      status: 503,
      retryAfter: Duration.seconds(60)
    })
    for (const error of [invalidScope(), unavailable]) {
      const r = runner(s)
      const valid = token(0, 100_000)
      r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: valid, u: 1 })
      // the refresh at 70 s fails: a 60 s cool-down (permanent for invalid_scope, transient for the 503)
      const refresh = r.at(70_000, get)
      r.at(70_000, { _tag: "FetchFailed", id: fetchId(refresh), error, attempts: 1, u: 0.5 })
      expect(r.state.cooldown).toMatchObject({ until: 130_000, kind: isTransient(error) ? "transient" : "permanent" })
      // usable until 99 s; in its last second it is still served, as no new token can be had; at expiry the error
      for (const now of [98_999, 99_000, 99_500, 99_999]) {
        expect(r.at(now, get).commands, `at ${now}`).toStrictEqual([{ _tag: "Serve", token: valid }])
      }
      expect(tags(r.at(100_000, get))).toStrictEqual(["Fail"])
      expect(r.requests).toBe(2)
    }
  })

  it("last resort: the waiters of a failed fetch get the cached token until it expires, then the error", () => {
    const r = runner(s)
    const valid = token(0, 100_000)
    r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: valid, u: 1 })
    // past its usable window (99 s), with no cool-down: callers wait for a new token
    const blocking = r.at(99_200, get)
    expect(tags(blocking)).toStrictEqual(["Start", "Join"])
    // the endpoint is down: rather than the error, the waiters get the token that has not expired yet
    const down = new NetworkError({ url: TOKEN_URL, code: "ECONNREFUSED", reason: "connect ECONNREFUSED" })
    const settled = r.at(99_600, { _tag: "FetchFailed", id: fetchId(blocking), error: down, attempts: 3, u: 0.5 })
    expect(settled.commands[0]).toStrictEqual({ _tag: "Settle", id: 2, result: { _tag: "Token", token: valid } })
    // the failure still counts: a transient cool-down of the backoff (after 3 attempts, 1 s) and the last error
    expect(r.state.cooldown).toMatchObject({ kind: "transient", until: 100_600 })
    expect(r.state.lastError).toBe(down)
    // once the token has expired, a failed fetch settles with its error
    const again = r.at(100_600, get)
    const after = r.at(101_000, { _tag: "FetchFailed", id: fetchId(again), error: down, attempts: 1, u: 0.5 })
    expect(after.commands[0]).toStrictEqual({ _tag: "Settle", id: 3, result: { _tag: "Error", error: down } })
  })

  it("no redundant refresh: one background refresh per window, none after it delivered", () => {
    const r = runner(s)
    r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: token(0, 100_000), u: 1 })
    expect(tags(r.at(69_999, get))).toStrictEqual(["Serve"])
    const refresh = r.at(70_000, get)
    expect(tags(refresh)).toStrictEqual(["Start", "Serve"])
    for (let now = 70_000; now < 71_000; now += 100) expect(tags(r.at(now, get))).toStrictEqual(["Serve"])
    const fresh = token(70_000, 100_000)
    r.at(71_000, { _tag: "FetchSucceeded", id: fetchId(refresh), token: fresh, u: 1 })
    expect(tags(r.at(71_000, get))).toStrictEqual(["Serve"])
    expect(r.state.entry?.token).toBe(fresh)
    expect(r.requests).toBe(2)
  })

  it("no redundant refresh: a refresh that returns a shorter-lived token is not repeated on the next gets", () => {
    const r = runner(settings({ bufferMillis: 300_000 }))
    r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: token(0, 3_600_000), u: 1 })
    // refresh window from 3 300 s; the identity provider now issues 2-minute tokens (refresh due 60 s after issue)
    const refresh = r.at(3_300_000, get)
    r.at(3_300_500, { _tag: "FetchSucceeded", id: fetchId(refresh), token: token(3_300_000, 120_000), u: 1 })
    for (let now = 3_300_500; now < 3_310_000; now += 500) r.at(now, get)
    expect(r.requests).toBe(2)
  })

  it("invalidate says what it did: Dropped, NotCurrent, Throttled within a second of the last drop", () => {
    const r = runner(s)
    const first = token(0, 3_600_000)
    r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: first, u: 0.5 })
    expect(r.at(10_000, { _tag: "Invalidate", rejected: first }).commands).toContainEqual({
      _tag: "Reply",
      result: { _tag: "Dropped" }
    })
    // a second 401 with the same token: it is gone already
    expect(r.at(10_000, { _tag: "Invalidate", rejected: first }).commands).toContainEqual({
      _tag: "Reply",
      result: { _tag: "NotCurrent" }
    })
    const second = token(10_000, 3_600_000)
    r.at(10_200, { _tag: "FetchSucceeded", id: fetchId(r.at(10_000, get)), token: second, u: 0.5 })
    // the new token is rejected too, 300 ms after the last drop: held back, with the wait
    expect(r.at(10_300, { _tag: "Invalidate", rejected: second }).commands).toContainEqual({
      _tag: "Reply",
      result: { _tag: "Throttled", retryAfterMillis: 700 }
    })
    expect(r.state.entry?.token).toBe(second)
    expect(tags(r.at(10_300, get))).toStrictEqual(["Serve"])
    expect(r.at(11_000, { _tag: "Invalidate", rejected: second }).commands).toContainEqual({
      _tag: "Reply",
      result: { _tag: "Dropped" }
    })
    expect(r.at(11_000, { _tag: "Invalidate", rejected: first }).commands).toContainEqual({
      _tag: "Reply",
      result: { _tag: "NotCurrent" }
    })
    expect(r.requests).toBe(2)
  })

  it("lease: the hot path serves without a transition until the refresh point, then until expiry once a refresh runs", () => {
    const r = runner(s)
    const t = token(0, 100_000)
    r.at(0, { _tag: "FetchSucceeded", id: fetchId(r.at(0, get)), token: t, u: 1 })
    expect(Lifecycle.lease(r.state)).toStrictEqual({ token: t, until: 70_000 })
    r.at(70_000, get)
    expect(Lifecycle.lease(r.state)).toStrictEqual({ token: t, until: 99_000 })
    r.at(70_000, { _tag: "Close" })
    expect(Lifecycle.lease(r.state)).toBeUndefined()
    expect(r.at(70_000, get).commands).toStrictEqual([{ _tag: "Die" }])
  })

  it("errors of every kind are accepted (generator sanity)", () => {
    const seen = new Set(fc.sample(errorArb, 2000).map((e: TokenError) => e._tag))
    expect(seen.size).toBe(8)
  })
})

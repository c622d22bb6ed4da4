/**
 * What every `SharedTokenStore.Store` does, run against the memory store (TestClock) and Redis (real time). With real
 * time, the tests assert only what holds whatever the scheduling: leases and timeouts are long where a test needs
 * them not to end, and a wait's end is measured from inside the waiting fiber.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import { Clock, Effect, Fiber, Option } from "effect"
import type { Scope } from "effect"
import * as Crypto from "node:crypto"

export interface Harness {
  readonly store: SharedTokenStore.Store
  /** Lets `millis` pass: `TestClock.adjust` for the memory store, a real sleep for Redis. */
  readonly pass: (millis: number) => Effect.Effect<void>
  /** Returns once the forked `awaitPublish(key, …)` of `fiber` listens for a publish (or has ended). */
  readonly listening: (key: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.Effect<void>
}

export interface ContractOptions {
  /** Real time (`it.scopedLive`) rather than the TestClock (`it.scoped`). */
  readonly live: boolean
}

/** A fresh base key per test, with a hash tag as the fleet builds them. */
export const freshKey = (): string => `contract:{${Crypto.randomUUID()}}`

const token = (version: string, expiresAt: number): SharedTokenStore.StoredToken => ({
  version,
  expiresAt,
  data: `entry-${version}`
})

const LONG = 60_000

export const contract = <E>(
  name: string,
  makeHarness: Effect.Effect<Harness, E, Scope.Scope>,
  options: ContractOptions
): void => {
  const test = options.live ? it.scopedLive : it.scoped

  describe(`SharedTokenStore contract: ${name}`, () => {
    test("an empty key has no token and no block", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const snapshot = yield* store.read(freshKey())
        expect(snapshot.token).toBeUndefined()
        expect(snapshot.block).toBeUndefined()
      }))

    test("publish stores; a later publish with an earlier expiry does not replace it, one with a later expiry does", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const key = freshKey()
        const now = yield* Clock.currentTimeMillis
        const first = token("v1", now + LONG)
        expect(yield* store.publish(key, first, undefined)).toBe(true)
        expect((yield* store.read(key)).token).toEqual(first)

        expect(yield* store.publish(key, token("v2", now + LONG / 2), undefined)).toBe(false)
        expect(yield* store.publish(key, token("v2b", now + LONG), undefined)).toBe(false)
        expect((yield* store.read(key)).token).toEqual(first)

        const later = token("v3", now + 2 * LONG)
        expect(yield* store.publish(key, later, undefined)).toBe(true)
        expect((yield* store.read(key)).token).toEqual(later)
      }))

    test("a token that already expired is not stored", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const key = freshKey()
        const now = yield* Clock.currentTimeMillis
        expect(yield* store.publish(key, token("old", now - 1_000), undefined)).toBe(false)
        expect((yield* store.read(key)).token).toBeUndefined()
      }))

    test("a stored token is gone after its expiry", () =>
      Effect.gen(function*() {
        const { pass, store } = yield* makeHarness
        const key = freshKey()
        const now = yield* Clock.currentTimeMillis
        // 2 s: enough for a first script load on a loaded machine, before Redis's clock passes it
        expect(yield* store.publish(key, token("short", now + 2_000), undefined)).toBe(true)
        yield* pass(2_100)
        expect((yield* store.read(key)).token).toBeUndefined()
        // an expired entry no longer counts as newer
        const next = token("next", (yield* Clock.currentTimeMillis) + LONG)
        expect(yield* store.publish(key, next, undefined)).toBe(true)
      }))

    test("tryLock is exclusive while the lease lasts", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const key = freshKey()
        expect(yield* store.tryLock(key, "a", LONG)).toBe(true)
        expect(yield* store.tryLock(key, "b", LONG)).toBe(false)
        expect(yield* store.tryLock(key, "a", LONG)).toBe(false)
        // another key is another lock
        expect(yield* store.tryLock(freshKey(), "b", LONG)).toBe(true)
      }))

    test("the lock is free once its lease ended", () =>
      Effect.gen(function*() {
        const { pass, store } = yield* makeHarness
        const key = freshKey()
        expect(yield* store.tryLock(key, "a", 200)).toBe(true)
        yield* pass(300)
        expect(yield* store.tryLock(key, "b", LONG)).toBe(true)
        expect(yield* store.tryLock(key, "c", LONG)).toBe(false)
      }))

    test("publish releases the lock of its owner only; without an owner it leaves the lock", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const key = freshKey()
        const now = yield* Clock.currentTimeMillis
        expect(yield* store.tryLock(key, "a", LONG)).toBe(true)
        yield* store.publish(key, token("v1", now + LONG), "b")
        expect(yield* store.tryLock(key, "c", LONG)).toBe(false)
        yield* store.publish(key, token("v2", now + 2 * LONG), undefined)
        expect(yield* store.tryLock(key, "c", LONG)).toBe(false)
        // released even when the token is not stored (an older one): the holder is done
        expect(yield* store.publish(key, token("v0", now + 1_000), "a")).toBe(false)
        expect(yield* store.tryLock(key, "c", LONG)).toBe(true)
      }))

    test("unlock releases the lock of its owner only", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const key = freshKey()
        expect(yield* store.tryLock(key, "a", LONG)).toBe(true)
        yield* store.unlock(key, "b")
        expect(yield* store.tryLock(key, "b", LONG)).toBe(false)
        yield* store.unlock(key, "a")
        expect(yield* store.tryLock(key, "b", LONG)).toBe(true)
        // unlocking a free key is harmless
        yield* store.unlock(freshKey(), "a")
      }))

    test("deleteIf deletes the stored token only when it is still that version", () =>
      Effect.gen(function*() {
        const { store } = yield* makeHarness
        const key = freshKey()
        const now = yield* Clock.currentTimeMillis
        expect(yield* store.deleteIf(key, "v1")).toBe(false)
        const stored = token("v1", now + LONG)
        yield* store.publish(key, stored, undefined)
        expect(yield* store.deleteIf(key, "v0")).toBe(false)
        expect((yield* store.read(key)).token).toEqual(stored)
        expect(yield* store.deleteIf(key, "v1")).toBe(true)
        expect((yield* store.read(key)).token).toBeUndefined()
        expect(yield* store.deleteIf(key, "v1")).toBe(false)
      }))

    test("a block is visible with its end, and gone after its TTL", () =>
      Effect.gen(function*() {
        const { pass, store } = yield* makeHarness
        const key = freshKey()
        const before = yield* Clock.currentTimeMillis
        yield* store.block(key, "rate limited", LONG)
        const snapshot = yield* store.read(key)
        const after = yield* Clock.currentTimeMillis
        expect(snapshot.block?.data).toBe("rate limited")
        // until is the block's start plus its TTL, whatever the time the read took (±2 ms of rounding)
        expect(snapshot.block!.until).toBeGreaterThanOrEqual(before + LONG - 2)
        expect(snapshot.block!.until).toBeLessThanOrEqual(after + LONG + 2)

        const short = freshKey()
        yield* store.block(short, "cool-down", 200)
        yield* pass(300)
        expect((yield* store.read(short)).block).toBeUndefined()
        // the token is independent of the block
        expect((yield* store.read(key)).token).toBeUndefined()
      }))

    test("awaitPublish returns on a publish, before its timeout", () =>
      Effect.gen(function*() {
        const { listening, store } = yield* makeHarness
        const key = freshKey()
        expect(yield* store.tryLock(key, "holder", LONG)).toBe(true)
        const start = yield* Clock.currentTimeMillis
        const waiting = yield* Effect.fork(Effect.zipRight(store.awaitPublish(key, 20_000), Clock.currentTimeMillis))
        yield* listening(key, waiting)
        expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
        // without an owner: the lock stays, so only the publish can end the wait
        yield* store.publish(key, token("v1", start + LONG), undefined)
        const ended = yield* Fiber.join(waiting)
        expect(ended - start).toBeLessThan(20_000)
      }))

    test("awaitPublish returns at its timeout when nothing is published", () =>
      Effect.gen(function*() {
        const { listening, pass, store } = yield* makeHarness
        const key = freshKey()
        expect(yield* store.tryLock(key, "holder", LONG)).toBe(true)
        const start = yield* Clock.currentTimeMillis
        const waiting = yield* Effect.fork(Effect.zipRight(store.awaitPublish(key, 300), Clock.currentTimeMillis))
        yield* listening(key, waiting)
        yield* pass(300)
        const ended = yield* Fiber.join(waiting)
        // timers may fire a millisecond early
        expect(ended - start).toBeGreaterThanOrEqual(298)
        expect((yield* store.read(key)).token).toBeUndefined()
      }))
  })
}

/**
 * The memory store against the store contract, time driven by TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import { Effect, Fiber, TestClock } from "effect"
import { contract, freshKey } from "./SharedTokenStore.contract.js"

/** Lets the forked fiber run until it suspends (in the store's wait). */
const suspended = (fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.repeat(Effect.zipRight(Effect.yieldNow(), Fiber.status(fiber)), {
    until: (status) => status._tag !== "Running"
  })

contract(
  "memory",
  Effect.map(SharedTokenStore.makeMemory, (store) => ({
    store,
    pass: (millis: number) => TestClock.adjust(millis),
    listening: (_key: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.asVoid(suspended(fiber))
  })),
  { live: false }
)

describe("SharedTokenStore memory", () => {
  it.scoped("awaitPublish ends exactly at its timeout, not a millisecond before", () =>
    Effect.gen(function*() {
      const store = yield* SharedTokenStore.makeMemory
      const key = freshKey()
      yield* store.tryLock(key, "holder", 60_000)
      const waiting = yield* Effect.fork(store.awaitPublish(key, 300))
      yield* suspended(waiting)
      yield* TestClock.adjust(299)
      expect((yield* Fiber.poll(waiting))._tag).toBe("None")
      yield* TestClock.adjust(1)
      yield* Fiber.join(waiting)
    }))

  it.scoped("one publish wakes every waiter of its key, not those of another key", () =>
    Effect.gen(function*() {
      const store = yield* SharedTokenStore.makeMemory
      const key = freshKey()
      const other = freshKey()
      const waiters = yield* Effect.forEach([key, key, other], (k) => Effect.fork(store.awaitPublish(k, 10_000)))
      yield* Effect.forEach(waiters, suspended)
      yield* store.publish(key, { version: "v", expiresAt: 60_000, data: "d" }, undefined)
      yield* Fiber.join(waiters[0]!)
      yield* Fiber.join(waiters[1]!)
      yield* suspended(waiters[2]!)
      expect((yield* Fiber.poll(waiters[2]!))._tag).toBe("None")
      yield* Fiber.interrupt(waiters[2]!)
    }))
})

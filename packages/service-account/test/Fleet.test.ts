/**
 * The fleet protocol (issue 15) through real token providers sharing one in-memory store, time driven by TestClock:
 * each provider stands for a process. What crosses processes is counted at the fake token endpoint (the unit under
 * test is the protocol, not HTTP; the Redis store and real processes are tested in SharedTokenStoreRedis.test.ts and
 * the fleet benchmark).
 */
import { describe, expect, it } from "@effect/vitest"
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as Metrics from "@mcp-auth/service-account/Metrics"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient } from "@mcp-auth/testing"
import { Duration, Effect, Fiber, Metric, Redacted, TestClock } from "effect"
import * as Fleet from "../src/internal/fleet.js"

const KEY = Buffer.alloc(32, 7).toString("base64")

const config = (extra: Record<string, unknown> = {}, attempts = 1) =>
  ServiceAccountConfig.decodeSync({
    client_id: "fleet-client",
    client_secret: "fleet-secret",
    token_url: "https://idp.example.com/token",
    scopes: ["mcp:tools"],
    token_cache_buffer_seconds: 60,
    retry: { max_attempts: attempts },
    shared_cache: { wait_seconds: 2, lock_lease_seconds: 10, ...extra }
  })

/** `n` providers ("processes") over one store and one fake token endpoint. */
const fleet = (
  n: number,
  handler: FakeHttpClient.Handler,
  options: {
    readonly store?: SharedTokenStore.Store
    readonly extra?: Record<string, unknown>
    readonly attempts?: number
  } = {}
) =>
  Effect.gen(function*() {
    const fake = yield* FakeHttpClient.make(handler)
    const store = options.store ?? (yield* SharedTokenStore.makeMemory)
    const providers: Array<TokenProvider.TokenProvider> = []
    for (let i = 0; i < n; i++) {
      providers.push(
        yield* TokenProvider.make(config(options.extra, options.attempts), { name: `p${i}` }).pipe(
          Effect.provide(fake.layer),
          Effect.provideService(SharedTokenStore.SharedTokenStore, store)
        )
      )
    }
    return { providers, store, requests: fake.calls }
  })

const value = (token: AccessToken.AccessToken) => Redacted.value(token.token)

/** The store key of `config()`'s credential. */
const credentialKey = Fleet.keyOf("mcp-auth", {
  endpoint: "https://idp.example.com/token",
  clientId: "fleet-client",
  authMethod: "client_secret_basic",
  scopes: ["mcp:tools"]
})

describe("the fleet protocol", () => {
  it.scoped("50 cold providers at once: one token request, the others adopt the published token", () =>
    Effect.gen(function*() {
      const { providers, requests } = yield* fleet(
        50,
        (n) => Effect.as(Effect.sleep("300 millis"), FakeHttpClient.token(n))
      )
      const fibers = yield* Effect.forEach(providers, (p) => Effect.fork(p.get))
      yield* TestClock.adjust("1 second")
      const tokens = yield* Effect.forEach(fibers, Fiber.join)
      expect(yield* requests).toBe(1)
      expect(new Set(tokens.map(value))).toEqual(new Set(["tok-1"]))
      const states = yield* Effect.forEach(providers, (p) => p.state)
      expect(states.filter((s) => s.sharedCache?.lastSource === "endpoint")).toHaveLength(1)
      expect(states.filter((s) => s.sharedCache?.lastSource === "fleet")).toHaveLength(49)
    }))

  it.scoped("over three lifetimes, 20 providers refresh with about one request per lifetime", () =>
    Effect.gen(function*() {
      // 600 s tokens, refreshed 48–60 s before expiry at each provider's own jittered point
      const { providers, requests } = yield* fleet(20, (n) => Effect.succeed(FakeHttpClient.token(n, 600)))
      for (const p of providers) yield* p.get
      for (let t = 0; t < 3 * 600; t += 5) {
        yield* TestClock.adjust("5 seconds")
        for (const p of providers) yield* p.get
      }
      // one per lifetime, plus at most one where two refresh points fell in the same 5 s step
      expect(yield* requests).toBeGreaterThanOrEqual(4)
      expect(yield* requests).toBeLessThanOrEqual(6)
    }))

  it.scoped("a revocation seen by every provider: one refresh for the fleet", () =>
    Effect.gen(function*() {
      const { providers, requests } = yield* fleet(20, (n) => Effect.succeed(FakeHttpClient.token(n)))
      for (const p of providers) yield* p.get
      expect(yield* requests).toBe(1)
      const revoked = yield* providers[0]!.get
      yield* TestClock.adjust("2 seconds")
      // every process sees its request rejected, drops the token, and asks again
      for (const p of providers) yield* p.invalidate(revoked)
      const after = yield* Effect.forEach(providers, (p) => p.get)
      expect(yield* requests).toBe(2)
      expect(new Set(after.map(value))).toEqual(new Set(["tok-2"]))
    }))

  it.scoped("a 429 Retry-After: 2 seen by one provider: nobody requests for 2 s; then one request serves all", () =>
    Effect.gen(function*() {
      const { providers, requests } = yield* fleet(
        10,
        (n) => Effect.succeed(n === 1 ? { status: 429, headers: { "retry-after": "2" } } : FakeHttpClient.token(n)),
        { attempts: 4 }
      )
      // the first provider's fetch gets the 429 and sleeps through it (its own retry); the block is stored at once
      const first = yield* Effect.fork(providers[0]!.get)
      yield* TestClock.adjust("10 millis")
      const others = yield* Effect.forEach(providers.slice(1), (p) => Effect.fork(p.get))
      yield* TestClock.adjust("1900 millis")
      expect(yield* requests).toBe(1)
      // the Retry-After is over: the first provider's retry gets a token, everyone else adopts it
      yield* TestClock.adjust("2 seconds")
      const tokens = yield* Effect.forEach([first, ...others], Fiber.join)
      expect(new Set(tokens.map(value))).toEqual(new Set(["tok-2"]))
      expect(yield* requests).toBe(2)
    }))

  it.scoped("a stored 429 longer than a caller may wait: the error, with the time left in it", () =>
    Effect.gen(function*() {
      const { providers, requests } = yield* fleet(
        3,
        () => Effect.succeed({ status: 429, headers: { "retry-after": "120" } }),
        { attempts: 1 }
      )
      expect((yield* Effect.flip(providers[0]!.get))._tag).toBe("RateLimitedError")
      yield* TestClock.adjust("20 seconds")
      const error = yield* Effect.flip(providers[1]!.get)
      expect(error._tag === "RateLimitedError" && Duration.toSeconds(error.retryAfter!)).toBe(100)
      expect(yield* requests).toBe(1)
    }))

  it.scoped("invalid credentials are a block for the fleet's first cool-down", () =>
    Effect.gen(function*() {
      const { providers, requests } = yield* fleet(
        5,
        () => Effect.succeed({ status: 401, body: { error: "invalid_client" } }),
        { extra: {} }
      )
      for (const p of providers) expect((yield* Effect.flip(p.get))._tag).toBe("InvalidCredentialsError")
      expect(yield* requests).toBe(1)
    }))

  it.scoped("with an encryption key, blocks are sealed too: one planted in clear is ignored", () =>
    Effect.gen(function*() {
      const invalid = () => Effect.succeed({ status: 401, body: { error: "invalid_client" } })
      // without a key: the block is the error as JSON, honoured by the fleet
      const clear = yield* fleet(3, invalid)
      for (const p of clear.providers) expect((yield* Effect.flip(p.get))._tag).toBe("InvalidCredentialsError")
      expect(yield* clear.requests).toBe(1)
      const planted = (yield* clear.store.read(credentialKey)).block!
      expect(planted.data).toMatch(/^\{.*InvalidCredentialsError/)
      // with a key: the fleet's own block is sealed (and honoured); a clear one written by someone without the key is not
      const sealed = yield* fleet(3, invalid, { extra: { encryption_key: KEY } })
      for (const p of sealed.providers) expect((yield* Effect.flip(p.get))._tag).toBe("InvalidCredentialsError")
      expect(yield* sealed.requests).toBe(1)
      expect((yield* sealed.store.read(credentialKey)).block!.data).toMatch(/^v1\.[0-9a-f]{8}\./)
      const store = yield* SharedTokenStore.makeMemory
      yield* store.block(credentialKey, planted.data, 60_000)
      const target = yield* fleet(2, (n) => Effect.succeed(FakeHttpClient.token(n)), {
        store,
        extra: { encryption_key: KEY }
      })
      const tokens = yield* Effect.forEach(target.providers, (p) => p.get)
      expect(tokens.map(value)).toEqual(["tok-1", "tok-1"])
      expect(yield* target.requests).toBe(1)
    }))

  it.scoped("a lock holder that never publishes: the others wait (at most wait_seconds), then request", () =>
    // several rounds, each with new jittered bounds: the loop once spun forever when TestClock, which keeps
    // nanoseconds, woke the first waiter a fraction of a nanosecond before its fractional bound (about one round in two)
    Effect.forEach(Array.from({ length: 8 }), () =>
      Effect.gen(function*() {
        const store = yield* SharedTokenStore.makeMemory
        const { providers, requests } = yield* fleet(3, (n) => Effect.succeed(FakeHttpClient.token(n)), { store })
        // a crashed process holds the lock (its lease is 10 s)
        expect(yield* store.tryLock(credentialKey, "crashed", 10_000)).toBe(true)
        const fibers = yield* Effect.forEach(providers, (p) => Effect.fork(p.get))
        // each waits 80–100 % of wait_seconds (jittered), never more
        yield* TestClock.adjust("1599 millis")
        expect(yield* requests).toBe(0)
        yield* TestClock.adjust("402 millis")
        const tokens = yield* Effect.forEach(fibers, Fiber.join)
        // no caller waited past wait_seconds; at worst one request per process (here the first one's token is
        // published before the others read again)
        expect(tokens).toHaveLength(3)
        expect(yield* requests).toBeGreaterThanOrEqual(1)
        expect(yield* requests).toBeLessThanOrEqual(3)
      }), { discard: true }))

  it.scoped("a store that fails or stalls: fail open, counted, and sharing resumes when it recovers", () =>
    Effect.gen(function*() {
      const memory = yield* SharedTokenStore.makeMemory
      let mode: "ok" | "fail" | "stall" = "fail"
      const wrap = <A>(effect: Effect.Effect<A, SharedTokenStore.StoreError>) =>
        Effect.suspend(() =>
          mode === "fail"
            ? Effect.fail(new SharedTokenStore.StoreError({ operation: "x", reason: "ECONNREFUSED" }))
            : mode === "stall"
            ? Effect.zipRight(Effect.never, effect)
            : effect
        )
      const store: SharedTokenStore.Store = {
        read: (k) => wrap(memory.read(k)),
        tryLock: (k, o, l) => wrap(memory.tryLock(k, o, l)),
        publish: (k, t, o) => wrap(memory.publish(k, t, o)),
        unlock: (k, o) => wrap(memory.unlock(k, o)),
        deleteIf: (k, v) => wrap(memory.deleteIf(k, v)),
        block: (k, d, t) => wrap(memory.block(k, d, t)),
        awaitPublish: (k, m) => wrap(memory.awaitPublish(k, m))
      }
      const failOpen = Metrics.sharedCache.pipe(Metric.tagged("provider", "p0"), Metric.tagged("outcome", "fail_open"))
      const before = yield* Metric.value(failOpen)
      const { providers, requests } = yield* fleet(2, (n) => Effect.succeed(FakeHttpClient.token(n)), { store })
      expect(value(yield* providers[0]!.get)).toBe("tok-1")
      expect(value(yield* providers[1]!.get)).toBe("tok-2")
      expect((yield* providers[0]!.state).sharedCache?.unavailableSince).toBeDefined()
      // a stalled store: each operation given up after timeout_ms (200 ms)
      mode = "stall"
      yield* TestClock.adjust("2 seconds")
      const stalled = yield* Effect.fork(Effect.gen(function*() {
        yield* providers[0]!.invalidate(yield* providers[0]!.get)
        const token = yield* providers[0]!.get
        yield* providers[1]!.invalidate(yield* providers[1]!.get)
        return token
      }))
      for (let i = 0; i < 20; i++) yield* TestClock.adjust("100 millis")
      expect(value(yield* Fiber.join(stalled))).toBe("tok-3")
      expect((yield* Metric.value(failOpen)).count).toBeGreaterThan(before.count)
      // back: the next fetches share again
      mode = "ok"
      yield* TestClock.adjust("2 seconds")
      yield* providers[0]!.invalidate(yield* providers[0]!.get)
      // the first fetches and publishes; the second (whose token was dropped while the store stalled) adopts it
      yield* providers[0]!.get
      yield* providers[1]!.get
      expect(yield* requests).toBe(4)
      expect((yield* providers[1]!.state).sharedCache).toEqual({ lastSource: "fleet" })
      expect((yield* providers[0]!.state).sharedCache).toEqual({ lastSource: "endpoint" })
    }))

  it.scoped("while another process refreshes, a due but valid stored token is served at once", () =>
    Effect.gen(function*() {
      const store = yield* SharedTokenStore.makeMemory
      const { providers, requests } = yield* fleet(2, (n) => Effect.succeed(FakeHttpClient.token(n, 600)), { store })
      yield* providers[0]!.get
      yield* TestClock.adjust("560 seconds")
      // another process is refreshing the (now due) stored token: it holds the lock
      expect(yield* store.tryLock(credentialKey, "refreshing", 10_000)).toBe(true)
      // a cold provider: served the due token at once, no wait and no request
      expect(value(yield* providers[1]!.get)).toBe("tok-1")
      expect(yield* requests).toBe(1)
    }))

  it.scoped("a token in its refresh window is not adopted; a newer one is", () =>
    Effect.gen(function*() {
      const { providers, requests } = yield* fleet(2, (n) => Effect.succeed(FakeHttpClient.token(n, 600)))
      yield* providers[0]!.get
      // 560 s later the stored token (600 s, lead 60 s) is due: the second provider requests, then publishes
      yield* TestClock.adjust("560 seconds")
      expect(value(yield* providers[1]!.get)).toBe("tok-2")
      expect(yield* requests).toBe(2)
    }))
})

describe("stored values", () => {
  const token = AccessToken.make({
    token: "secret-access-token-value",
    scopes: ["a"],
    issuedAt: 1_000,
    expiresInSeconds: 60
  })

  it("with an encryption key: no token in the value, bound to its key, decrypted by the next key's owner", () => {
    const key = Fleet.parseKey(KEY)!
    const next = Fleet.parseKey(Buffer.alloc(32, 9).toString("hex"))!
    const sealed = Fleet.makeCodec([key]).encode("k1", token)
    expect(sealed).toMatch(/^v1\.[0-9a-f]{8}\./)
    expect(sealed).not.toContain("secret-access-token-value")
    expect(Redacted.value(Fleet.makeCodec([key]).decode("k1", sealed)!.token)).toBe("secret-access-token-value")
    // moved to another key: refused; rotated (the old key second): still read
    expect(Fleet.makeCodec([key]).decode("k2", sealed)).toBeUndefined()
    expect(Fleet.makeCodec([next, key]).decode("k1", sealed)?.expiresAt).toBe(61_000)
    expect(Fleet.makeCodec([next]).decode("k1", sealed)).toBeUndefined()
    // a clear value where a key is configured is not trusted, and the other way round
    expect(Fleet.makeCodec([key]).decode("k1", Fleet.makeCodec([]).encode("k1", token))).toBeUndefined()
    expect(Fleet.makeCodec([]).decode("k1", sealed)).toBeUndefined()
  })

  it("keys: the same credential gives the same key, anything else another; no secret in it", () => {
    const parts = {
      endpoint: "https://idp/token",
      clientId: "c",
      authMethod: "client_secret_basic",
      scopes: ["b", "a"]
    }
    const key = Fleet.keyOf("mcp-auth", parts)
    expect(key).toMatch(/^mcp-auth:\{[A-Za-z0-9_-]{32}\}$/)
    expect(Fleet.keyOf("mcp-auth", { ...parts, scopes: ["a", "b"] })).toBe(key)
    expect(Fleet.keyOf("mcp-auth", { ...parts, clientId: "d" })).not.toBe(key)
    expect(Fleet.keyOf("mcp-auth", { ...parts, resource: "https://mcp" })).not.toBe(key)
    expect(Fleet.keyOf("other", parts)).not.toBe(key)
  })

  it("a 32-byte key as base64 or hex; anything else refused", () => {
    expect(Fleet.parseKey(KEY)).toHaveLength(32)
    expect(Fleet.parseKey("ab".repeat(32))).toHaveLength(32)
    expect(Fleet.parseKey("too-short")).toBeUndefined()
    expect(Fleet.parseKey(Buffer.alloc(16).toString("base64"))).toBeUndefined()
  })
})

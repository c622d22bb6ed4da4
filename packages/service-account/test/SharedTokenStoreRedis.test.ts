/**
 * The Redis store against the store contract and on its own: raw values, one Cluster slot per credential, fail-fast
 * while Redis is down and recovery without a restart, ACL users, TLS, configuration errors. A real `redis-server`
 * (RedisServer) and real time: bounds are liveness bounds, never speed claims.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import * as SharedTokenStoreRedis from "@mcp-auth/service-account/SharedTokenStoreRedis"
import { RedisServer, TestPki } from "@mcp-auth/testing"
import type { Duration } from "effect"
import { Clock, Effect, Exit, Fiber, Layer, Redacted, Schedule } from "effect"
import { Redis } from "ioredis"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Fleet from "../src/internal/fleet.js"
import { contract, freshKey } from "./SharedTokenStore.contract.js"

let server: Awaited<ReturnType<typeof RedisServer.start>>
let admin: Redis

beforeAll(async () => {
  server = await RedisServer.start()
  admin = new Redis(server.url, { maxRetriesPerRequest: 0 })
  admin.on("error", () => {})
})

afterAll(async () => {
  admin?.disconnect()
  await server?.close()
})

const subscribers = (channel: string) =>
  Effect.promise(() => admin.call("PUBSUB", "NUMSUB", channel)).pipe(
    Effect.map((reply) => Number((reply as Array<unknown>)[1]))
  )

/** Until the store's subscriber connection is subscribed to the key's channel, or the wait has ended. */
const listening = (key: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.gen(function*() {
    for (;;) {
      if ((yield* Fiber.poll(fiber))._tag === "Some") return
      if ((yield* subscribers(`${key}:published`)) >= 1) return
      yield* Effect.sleep("10 millis")
    }
  })

contract(
  "redis",
  Effect.map(
    Effect.orDie(Effect.suspend(() => SharedTokenStoreRedis.make({ url: server.url }))),
    (store) => ({ store, pass: (millis: number) => Effect.sleep(millis), listening })
  ),
  { live: true }
)

/** The ACL rules the README suggests for mcp-auth's Redis user (keys and channels under the default prefix). */
const README_ACL =
  "~mcp-auth:* &mcp-auth:* +evalsha +eval +set +exists +subscribe +unsubscribe +ping +info +client|setname " +
  "+hmget +hget +hset +get +del +pttl +pexpireat +time +publish"

const storeOf = (options: SharedTokenStoreRedis.Options) => Effect.orDie(SharedTokenStoreRedis.make(options))

const stored = (expiresAt: number, version = "v1"): SharedTokenStore.StoredToken => ({
  version,
  expiresAt,
  data: `entry-${version}`
})

/** Retries `effect` every 100 ms until it succeeds (a liveness bound, not a speed claim). */
const eventually = <A, E>(effect: Effect.Effect<A, E>, bound: Duration.DurationInput = "20 seconds") =>
  Effect.retry(effect, Schedule.spaced("100 millis").pipe(Schedule.upTo(bound)))

const configurationError = <A>(effect: Effect.Effect<A, unknown, never>) =>
  Effect.flip(effect).pipe(
    Effect.map((error) => {
      expect((error as { _tag?: unknown })._tag).toBe("ConfigurationError")
      return (error as { issues: ReadonlyArray<{ path: string; message: string }> }).issues[0]!
    })
  )

describe("SharedTokenStoreRedis", () => {
  it.scopedLive("stores a hash e/v/d expiring at e, the lock with its owner and lease, the block with its TTL", () =>
    Effect.gen(function*() {
      const store = yield* storeOf({ url: server.url })
      const key = freshKey()
      const expiresAt = (yield* Clock.currentTimeMillis) + 60_000
      expect(yield* store.publish(key, stored(expiresAt), undefined)).toBe(true)
      const hash = yield* Effect.promise(() => server.cli(["HGETALL", `${key}:token`]))
      expect(hash.split("\n")).toEqual(["e", String(expiresAt), "v", "v1", "d", "entry-v1"])
      expect(yield* Effect.promise(() => server.cli(["TYPE", `${key}:token`]))).toBe("hash")
      const expireTime = yield* Effect.promise(() => server.cli(["PEXPIRETIME", `${key}:token`]))
      expect(Number(expireTime)).toBe(expiresAt)

      expect(yield* store.tryLock(key, "owner-1", 60_000)).toBe(true)
      expect(yield* Effect.promise(() => server.cli(["GET", `${key}:lock`]))).toBe("owner-1")
      const lease = Number(yield* Effect.promise(() => server.cli(["PTTL", `${key}:lock`])))
      expect(lease).toBeGreaterThan(0)
      expect(lease).toBeLessThanOrEqual(60_000)

      yield* store.block(key, "blocked", 30_000)
      expect(yield* Effect.promise(() => server.cli(["GET", `${key}:block`]))).toBe("blocked")
      const ttl = Number(yield* Effect.promise(() => server.cli(["PTTL", `${key}:block`])))
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(30_000)
    }))

  it.scopedLive("the keys of one credential share one Redis Cluster slot (CLUSTER KEYSLOT of a cluster node)", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisServer.make({ args: ["--cluster-enabled", "yes"] })
      const slot = (key: string) => Effect.promise(() => cluster.cli(["CLUSTER", "KEYSLOT", key]))
      const base = Fleet.keyOf("mcp-auth", {
        endpoint: "https://idp.example.com/token",
        clientId: "fleet",
        authMethod: "client_secret_basic",
        scopes: ["b", "a"]
      })
      const slots = yield* Effect.forEach(
        ["token", "lock", "block", "published"],
        (suffix) => slot(`${base}:${suffix}`)
      )
      expect(new Set(slots).size).toBe(1)
      expect(Number(slots[0])).toBeGreaterThanOrEqual(0)
      // the slot follows the hash tag, not the prefix
      const hashTag = base.slice(base.indexOf("{") + 1, base.indexOf("}"))
      expect(yield* slot(hashTag)).toBe(slots[0])
    }))

  it.scopedLive("awaitPublish also ends when the lock goes without a publish (released, or its lease ended)", () =>
    Effect.gen(function*() {
      const store = yield* storeOf({ url: server.url })
      const key = freshKey()
      yield* store.tryLock(key, "holder", 60_000)
      const start = yield* Clock.currentTimeMillis
      const released = yield* Effect.fork(Effect.zipRight(store.awaitPublish(key, 20_000), Clock.currentTimeMillis))
      yield* listening(key, released)
      expect((yield* Fiber.poll(released))._tag).toBe("None")
      yield* store.unlock(key, "holder")
      expect((yield* Fiber.join(released)) - start).toBeLessThan(20_000)

      const leased = freshKey()
      yield* store.tryLock(leased, "crashed holder", 1_000)
      const from = yield* Clock.currentTimeMillis
      const ended = yield* Effect.zipRight(store.awaitPublish(leased, 20_000), Clock.currentTimeMillis)
      // not before the lease ended (Redis expires it), long before the wait's bound
      expect(ended - from).toBeGreaterThanOrEqual(900)
      expect(ended - from).toBeLessThan(20_000)
    }))

  it.scopedLive("many waiters share one subscriber connection and all wake on one publish", () =>
    Effect.gen(function*() {
      const store = yield* storeOf({ url: server.url })
      const key = freshKey()
      yield* store.tryLock(key, "holder", 60_000)
      const waiters = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Effect.fork(store.awaitPublish(key, 20_000)),
        { concurrency: "unbounded" }
      )
      yield* Effect.forEach(waiters, (fiber) => listening(key, fiber))
      for (const fiber of waiters) expect((yield* Fiber.poll(fiber))._tag).toBe("None")
      expect(yield* subscribers(`${key}:published`)).toBe(1)
      const start = yield* Clock.currentTimeMillis
      yield* store.publish(key, stored(start + 60_000), undefined)
      yield* Effect.forEach(waiters, Fiber.join)
      expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(20_000)
      // the last waiter gone, the channel is unsubscribed
      yield* eventually(Effect.filterOrFail(subscribers(`${key}:published`), (n) => n === 0))

      // the subscriber connection is up now: a wait on another key subscribes on it at once
      const other = freshKey()
      yield* store.tryLock(other, "holder", 60_000)
      const from = yield* Clock.currentTimeMillis
      const next = yield* Effect.fork(Effect.zipRight(store.awaitPublish(other, 10_000), Clock.currentTimeMillis))
      yield* listening(other, next)
      expect((yield* Fiber.poll(next))._tag).toBe("None")
      yield* store.publish(other, stored(from + 60_000), undefined)
      expect((yield* Fiber.join(next)) - from).toBeLessThan(10_000)
    }))

  it.scopedLive("Redis killed: operations fail with StoreError at once; restarted: the same store works again", () =>
    Effect.gen(function*() {
      const own = yield* RedisServer.make()
      const store = yield* storeOf({ url: own.url })
      const key = freshKey()
      const now = yield* Clock.currentTimeMillis
      expect(yield* store.publish(key, stored(now + 60_000), undefined)).toBe(true)

      yield* Effect.promise(() => own.kill())
      const operations: ReadonlyArray<Effect.Effect<unknown, SharedTokenStore.StoreError>> = [
        store.read(key),
        store.tryLock(key, "a", 1_000),
        store.publish(key, stored(now + 120_000, "v2"), "a"),
        store.unlock(key, "a"),
        store.deleteIf(key, "v1"),
        store.block(key, "x", 1_000),
        store.awaitPublish(key, 20_000)
      ]
      for (const operation of operations) {
        const start = yield* Clock.currentTimeMillis
        const error = yield* Effect.flip(operation)
        // a liveness bound: without the offline queue, nothing waits for the connection
        expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(10_000)
        expect(error._tag).toBe("StoreError")
        expect(error.reason.length).toBeGreaterThan(0)
      }

      yield* Effect.promise(() => own.restart())
      // ioredis reconnects by itself (its back-off is capped near 2 s)
      const snapshot = yield* eventually(store.read(key))
      expect(snapshot.token).toBeUndefined() // the restarted server is empty
      expect(yield* store.publish(key, stored(now + 60_000), undefined)).toBe(true)
      expect((yield* store.read(key)).token?.version).toBe("v1")
    }))

  it.scopedLive("an ACL user and password in the URL, with a database number", () =>
    Effect.gen(function*() {
      const acl = yield* RedisServer.make({ user: { username: "fleet", password: "p@ss:w/rd" } })
      const url = acl.urlWithCredentials.replace(/\/?$/, "/3")
      const store = yield* storeOf({ url: Redacted.make(url) })
      const key = freshKey()
      const now = yield* Clock.currentTimeMillis
      expect(yield* store.publish(key, stored(now + 60_000), undefined)).toBe(true)
      expect((yield* store.read(key)).token?.version).toBe("v1")
      expect(yield* Effect.promise(() => acl.cli(["-n", "3", "HGET", `${key}:token`, "v"]))).toBe("v1")
      expect(yield* Effect.promise(() => acl.cli(["-n", "0", "EXISTS", `${key}:token`]))).toBe("0")

      // a wrong password: StoreErrors that say why, never quoting the password
      const wrong = yield* storeOf({ url: url.replace(encodeURIComponent("p@ss:w/rd"), "not-the-password") })
      const error = yield* Effect.flip(wrong.read(key))
      expect(error._tag).toBe("StoreError")
      expect(error.reason).toMatch(/WRONGPASS|NOAUTH|auth/i)
      expect(error.message).not.toContain("not-the-password")
      expect(error.message).not.toContain("p@ss")
    }))

  it.scopedLive("the README's least-privilege ACL user (its prefix only, the commands listed) is enough", () =>
    Effect.gen(function*() {
      const acl = yield* RedisServer.make({
        args: ["--user", "default", "off", "--user", "mcp-auth", "on", ">s3cret", ...README_ACL.split(" ")]
      })
      const store = yield* storeOf({ url: Redacted.make(acl.url.replace("redis://", "redis://mcp-auth:s3cret@")) })
      const key = Fleet.keyOf("mcp-auth", {
        endpoint: "https://idp/token",
        clientId: freshKey(),
        authMethod: "client_secret_basic",
        scopes: []
      })
      const now = yield* Clock.currentTimeMillis
      expect((yield* store.read(key)).token).toBeUndefined()
      expect(yield* store.tryLock(key, "me", 10_000)).toBe(true)
      const waiting = yield* Effect.fork(store.awaitPublish(key, 5_000))
      expect(yield* store.publish(key, stored(now + 60_000), "me")).toBe(true)
      yield* Fiber.join(waiting)
      expect(yield* store.deleteIf(key, "v1")).toBe(true)
      yield* store.block(key, "{}", 1_000)
      expect((yield* store.read(key)).block?.data).toBe("{}")
      yield* store.unlock(key, "me")
      // another prefix is refused
      const other = yield* Effect.flip(store.read("other:{x}"))
      expect(other.reason).toMatch(/NOPERM|permission/i)
    }))

  it.scopedLive("rediss:// trusting the test CA through caFile; without it, the certificate is refused", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.sharedEffect
      const secure = yield* RedisServer.make({ tls: { credentials: pki.server, ca: pki.ca }, password: "tls-pw" })
      expect(secure.url.startsWith("rediss://")).toBe(true)
      const store = yield* storeOf({ url: secure.urlWithCredentials, caFile: secure.caFile })
      const key = freshKey()
      const now = yield* Clock.currentTimeMillis
      expect(yield* store.publish(key, stored(now + 60_000), undefined)).toBe(true)
      expect((yield* store.read(key)).token?.version).toBe("v1")
      expect(yield* Effect.promise(() => secure.cli(["HGET", `${key}:token`, "d"]))).toBe("entry-v1")

      const untrusted = yield* storeOf({ url: secure.urlWithCredentials })
      const error = yield* Effect.flip(untrusted.read(key))
      expect(error.reason).toMatch(/certificate|self.signed|unable to verify/i)
      expect(error.message).not.toContain("tls-pw")
    }))

  it.scopedLive("a client of the program's own is used and left open; the subscriber duplicate is closed", () =>
    Effect.gen(function*() {
      const client = new Redis(server.url)
      client.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.promise(() => client.quit().catch(() => undefined)))
      const key = freshKey()
      const subscribing = () =>
        Effect.promise(() => client.call("CLIENT", "LIST") as Promise<string>).pipe(
          Effect.map((list) => list.split("\n").filter((line) => / cmd=(subscribe|unsubscribe) /.test(line)).length)
        )
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* storeOf({ client })
        const now = yield* Clock.currentTimeMillis
        expect(yield* store.publish(key, stored(now + 60_000), undefined)).toBe(true)
        yield* store.tryLock(key, "holder", 60_000)
        const waiting = yield* Effect.fork(store.awaitPublish(key, 20_000))
        yield* listening(key, waiting)
        yield* Fiber.interrupt(waiting)
        expect(yield* subscribing()).toBe(1)
      }))
      expect(client.status).toBe("ready")
      expect(yield* Effect.promise(() => client.hget(`${key}:token`, "v"))).toBe("v1")
      // the store's subscriber connection is closed with its scope
      yield* eventually(Effect.filterOrFail(subscribing(), (n) => n === 0))
    }))

  it.scopedLive("its scope closes the connections it opened", () =>
    Effect.gen(function*() {
      const own = yield* RedisServer.make()
      const count = () =>
        Effect.promise(() => own.cli(["CLIENT", "LIST"])).pipe(
          Effect.map((list) => list.split("\n").filter((line) => line.includes("name=mcp-auth")).length)
        )
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* storeOf({ url: own.url })
        const key = freshKey()
        yield* store.tryLock(key, "holder", 60_000)
        yield* store.awaitPublish(key, 200)
        // the commands' connection and the subscriber (which may still be connecting on a loaded machine)
        yield* eventually(Effect.filterOrFail(count(), (n) => n === 2))
      }))
      yield* eventually(Effect.filterOrFail(count(), (n) => n === 0))
    }))

  it.effect("configuration errors name the field and never quote the URL", () =>
    Effect.gen(function*() {
      const scheme = yield* configurationError(
        Effect.scoped(SharedTokenStoreRedis.make({ url: "https://user:secret-pw@redis:6379" }))
      )
      expect(scheme.path).toBe("shared_cache.url")
      expect(scheme.message).not.toContain("secret-pw")

      const db = yield* configurationError(Effect.scoped(SharedTokenStoreRedis.make({ url: "redis://redis:6379/x" })))
      expect(db.message).toContain("database number")

      const plainWithCa = yield* configurationError(
        Effect.scoped(SharedTokenStoreRedis.make({ url: "redis://redis:6379", caFile: "/tmp/ca.pem" }))
      )
      expect(plainWithCa.path).toBe("shared_cache.ca_file")

      const missing = Path.join(Os.tmpdir(), `no-such-ca-${process.pid}.pem`)
      const unreadable = yield* configurationError(
        Effect.scoped(SharedTokenStoreRedis.make({ url: "rediss://redis:6379", caFile: missing }))
      )
      expect(unreadable.path).toBe("shared_cache.ca_file")
      expect(unreadable.message).toContain("ENOENT")

      const notPem = Path.join(Os.tmpdir(), `not-pem-${process.pid}.pem`)
      Fs.writeFileSync(notPem, "hello")
      const garbage = yield* configurationError(
        Effect.scoped(SharedTokenStoreRedis.make({ url: "rediss://redis:6379", caFile: notPem }))
      )
      Fs.rmSync(notPem)
      expect(garbage.message).toContain("no PEM certificate")

      const nothing = yield* configurationError(Effect.scoped(SharedTokenStoreRedis.make({})))
      expect(nothing.path).toBe("shared_cache.url")
    }))

  it.effect("layerFromConfig: ConfigurationError at shared_cache.url without the block or its url", () =>
    Effect.gen(function*() {
      const base = {
        client_id: "fleet",
        client_secret: "secret",
        token_url: "https://idp.example.com/token"
      }
      for (const input of [base, { ...base, shared_cache: { key_prefix: "p" } }]) {
        const config = ServiceAccountConfig.decodeSync(input)
        const exit = yield* Effect.exit(Layer.build(SharedTokenStoreRedis.layerFromConfig(config)).pipe(Effect.scoped))
        expect(Exit.isFailure(exit)).toBe(true)
        const issue = yield* configurationError(
          Layer.build(SharedTokenStoreRedis.layerFromConfig(config)).pipe(Effect.scoped)
        )
        expect(issue.path).toBe("shared_cache.url")
      }
    }))

  it.scopedLive("layerFromConfig connects to shared_cache.url", () =>
    Effect.gen(function*() {
      const config = ServiceAccountConfig.decodeSync({
        client_id: "fleet",
        client_secret: "secret",
        token_url: "https://idp.example.com/token",
        shared_cache: { url: server.url }
      })
      const context = yield* Layer.build(SharedTokenStoreRedis.layerFromConfig(config)).pipe(Effect.orDie)
      const store = yield* Effect.provide(SharedTokenStore.SharedTokenStore, context)
      const key = freshKey()
      yield* store.block(key, "from config", 60_000)
      expect((yield* store.read(key)).block?.data).toBe("from config")
    }))
})

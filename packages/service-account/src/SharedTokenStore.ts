/**
 * The second-level token cache a fleet shares (issue 15): one entry per credential, a fetch lock, a block that makes
 * every process wait out a 429 or an invalid-credential cool-down, and a notification when a token is published.
 *
 * The store holds opaque strings: encoding, encryption and the fetch protocol live in the token provider, so a store
 * is only storage with a few atomic operations. Two implementations: {@link layerMemory} (one process; tests) and the
 * Redis one (`SharedTokenStoreRedis`). Every operation may fail with {@link StoreError}; the provider then falls back
 * to its own, local behaviour (fail open).
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * A stored token: its version (a hash of the token, for compare-and-delete), when it expires (epoch milliseconds) and
 * the encoded entry.
 *
 * @since 0.3.0
 * @category Models
 */
export interface StoredToken {
  readonly version: string
  readonly expiresAt: number
  readonly data: string
}

/**
 * What the fleet holds for a key.
 *
 * @since 0.3.0
 * @category Models
 */
export interface Snapshot {
  readonly token?: StoredToken | undefined
  /** A failure every process waits out: until when (epoch milliseconds) and the encoded error. */
  readonly block?: { readonly until: number; readonly data: string } | undefined
}

/**
 * The store failed or answered too slowly: the provider falls back to its local behaviour.
 *
 * @since 0.3.0
 * @category Errors
 */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message(): string {
    return `Shared token store: ${this.operation} failed (${this.reason})`
  }
}

/**
 * @since 0.3.0
 * @category Models
 */
export interface Store {
  /** The token and the block stored under `key`. */
  readonly read: (key: string) => Effect.Effect<Snapshot, StoreError>
  /** Takes the fetch lock for `leaseMillis` if nobody holds it. */
  readonly tryLock: (key: string, owner: string, leaseMillis: number) => Effect.Effect<boolean, StoreError>
  /**
   * Stores `token` unless the stored one expires later (set only if newer), kept until it expires; tells the processes
   * waiting in {@link Store.awaitPublish}; releases `owner`'s lock. Whether it was stored.
   */
  readonly publish: (
    key: string,
    token: StoredToken,
    owner: string | undefined
  ) => Effect.Effect<boolean, StoreError>
  /** Releases the lock if `owner` still holds it. */
  readonly unlock: (key: string, owner: string) => Effect.Effect<void, StoreError>
  /** Deletes the stored token if it is still `version` (a token a server rejected). Whether it deleted it. */
  readonly deleteIf: (key: string, version: string) => Effect.Effect<boolean, StoreError>
  /** Stores a block for `ttlMillis`: until then every process fails with it instead of requesting a token. */
  readonly block: (key: string, data: string, ttlMillis: number) => Effect.Effect<void, StoreError>
  /** Waits until a token is published under `key`, at most `millis`. */
  readonly awaitPublish: (key: string, millis: number) => Effect.Effect<void, StoreError>
}

/**
 * @since 0.3.0
 * @category Tags
 */
export class SharedTokenStore extends Context.Tag("@mcp-auth/service-account/SharedTokenStore")<
  SharedTokenStore,
  Store
>() {}

/**
 * A store in this process's memory, with time from the Effect `Clock` (so `TestClock` drives expiry, leases and
 * blocks): the protocol without Redis, for tests and for many providers of one process.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const makeMemory: Effect.Effect<Store> = Effect.sync(() => {
  const tokens = new Map<string, StoredToken>()
  const locks = new Map<string, { readonly owner: string; readonly until: number }>()
  const blocks = new Map<string, { readonly until: number; readonly data: string }>()
  const waiters = new Map<string, Deferred.Deferred<void>>()
  const live = <A extends { readonly until: number }>(map: Map<string, A>, key: string, now: number) => {
    const value = map.get(key)
    if (value !== undefined && value.until <= now) map.delete(key)
    return value !== undefined && value.until > now ? value : undefined
  }
  const tokenAt = (key: string, now: number) => {
    const token = tokens.get(key)
    if (token !== undefined && token.expiresAt <= now) tokens.delete(key)
    return token !== undefined && token.expiresAt > now ? token : undefined
  }
  const waiter = (key: string) => {
    let deferred = waiters.get(key)
    if (deferred === undefined) {
      deferred = Deferred.unsafeMake<void>(undefined as never)
      waiters.set(key, deferred)
    }
    return deferred
  }
  const store: Store = {
    read: (key) =>
      Effect.map(Clock.currentTimeMillis, (now) => ({ token: tokenAt(key, now), block: live(blocks, key, now) })),
    tryLock: (key, owner, leaseMillis) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (live(locks, key, now) !== undefined) return false
        locks.set(key, { owner, until: now + leaseMillis })
        return true
      }),
    publish: (key, token, owner) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const current = tokenAt(key, now)
        const stored = token.expiresAt > now && (current === undefined || token.expiresAt > current.expiresAt)
        if (stored) tokens.set(key, token)
        if (owner !== undefined && locks.get(key)?.owner === owner) locks.delete(key)
        const deferred = waiters.get(key)
        waiters.delete(key)
        return Effect.as(deferred === undefined ? Effect.void : Deferred.succeed(deferred, undefined), stored)
      }),
    unlock: (key, owner) =>
      Effect.suspend(() => {
        if (locks.get(key)?.owner !== owner) return Effect.void
        locks.delete(key)
        // the holder gave up (its fetch failed): the waiters look again rather than wait out their bound
        const deferred = waiters.get(key)
        waiters.delete(key)
        return deferred === undefined ? Effect.void : Deferred.succeed(deferred, undefined)
      }),
    deleteIf: (key, version) =>
      Effect.sync(() => {
        const deleted = tokens.get(key)?.version === version
        if (deleted) tokens.delete(key)
        return deleted
      }),
    block: (key, data, ttlMillis) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        blocks.set(key, { until: now + ttlMillis, data })
      }),
    awaitPublish: (key, millis) =>
      Effect.suspend(() => Deferred.await(waiter(key))).pipe(
        Effect.timeout(Duration.millis(millis)),
        Effect.ignore
      )
  }
  return store
})

/**
 * @since 0.3.0
 * @category Layers
 */
export const layerMemory: Layer.Layer<SharedTokenStore> = Layer.effect(SharedTokenStore, makeMemory)

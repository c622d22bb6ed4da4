/**
 * The fleet protocol (issue 15): a provider's fetch, shared with the other processes of a fleet through a
 * {@link SharedTokenStore.Store}. The in-process cache stays the first level; this runs only when the provider would
 * otherwise request a token.
 *
 * 1. A block (a 429's `Retry-After`, an invalid-credential cool-down) → fail with its error, no request.
 * 2. A stored token that is usable (not in its refresh window) and newer than ours → adopt it, no request.
 * 3. Else take the fetch lock: the holder reads again, requests, publishes (set only if newer), releases. The others
 *    serve a stored token that is due but still valid (newer than theirs) at once; with none, they wait for the
 *    publish (at most `waitMillis`), read again, and only then request themselves (at worst one extra request; never
 *    a caller stuck behind a crashed holder, whose lease ends by itself).
 * 4. A failure worth waiting out everywhere (429, invalid credentials) is stored as a block.
 *
 * Every store operation is bounded by `timeoutMillis`; a store error or a slow reply falls back to the local fetch
 * (fail open) and is counted. Tokens are encoded by {@link makeCodec}: JSON, or AES-256-GCM when a key is set.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as MetricLabel from "effect/MetricLabel"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"
import * as AccessToken from "../AccessToken.js"
import * as Metrics from "../Metrics.js"
import { RateLimitedError, TokenError } from "../ServiceAccountError.js"
import type * as SharedTokenStore from "../SharedTokenStore.js"
import { StoreError } from "../SharedTokenStore.js"

/** Where a fetch's token came from. */
export type Source = "fleet" | "endpoint"

/** @internal */
export interface Codec {
  readonly encode: (key: string, token: AccessToken.AccessToken) => string
  readonly decode: (key: string, data: string) => AccessToken.AccessToken | undefined
  /** Any other value stored under `key` (a block): sealed like a token when a key is set, else as it is. */
  readonly seal: (key: string, text: string) => string
  readonly open: (key: string, data: string) => string | undefined
}

const sha256 = (data: string | Buffer) => Crypto.createHash("sha256").update(data).digest()

/** The token's version: a hash of it, so compare-and-delete needs no token in the clear. @internal */
export const versionOf = (token: AccessToken.AccessToken): string =>
  sha256(Redacted.value(token.token)).toString("base64url").slice(0, 22)

/** A 32-byte key given as base64 or hex; `undefined` when it is neither. @internal */
export const parseKey = (text: string): Buffer | undefined => {
  const trimmed = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, "hex")
  // exactly 32 bytes of standard base64, which must encode back to the same text (Buffer.from skips what it cannot read)
  if (!/^[A-Za-z0-9+/]{43}=$/.test(trimmed)) return undefined
  const bytes = Buffer.from(trimmed, "base64")
  return bytes.length === 32 && bytes.toString("base64") === trimmed ? bytes : undefined
}

/**
 * JSON (`{ t, s, i, e, r }`), or with `keys` (the first encrypts, all decrypt): `v1.<kid>.<iv>.<sealed>` with
 * AES-256-GCM, the Redis key as additional data (a value moved to another key does not decrypt) and `kid` the first
 * 8 hex digits of the key's SHA-256. A value that does not decode is `undefined`: treated as absent. With keys, a
 * value written without one (a token, a block) is ignored, so a writer of the store who lacks the key can neither
 * plant a token nor stop the fleet with a block.
 *
 * @internal
 */
export const makeCodec = (keys: ReadonlyArray<Buffer>): Codec => {
  const kid = (key: Buffer) => sha256(key).toString("hex").slice(0, 8)
  const byKid = new Map(keys.map((key) => [kid(key), key]))
  const plain = (token: AccessToken.AccessToken) =>
    JSON.stringify({
      t: Redacted.value(token.token),
      s: token.scopes,
      i: token.issuedAt,
      e: token.expiresAt,
      ...(token.refreshIn === undefined ? {} : { r: token.refreshIn })
    })
  const parse = (json: string): AccessToken.AccessToken | undefined => {
    try {
      const u = JSON.parse(json) as { t?: unknown; s?: unknown; i?: unknown; e?: unknown; r?: unknown }
      if (
        typeof u.t !== "string" || typeof u.i !== "number" || typeof u.e !== "number" || !Array.isArray(u.s) ||
        !u.s.every((s) => typeof s === "string")
      ) return undefined
      return AccessToken.make({
        token: u.t,
        scopes: u.s as Array<string>,
        issuedAt: u.i,
        expiresInSeconds: (u.e - u.i) / 1000,
        refreshIn: typeof u.r === "number" ? u.r : undefined
      })
    } catch {
      return undefined
    }
  }
  const current = keys[0]
  const seal = (key: string, text: string) => {
    if (current === undefined) return text
    const iv = Crypto.randomBytes(12)
    const cipher = Crypto.createCipheriv("aes-256-gcm", current, iv).setAAD(Buffer.from(key))
    const sealed = Buffer.concat([cipher.update(text, "utf8"), cipher.final(), cipher.getAuthTag()])
    return `v1.${kid(current)}.${iv.toString("base64url")}.${sealed.toString("base64url")}`
  }
  const open = (key: string, data: string): string | undefined => {
    if (current === undefined) return data.startsWith("{") ? data : undefined
    const [v, id, iv, sealed] = data.split(".")
    const secret = id === undefined ? undefined : byKid.get(id)
    if (v !== "v1" || secret === undefined || iv === undefined || sealed === undefined) return undefined
    try {
      const bytes = Buffer.from(sealed, "base64url")
      if (bytes.length <= 16) return undefined
      const decipher = Crypto.createDecipheriv("aes-256-gcm", secret, Buffer.from(iv, "base64url"), {
        authTagLength: 16
      })
        .setAAD(Buffer.from(key))
      decipher.setAuthTag(bytes.subarray(bytes.length - 16))
      return Buffer.concat([decipher.update(bytes.subarray(0, bytes.length - 16)), decipher.final()]).toString()
    } catch {
      return undefined
    }
  }
  return {
    encode: (key, token) => seal(key, plain(token)),
    decode: (key, data) => {
      const text = open(key, data)
      return text === undefined ? undefined : parse(text)
    },
    seal,
    open
  }
}

/**
 * The key of a credential: a hash of what makes its tokens interchangeable (never the secret), in a `{hash tag}` so
 * that its token, lock and block share one Redis Cluster slot.
 *
 * @internal
 */
export const keyOf = (prefix: string, parts: {
  readonly endpoint: string
  readonly clientId: string
  readonly authMethod: string
  readonly scopes: ReadonlyArray<string>
  readonly resource?: string | undefined
  readonly audience?: string | undefined
}): string => {
  const identity = JSON.stringify([
    parts.endpoint,
    parts.clientId,
    parts.authMethod,
    [...parts.scopes].sort(),
    parts.resource ?? null,
    parts.audience ?? null
  ])
  return `${prefix}:{${sha256(identity).toString("base64url").slice(0, 32)}}`
}

/** @internal */
export interface Options {
  readonly store: SharedTokenStore.Store
  /**
   * The credential's key (see {@link keyOf}), from the configuration the token is requested with: with discovery,
   * the token endpoint, resource and scopes it found.
   */
  readonly keyOf: Effect.Effect<string, TokenError>
  readonly codec: Codec
  readonly owner: string
  readonly leaseMillis: number
  readonly waitMillis: number
  readonly timeoutMillis: number
  /** How long before its expiry a token is refreshed (the provider's lead): a stored token closer than that is due. */
  readonly leadMillis: (token: AccessToken.AccessToken) => number
  /** How long an invalid-credential failure blocks the fleet: the cool-down the provider would apply now; 0: none. */
  readonly cooldownMillis: Effect.Effect<number>
  /** Metric labels of the provider. */
  readonly labels: ReadonlyArray<MetricLabel.MetricLabel>
}

/** The longest block honoured or written: a store writer cannot stop the fleet for longer. */
const MAX_BLOCK_MILLIS = 3_600_000

const encodeError = Schema.encodeSync(Schema.parseJson(TokenError))
/** The additional data a block is sealed with: not the token's, so neither value decrypts as the other. */
const blockKey = (key: string) => `${key}:block`
const decodeError = Schema.decodeUnknownEither(Schema.parseJson(TokenError))

/** @internal */
export interface Fleet {
  /** A fetch through the fleet: `local` is the provider's own (retried) token request; `current` its token. */
  readonly fetch: <R>(
    local: Effect.Effect<AccessToken.AccessToken, TokenError, R>,
    current: AccessToken.AccessToken | undefined,
    /** When the fetch must be over (epoch ms): a stored 429 ending before it is waited out. */
    deadline: number
  ) => Effect.Effect<{ readonly token: AccessToken.AccessToken; readonly source: Source }, TokenError, R>
  /** One token request failed (before any retry): a 429 is shared at once, so the fleet waits it out too. */
  readonly attemptFailed: (error: TokenError) => Effect.Effect<void>
  /** A token a server rejected: deleted from the store if it is still the stored one. */
  readonly rejected: (token: AccessToken.AccessToken) => Effect.Effect<void>
  /** When the store last failed (epoch milliseconds), for `state`; `undefined` after a success since. */
  readonly failingSince: () => number | undefined
}

/** @internal */
export const make = (options: Options): Fleet => {
  const { codec, owner, store } = options
  /** The key of the current fetch (and, after it, of the token it gave). */
  let key = ""
  let failingSince: number | undefined
  const count = (outcome: string) =>
    Metrics.sharedCache.unsafeUpdate(1, [...options.labels, MetricLabel.make("outcome", outcome)])

  /**
   * A store operation, bounded by `timeout_ms` (beyond the time it is meant to wait, for `wait`); `undefined` when it
   * failed or was slow (counted, and the fetch goes on locally).
   */
  const guarded = <A>(
    operation: string,
    effect: Effect.Effect<A, StoreError>,
    waitMillis = 0
  ): Effect.Effect<A | undefined> =>
    effect.pipe(
      Effect.timeoutFail({
        duration: Duration.millis(waitMillis + options.timeoutMillis),
        onTimeout: () => new StoreError({ operation, reason: `no reply within ${options.timeoutMillis} ms` })
      }),
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            failingSince ??= now
            count("fail_open")
            return Effect.logWarning("Shared token store unavailable: fetching locally").pipe(
              Effect.annotateLogs({ operation: error.operation, reason: error.reason }),
              Effect.as(undefined)
            )
          }),
        onSuccess: (value) =>
          Effect.sync(() => {
            failingSince = undefined
            return value
          })
      })
    )

  /**
   * The stored token if this process may use it: it decodes and is newer than `current`; `fresh` also requires it not
   * to be due for refresh, else only that it can still be handed out (the lifecycle's last-second margin).
   */
  const usable = (
    snapshot: SharedTokenStore.Snapshot | undefined,
    current: AccessToken.AccessToken | undefined,
    now: number,
    fresh = true
  ): AccessToken.AccessToken | undefined => {
    const stored = snapshot?.token
    if (stored === undefined || (current !== undefined && stored.expiresAt <= current.expiresAt)) return undefined
    const token = codec.decode(key, stored.data)
    if (token === undefined) return undefined
    const margin = fresh
      ? options.leadMillis(token)
      : Math.min(1000, Math.max(0, token.expiresAt - token.issuedAt) / 4)
    return token.expiresAt - margin > now ? token : undefined
  }

  /** The stored failure every process waits out, with the time left in it; `undefined` when none (or unreadable). */
  const blocked = (
    snapshot: SharedTokenStore.Snapshot | undefined,
    now: number
  ): { readonly error: TokenError; readonly left: number } | undefined => {
    if (snapshot?.block === undefined) return undefined
    const decoded = decodeError(codec.open(blockKey(key), snapshot.block.data))
    // never longer than an hour, whatever a writer of the store asked for
    const left = Math.min(Math.max(0, snapshot.block.until - now), MAX_BLOCK_MILLIS)
    return Either.isRight(decoded) && left > 0 ? { error: decoded.right, left } : undefined
  }

  const publish = (token: AccessToken.AccessToken, lockedBy: string | undefined) =>
    guarded(
      "publish",
      store.publish(
        key,
        { version: versionOf(token), expiresAt: token.expiresAt, data: codec.encode(key, token) },
        lockedBy
      )
    )

  /**
   * A failure every process should wait out, stored as a block: a 429's `Retry-After` (written as soon as any attempt
   * gets it, before the holder's own retry sleeps through it), invalid credentials (for the cool-down the provider
   * would apply now, doubling as they repeat).
   */
  const blockFor = (error: TokenError) =>
    Effect.flatMap(options.cooldownMillis, (cooldown) => {
      const ttl = error._tag === "RateLimitedError"
        ? error.retryAfter === undefined ? 0 : Duration.toMillis(error.retryAfter)
        : error._tag === "InvalidCredentialsError"
        ? cooldown
        : 0
      return ttl > 0
        ? Effect.asVoid(guarded(
          "block",
          store.block(key, codec.seal(blockKey(key), encodeError(error)), Math.min(ttl, MAX_BLOCK_MILLIS))
        ))
        : Effect.void
    })

  /**
   * The local request, its token published (or its failure stored as a block); the lock released however it ends
   * (publish and unlock act only while `lockedBy` holds it, so calling them without the lock is harmless).
   */
  const requestAndPublish = <R>(
    local: Effect.Effect<AccessToken.AccessToken, TokenError, R>,
    lockedBy: string | undefined
  ) =>
    local.pipe(
      Effect.tapBoth({
        onFailure: (error) =>
          Effect.zipRight(
            error._tag === "RateLimitedError" ? Effect.void : blockFor(error),
            lockedBy === undefined ? Effect.void : Effect.asVoid(guarded("unlock", store.unlock(key, lockedBy)))
          ),
        onSuccess: (token) => Effect.asVoid(publish(token, lockedBy))
      }),
      Effect.onInterrupt(() =>
        lockedBy === undefined ? Effect.void : Effect.asVoid(guarded("unlock", store.unlock(key, lockedBy)))
      ),
      Effect.map((token) => ({ token, source: "endpoint" as const }))
    )

  const fetch = <R>(
    local: Effect.Effect<AccessToken.AccessToken, TokenError, R>,
    current: AccessToken.AccessToken | undefined,
    deadline: number
  ): Effect.Effect<{ readonly token: AccessToken.AccessToken; readonly source: Source }, TokenError, R> =>
    Effect.gen(function*() {
      key = yield* options.keyOf
      const adopt = (token: AccessToken.AccessToken) => {
        count("adopted")
        return Effect.succeed({ token, source: "fleet" as const })
      }
      /** Until when this process waits for another's token: set when it first has to wait (a block is not counted). */
      let waitUntil: number | undefined
      for (;;) {
        const snapshot = yield* guarded("read", store.read(key))
        // the store is unavailable: this process fetches alone (and shares if a later operation works)
        if (snapshot === undefined) return yield* requestAndPublish(local, owner)
        const now = yield* Clock.currentTimeMillis
        const found = usable(snapshot, current, now)
        if (found !== undefined) return yield* adopt(found)
        const block = blocked(snapshot, now)
        if (block !== undefined) {
          count("blocked")
          // a 429 that ends within this fetch's time: waited out here, as the provider would have; else its error,
          // with the time left in it
          if (block.error._tag === "RateLimitedError" && now + block.left <= deadline) {
            yield* Effect.sleep(Duration.millis(block.left))
            continue
          }
          return yield* Effect.fail(
            block.error._tag === "RateLimitedError"
              ? new RateLimitedError({ ...block.error, retryAfter: Duration.millis(block.left) })
              : block.error
          )
        }
        const locked = yield* guarded("lock", store.tryLock(key, owner, options.leaseMillis))
        // unknown (a slow reply may still have taken it): fetch, and publish and unlock if it was taken
        if (locked === undefined) return yield* requestAndPublish(local, owner)
        if (locked) {
          // the lock holder: another process may have published between the read and the lock
          const again = usable(yield* guarded("read", store.read(key)), current, yield* Clock.currentTimeMillis)
          if (again !== undefined) {
            yield* guarded("unlock", store.unlock(key, owner))
            return yield* adopt(again)
          }
          count("fetched")
          return yield* requestAndPublish(local, owner)
        }
        // another process is refreshing: a stored token that is due but still valid is served meanwhile (this
        // process's own refresh, in the background, then waits for the new one)
        const due = usable(snapshot, current, now, false)
        if (due !== undefined) return yield* adopt(due)
        // nothing to serve: wait for the publish (or the lock to go), then look again and try the lock again;
        // once the wait is over, request alone (at worst one extra request, never a caller stuck)
        // each process's bound is jittered (80–100 %), so after a crashed holder the first to give up publishes for
        // the rest; never past the point where this process's own token stops being usable (its callers would
        // block); in whole milliseconds, since a nanosecond clock (TestClock) could wake a waiter a fraction short of
        // a fractional bound, leaving it a wait shorter than a nanosecond, over and over
        waitUntil ??= Math.floor(Math.min(
          now + options.waitMillis * (0.8 + 0.2 * (yield* Random.next)),
          current === undefined
            ? Infinity
            : current.expiresAt - Math.min(1000, Math.max(0, current.expiresAt - current.issuedAt) / 4)
        ))
        const left = waitUntil - now
        if (left < 1) {
          count("fetched_after_wait")
          return yield* requestAndPublish(local, undefined)
        }
        yield* guarded("wait", store.awaitPublish(key, left), left)
      }
    })

  return {
    fetch,
    attemptFailed: (error) => error._tag === "RateLimitedError" && key !== "" ? blockFor(error) : Effect.void,
    rejected: (token) =>
      key === "" ? Effect.void : Effect.asVoid(guarded("delete", store.deleteIf(key, versionOf(token)))),
    failingSince: () => failingSince
  }
}

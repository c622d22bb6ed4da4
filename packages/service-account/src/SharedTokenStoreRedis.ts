/**
 * The fleet's shared token store on Redis (issue 15), with ioredis (an optional peer dependency, loaded only when
 * {@link make} runs with a `url`).
 *
 * For a base key `K` (which holds a `{hash tag}`, so all of a credential's keys share one Redis Cluster slot):
 *
 * - `K:token`: a hash, `e` (expiry, epoch milliseconds), `v` (version), `d` (the encoded entry); expires at `e`.
 * - `K:lock`: the fetch lock, its owner as the value, with the lease as TTL.
 * - `K:block`: a failure every process waits out, with its TTL.
 * - channel `K:published`: the version of each published token.
 *
 * Reads, set-if-newer, compare-and-delete and unlock are Lua scripts (`EVALSHA`, `EVAL` when the server does not have
 * the script yet), each one round trip. A connection this module opens fails commands at once while Redis is
 * unreachable (no offline queue, no resend), so the provider's timeout and fail-open work and memory does not grow;
 * ioredis reconnects by itself and sharing resumes without a restart.
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Tls from "node:tls"
import type * as ServiceAccountConfig from "./ServiceAccountConfig.js"
import { ConfigIssue, ConfigurationError } from "./ServiceAccountError.js"
import * as SharedTokenStore from "./SharedTokenStore.js"

/**
 * What this module uses of an ioredis client (`Redis` from ioredis 5 or 6 fits): commands go through `call`, the
 * subscriber is a `duplicate`.
 *
 * @since 0.3.0
 * @category Models
 */
export interface RedisClient {
  readonly status: string
  call(...args: [command: string, ...args: Array<string | number>]): Promise<unknown>
  duplicate(override?: {
    readonly enableOfflineQueue?: boolean
    readonly maxRetriesPerRequest?: number | null
    readonly autoResubscribe?: boolean
  }): RedisClient
  subscribe(...channels: Array<string>): Promise<unknown>
  unsubscribe(...channels: Array<string>): Promise<unknown>
  on(event: "message", listener: (channel: string, message: string) => void): unknown
  on(event: "error", listener: (error: Error) => void): unknown
  on(event: "ready", listener: () => void): unknown
  once(event: "ready" | "error" | "end", listener: () => void): unknown
  removeListener(event: "error", listener: (error: Error) => void): unknown
  removeListener(event: "ready" | "error" | "end", listener: () => void): unknown
  quit(): Promise<unknown>
  disconnect(): void
}

/**
 * @since 0.3.0
 * @category Models
 */
export interface Options {
  /** `redis://` or `rediss://` (TLS), `user:password@` (percent-encoded), `/db`. */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /**
   * A client of the program's own (instead of `url`): the store duplicates it (its settings, a connection of the
   * store's that never queues commands while Redis is down) and closes only its duplicates.
   */
  readonly client?: RedisClient | undefined
  /** An extra PEM CA bundle trusted for `rediss://` (besides the system roots and `NODE_EXTRA_CA_CERTS`). */
  readonly caFile?: string | undefined
}

/**
 * A store on Redis. With `url`, it loads ioredis, connects (waiting a moment for the connection, never failing when
 * Redis is down: operations then fail with {@link SharedTokenStore.StoreError} until it is back) and closes the
 * connection with the scope. With `client`, it uses that client and leaves it open.
 *
 * @since 0.3.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<SharedTokenStore.Store, ConfigurationError, Scope.Scope> =>
  Effect.gen(function*() {
    // a client of the program's: its settings (host, auth, TLS) on a connection of ours that never queues commands
    // while Redis is down (a queued lock or block would run after recovery, with nobody behind it)
    const connection = options.client !== undefined
      ? {
        client: options.client.duplicate({ enableOfflineQueue: false, maxRetriesPerRequest: 0 }),
        password: undefined
      }
      : yield* connect(options)
    const { client } = connection
    let lastError: string | undefined
    const scrub = (text: string) =>
      connection.password === undefined || connection.password.length === 0
        ? text
        : text.split(connection.password).join("***")
    const onError = (error: Error) => {
      lastError = scrub(firstLine(error.message))
    }
    const onReady = () => {
      lastError = undefined
    }
    client.on("error", onError)
    client.on("ready", onReady)
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.sync(() => {
          client.removeListener("error", onError)
          client.removeListener("ready", onReady)
        }),
        close(client)
      )
    )
    yield* awaitConnection(client)

    const reason = (cause: unknown): string => {
      const message = scrub(firstLine(cause instanceof Error ? cause.message : String(cause)))
      return notConnected.test(message)
        ? `not connected to Redis (${client.status}${lastError === undefined ? "" : `, last error: ${lastError}`})`
        : message
    }
    const command = (operation: string, args: [command: string, ...args: Array<string | number>]) =>
      Effect.tryPromise({
        try: () => client.call(...args),
        catch: (cause) => new SharedTokenStore.StoreError({ operation, reason: reason(cause) })
      })
    const run = (
      operation: string,
      script: Script,
      keys: ReadonlyArray<string>,
      args: ReadonlyArray<string | number>
    ) =>
      Effect.tryPromise({
        try: () =>
          client.call("EVALSHA", script.sha, keys.length, ...keys, ...args).catch((error: unknown) =>
            error instanceof Error && error.message.startsWith("NOSCRIPT")
              ? client.call("EVAL", script.lua, keys.length, ...keys, ...args)
              : Promise.reject(error)
          ),
        catch: (cause) => new SharedTokenStore.StoreError({ operation, reason: reason(cause) })
      })

    const subscriber = yield* makeSubscriber(client)

    const store: SharedTokenStore.Store = {
      read: (key) =>
        Effect.gen(function*() {
          const reply = yield* run("read", readScript, [`${key}:token`, `${key}:block`], [])
          const now = yield* Clock.currentTimeMillis
          const [e, v, d, b, pttl] = Array.isArray(reply) ? reply as Array<unknown> : []
          const expiresAt = typeof e === "string" ? Number(e) : Number.NaN
          const ttl = Number(pttl)
          return {
            token: Number.isFinite(expiresAt) && typeof v === "string" && typeof d === "string"
              ? { version: v, expiresAt, data: d }
              : undefined,
            block: typeof b === "string" && ttl > 0 ? { until: now + ttl, data: b } : undefined
          }
        }),
      tryLock: (key, owner, leaseMillis) =>
        Effect.map(
          command("lock", ["SET", `${key}:lock`, owner, "NX", "PX", positive(leaseMillis)]),
          (reply) => reply === "OK"
        ),
      publish: (key, token, owner) =>
        Effect.map(
          run("publish", publishScript, [`${key}:token`, `${key}:lock`], [
            String(token.expiresAt),
            Math.ceil(token.expiresAt),
            token.version,
            token.data,
            owner === undefined ? 0 : 1,
            owner ?? "",
            `${key}:published`
          ]),
          (reply) => Number(reply) === 1
        ),
      unlock: (key, owner) => Effect.asVoid(run("unlock", unlockScript, [`${key}:lock`], [owner])),
      deleteIf: (key, version) =>
        Effect.map(run("delete", deleteIfScript, [`${key}:token`], [version]), (reply) => Number(reply) === 1),
      block: (key, data, ttlMillis) =>
        Effect.asVoid(
          ttlMillis > 0
            ? command("block", ["SET", `${key}:block`, data, "PX", positive(ttlMillis)])
            : command("block", ["DEL", `${key}:block`])
        ),
      awaitPublish: (key, millis) => {
        const lockGone = Effect.map(command("wait", ["EXISTS", `${key}:lock`]), (n) => Number(n) === 0)
        const polling = Effect.repeat(lockGone, {
          until: (gone) => gone,
          schedule: Schedule.addDelayEffect(Schedule.forever, () => Random.nextIntBetween(pollMinMillis, pollMaxMillis))
        })
        return Effect.raceFirst(subscriber.published(`${key}:published`), Effect.asVoid(polling)).pipe(
          Effect.timeout(millis),
          Effect.catchTag("TimeoutException", () => Effect.void)
        )
      }
    }
    return store
  })

/**
 * @since 0.3.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<SharedTokenStore.SharedTokenStore, ConfigurationError> =>
  Layer.scoped(SharedTokenStore.SharedTokenStore, make(options))

/**
 * The store of a configuration's `shared_cache` block (`url`, `ca_file`); a configuration without `shared_cache.url`
 * is a {@link ConfigurationError}.
 *
 * @since 0.3.0
 * @category Layers
 */
export const layerFromConfig = (
  config: ServiceAccountConfig.ServiceAccountConfig
): Layer.Layer<SharedTokenStore.SharedTokenStore, ConfigurationError> =>
  config.sharedCache?.url === undefined
    ? Layer.fail(
      configurationError(
        "shared_cache.url",
        "give the Redis URL of the shared cache, e.g. rediss://user:${REDIS_PASSWORD}@redis.internal:6379/0"
      )
    )
    : layer({ url: config.sharedCache.url, caFile: config.sharedCache.caFile })

// -----------------------------------------------------------------------------
// internal
// -----------------------------------------------------------------------------

interface Script {
  readonly lua: string
  readonly sha: string
}

const script = (lua: string): Script => ({ lua, sha: Crypto.createHash("sha1").update(lua).digest("hex") })

/** KEYS: token, block. The token's fields, the block and its remaining milliseconds. */
const readScript = script(`
local t = redis.call('HMGET', KEYS[1], 'e', 'v', 'd')
return { t[1], t[2], t[3], redis.call('GET', KEYS[2]), redis.call('PTTL', KEYS[2]) }
`)

/**
 * KEYS: token, lock. ARGV: expiresAt, expiresAt as an integer, version, data, has owner (0/1), owner, channel.
 * Stores the token if it expires in the future (server time) and later than the stored one; releases the owner's
 * lock; publishes the version. 1 when stored.
 */
const publishScript = script(`
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local e = tonumber(ARGV[1])
local stored = 0
if e > now then
  local current = tonumber(redis.call('HGET', KEYS[1], 'e'))
  if current == nil or e > current then
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'e', ARGV[1], 'v', ARGV[3], 'd', ARGV[4])
    redis.call('PEXPIREAT', KEYS[1], ARGV[2])
    stored = 1
  end
end
if ARGV[5] == '1' and redis.call('GET', KEYS[2]) == ARGV[6] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[7], ARGV[3])
return stored
`)

/** KEYS: token. ARGV: version. Deletes the token if it is still that version. */
const deleteIfScript = script(`
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

/** KEYS: lock. ARGV: owner. Compare-and-delete. */
const unlockScript = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

/** How often a waiting process checks whether the lock is gone (a published message ends the wait sooner). */
const pollMinMillis = 100
const pollMaxMillis = 251
/** How long {@link make} waits for a new connection before it goes on (operations fail until it is up). */
const connectWaitMillis = 2_000
const quitMillis = 1_000

/** ioredis's errors for a command sent while the connection is down. */
const notConnected = /Stream isn't writeable|Connection is closed|enableOfflineQueue|MaxRetriesPerRequest/i

const positive = (millis: number) => Math.max(1, Math.ceil(millis))

const firstLine = (text: string) => {
  const line = text.split("\n")[0]?.trim() ?? ""
  return line.length > 200 ? `${line.slice(0, 200)}…` : line
}

const configurationError = (path: string, message: string) =>
  new ConfigurationError({ issues: [new ConfigIssue({ path, message })] })

type RedisConstructor = new(options: Record<string, unknown>) => RedisClient

const loadIoredis: Effect.Effect<RedisConstructor, ConfigurationError> = Effect.tryPromise({
  try: () => import("ioredis") as Promise<unknown>,
  catch: (cause) =>
    configurationError(
      "shared_cache.url",
      `the Redis shared cache needs the ioredis package (${
        (cause as NodeJS.ErrnoException | undefined)?.code ?? "not loadable"
      }): npm install ioredis`
    )
}).pipe(
  Effect.flatMap((module) => {
    const m = module as { Redis?: unknown; default?: { Redis?: unknown } | unknown }
    const candidate = m.Redis ??
      (typeof m.default === "object" && m.default !== null ? (m.default as { Redis?: unknown }).Redis : undefined) ??
      m.default
    return typeof candidate === "function"
      ? Effect.succeed(candidate as RedisConstructor)
      : Effect.fail(
        configurationError("shared_cache.url", "the ioredis package exports no Redis client: npm install ioredis")
      )
  })
)

interface Connection {
  readonly client: RedisClient
  readonly password: string | undefined
}

/** Parses the URL (never quoting it: it may hold a password), reads the CA, loads ioredis and connects. */
const connect = (options: Options): Effect.Effect<Connection, ConfigurationError> =>
  Effect.gen(function*() {
    if (options.url === undefined) {
      return yield* Effect.fail(
        configurationError("shared_cache.url", "give the Redis URL (redis:// or rediss://) or a client")
      )
    }
    const text = (Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url).trim()
    const url = URL.canParse(text) ? new URL(text) : undefined
    if (url === undefined || (url.protocol !== "redis:" && url.protocol !== "rediss:")) {
      return yield* Effect.fail(
        configurationError(
          "shared_cache.url",
          "shared_cache.url must be a redis:// or rediss:// URL (percent-encode the user and password), e.g. " +
            "rediss://user:password@redis:6379/0"
        )
      )
    }
    const dbText = url.pathname.replace(/^\//, "")
    const db = dbText === "" ? 0 : Number(dbText)
    if (!Number.isInteger(db) || db < 0) {
      return yield* Effect.fail(
        configurationError("shared_cache.url", "the path of shared_cache.url must be a database number, e.g. /0")
      )
    }
    const secure = url.protocol === "rediss:"
    if (options.caFile !== undefined && !secure) {
      return yield* Effect.fail(
        configurationError("shared_cache.ca_file", "shared_cache.ca_file applies to rediss:// URLs only: use rediss://")
      )
    }
    const ca = options.caFile === undefined ? undefined : yield* trusted(options.caFile)
    const decoded = (part: string) => {
      try {
        return decodeURIComponent(part)
      } catch {
        return undefined
      }
    }
    const password = url.password === "" ? undefined : decoded(url.password)
    const username = url.username === "" ? undefined : decoded(url.username)
    if ((url.password !== "" && password === undefined) || (url.username !== "" && username === undefined)) {
      return yield* Effect.fail(
        configurationError(
          "shared_cache.url",
          "the user or password of shared_cache.url is not valid percent-encoding: encode % as %25"
        )
      )
    }
    const Redis = yield* loadIoredis
    const client = new Redis({
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port === "" ? 6379 : Number(url.port),
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      db,
      ...(secure ? { tls: ca === undefined ? {} : { ca } } : {}),
      connectionName: "mcp-auth",
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 5_000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000) + Math.floor(Math.random() * 100)
    })
    return { client, password }
  })

/** The system roots, `NODE_EXTRA_CA_CERTS` and the bundle (passing `ca` replaces Node's defaults). */
const trusted = (caFile: string): Effect.Effect<Array<string>, ConfigurationError> =>
  Effect.gen(function*() {
    const read = (path: string, key: string) =>
      Effect.try({
        try: () => Fs.readFileSync(path, "utf8"),
        catch: (cause) =>
          configurationError(
            key,
            `cannot read ${path} (${
              (cause as NodeJS.ErrnoException).code ?? "error"
            }): give the path of a PEM CA bundle`
          )
      }).pipe(
        Effect.filterOrFail(
          (pem) => pem.includes("-----BEGIN CERTIFICATE-----"),
          () => configurationError(key, `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
        )
      )
    const extra = process.env.NODE_EXTRA_CA_CERTS
    const fromEnv = extra ? [yield* read(extra, "NODE_EXTRA_CA_CERTS")] : []
    return [...Tls.rootCertificates, ...fromEnv, yield* read(caFile, "shared_cache.ca_file")]
  })

/** Waits (a bounded moment) for a connection under way; returns at the first error (Redis down: fail open later). */
const awaitConnection = (client: RedisClient): Effect.Effect<void> =>
  client.status === "connecting" || client.status === "connect" || client.status === "reconnecting"
    ? Effect.async<void>((resume) => {
      const done = () => {
        cleanup()
        resume(Effect.void)
      }
      const timer = setTimeout(done, connectWaitMillis)
      const cleanup = () => {
        clearTimeout(timer)
        client.removeListener("ready", done)
        client.removeListener("error", done)
        client.removeListener("end", done)
      }
      client.once("ready", done)
      client.once("error", done)
      client.once("end", done)
      return Effect.sync(cleanup)
    })
    : Effect.void

/** `QUIT` (bounded), then drop the connection and its reconnection. */
const close = (client: RedisClient): Effect.Effect<void> =>
  Effect.promise(() => client.quit().then(() => undefined, () => undefined)).pipe(
    Effect.timeout(quitMillis),
    Effect.ignore,
    Effect.ensuring(Effect.sync(() => client.disconnect()))
  )

interface Subscriber {
  /** Succeeds on the next message on `channel`. */
  readonly published: (channel: string) => Effect.Effect<void>
}

/**
 * One subscriber connection per store (a duplicate of the client, opened on the first wait, closed with the scope),
 * subscribed to the channels somebody waits on. It subscribes only while connected (no offline queue) and again
 * after a reconnection; the polling of the lock covers the moments without a subscription.
 */
const makeSubscriber = (client: RedisClient): Effect.Effect<Subscriber, never, Scope.Scope> =>
  Effect.gen(function*() {
    const waiters = new Map<string, Set<() => void>>()
    let connection: RedisClient | undefined
    yield* Effect.addFinalizer(() => connection === undefined ? Effect.void : close(connection))
    const ignore = () => undefined
    const open = (): RedisClient => {
      if (connection !== undefined) return connection
      const sub = client.duplicate({ enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResubscribe: false })
      sub.on("error", ignore)
      sub.on("message", (channel) => {
        const set = waiters.get(channel)
        if (set !== undefined) { for (const wake of [...set]) wake() }
      })
      sub.on("ready", () => {
        const channels = [...waiters.keys()]
        if (channels.length > 0) sub.subscribe(...channels).catch(ignore)
      })
      connection = sub
      return sub
    }
    return {
      published: (channel) =>
        Effect.async<void>((resume) => {
          const sub = open()
          let set = waiters.get(channel)
          if (set === undefined) {
            set = new Set()
            waiters.set(channel, set)
            if (sub.status === "ready") sub.subscribe(channel).catch(ignore)
          }
          const entry = set
          const leave = () => {
            entry.delete(wake)
            if (entry.size === 0 && waiters.get(channel) === entry) {
              waiters.delete(channel)
              if (sub.status === "ready") sub.unsubscribe(channel).catch(ignore)
            }
          }
          function wake() {
            leave()
            resume(Effect.void)
          }
          entry.add(wake)
          return Effect.sync(leave)
        })
    }
  })

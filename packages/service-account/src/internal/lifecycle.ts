/**
 * Every policy decision of the token lifecycle, as one pure function: `transition(state, event, now, settings)` returns
 * the next state and the commands the Effect shell (`tokenProvider.ts`) runs. No effects, no clock, no randomness:
 * `now` and the random draws `u` arrive with the call, so tests drive it directly.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as AccessToken from "../AccessToken.js"
import {
  isTransient,
  MalformedResponseError,
  RateLimitedError,
  retryAfter,
  type TokenError
} from "../ServiceAccountError.js"
import type { InvalidateResult, TokenState } from "../TokenProvider.js"

/** @internal */
export interface Settings {
  /** `token_cache_buffer_seconds` in milliseconds. */
  readonly bufferMillis: number
  /** Delay of the n-th background refresh retry for a uniform draw `u` (the shared retry schedule's backoff). */
  readonly backoffMillis: (retry: number, u: number) => number
  /** `retry.max_elapsed_seconds`: the longest a caller waits out a transient cool-down before failing at once. */
  readonly maxWaitMillis: number
  /** `failure_cooldown`: first cool-down after a permanent failure, doubled per repeat, capped. 0 disables it. */
  readonly cooldownInitialMillis: number
  readonly cooldownMaxMillis: number
  /** For the errors this module builds (a token that arrived unusable). */
  readonly tokenUrl: string
}

/** A cached token and its schedule. */
export interface Entry {
  readonly token: AccessToken.AccessToken
  /** From this instant the next `get` starts one background refresh. */
  readonly refreshAt: number
  /** From this instant the token is no longer handed out: callers wait for a new one. */
  readonly usableUntil: number
}

/** A fetch in flight: `id` keys the shell's single flight; `notBefore` delays its first request (a cool-down). */
export interface Fetch {
  readonly id: number
  readonly mode: "blocking" | "background"
  readonly notBefore: number
}

/** No token request before `until`: callers without a usable token get `error` (or wait, if transient and short). */
export interface Cooldown {
  readonly until: number
  readonly error: TokenError
  readonly kind: "transient" | "permanent"
}

/** @internal */
export interface State {
  readonly entry: Entry | undefined
  readonly fetch: Fetch | undefined
  /** Ids of fetches started so far (the next fetch's id is `fetches + 1`). */
  readonly fetches: number
  /** A failed background refresh may not start again before this instant (its backoff). */
  readonly refreshNotBefore: number
  readonly degraded: { readonly since: number; readonly attempts: number } | undefined
  /** The last fetch failure since the last success. */
  readonly lastError: TokenError | undefined
  readonly cooldown: Cooldown | undefined
  /** Consecutive permanent failures: the permanent cool-down doubles with each. */
  readonly strikes: number
  /** When a 401 last dropped the token (drops are at most one per second). */
  readonly lastInvalidation: number
  readonly closed: boolean
}

/** @internal */
export const initial: State = {
  entry: undefined,
  fetch: undefined,
  fetches: 0,
  refreshNotBefore: 0,
  degraded: undefined,
  lastError: undefined,
  cooldown: undefined,
  strikes: 0,
  lastInvalidation: -Infinity,
  closed: false
}

/** @internal */
export type Event =
  | { readonly _tag: "Get" }
  | {
    readonly _tag: "FetchSucceeded"
    readonly id: number
    readonly token: AccessToken.AccessToken
    readonly u: number
  }
  | {
    readonly _tag: "FetchFailed"
    readonly id: number
    readonly error: TokenError
    /** Requests the fetch made (its retries included). */
    readonly attempts: number
    readonly u: number
  }
  /** The fetch ended without an outcome (a defect, or the scope closing). */
  | { readonly _tag: "FetchDied"; readonly id: number }
  | { readonly _tag: "Adopt"; readonly token: AccessToken.AccessToken; readonly u: number }
  | { readonly _tag: "Invalidate"; readonly rejected: AccessToken.AccessToken }
  | { readonly _tag: "Close" }

/** @internal */
export type Command =
  /** Answer the caller with this token. */
  | { readonly _tag: "Serve"; readonly token: AccessToken.AccessToken }
  /** Answer the caller with this error, without a request. */
  | { readonly _tag: "Fail"; readonly error: TokenError }
  /** The provider is closed: using it is a bug in how layers are composed. */
  | { readonly _tag: "Die" }
  /** Start fetch `fetch` in the provider's scope. */
  | { readonly _tag: "Start"; readonly fetch: Fetch }
  /** Wait for fetch `id` and answer the caller with its outcome. */
  | { readonly _tag: "Join"; readonly id: number; readonly leader: boolean }
  /** The outcome of fetch `id` for everyone waiting on it. */
  | { readonly _tag: "Settle"; readonly id: number; readonly result: TokenOutcome }
  | { readonly _tag: "Reply"; readonly result: InvalidateResult }
  | { readonly _tag: "Log"; readonly level: "Debug" | "Warning"; readonly message: string; readonly fields: Fields }

/** @internal */
export type TokenOutcome =
  | { readonly _tag: "Token"; readonly token: AccessToken.AccessToken }
  | { readonly _tag: "Error"; readonly error: TokenError }

type Fields = Readonly<Record<string, string | number>>

/** @internal */
export interface Step {
  readonly state: State
  readonly commands: ReadonlyArray<Command>
}

/** The blocking window just before expiry: never hand out a token with less than this left. */
const FORCED_WINDOW_MS = 1000
/** 401-driven drops of the cached token are at most one per this interval. */
export const MIN_INVALIDATION_INTERVAL_MS = 1000

/**
 * Refresh schedule of a token: lead = min(buffer, lifetime / 2); background refresh at `expiresAt - lead × U(0.8, 1)`
 * (or at `refresh_in` when the server sent an earlier one, but never before 10 % of the lifetime or 1 s, so a server
 * cannot make every call a token request); usable until `expiresAt - min(1 s, lifetime / 4)`, so a token is never
 * handed out in its last second, whatever the buffer, while a new one can be had (see `get` and `failed`: when none can,
 * a token that has not expired beats an error).
 *
 * @internal
 */
export const schedule = (token: AccessToken.AccessToken, bufferMillis: number, u: number): Entry => {
  const lifetime = Math.max(0, AccessToken.lifetimeMillis(token))
  const lead = Math.min(bufferMillis, lifetime / 2)
  const jittered = token.expiresAt - lead * (0.8 + 0.2 * u)
  const suggested = token.refreshIn === undefined
    ? Infinity
    : token.issuedAt + Math.max(token.refreshIn * 1000, lifetime / 10, 1000)
  const usableUntil = token.expiresAt - Math.min(FORCED_WINDOW_MS, lifetime / 4)
  return { token, refreshAt: Math.min(jittered, suggested, usableUntil), usableUntil }
}

const activeCooldown = (s: State, now: number): Cooldown | undefined =>
  s.cooldown !== undefined && now < s.cooldown.until ? s.cooldown : undefined

/**
 * The token `get` may hand out without any transition, and until when: the hot path serves `token` while
 * `now < until` and runs {@link transition} otherwise. A pure function of the state, so the shell recomputes it only
 * when the state changes.
 *
 * - Before the refresh point, or while a fetch runs, or while a failed refresh backs off or a cool-down runs: until
 *   the token stops being usable.
 * - Otherwise until the refresh point, where the next `get` starts the background refresh.
 *
 * @internal
 */
export const lease = (s: State): { readonly token: AccessToken.AccessToken; readonly until: number } | undefined => {
  const entry = s.entry
  if (s.closed || entry === undefined) return undefined
  if (s.fetch !== undefined) return { token: entry.token, until: entry.usableUntil }
  const heldBack = Math.max(entry.refreshAt, s.refreshNotBefore, s.cooldown?.until ?? 0)
  return { token: entry.token, until: Math.min(entry.usableUntil, heldBack) }
}

/** The wait to report with an error served from a cool-down: a 429 says how long is left. */
const withWait = (error: TokenError, waitMillis: number): TokenError =>
  error._tag === "RateLimitedError"
    ? new RateLimitedError({ ...error, retryAfter: Duration.millis(waitMillis) })
    : error

const start = (s: State, mode: Fetch["mode"], notBefore: number): [State, Fetch] => {
  const fetch: Fetch = { id: s.fetches + 1, mode, notBefore }
  return [{ ...s, fetch, fetches: fetch.id }, fetch]
}

const get = (s: State, now: number, settings: Settings): Step => {
  if (s.closed) return { state: s, commands: [{ _tag: "Die" }] }
  const entry = s.entry
  if (entry !== undefined && now < entry.usableUntil) {
    const serve = { _tag: "Serve", token: entry.token } as const
    if (now < entry.refreshAt || s.fetch !== undefined || now < s.refreshNotBefore || activeCooldown(s, now)) {
      return { state: s, commands: [serve] }
    }
    // one background refresh, decided on the current state: the token it refreshes is the one being served
    const [next, fetch] = start(s, "background", now)
    return { state: next, commands: [{ _tag: "Start", fetch }, serve] }
  }
  // Past its usable window a token is not handed out while a new one can be had; but a token that has not expired
  // beats waiting on a fetch already under way (a slow or failing endpoint) and beats an error in a cool-down.
  const last = entry !== undefined && now < entry.token.expiresAt ? entry.token : undefined
  if (s.fetch !== undefined) {
    return {
      state: s,
      commands: [last !== undefined ? { _tag: "Serve", token: last } : { _tag: "Join", id: s.fetch.id, leader: false }]
    }
  }
  const cooldown = activeCooldown(s, now)
  let notBefore = now
  if (cooldown !== undefined) {
    if (last !== undefined) return { state: s, commands: [{ _tag: "Serve", token: last }] }
    const wait = cooldown.until - now
    if (cooldown.kind === "permanent" || wait > settings.maxWaitMillis) {
      return { state: s, commands: [{ _tag: "Fail", error: withWait(cooldown.error, wait) }] }
    }
    notBefore = cooldown.until
  }
  const [next, fetch] = start(s, "blocking", notBefore)
  return { state: next, commands: [{ _tag: "Start", fetch }, { _tag: "Join", id: fetch.id, leader: true }] }
}

/** Installs `token` (the newest answer wins) unless it arrived unusable: then the caller treats it as a failure. */
const install = (
  s: State,
  token: AccessToken.AccessToken,
  now: number,
  u: number,
  settings: Settings
): Step | undefined => {
  const entry = schedule(token, settings.bufferMillis, u)
  if (now >= entry.usableUntil) return undefined
  return {
    state: {
      ...s,
      entry,
      degraded: undefined,
      lastError: undefined,
      cooldown: undefined,
      strikes: 0,
      refreshNotBefore: 0
    },
    commands: [{
      _tag: "Log",
      level: "Debug",
      message: `Service account token acquired (expires in ${Math.round((token.expiresAt - now) / 1000)}s)`,
      fields: {}
    }]
  }
}

/**
 * Whether a token just received can be used: `undefined` if so, else the (transient) error to retry with. The shell
 * checks it inside each attempt, so the retry schedule retries a late token; the transition checks it again.
 *
 * @internal
 */
export const arrival = (token: AccessToken.AccessToken, now: number, settings: Settings): TokenError | undefined =>
  now < schedule(token, settings.bufferMillis, 0).usableUntil ? undefined : unusableOnArrival(token, now, settings)

const unusableOnArrival = (token: AccessToken.AccessToken, now: number, settings: Settings): TokenError =>
  new MalformedResponseError({
    tokenUrl: settings.tokenUrl,
    reason: "arrived_late",
    detail: `it came with ${Math.max(0, token.expiresAt - now)} ms of its ${AccessToken.lifetimeMillis(token)} ms ` +
      "lifetime left, too little to use (retried: the token endpoint answered slowly)"
  })

const failed = (
  s: State,
  fetch: Fetch,
  error: TokenError,
  attempts: number,
  now: number,
  u: number,
  settings: Settings
): Step => {
  const permanent = !isTransient(error)
  const strikes = permanent ? s.strikes + 1 : s.strikes
  const waitMillis = permanent
    ? Math.min(settings.cooldownMaxMillis, settings.cooldownInitialMillis * 2 ** (strikes - 1))
    : (() => {
      const asked = retryAfter(error)
      return asked !== undefined ? Duration.toMillis(asked) : settings.backoffMillis(attempts, u)
    })()
  const cooldown: Cooldown | undefined = waitMillis > 0
    ? { until: now + waitMillis, error, kind: permanent ? "permanent" : "transient" }
    : undefined
  // the callers waiting on this fetch: a token not yet expired (in its last moments) beats an error
  const last = s.entry !== undefined && now < s.entry.token.expiresAt ? s.entry.token : undefined
  const commands: Array<Command> = [{
    _tag: "Settle",
    id: fetch.id,
    result: last !== undefined ? { _tag: "Token", token: last } : { _tag: "Error", error }
  }]
  if (permanent && cooldown !== undefined) {
    commands.push({
      _tag: "Log",
      level: "Warning",
      message: `${error.message} (no new token request for ${waitMillis / 1000}s)`,
      fields: { error: error._tag, cooldown_seconds: waitMillis / 1000, consecutive_failures: strikes }
    })
  }
  const entry = s.entry
  let degraded = s.degraded
  let refreshNotBefore = s.refreshNotBefore
  if (entry !== undefined && now < entry.usableUntil) {
    // stale-while-revalidate: keep serving the valid token, try again after a backoff (or the cool-down)
    const refreshes = (degraded?.attempts ?? 0) + 1
    degraded = { since: degraded?.since ?? now, attempts: refreshes }
    refreshNotBefore = Math.max(now + settings.backoffMillis(refreshes, u), cooldown?.until ?? 0)
    commands.push({
      _tag: "Log",
      level: "Warning",
      message: "Refreshing the service account token failed; serving the still-valid token",
      fields: {
        error: error._tag,
        expires_in_seconds: Math.round((entry.token.expiresAt - now) / 1000),
        retry_in_ms: refreshNotBefore - now
      }
    })
  }
  return {
    state: { ...s, fetch: undefined, lastError: error, cooldown, strikes, degraded, refreshNotBefore },
    commands
  }
}

/**
 * The lifecycle's transition function: every decision of the token provider, from the state, one event and the time.
 *
 * @internal
 */
export const transition = (s: State, event: Event, now: number, settings: Settings): Step => {
  switch (event._tag) {
    case "Get":
      return get(s, now, settings)
    case "FetchSucceeded": {
      const fetch = s.fetch
      if (fetch === undefined || fetch.id !== event.id) return { state: s, commands: [] }
      const installed = install({ ...s, fetch: undefined }, event.token, now, event.u, settings)
      if (installed === undefined) {
        return failed(s, fetch, unusableOnArrival(event.token, now, settings), 1, now, event.u, settings)
      }
      return {
        state: installed.state,
        commands: [
          { _tag: "Settle", id: fetch.id, result: { _tag: "Token", token: event.token } },
          ...installed.commands
        ]
      }
    }
    case "FetchFailed": {
      const fetch = s.fetch
      if (fetch === undefined || fetch.id !== event.id) return { state: s, commands: [] }
      return failed(s, fetch, event.error, event.attempts, now, event.u, settings)
    }
    case "FetchDied":
      return s.fetch === undefined || s.fetch.id !== event.id
        ? { state: s, commands: [] }
        : { state: { ...s, fetch: undefined }, commands: [] }
    case "Adopt": {
      if (s.closed) return { state: s, commands: [{ _tag: "Die" }] }
      return install(s, event.token, now, event.u, settings) ?? { state: s, commands: [] }
    }
    case "Invalidate": {
      const entry = s.entry
      const reply = (result: InvalidateResult): Command => ({ _tag: "Reply", result })
      if (entry === undefined || !AccessToken.sameToken(entry.token, event.rejected)) {
        return { state: s, commands: [reply({ _tag: "NotCurrent" })] }
      }
      // A token fetched after the last drop and rejected within a second: the server rejects fresh tokens, so hold
      // back. A token requested before that drop (a refresh under way when the server revoked tokens) may go.
      const wait = s.lastInvalidation + MIN_INVALIDATION_INTERVAL_MS - now
      if (wait > 0 && entry.token.issuedAt >= s.lastInvalidation) {
        return { state: s, commands: [reply({ _tag: "Throttled", retryAfterMillis: wait })] }
      }
      return {
        state: { ...s, entry: undefined, lastInvalidation: now },
        commands: [reply({ _tag: "Dropped" }), {
          _tag: "Log",
          level: "Debug",
          message: "Dropped the cached service account token after the server rejected it",
          fields: {}
        }]
      }
    }
    case "Close":
      return { state: { ...s, closed: true, fetch: undefined }, commands: [] }
  }
}

/**
 * The state as {@link TokenState}, for health checks: a pure read.
 *
 * @internal
 */
export const describe = (s: State, now: number): TokenState => {
  const cooldown = activeCooldown(s, now)
  const diagnostics = {
    ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
    ...(cooldown !== undefined ? { coolingDownUntil: cooldown.until, cooldownKind: cooldown.kind } : {}),
    ...(s.strikes > 0 ? { consecutiveFailures: s.strikes } : {})
  }
  const entry = s.entry
  if (entry === undefined || now >= entry.usableUntil) {
    return { status: entry === undefined ? "empty" : "expired", ...diagnostics }
  }
  const timing = {
    expiresAt: entry.token.expiresAt,
    refreshAt: entry.refreshAt,
    timeLeftMillis: entry.token.expiresAt - now
  }
  if (s.degraded !== undefined) {
    return {
      status: "degraded",
      ...timing,
      degradedSince: s.degraded.since,
      attempts: s.degraded.attempts,
      ...diagnostics
    }
  }
  return { status: s.fetch !== undefined ? "refreshing" : "fresh", ...timing, ...diagnostics }
}

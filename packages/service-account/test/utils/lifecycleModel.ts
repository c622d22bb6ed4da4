/**
 * A reference model of the token lifecycle policy, written from the issue and the `TokenProvider` docs rather than
 * from `internal/lifecycle.ts`, plus a generator of random event sequences and a driver that feeds them to the real
 * transition function. `Lifecycle.property.test.ts` compares the two step by step and checks invariants.
 */
import * as AccessToken from "@mcp-auth/service-account/AccessToken"
import {
  ClientCredentialError,
  InvalidCredentialsError,
  MalformedResponseError,
  NetworkError,
  RateLimitedError,
  TlsError,
  TokenEndpointError,
  type TokenError,
  TokenTimeoutError
} from "@mcp-auth/service-account/ServiceAccountError"
import type { InvalidateResult } from "@mcp-auth/service-account/TokenProvider"
import { Duration, FastCheck as fc, Redacted } from "effect"
import * as Lifecycle from "../../src/internal/lifecycle.js"

export const TOKEN_URL = "https://idp.example.com/oauth2/token"

// ---------------------------------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------------------------------

/** The shared retry schedule's shape, as a plain function: full jitter over 500 ms × 2^(n-1), capped at 10 s. */
export const backoffMillis = (n: number, u: number): number => Math.round(u * Math.min(10_000, 500 * 2 ** (n - 1)))

export const settings = (overrides: Partial<Lifecycle.Settings> = {}): Lifecycle.Settings => ({
  bufferMillis: 30_000,
  backoffMillis,
  maxWaitMillis: 10_000,
  cooldownInitialMillis: 60_000,
  cooldownMaxMillis: 900_000,
  tokenUrl: TOKEN_URL,
  ...overrides
})

export const settingsArb: fc.Arbitrary<Lifecycle.Settings> = fc.record({
  bufferMillis: fc.constantFrom(0, 1_000, 30_000, 300_000),
  maxWaitMillis: fc.constantFrom(0, 5_000, 30_000),
  cooldownInitialMillis: fc.constantFrom(0, 1_000, 60_000),
  cooldownFactor: fc.constantFrom(1, 4, 15)
}).map(({ cooldownFactor, cooldownInitialMillis, ...rest }) =>
  settings({ ...rest, cooldownInitialMillis, cooldownMaxMillis: cooldownInitialMillis * cooldownFactor })
)

// ---------------------------------------------------------------------------------------------------------------------
// Errors and tokens
// ---------------------------------------------------------------------------------------------------------------------

/** One factory per failure the token endpoint can report: each call builds a fresh error. */
export const errorFactories: ReadonlyArray<(retryAfterSeconds: number) => TokenError> = [
  () => new InvalidCredentialsError({ tokenUrl: TOKEN_URL, status: 401, error: "invalid_client" }),
  () => new TokenEndpointError({ tokenUrl: TOKEN_URL, status: 400, error: "invalid_scope" }),
  () => new TokenEndpointError({ tokenUrl: TOKEN_URL, status: 400, error: "unsupported_grant_type" }),
  () => new TokenEndpointError({ tokenUrl: TOKEN_URL, status: 503 }),
  (s) => new TokenEndpointError({ tokenUrl: TOKEN_URL, status: 503, retryAfter: Duration.seconds(s) }),
  () => new TokenEndpointError({ tokenUrl: TOKEN_URL, status: 500, error: "server_error" }),
  (s) => new RateLimitedError({ tokenUrl: TOKEN_URL, status: 429, retryAfter: Duration.seconds(s) }),
  () => new RateLimitedError({ tokenUrl: TOKEN_URL, status: 429 }),
  () => new TlsError({ url: TOKEN_URL, code: "SELF_SIGNED_CERT_IN_CHAIN", reason: "self-signed certificate" }),
  () => new NetworkError({ url: TOKEN_URL, code: "ECONNRESET", reason: "socket hang up" }),
  () => new TokenTimeoutError({ tokenUrl: TOKEN_URL, timeout: Duration.seconds(10) }),
  () => new MalformedResponseError({ tokenUrl: TOKEN_URL, reason: "not_json", detail: "the body is not JSON" }),
  () => new MalformedResponseError({ tokenUrl: TOKEN_URL, reason: "expires_in", detail: "expires_in is 0" }),
  // what a fetch whose every attempt came too late ends with
  () => new MalformedResponseError({ tokenUrl: TOKEN_URL, reason: "arrived_late", detail: "5 ms of 1000 ms left" }),
  () =>
    new ClientCredentialError({
      tokenUrl: TOKEN_URL,
      field: "client_assertion.file",
      file: "/var/run/secrets/token",
      reason: "cannot be read (ENOENT)"
    })
]

export const errorArb: fc.Arbitrary<TokenError> = fc.tuple(
  fc.nat({ max: errorFactories.length - 1 }),
  fc.oneof(fc.constantFrom(0, 1, 120), fc.integer({ min: 0, max: 600 }))
).map(([i, s]) => errorFactories[i]!(s))

/**
 * The spec's classification, written out: network failures, timeouts, 429 and 5xx (and 408), and a token that arrived
 * too late to use (a slow endpoint may answer in time next time) may succeed when retried; invalid credentials, OAuth
 * 4xx errors, TLS failures, every other malformed 200 response and every discovery failure but an unreachable document
 * will not.
 */
export const isPermanent = (error: TokenError): boolean => {
  switch (error._tag) {
    case "NetworkError":
    case "TokenTimeoutError":
    case "RateLimitedError":
      return false
    case "TokenEndpointError":
      return error.status < 500 && error.status !== 408
    case "MalformedResponseError":
      return error.reason !== "arrived_late"
    case "DiscoveryError":
      return error.reason !== "unreachable"
    case "InvalidCredentialsError":
    case "TlsError":
    case "ClientCredentialError":
      return true
  }
}

const serverWaitMillis = (error: TokenError): number | undefined =>
  (error._tag === "RateLimitedError" || error._tag === "TokenEndpointError") && error.retryAfter !== undefined
    ? Duration.toMillis(error.retryAfter)
    : undefined

/** What identifies an error for comparison: its kind and the fields a caller acts on. */
export const errorKey = (error: TokenError): string =>
  [
    error._tag,
    "status" in error ? error.status : "",
    "error" in error ? error.error ?? "" : "",
    "reason" in error ? error.reason : "",
    "code" in error ? error.code ?? "" : "",
    serverWaitMillis(error) ?? ""
  ].join("|")

let tokenCounter = 0

export const token = (issuedAt: number, lifetimeMillis: number, refreshIn?: number): AccessToken.AccessToken =>
  AccessToken.make({
    token: `tok-${++tokenCounter}`,
    issuedAt,
    expiresInSeconds: lifetimeMillis / 1000,
    refreshIn
  })

export const tokenValue = (t: AccessToken.AccessToken): string => Redacted.value(t.token)

/** The documented usable window: a token is never handed out in its last second (or last quarter, if shorter). */
export const usableUntil = (t: AccessToken.AccessToken): number => {
  const lifetime = t.expiresAt - t.issuedAt
  return t.expiresAt - Math.min(1000, lifetime / 4)
}

/** Token lifetimes in ms: expires on arrival, shorter than the forced window, short, typical, long. */
export const lifetimeArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 500, 999, 1_000, 1_001, 2_000, 4_000) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 10_000 }) },
  { weight: 4, arbitrary: fc.integer({ min: 10_000, max: 600_000 }) },
  { weight: 2, arbitrary: fc.constant(3_600_000) }
)

// ---------------------------------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------------------------------

/** Commands in a comparable shape: tokens by value, errors by {@link errorKey}; `Log` left out. */
export type Norm =
  | { readonly _tag: "Serve"; readonly token: string }
  | { readonly _tag: "Fail"; readonly error: string }
  | { readonly _tag: "Die" }
  | {
    readonly _tag: "Start"
    readonly id: number
    readonly mode: "blocking" | "background"
    readonly notBefore: number
  }
  | { readonly _tag: "Join"; readonly id: number; readonly leader: boolean }
  | { readonly _tag: "Settle"; readonly id: number; readonly result: string }
  | { readonly _tag: "Reply"; readonly result: InvalidateResult }

export const normalize = (commands: ReadonlyArray<Lifecycle.Command>): Array<Norm> =>
  commands.flatMap((c): Array<Norm> => {
    switch (c._tag) {
      case "Serve":
        return [{ _tag: "Serve", token: tokenValue(c.token) }]
      case "Fail":
        return [{ _tag: "Fail", error: errorKey(c.error) }]
      case "Die":
        return [{ _tag: "Die" }]
      case "Start":
        return [{ _tag: "Start", id: c.fetch.id, mode: c.fetch.mode, notBefore: c.fetch.notBefore }]
      case "Join":
        return [{ _tag: "Join", id: c.id, leader: c.leader }]
      case "Settle":
        return [{
          _tag: "Settle",
          id: c.id,
          result: c.result._tag === "Token"
            ? `token:${tokenValue(c.result.token)}`
            : `error:${errorKey(c.result.error)}`
        }]
      case "Reply":
        return [{ _tag: "Reply", result: c.result }]
      case "Log":
        return []
    }
  })

/** The key of the error a token that arrived unusable is reported as. */
export const ARRIVED_LATE = ["MalformedResponseError", "", "", "arrived_late", "", ""].join("|")

/**
 * The policy, as simply as it can be said:
 *
 * - a cached token is served while usable; from its refresh instant the next `get` starts ONE background refresh,
 *   unless a fetch already runs, a failed refresh is backing off, or a cool-down runs;
 * - without a usable token: join the fetch in flight; in a cool-down (either kind) serve the cached token if it has
 *   not expired yet (the last resort: no new token can be had), else in a permanent one fail at once with its error,
 *   in a transient one fail at once if it lasts longer than `maxWaitMillis`, otherwise start a fetch that waits it
 *   out; else start a fetch;
 * - a fetched or adopted token replaces the cached one, unless it arrived unusable (then: a TRANSIENT failure
 *   `arrived_late` for a fetch, after one attempt; nothing for an adopt); success clears every cool-down and the strike
 *   count;
 * - a permanent failure starts a cool-down of initial × 2^(strikes - 1), capped; a transient one waits what the server
 *   asked, or the backoff; a failed refresh with a usable token keeps serving it and backs off; the waiters of a
 *   failed fetch get the cached token if it has not expired yet, else the error;
 * - invalidate drops the cached token only if it is the rejected one, at most once per second;
 * - after close, `get` and `adopt` die.
 */
export class Model {
  cached: { token: AccessToken.AccessToken; refreshAt: number; usableUntil: number } | undefined = undefined
  inFlight: number | undefined = undefined
  lastId = 0
  refreshFailures = 0
  retryAt = -Infinity
  cooldown: { until: number; error: TokenError; kind: "permanent" | "transient" } | undefined = undefined
  strikes = 0
  lastDrop = -Infinity
  closed = false

  constructor(readonly settings: Lifecycle.Settings) {}

  usable(now: number): boolean {
    return this.cached !== undefined && now < this.cached.usableUntil
  }

  /** The cached token if it has not expired (usable or not): what callers get when no new token can be had. */
  notExpired(now: number): AccessToken.AccessToken | undefined {
    return this.cached !== undefined && now < this.cached.token.expiresAt ? this.cached.token : undefined
  }

  coolingDown(now: number): boolean {
    return this.cooldown !== undefined && now < this.cooldown.until
  }

  step(event: Lifecycle.Event, now: number): Array<Norm> {
    switch (event._tag) {
      case "Get":
        return this.get(now)
      case "FetchSucceeded": {
        if (this.inFlight !== event.id) return []
        this.inFlight = undefined
        if (now >= usableUntil(event.token)) return this.fail(event.id, undefined, 1, event.u, now)
        this.install(event.token, event.u)
        return [{ _tag: "Settle", id: event.id, result: `token:${tokenValue(event.token)}` }]
      }
      case "FetchFailed":
        if (this.inFlight !== event.id) return []
        this.inFlight = undefined
        return this.fail(event.id, event.error, event.attempts, event.u, now)
      case "FetchDied":
        if (this.inFlight === event.id) this.inFlight = undefined
        return []
      case "Adopt":
        if (this.closed) return [{ _tag: "Die" }]
        if (now < usableUntil(event.token)) this.install(event.token, event.u)
        return []
      case "Invalidate": {
        if (this.cached === undefined || tokenValue(this.cached.token) !== tokenValue(event.rejected)) {
          return [{ _tag: "Reply", result: { _tag: "NotCurrent" } }]
        }
        // held back only for a token fetched after the last drop (one requested before it may go too)
        if (now - this.lastDrop < 1000 && this.cached.token.issuedAt >= this.lastDrop) {
          return [{ _tag: "Reply", result: { _tag: "Throttled", retryAfterMillis: this.lastDrop + 1000 - now } }]
        }
        this.cached = undefined
        this.lastDrop = now
        return [{ _tag: "Reply", result: { _tag: "Dropped" } }]
      }
      case "Close":
        this.closed = true
        this.inFlight = undefined
        return []
    }
  }

  private start(mode: "blocking" | "background", notBefore: number): Norm {
    this.inFlight = ++this.lastId
    return { _tag: "Start", id: this.lastId, mode, notBefore }
  }

  private get(now: number): Array<Norm> {
    if (this.closed) return [{ _tag: "Die" }]
    if (this.cached !== undefined && this.usable(now)) {
      const serve: Norm = { _tag: "Serve", token: tokenValue(this.cached.token) }
      const due = now >= this.cached.refreshAt && now >= this.retryAt
      return due && this.inFlight === undefined && !this.coolingDown(now)
        ? [this.start("background", now), serve]
        : [serve]
    }
    if (this.inFlight !== undefined) {
      // a token that has not expired beats waiting on a fetch already under way
      const last = this.notExpired(now)
      return [
        last !== undefined
          ? { _tag: "Serve", token: tokenValue(last) }
          : { _tag: "Join", id: this.inFlight, leader: false }
      ]
    }
    if (this.cooldown !== undefined && this.coolingDown(now)) {
      const last = this.notExpired(now)
      if (last !== undefined) return [{ _tag: "Serve", token: tokenValue(last) }]
      const { error, kind, until } = this.cooldown
      if (kind === "permanent") return [{ _tag: "Fail", error: errorKey(error) }]
      if (until - now > this.settings.maxWaitMillis) {
        const told = error._tag === "RateLimitedError"
          ? new RateLimitedError({ ...error, retryAfter: Duration.millis(until - now) })
          : error
        return [{ _tag: "Fail", error: errorKey(told) }]
      }
      const start = this.start("blocking", until)
      return [start, { _tag: "Join", id: this.lastId, leader: true }]
    }
    const start = this.start("blocking", now)
    return [start, { _tag: "Join", id: this.lastId, leader: true }]
  }

  private install(t: AccessToken.AccessToken, u: number) {
    this.cached = {
      token: t,
      refreshAt: Lifecycle.schedule(t, this.settings.bufferMillis, u).refreshAt,
      usableUntil: usableUntil(t)
    }
    this.strikes = 0
    this.cooldown = undefined
    this.refreshFailures = 0
    this.retryAt = -Infinity
  }

  /** `error` undefined: the token arrived unusable. */
  private fail(id: number, error: TokenError | undefined, attempts: number, u: number, now: number): Array<Norm> {
    const key = error === undefined ? ARRIVED_LATE : errorKey(error)
    const permanent = error !== undefined && isPermanent(error)
    let wait: number
    if (permanent) {
      this.strikes++
      const { cooldownInitialMillis: initial, cooldownMaxMillis: max } = this.settings
      wait = initial === 0 ? 0 : Math.min(max, initial * 2 ** (this.strikes - 1))
    } else {
      wait = (error === undefined ? undefined : serverWaitMillis(error)) ?? this.settings.backoffMillis(attempts, u)
    }
    // the model keeps its own error for an unusable arrival: only its key is compared
    const cause = error ?? new MalformedResponseError({ tokenUrl: TOKEN_URL, reason: "arrived_late", detail: "" })
    this.cooldown = wait > 0
      ? { until: now + wait, error: cause, kind: permanent ? "permanent" : "transient" }
      : undefined
    if (this.usable(now)) {
      this.refreshFailures++
      this.retryAt = Math.max(now + this.settings.backoffMillis(this.refreshFailures, u), this.cooldown?.until ?? 0)
    }
    const last = this.notExpired(now)
    return [{ _tag: "Settle", id, result: last !== undefined ? `token:${tokenValue(last)}` : `error:${key}` }]
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Random runs
// ---------------------------------------------------------------------------------------------------------------------

/** What happens next, independent of the state; {@link drive} turns it into a `Lifecycle.Event`. */
export type Action =
  | { readonly _tag: "Get" }
  | {
    readonly _tag: "Succeed"
    readonly lifetimeMillis: number
    /** Where between the request's start and now the token was issued (a retry sent later). */
    readonly requestFraction: number
    /** If set, the response arrives this fraction of the token's lifetime after the request started (a slow one). */
    readonly late: number | undefined
    readonly refreshIn: number | undefined
    readonly u: number
  }
  | { readonly _tag: "Fail"; readonly error: TokenError; readonly attempts: number; readonly u: number }
  | { readonly _tag: "Died" }
  /** An outcome for a fetch that is not (or no longer) in flight. */
  | { readonly _tag: "Stale"; readonly outcome: "succeed" | "fail" | "died" }
  | { readonly _tag: "Adopt"; readonly lifetimeMillis: number; readonly ageMillis: number; readonly u: number }
  | { readonly _tag: "Invalidate"; readonly which: "current" | "old" | "foreign"; readonly pick: number }
  | { readonly _tag: "Close" }

/** An instant of the state worth landing on (or just around): where the policy changes its mind. */
export type Mark = "refreshAt" | "usableUntil" | "expiresAt" | "cooldownEnd" | "retryAt" | "dropAllowed"

/** How far the clock moves before the action: by a duration, or to a mark of the current state plus an offset. */
export type Advance =
  | { readonly _tag: "By"; readonly millis: number }
  | { readonly _tag: "To"; readonly mark: Mark; readonly offset: number }

export interface TimedAction {
  readonly advance: Advance
  readonly action: Action
}

/** `arb` one time in `n`, otherwise undefined. */
const sometimes = <A>(arb: fc.Arbitrary<A>, n: number): fc.Arbitrary<A | undefined> =>
  fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb })

const uArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: fc.constant<Action>({ _tag: "Get" }) },
  {
    weight: 4,
    arbitrary: fc.record({
      lifetimeMillis: lifetimeArb,
      requestFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      late: sometimes(fc.double({ min: 0.5, max: 1.2, noNaN: true }), 5),
      refreshIn: sometimes(fc.integer({ min: 0, max: 4000 }), 4),
      u: uArb
    }).map((r): Action => ({ _tag: "Succeed", ...r }))
  },
  {
    weight: 3,
    arbitrary: fc.record({ error: errorArb, attempts: fc.integer({ min: 1, max: 5 }), u: uArb })
      .map((r): Action => ({ _tag: "Fail", ...r }))
  },
  { weight: 1, arbitrary: fc.constant<Action>({ _tag: "Died" }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("succeed" as const, "fail" as const, "died" as const).map((outcome): Action => ({
      _tag: "Stale",
      outcome
    }))
  },
  {
    weight: 2,
    arbitrary: fc.record({ lifetimeMillis: lifetimeArb, ageMillis: fc.integer({ min: 0, max: 5_000 }), u: uArb })
      .map((r): Action => ({ _tag: "Adopt", ...r }))
  },
  {
    weight: 3,
    arbitrary: fc.record({
      which: fc.constantFrom<"current" | "old" | "foreign">("current", "current", "old", "foreign"),
      pick: fc.nat()
    })
      .map((r): Action => ({ _tag: "Invalidate", ...r }))
  }
)

/**
 * Time steps: often none (concurrent callers), often under the one-second limits, sometimes a token lifetime; and
 * often to an instant where the policy changes (the refresh point, the end of the usable window or of a cool-down,
 * the next allowed drop), exactly or just around it.
 */
const advanceArb: fc.Arbitrary<Advance> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Advance>({ _tag: "By", millis: 0 }) },
  {
    weight: 8,
    arbitrary: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 999 }) },
      { weight: 3, arbitrary: fc.integer({ min: 1_000, max: 10_000 }) },
      { weight: 2, arbitrary: fc.integer({ min: 10_000, max: 120_000 }) },
      { weight: 1, arbitrary: fc.integer({ min: 120_000, max: 4_000_000 }) }
    ).map((millis): Advance => ({ _tag: "By", millis }))
  },
  {
    weight: 5,
    arbitrary: fc.record({
      mark: fc.constantFrom<Mark>("refreshAt", "usableUntil", "expiresAt", "cooldownEnd", "retryAt", "dropAllowed"),
      offset: fc.oneof(fc.constantFrom(-1, 0, 0, 1), fc.integer({ min: -2_000, max: 2_000 }))
    }).map((r): Advance => ({ _tag: "To", ...r }))
  }
)

/** A run: random actions, one time in four closed at a random point. */
export const runArb: fc.Arbitrary<ReadonlyArray<TimedAction>> = fc.tuple(
  fc.array(fc.record({ advance: advanceArb, action: actionArb }), { minLength: 1, maxLength: 60, size: "max" }),
  sometimes(fc.nat({ max: 60 }), 4)
).map(([actions, closeAt]) =>
  closeAt === undefined || closeAt >= actions.length
    ? actions
    : [
      ...actions.slice(0, closeAt),
      { advance: { _tag: "By", millis: 0 }, action: { _tag: "Close" } },
      ...actions.slice(closeAt)
    ]
)

export interface StepInfo {
  readonly before: Lifecycle.State
  readonly event: Lifecycle.Event
  readonly action: Action
  readonly now: number
  readonly step: Lifecycle.Step
  /** Index of the step in the run. */
  readonly index: number
}

const markOf = (state: Lifecycle.State, mark: Mark): number | undefined => {
  switch (mark) {
    case "refreshAt":
      return state.entry?.refreshAt
    case "usableUntil":
      return state.entry?.usableUntil
    case "expiresAt":
      return state.entry?.token.expiresAt
    case "cooldownEnd":
      return state.cooldown?.until
    case "retryAt":
      return state.refreshNotBefore > 0 ? state.refreshNotBefore : undefined
    case "dropAllowed":
      return Number.isFinite(state.lastInvalidation) ? state.lastInvalidation + 1000 : undefined
  }
}

/**
 * Runs the actions through the real transition function, with non-decreasing `now` from 1 000 000, calling `check`
 * after every step (with the state before and the step taken).
 */
export const drive = (
  s: Lifecycle.Settings,
  actions: ReadonlyArray<TimedAction>,
  check: (info: StepInfo) => void
): Lifecycle.State => {
  let state = Lifecycle.initial
  let now = 1_000_000
  const startedAt = new Map<number, number>()
  const seen: Array<AccessToken.AccessToken> = []
  actions.forEach(({ action, advance }, index) => {
    if (advance._tag === "By") now += advance.millis
    else {
      const mark = markOf(state, advance.mark)
      if (mark !== undefined) now = Math.max(now, Math.ceil(mark + advance.offset))
    }
    const [event, at] = toEvent(action, state, now, startedAt, seen)
    now = at
    const step = Lifecycle.transition(state, event, now, s)
    for (const c of step.commands) {
      if (c._tag === "Start") startedAt.set(c.fetch.id, Math.max(now, c.fetch.notBefore))
    }
    check({ before: state, event, action, now, step, index })
    state = step.state
  })
  return state
}

/** The event for `action` in `state`, and the instant it happens (a late response moves the clock on). */
const toEvent = (
  action: Action,
  state: Lifecycle.State,
  now: number,
  startedAt: Map<number, number>,
  seen: Array<AccessToken.AccessToken>
): [Lifecycle.Event, number] => {
  const fetch = state.fetch
  const remember = (t: AccessToken.AccessToken) => {
    seen.push(t)
    return t
  }
  const stale = (outcome: "succeed" | "fail" | "died") =>
    toEvent({ _tag: "Stale", outcome }, state, now, startedAt, seen)
  switch (action._tag) {
    case "Get":
      return [{ _tag: "Get" }, now]
    case "Succeed": {
      if (fetch === undefined) return stale("succeed")
      const sent = startedAt.get(fetch.id) ?? now
      if (action.late !== undefined) {
        // sent when the fetch started, answered late in the token's lifetime (or after it)
        const at = Math.max(now, sent + Math.round(action.late * action.lifetimeMillis))
        return [
          { _tag: "FetchSucceeded", id: fetch.id, token: remember(token(sent, action.lifetimeMillis)), u: action.u },
          at
        ]
      }
      // issued when the request was sent: somewhere between the fetch's start and now
      const from = Math.min(now, sent)
      const issuedAt = from + Math.floor(action.requestFraction * (now - from))
      return [{
        _tag: "FetchSucceeded",
        id: fetch.id,
        token: remember(token(issuedAt, action.lifetimeMillis, action.refreshIn)),
        u: action.u
      }, now]
    }
    case "Fail":
      if (fetch === undefined) return stale("fail")
      return [{ _tag: "FetchFailed", id: fetch.id, error: action.error, attempts: action.attempts, u: action.u }, now]
    case "Died":
      if (fetch === undefined) return stale("died")
      return [{ _tag: "FetchDied", id: fetch.id }, now]
    case "Stale": {
      // the last fetch that ended, or one never started
      const id = fetch === undefined ? state.fetches : fetch.id - 1
      switch (action.outcome) {
        case "succeed":
          return [{ _tag: "FetchSucceeded", id, token: remember(token(now, 3_600_000)), u: 0.5 }, now]
        case "fail":
          return [{
            _tag: "FetchFailed",
            id,
            error: new NetworkError({ url: TOKEN_URL, reason: "late" }),
            attempts: 1,
            u: 0.5
          }, now]
        case "died":
          return [{ _tag: "FetchDied", id }, now]
      }
      break
    }
    case "Adopt":
      return [{
        _tag: "Adopt",
        token: remember(token(now - action.ageMillis, action.lifetimeMillis)),
        u: action.u
      }, now]
    case "Invalidate": {
      const current = state.entry?.token
      if (action.which === "current" && current !== undefined) {
        // another value carrying the same token string (as a 401 handler would hold)
        return [{ _tag: "Invalidate", rejected: { ...current } }, now]
      }
      if (action.which !== "foreign" && seen.length > 0) {
        return [{ _tag: "Invalidate", rejected: seen[action.pick % seen.length]! }, now]
      }
      return [{ _tag: "Invalidate", rejected: token(now, 3_600_000) }, now]
    }
    case "Close":
      return [{ _tag: "Close" }, now]
  }
}

/**
 * A bearer token obtained with the client-credentials grant. The token itself is `Redacted`: it prints as
 * `<redacted>` in strings, JSON, `util.inspect` and Effect logs.
 *
 * @since 0.1.0
 */
import * as Redacted from "effect/Redacted"

/**
 * @since 0.1.0
 * @category Models
 */
export interface AccessToken {
  readonly token: Redacted.Redacted<string>
  readonly tokenType: "Bearer"
  /** Granted scopes: the response's `scope`, or the requested scopes when the server did not say. */
  readonly scopes: ReadonlyArray<string>
  /** Epoch milliseconds, read through `Clock` just before the request was sent. */
  readonly issuedAt: number
  /** Epoch milliseconds: `issuedAt + expires_in` (clamped: see {@link make}). */
  readonly expiresAt: number
  /** Seconds after `issuedAt` at which the server suggests refreshing (`refresh_in`, as Entra sends). */
  readonly refreshIn?: number | undefined
}

/**
 * The longest lifetime any token is given: ten years. {@link make} clamps to it whatever it is passed, so no value of
 * `expires_in` (1e20, 2^53, `Infinity`) can produce an `expiresAt` outside what a `Date` can hold. The token endpoint
 * clamps to the provider's `max_token_lifetime_seconds` (default one day) first.
 *
 * @since 0.2.0
 * @category Constants
 */
export const MAX_LIFETIME_SECONDS = 10 * 365 * 86400

/** The largest epoch milliseconds a `Date` can hold (ECMA-262 §21.4.1.22). */
const MAX_DATE_MILLIS = 8.64e15

const clampMillis = (ms: number): number => Math.min(Math.max(ms, -MAX_DATE_MILLIS), MAX_DATE_MILLIS)

/**
 * A token issued at `issuedAt` (epoch milliseconds) for `expiresInSeconds`. As a safety net the lifetime is clamped to
 * ±{@link MAX_LIFETIME_SECONDS} (a `NaN` lifetime counts as 0), `refreshIn` to `[0, lifetime]` (dropped when it is not
 * a number), and `expiresAt` is a whole number of milliseconds within the range of `Date`: `new Date(expiresAt)` is
 * always valid for a valid `issuedAt`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: {
  readonly token: string | Redacted.Redacted<string>
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly issuedAt: number
  readonly expiresInSeconds: number
  readonly refreshIn?: number | undefined
}): AccessToken => {
  const requested = options.expiresInSeconds
  const lifetime = Number.isNaN(requested)
    ? 0
    : Math.min(Math.max(requested, -MAX_LIFETIME_SECONDS), MAX_LIFETIME_SECONDS)
  const refreshIn = options.refreshIn
  return {
    token: typeof options.token === "string" ? Redacted.make(options.token) : options.token,
    tokenType: "Bearer",
    scopes: options.scopes ?? [],
    issuedAt: options.issuedAt,
    expiresAt: clampMillis(Math.round(options.issuedAt + lifetime * 1000)),
    refreshIn: refreshIn === undefined || Number.isNaN(refreshIn)
      ? undefined
      : Math.min(Math.max(refreshIn, 0), Math.max(lifetime, 0))
  }
}

/**
 * The token's lifetime in milliseconds.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const lifetimeMillis = (token: AccessToken): number => token.expiresAt - token.issuedAt

/**
 * Whether two values carry the same token string (compare-and-invalidate uses this).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const sameToken = (a: AccessToken, b: AccessToken): boolean =>
  a === b || Redacted.value(a.token) === Redacted.value(b.token)

/**
 * The `Authorization` header value. Only call this where the header is written.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const authorization = (token: AccessToken): string => `Bearer ${Redacted.value(token.token)}`

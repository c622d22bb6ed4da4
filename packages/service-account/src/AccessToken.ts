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
  /** Epoch milliseconds: `issuedAt + expires_in`. */
  readonly expiresAt: number
  /** Seconds after `issuedAt` at which the server suggests refreshing (`refresh_in`, as Entra sends). */
  readonly refreshIn?: number | undefined
}

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: {
  readonly token: string | Redacted.Redacted<string>
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly issuedAt: number
  readonly expiresInSeconds: number
  readonly refreshIn?: number | undefined
}): AccessToken => ({
  token: typeof options.token === "string" ? Redacted.make(options.token) : options.token,
  tokenType: "Bearer",
  scopes: options.scopes ?? [],
  issuedAt: options.issuedAt,
  expiresAt: options.issuedAt + Math.round(options.expiresInSeconds * 1000),
  refreshIn: options.refreshIn
})

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

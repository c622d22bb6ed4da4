/**
 * Types shared by every test server: what a recorded request looks like and how a server started from plain async
 * code is closed.
 *
 * @since 0.1.0
 */

/**
 * One HTTP request as a server saw it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RecordedRequest {
  /** Arrival time, epoch milliseconds. */
  readonly time: number
  readonly method: string
  /** Path without the query string. */
  readonly path: string
  /** Path with the query string, as sent. */
  readonly url: string
  /** Header names lowercased; repeated headers joined with `", "`. */
  readonly headers: Readonly<Record<string, string>>
  /** Headers exactly as received: original name casing and order. */
  readonly rawHeaders: ReadonlyArray<readonly [name: string, value: string]>
  /** Response status, once known. */
  readonly status: number | undefined
}

/**
 * Something started from plain async code that must be closed.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Closeable {
  /** Destroys open sockets and stops listening; idempotent. */
  readonly close: () => Promise<void>
}

/**
 * A server returned by a `start(options)` function.
 *
 * @since 0.1.0
 * @category Models
 */
export type Started<A> = A & Closeable

/**
 * The secrets an authenticated fetch has sent lately (bearer tokens and service-token values), so that server text
 * quoting them can be scrubbed before it reaches a message. A server may echo the token of this request or of the one
 * before (a refresh in between), so the last few distinct values are kept.
 *
 * @internal
 */
export interface SecretRing {
  readonly remember: (values: Iterable<string | undefined>) => void
  readonly values: () => ReadonlyArray<string>
}

/** Distinct values kept (current and previous token and service token, with room for concurrent refreshes). */
const KEEP = 8

/** @internal */
export const make = (): SecretRing => {
  const kept: Array<string> = []
  return {
    // runs on every request: no allocation when the values are already kept (the common case), only a move to the end
    remember: (values) => {
      for (const value of values) {
        if (value === undefined || value.length === 0) continue
        const at = kept.indexOf(value)
        if (at !== -1 && at === kept.length - 1) continue
        if (at >= 0) kept.splice(at, 1)
        kept.push(value)
        if (kept.length > KEEP) kept.shift()
      }
    },
    values: () => kept
  }
}

/** @internal */
export const empty: SecretRing = { remember: () => undefined, values: () => [] }

const registry = new WeakMap<object, SecretRing>()

/** Attaches the ring of an authenticated fetch to it, for the client built on it. @internal */
export const register = <F extends object>(fetch: F, ring: SecretRing): F => {
  registry.set(fetch, ring)
  return fetch
}

/** The ring of a fetch made by `AuthenticatedFetch` (none for any other fetch). @internal */
export const of = (fetch: object): SecretRing => registry.get(fetch) ?? empty

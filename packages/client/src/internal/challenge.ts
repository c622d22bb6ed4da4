/**
 * `error` and `error_description` from a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3), each cut to 200
 * characters.
 *
 * @internal
 */
export const parseChallenge = (header: string | null): { error?: string; errorDescription?: string } => {
  if (header === null) return {}
  const param = (name: string) => new RegExp(`${name}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(header)?.[1]?.slice(0, 200)
  const error = param("error")
  const errorDescription = param("error_description")
  return { ...(error ? { error } : {}), ...(errorDescription ? { errorDescription } : {}) }
}

/**
 * `error` and `error_description` from a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3), as the server sent
 * them: scrub them (`Scrub.text`) before they reach a message (a cut here could leave part of a secret behind).
 *
 * @internal
 */
export const parseChallenge = (header: string | null): { error?: string; errorDescription?: string } => {
  if (header === null) return {}
  const param = (name: string) => new RegExp(`(?:^|[\\s,])${name}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(header)?.[1]
  const error = param("error")
  const errorDescription = param("error_description")
  return { ...(error ? { error } : {}), ...(errorDescription ? { errorDescription } : {}) }
}

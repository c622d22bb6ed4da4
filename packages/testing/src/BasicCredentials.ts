/**
 * RFC 6749 §2.3.1 HTTP Basic client credentials: each of `client_id` and `client_secret` is
 * `application/x-www-form-urlencoded` (UTF-8, space as `+`), then `id:secret` is base64-encoded. Used by the tests and
 * by {@link FaultTokenEndpoint} to decode what a client sent.
 *
 * @since 0.1.0
 */

/**
 * Decoded client credentials.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ClientCredentials {
  readonly clientId: string
  readonly clientSecret: string
}

/**
 * `application/x-www-form-urlencoded` encoding of one value (as `URLSearchParams` does it).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const formEncode = (value: string): string => new URLSearchParams({ v: value }).toString().slice(2)

/**
 * Builds an `Authorization` header value per RFC 6749 §2.3.1: `Basic base64(formEncode(id) ":" formEncode(secret))`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const encode = (clientId: string, clientSecret: string): string =>
  `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`, "utf8").toString("base64")}`

/**
 * Builds a Basic header the naive way, without form-encoding (`base64(id ":" secret)`), to test that a server or a
 * client does not accept it when it matters.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const encodeRaw = (clientId: string, clientSecret: string): string =>
  `Basic ${Buffer.from(`${clientId}:${clientSecret}`, "utf8").toString("base64")}`

/**
 * Decodes an `Authorization: Basic …` header per RFC 6749 §2.3.1 (split at the first `:` of the base64-decoded text,
 * then form-decode each part). `undefined` when the header is absent or not a well-formed Basic credential.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const decode = (header: string | undefined): ClientCredentials | undefined => {
  if (header === undefined) return undefined
  const match = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)
  if (match === null) return undefined
  const text = Buffer.from(match[1]!, "base64").toString("utf8")
  const i = text.indexOf(":")
  if (i === -1) return undefined
  try {
    return { clientId: formDecode(text.slice(0, i)), clientSecret: formDecode(text.slice(i + 1)) }
  } catch {
    return undefined
  }
}

/**
 * Decodes one `application/x-www-form-urlencoded` value (`+` is a space). Throws on malformed `%` escapes.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const formDecode = (value: string): string => decodeURIComponent(value.replace(/\+/g, "%20"))

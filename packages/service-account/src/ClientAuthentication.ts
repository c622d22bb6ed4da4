/**
 * How a token request authenticates the client, for every `auth_method` and the `jwt_bearer` grant:
 *
 * | method | what the request carries |
 * |---|---|
 * | `client_secret_basic` (default) | `Authorization: Basic base64(formEncode(id):formEncode(secret))` (RFC 6749 §2.3.1) |
 * | `client_secret_post` | `client_id` and `client_secret` in the form |
 * | `client_secret_jwt` | an HS256 JWT over the secret as `client_assertion` (OpenID Connect Core §9) |
 * | `private_key_jwt` | a JWT signed with `private_key` (RS256, PS256, ES256, EdDSA), or the workload's own JWT from `client_assertion`, as `client_assertion` (RFC 7523 §2.2) |
 * | `tls_client_auth`, `self_signed_tls_client_auth` | `client_id`; the TLS client certificate on the connection (RFC 8705) |
 * | `grant_type: jwt_bearer` | the JWT as the grant's `assertion`, no client authentication (RFC 7523 §2.1) |
 *
 * Signed assertions carry `iss` = `sub` = the client id, `aud` = the token endpoint URL (or the issuer), a random
 * `jti`, `iat` and `exp` (`assertion_lifetime_seconds`); a new one is signed for every request, retries included.
 * Files (`client_secret_file`, `private_key_file`, `client_assertion.file`) are read again before every request, so a
 * rotated secret, key or projected token is used without a restart; a request rejected as `invalid_client` is sent
 * once more at once if a file changed meanwhile, instead of starting the cool-down.
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as ClientAuth from "./internal/clientAuth.js"
import type { Resolved, ServiceAccountConfig } from "./ServiceAccountConfig.js"
import { type ClientCredentialError, ConfigIssue, ConfigurationError } from "./ServiceAccountError.js"
import type { FunctionLoader } from "./ServiceToken.js"

/**
 * `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
 *
 * @since 0.3.0
 * @category Constants
 */
export const ASSERTION_TYPE: string = ClientAuth.ASSERTION_TYPE

/**
 * `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
 *
 * @since 0.3.0
 * @category Constants
 */
export const JWT_BEARER_GRANT: string = ClientAuth.JWT_BEARER_GRANT

/**
 * How a configuration authenticates, in words for people (`mcp-auth token` prints it): the method and where its
 * credential comes from, never the credential.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const describe = (config: ServiceAccountConfig): string => {
  const assertion = config.clientAssertion
  const source = assertion !== undefined
    ? assertion._tag === "File"
      ? `client_assertion.file ${assertion.path}`
      : assertion._tag === "Token"
      ? "client_assertion.token"
      : `client_assertion.function${typeof assertion.function === "string" ? ` ${assertion.function}` : ""}`
    : config.privateKeyFile !== undefined
    ? `private_key_file ${config.privateKeyFile}`
    : config.privateKey !== undefined
    ? "private_key"
    : config.clientSecretFile !== undefined
    ? `client_secret_file ${config.clientSecretFile}`
    : config.authMethod === "tls_client_auth" || config.authMethod === "self_signed_tls_client_auth"
    ? `tls_client_certificate_file ${config.tlsClientCertificate?.certificateFile}`
    : "client_secret"
  const signed = assertion === undefined && (config.privateKey !== undefined || config.privateKeyFile !== undefined)
  const details = [
    source,
    ...(signed && config.signingAlgorithm !== undefined ? [config.signingAlgorithm] : []),
    ...(signed && config.keyId !== undefined ? [`kid ${config.keyId}`] : [])
  ].join(", ")
  return config.grantType === "jwt_bearer" ? `jwt_bearer grant (${details})` : `${config.authMethod} (${details})`
}

/**
 * What one token request adds for client authentication (and, for `jwt_bearer`, the grant's `assertion`): form
 * parameters and, for `client_secret_basic`, the `Authorization` header value. Reads the files again and signs a
 * fresh assertion on every call: call it once per request. For bridges that send the token request themselves (the
 * client package's MCP SDK adapter); `TokenEndpoint.request` uses it.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const authenticate = (
  config: Resolved,
  options?: { readonly loadFunction?: FunctionLoader | undefined }
): Effect.Effect<
  { readonly params: ReadonlyArray<readonly [string, string]>; readonly authorization?: string | undefined },
  ClientCredentialError
> => Effect.flatMap(Clock.currentTimeMillis, (now) => ClientAuth.authenticate(config, now, options?.loadFunction))

/**
 * Reads and checks, once, every file and key the configuration names (client secret file, private key and its
 * certificate, assertion file or token, TLS client certificate and key), as a token request would: for start-up, so
 * that a wrong path, an unreadable file or a malformed key is a `ConfigurationError` naming the field and the file
 * before any work (never their contents). A `client_assertion.function` is not called.
 *
 * @since 0.3.0
 * @category Combinators
 */
export const check = (config: ServiceAccountConfig): Effect.Effect<void, ConfigurationError> =>
  Effect.mapError(
    ClientAuth.check(config),
    (errors) =>
      new ConfigurationError({
        issues: errors.map((error) =>
          new ConfigIssue({
            path: error.field,
            message: `${error.field}${error.file === undefined ? "" : ` (${error.file})`} ${error.reason}`
          })
        )
      })
  )

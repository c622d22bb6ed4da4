/**
 * The RFC 6749 §4.4 client-credentials token request and a careful validation of its response (in the order
 * oauth4webapi uses): exact 200, else an RFC 6749 §5.2 error body, else the status; then a JSON object, a non-empty
 * `access_token`, a `bearer` `token_type`, a numeric `expires_in`, an optional `scope` and `refresh_in`. A token that is
 * expired on arrival (`expires_in` ≤ 0, or a lifetime no longer than the request took) is a `MalformedResponseError`
 * with reason `"expires_in"`, never a token.
 *
 * A hostile or broken endpoint cannot exhaust memory or leak secrets:
 * - The body is read as a stream and at most 1 MiB of it: past that, reading stops, the connection is closed and a 200
 *   is a `MalformedResponseError` with reason `"too_large"` (an error status is reported by its status alone).
 *   `timeout_seconds` bounds the whole exchange, body included.
 * - `access_token` must be visible ASCII (0x21–0x7E; RFC 6750's `b64token` is a subset) and at most 16 KiB, else a
 *   `MalformedResponseError` with reason `"access_token"` that never contains the value. A granted `scope` must be
 *   RFC 6749 §3.3 scope-tokens.
 * - `expires_in` above `max_token_lifetime_seconds` (default one day) is clamped to it, and logged at debug level;
 *   `refresh_in` is clamped to the lifetime. `1e20`, `2^53` or `"1e400"` give a token that lives one day and is
 *   refreshed on schedule, never an invalid `Date`.
 * - Server text that reaches an error (an OAuth `error_description`, an odd `token_type`, a transport message) is
 *   scrubbed (`Scrub.text`) of the client secret and the Basic credential in every form they travel in, of the
 *   response's own `access_token`, and of the tokens the caller passes as `knownTokens`.
 *
 * Most programs never call this module: `TokenProvider` calls {@link request} with its caching, retry and
 * cool-down policy around it.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Redacted from "effect/Redacted"
import type * as AccessToken from "./AccessToken.js"
import * as ClientAuth from "./internal/clientAuth.js"
import { displayUrl } from "./internal/text.js"
import * as internal from "./internal/tokenEndpoint.js"
import type { Resolved } from "./ServiceAccountConfig.js"
import { type TokenError, TokenTimeoutError } from "./ServiceAccountError.js"
import type { FunctionLoader } from "./ServiceToken.js"

/**
 * The `client_secret_basic` credential: `base64(formEncode(id) ":" formEncode(secret))`, each part
 * `application/x-www-form-urlencoded` first as RFC 6749 §2.3.1 requires. (The platform's
 * `HttpClientRequest.basicAuth` skips the form-encoding and throws on non-Latin-1 characters.) Use it to build or
 * recognise the `Authorization: Basic …` header of a token request yourself, e.g. in an `OAuthClientProvider`.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const basicCredential: (clientId: string, clientSecret: Redacted.Redacted<string>) => Redacted.Redacted<string> =
  internal.basicCredential

/**
 * Performs one token request (no retries; see `TokenProvider` for the failure policy). Needs an `HttpClient`; tracing
 * headers are not sent to the identity provider.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const request = (
  config: Resolved,
  options?: {
    /** Overrides `timeout_seconds` (the provider caps attempts at the caller's remaining budget). */
    readonly timeout?: Duration.DurationInput | undefined
    /**
     * Tokens the endpoint may echo that must never appear in an error (the provider passes its current and previous
     * token), in addition to the client secret, the Basic credential and the response's own token.
     */
    readonly knownTokens?: ReadonlyArray<Redacted.Redacted<string> | undefined> | undefined
    /** Resolves a `client_assertion.function` given as `"<module>#<export>"`. */
    readonly loadFunction?: FunctionLoader | undefined
  }
): Effect.Effect<AccessToken.AccessToken, TokenError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const timeout = options?.timeout === undefined
      ? Duration.seconds(config.timeoutSeconds)
      : Duration.decode(options.timeout)
    const send = (auth: ClientAuth.Material, budget: Duration.Duration) =>
      Effect.gen(function*() {
        const issuedAt = yield* Clock.currentTimeMillis
        const secrets = internal.secretsOf(config, options?.knownTokens, auth.secrets)
        const raw = yield* client.execute(internal.makeRequest(config, auth)).pipe(
          Effect.flatMap((response) => internal.readBody(response)),
          Effect.mapError((error) => internal.fromHttpClientError(config, error, secrets)),
          Effect.timeoutFail({
            duration: budget,
            onTimeout: () => new TokenTimeoutError({ tokenUrl: displayUrl(config.tokenUrl), timeout })
          })
        )
        return internal.parse(config, raw, issuedAt, yield* Clock.currentTimeMillis, secrets)
      })
    const authenticate = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => ClientAuth.authenticate(config, now, options?.loadFunction)
    )
    const auth = yield* authenticate
    // one timeout for the exchange, a re-send included
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
    let parsed = yield* send(auth, timeout)
    // a credential file replaced while the request was under way (a rotated secret): read it again and send once more
    // before the failure is reported, so that the rotation costs one request instead of a cool-down
    if (Either.isLeft(parsed) && parsed.left._tag === "InvalidCredentialsError" && auth.files.length > 0) {
      const again = yield* Effect.either(authenticate)
      const left = deadline - (yield* Clock.currentTimeMillis)
      if (Either.isRight(again) && !ClientAuth.sameFiles(again.right, auth) && left > 0) {
        yield* Effect.logDebug("Credential file changed; sending the token request again with it").pipe(
          Effect.annotateLogs({ token_url: displayUrl(config.tokenUrl) })
        )
        parsed = yield* send(again.right, Duration.millis(left))
      }
    }
    if (Either.isRight(parsed) && parsed.right.clampedFrom !== undefined) {
      yield* Effect.logDebug("Token lifetime clamped to max_token_lifetime_seconds").pipe(
        Effect.annotateLogs({
          token_url: displayUrl(config.tokenUrl),
          expires_in: parsed.right.clampedFrom,
          max_token_lifetime_seconds: config.maxTokenLifetimeSeconds
        })
      )
    }
    return yield* Either.map(parsed, (p) => p.token)
  }).pipe(
    Effect.withSpan("mcp-auth/token-request", {
      kind: "client",
      attributes: {
        "mcp_auth.token_url": displayUrl(config.tokenUrl),
        "mcp_auth.client_id": config.clientId,
        "mcp_auth.auth_method": config.grantType === "jwt_bearer" ? "jwt_bearer" : config.authMethod
      }
    })
  )

/**
 * Validates a token response that someone else obtained (e.g. the MCP SDK, handing its new token to an
 * `OAuthClientProvider`'s `saveTokens`) exactly as {@link request} validates its own: a visible-ASCII `access_token`
 * of at most 16 KiB, a Bearer `token_type`, `expires_in` clamped to `max_token_lifetime_seconds`, a valid `scope`.
 * `receivedAt` is both the issue instant and the arrival instant.
 *
 * @since 0.2.0
 * @category Combinators
 */
export const validate = (
  config: Resolved,
  body: unknown,
  receivedAt: number
): Either.Either<AccessToken.AccessToken, TokenError> =>
  internal.parseResponse(
    config,
    { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(body) ?? "" },
    receivedAt,
    receivedAt
  )

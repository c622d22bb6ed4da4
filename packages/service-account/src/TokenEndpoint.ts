/**
 * The RFC 6749 §4.4 client-credentials token request and a careful validation of its response (in the order
 * oauth4webapi uses): exact 200, else an RFC 6749 §5.2 error body, else the status; then a JSON object, a non-empty
 * `access_token`, a `bearer` `token_type`, a numeric `expires_in`, an optional `scope` and `refresh_in`. A token that is
 * expired on arrival (`expires_in` ≤ 0, or a lifetime no longer than the request took) is a `MalformedResponseError`
 * with reason `"expires_in"`, never a token.
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
import type * as Redacted from "effect/Redacted"
import type * as AccessToken from "./AccessToken.js"
import { displayUrl } from "./internal/text.js"
import * as internal from "./internal/tokenEndpoint.js"
import type { ServiceAccountConfig } from "./ServiceAccountConfig.js"
import { type TokenError, TokenTimeoutError } from "./ServiceAccountError.js"

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
  config: ServiceAccountConfig,
  options?: {
    /** Overrides `timeout_seconds` (the provider caps attempts at the caller's remaining budget). */
    readonly timeout?: Duration.DurationInput | undefined
  }
): Effect.Effect<AccessToken.AccessToken, TokenError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const issuedAt = yield* Clock.currentTimeMillis
    const timeout = options?.timeout === undefined
      ? Duration.seconds(config.timeoutSeconds)
      : Duration.decode(options.timeout)
    const raw = yield* client.execute(internal.makeRequest(config)).pipe(
      Effect.flatMap((response) =>
        Effect.map(
          response.text,
          (body): internal.RawResponse => ({ status: response.status, headers: response.headers, body })
        )
      ),
      Effect.mapError((error) => internal.fromHttpClientError(config, error)),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new TokenTimeoutError({ tokenUrl: displayUrl(config.tokenUrl), timeout })
      })
    )
    const now = yield* Clock.currentTimeMillis
    return yield* internal.parseResponse(config, raw, issuedAt, now)
  }).pipe(
    Effect.withSpan("mcp-auth/token-request", {
      kind: "client",
      attributes: {
        "mcp_auth.token_url": displayUrl(config.tokenUrl),
        "mcp_auth.client_id": config.clientId,
        "mcp_auth.auth_method": config.authMethod
      }
    })
  )

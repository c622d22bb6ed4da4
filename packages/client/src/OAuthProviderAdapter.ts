/**
 * mcp-auth shaped as the MCP SDK's `OAuthClientProvider`, for hosts that accept only `authProvider` (LangChain JS
 * `MultiServerMCPClient`, anything typed against SDK v1). Prefer {@link AuthenticatedFetch} wherever a `fetch` can be
 * passed.
 *
 * How it works: `tokens()` answers from the shared token cache (refreshed before expiry, so expiry never causes a
 * 401). `discoveryState()` points the SDK straight at the configured token endpoint, so no RFC 9728 / RFC 8414
 * discovery traffic is needed. After a 401 the SDK runs its own token request: `prepareTokenRequest()` drops the
 * rejected token from the cache (compare-and-invalidate) and sets the grant (`client_credentials`, or the
 * `jwt-bearer` grant of `grant_type: jwt_bearer`), `addClientAuthentication()` applies the configured client
 * authentication through `ClientAuthentication.authenticate` (every `auth_method`: the secret in a Basic header or
 * the form, a freshly signed or freshly read `client_assertion`, `client_id` for the TLS methods, or the grant's
 * `assertion`; files are read again for each request), and `saveTokens()` adopts the SDK's new token into the cache,
 * so a revocation costs exactly one token request.
 *
 * Bound to its authorization server: `clientInformation()` and the discovery state carry `issuer` (the configured one,
 * else the token endpoint's origin), so hosts that check the binding (the Vercel AI SDK, SDK 1.32) accept the client;
 * `tokens()` also offers a placeholder `refresh_token`, because the AI SDK's only non-interactive recovery from a 401
 * is a refresh, which `addClientAuthentication` turns into the configured grant. Credentials are added only to a
 * request whose destination is the configured token endpoint; anything else, or no known destination, is refused.
 *
 * Limits (SDK 1.32, documented in the README):
 * - The service token (dual pattern) cannot travel through `authProvider`; add it with a `fetch` or static headers.
 * - The SDK's own token request after a 401 bypasses mcp-auth's retry policy, `Retry-After` handling and typed
 *   errors (it throws the SDK's `OAuthError`s).
 * - The SDK has no single-flight and one retry flag per transport: many concurrent calls that all hit a 401 (a
 *   revocation under load) each make a token request, and a few may fail with "Server returned 401 after successful
 *   authentication". The fetch integration does not have this problem.
 * - The SDK sends its token request with the transport's `fetch`: for `tls_client_auth` /
 *   `self_signed_tls_client_auth` (the certificate travels on the connection) and for `proxy_url`, give the
 *   transport a fetch that presents the certificate and uses the proxy (`TrustedFetch.fromConfig`), or it authenticates
 *   without the certificate and is refused. A key, secret or assertion that cannot be read rejects the SDK's auth with
 *   `ClientCredentialError`.
 *
 * @since 0.1.0
 */
import type * as AccessToken from "@mcp-auth/service-account/AccessToken"
import * as ClientAuthentication from "@mcp-auth/service-account/ClientAuthentication"
import * as Discovery from "@mcp-auth/service-account/Discovery"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import type { ServiceAccountConfig } from "@mcp-auth/service-account/ServiceAccountConfig"
import type * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js"
import type { OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The MCP endpoint this provider is used for; lets the SDK skip protected-resource discovery. */
  readonly serverUrl?: URL | string | undefined
  readonly clientName?: string | undefined
  /** Resolves a `client_assertion.function` given as `"<module>#<export>"` (one given as a function needs none). */
  readonly loadFunction?: ServiceToken.FunctionLoader | undefined
}

/**
 * The `refresh_token` `tokens()` offers: not a credential (mcp-auth has none to refresh), a marker that lets hosts
 * whose only non-interactive recovery from a 401 is a refresh (the Vercel AI SDK) ask for a new token;
 * `addClientAuthentication` replaces that request with the configured grant, so the marker never leaves the process.
 */
const REFRESH_SENTINEL = "mcp-auth:client-credentials"

/** The same token endpoint (origin, path without a trailing slash, query). */
const sameEndpoint = (url: string | URL, tokenUrl: URL): boolean => Discovery.sameUrl(String(url), tokenUrl.href)

const nonInteractive = (what: string) => () => {
  throw new Error(
    `mcp-auth service accounts are non-interactive: ${what} is not supported (client_credentials and jwt-bearer only)`
  )
}

/**
 * Runs an effect needing the `TokenProvider`, rejecting with the typed error itself.
 *
 * @since 0.1.0
 * @category Models
 */
export type Run = <A, E>(effect: Effect.Effect<A, E, TokenProvider.TokenProvider>) => Promise<A>

/**
 * Builds the adapter from a decoded configuration and a way to run effects that need the `TokenProvider`, for
 * Promise code that owns its runtime (e.g. a `ManagedRuntime`'s `runPromise`, rejecting with the typed error).
 * `createServiceAccountAuth(…).authProvider()` is built this way; in an Effect program use {@link make}.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeWith = (config: ServiceAccountConfig, run: Run, options: Options = {}): OAuthClientProvider => {
  const provider = <A, E>(f: (p: TokenProvider.TokenProvider) => Effect.Effect<A, E>) =>
    run(Effect.flatMap(TokenProvider.TokenProvider, f))
  let handedOut: AccessToken.AccessToken | undefined
  const serverUrl = options.serverUrl === undefined ? undefined : new URL(options.serverUrl)
  const grantType = config.grantType === "jwt_bearer" ? ClientAuthentication.JWT_BEARER_GRANT : "client_credentials"
  /**
   * The configuration with its token endpoint (discovered, when not configured), and the authorization server the
   * client is bound to: hosts check it against what they discover (the AI SDK refuses client credentials bound to
   * none); the MCP SDK wants it equal to discoveryState's.
   */
  const bound = () =>
    provider((p) => p.resolved).then((resolved) => ({
      resolved,
      issuer: resolved.issuer ?? resolved.tokenUrl.origin,
      scope: resolved.scopes.length > 0 ? resolved.scopes.join(" ") : undefined
    }))
  /** Beyond OAuthTokens: where the tokens come from, for hosts that check it before a refresh (the AI SDK). */
  const bindingOf = (issuer: string, tokenUrl: URL): Record<string, string> => ({
    issuer,
    authorization_server: issuer,
    token_endpoint: tokenUrl.href
  })
  /** Drops the token the host saw rejected, and says which grant and parameters the token request carries. */
  const grantParams = async (params: URLSearchParams): Promise<void> => {
    const rejected = handedOut
    if (rejected !== undefined) await provider((p) => p.invalidate(rejected))
    const { resolved, scope } = await bound()
    params.set("grant_type", grantType)
    if (scope !== undefined && !params.has("scope")) params.set("scope", scope)
    if (resolved.audience !== undefined) params.set("audience", resolved.audience)
  }
  const configuredScope = config.scopes.length > 0 ? config.scopes.join(" ") : undefined

  return {
    get redirectUrl() {
      return undefined
    },
    get clientMetadata() {
      return {
        redirect_uris: [],
        grant_types: [grantType],
        token_endpoint_auth_method: config.authMethod,
        client_name: options.clientName ?? "mcp-auth",
        ...(configuredScope !== undefined ? { scope: configuredScope } : {})
      }
    },
    clientInformation: () => bound().then(({ issuer }) => ({ client_id: config.clientId, issuer })),
    tokens: async (): Promise<OAuthTokens> =>
      provider((p) => Effect.all([p.get, Clock.currentTimeMillis, p.resolved])).then(([token, now, resolved]) => {
        handedOut = token
        return {
          access_token: Redacted.value(token.token),
          token_type: "Bearer",
          // hosts without a client-credentials grant (the Vercel AI SDK) recover from a 401 only by a refresh:
          // addClientAuthentication turns that request into the configured grant; never sent as such
          refresh_token: REFRESH_SENTINEL,
          // the authorization server these tokens belong to: the AI SDK refreshes only against the same one
          ...bindingOf(resolved.issuer ?? resolved.tokenUrl.origin, resolved.tokenUrl),
          expires_in: Math.max(0, Math.floor((token.expiresAt - now) / 1000)),
          ...(token.scopes.length > 0 ? { scope: token.scopes.join(" ") } : {})
        }
      }),
    saveTokens: (tokens: OAuthTokens) =>
      provider((p) =>
        Effect.flatMap(
          Clock.currentTimeMillis,
          // validated like mcp-auth's own token responses: a token that cannot be sent, or an absurd lifetime, is
          // the typed error (rejecting the SDK's auth), never adopted
          (now) =>
            Effect.flatMap(
              Effect.flatMap(p.resolved, (resolved) => TokenEndpoint.validate(resolved, tokens, now)),
              p.adopt
            )
        )
      ),
    redirectToAuthorization: nonInteractive("redirectToAuthorization"),
    saveCodeVerifier: nonInteractive("saveCodeVerifier"),
    codeVerifier: nonInteractive("codeVerifier"),
    discoveryState: () =>
      bound().then(({ issuer, resolved }) => ({
        authorizationServerUrl: issuer,
        authorizationServerMetadata: {
          issuer,
          token_endpoint: resolved.tokenUrl.href,
          authorization_endpoint: resolved.tokenUrl.href,
          response_types_supported: ["token"],
          grant_types_supported: [grantType],
          token_endpoint_auth_methods_supported: [resolved.authMethod]
        },
        ...(serverUrl !== undefined
          ? { resourceMetadata: { resource: serverUrl.href, authorization_servers: [issuer] } }
          : {})
      })),
    saveDiscoveryState: () => undefined,
    validateResourceURL: () =>
      bound().then(({ resolved }) => resolved.resource === undefined ? undefined : new URL(resolved.resource)),
    // a fresh authentication per token request: files read again, a new assertion (and jti) signed
    addClientAuthentication: async (headers, params, url, metadata) => {
      const { resolved } = await bound()
      const tokenUrl = resolved.tokenUrl
      // credentials go to the configured token endpoint only, whatever a host discovered (an MCP server's metadata
      // can name any authorization server, and that server's metadata any token endpoint). The MCP SDK passes the
      // token endpoint as `url`; the AI SDK passes the authorization server there and posts to the metadata's.
      // Without metadata the AI SDK posts to `/token` of `url`: both must be the token endpoint. Nothing to check
      // against: refused (fail closed).
      const destinations = metadata?.token_endpoint !== undefined
        ? [metadata.token_endpoint]
        : url !== undefined
        ? [url, String(new URL("/token", url))]
        : []
      const wrong = destinations.length === 0
        ? "an unknown destination"
        : destinations.find((d) => !sameEndpoint(d, tokenUrl))
      if (wrong !== undefined) {
        throw new Error(
          `mcp-auth refuses to send client credentials to ${
            wrong === "an unknown destination" ? wrong : Scrub.url(String(wrong))
          }: it is not the configured token endpoint ${Scrub.url(tokenUrl)}`
        )
      }
      if (params.get("grant_type") === "refresh_token") {
        // a host's refresh of the token tokens() handed out (see REFRESH_SENTINEL): the configured grant instead
        if (params.get("refresh_token") !== REFRESH_SENTINEL) {
          throw new Error("mcp-auth issued no refresh token: refusing to send one to the authorization server")
        }
        params.delete("refresh_token")
        await grantParams(params)
      }
      const auth = await run(ClientAuthentication.authenticate(resolved, { loadFunction: options.loadFunction }))
      for (const [key, value] of auth.params) params.set(key, value)
      if (auth.authorization !== undefined) headers.set("Authorization", auth.authorization)
    },
    prepareTokenRequest: async () => {
      // the SDK only asks for a token after the server rejected the one we handed out
      const params = new URLSearchParams()
      await grantParams(params)
      return params
    },
    invalidateCredentials: async (what) => {
      const rejected = handedOut
      if ((what === "all" || what === "tokens") && rejected !== undefined) await provider((p) => p.invalidate(rejected))
    }
  }
}

/**
 * The adapter over the `TokenProvider` in context.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  config: ServiceAccountConfig,
  options?: Options
): Effect.Effect<OAuthClientProvider, never, TokenProvider.TokenProvider> =>
  Effect.map(Effect.runtime<TokenProvider.TokenProvider>(), (runtime) =>
    makeWith(
      config,
      (effect) =>
        Runtime.runPromiseExit(runtime)(effect).then((exit) =>
          Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause))
        ),
      options
    ))

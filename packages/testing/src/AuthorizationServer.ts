/**
 * A real OAuth 2.0 authorization server for tests: [oidc-provider](https://github.com/panva/node-oidc-provider) 9
 * configured for the `client_credentials` grant only, issuing RFC 9068 JWT access tokens (`typ: at+jwt`, RS256).
 *
 * - The token's `aud` is the `resource` parameter of the token request (RFC 8707) when given, else the configured
 *   {@link Options.audience} (typically the MCP server URL, settable later with `setAudience`), else the issuer.
 * - `scope` in the token (and the response) is what the client requested, limited to the client's allowed scopes;
 *   oidc-provider issues no scope when none is requested.
 * - Client authentication (the client's `authMethod`):
 *   - `client_secret_basic` (RFC 6749 §2.3.1 form-encoded id and secret, decoded by oidc-provider) or
 *     `client_secret_post`. oidc-provider accepts either method for a secret-based client, whatever `authMethod` says.
 *   - `client_secret_jwt` (HS256 over the secret) and `private_key_jwt` (RS256, PS256, ES256, EdDSA against the
 *     client's `jwks`; a `kid` in the assertion header must match the JWK's `kid`): RFC 7523 assertions in
 *     `client_assertion`, checked by oidc-provider: `iss` = `sub` = client_id, `aud` = the issuer or the token endpoint
 *     URL, `exp` present and not passed, `jti` present and never seen before (replay detection, kept in memory).
 *   - `tls_client_auth` / `self_signed_tls_client_auth` (RFC 8705), with {@link Options.requestClientCertificate}:
 *     the certificate of the TLS connection must chain to {@link Options.clientCa} and carry the registered subject
 *     DN, or be the very certificate registered in the client's `jwks` (`x5c`).
 *   - `none`: only for the `jwt-bearer` grant below.
 *   Any authentication failure (wrong secret, unknown client, bad or replayed assertion, missing or wrong
 *   certificate) gets `401 {"error":"invalid_client"}` (with a `WWW-Authenticate: Basic` challenge when Basic was
 *   used); the recorded `errorDetail` says why.
 * - RFC 7523 §2.1 `jwt-bearer` grant (workload identity, SEP-1933): `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
 *   and `assertion=<JWT>`, without client authentication or `client_id`. The assertion must be signed by one of
 *   {@link Options.trustedAssertionIssuers} (`iss` names it), with `aud` = the issuer or the token endpoint URL, `exp`
 *   not passed, `sub` present and a `jti` never seen before. The token is issued to the client that `sub` maps to in
 *   {@link Options.workloads} (default: the client whose id is `sub`), which must use `authMethod: "none"` (or a
 *   certificate method, with the certificate). Refusals: `400 invalid_grant` for every problem with the assertion
 *   itself (not a JWT, no `sub`, unknown issuer, bad signature, wrong `aud`, expired, replayed `jti`, `sub` mapped to
 *   another client); `401 invalid_client` only when the mapped client does not exist.
 * - Secret rotation: clients live in the adapter (not oidc-provider's cached static configuration), so
 *   `setClientSecret` takes effect on the next request: the old secret is then refused with `invalid_client`.
 * - Client ids and secrets must be RFC 6749 Appendix A `VSCHAR` (printable ASCII, space included): oidc-provider
 *   rejects other characters (e.g. `é`) both in its configuration and in a request. Test Unicode encoding against
 *   {@link FaultTokenEndpoint} instead, which decodes the credential for you.
 * - Discovery: `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`; JWKS at `/jwks`.
 *
 * Every request is recorded (headers, and for the token endpoint the parsed form body and the outcome).
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as jose from "jose"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type * as tls from "node:tls"
import type {
  Adapter,
  AdapterPayload,
  ClientMetadata,
  Configuration,
  KoaContextWithOIDC,
  Provider
} from "oidc-provider"
import type * as Oidc from "oidc-provider"
import * as internal from "./internal/server.js"
import type { TlsCredentials } from "./TestPki.js"
import { certificateJwk } from "./TestPki.js"
import type { RecordedRequest, Started } from "./TestServer.js"

/**
 * A registered client.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Client {
  readonly clientId: string
  /** Required for the `client_secret_*` methods. */
  readonly clientSecret?: string | undefined
  /** Registered method (default `client_secret_basic`). */
  readonly authMethod?: AuthMethod | undefined
  /** Scopes the client may request (default: all supported scopes). */
  readonly scopes?: ReadonlyArray<string> | undefined
  /**
   * Public keys: what `private_key_jwt` assertions are verified with; for `self_signed_tls_client_auth` the client's
   * certificate as a JWK with `x5c` (or give {@link Client.certificatePem}).
   */
  readonly jwks?: jose.JSONWebKeySet | undefined
  /**
   * The client certificate (PEM). `self_signed_tls_client_auth`: added to `jwks` (with `x5c`);
   * `tls_client_auth`: its subject DN is the registered one unless {@link Client.tlsClientAuthSubjectDn} is given.
   */
  readonly certificatePem?: string | undefined
  /**
   * `tls_client_auth`: the subject DN the certificate must carry, e.g. `CN=svc-a,O=mcp-auth` (compared as a set of
   * `type=value` pairs: order, spaces around `=`/`,` and the case of attribute types do not matter).
   */
  readonly tlsClientAuthSubjectDn?: string | undefined
  /** RFC 8705 §3: tokens carry `cnf["x5t#S256"]` of the client certificate (needs `requestClientCertificate`). */
  readonly certificateBoundAccessTokens?: boolean | undefined
}

/**
 * Token endpoint client authentication methods.
 *
 * @since 0.3.0
 * @category Models
 */
export type AuthMethod =
  | "client_secret_basic"
  | "client_secret_post"
  | "client_secret_jwt"
  | "private_key_jwt"
  | "tls_client_auth"
  | "self_signed_tls_client_auth"
  | "none"

/**
 * A platform whose JWTs the `jwt-bearer` grant accepts (e.g. a Kubernetes cluster's service-account issuer).
 *
 * @since 0.3.0
 * @category Models
 */
export interface TrustedAssertionIssuer {
  /** The `iss` of its JWTs. */
  readonly issuer: string
  /** Its public keys. */
  readonly jwks: jose.JSONWebKeySet
}

/**
 * The RFC 7523 §2.1 grant type.
 *
 * @since 0.3.0
 * @category Models
 */
export const jwtBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

/**
 * The RFC 7523 §2.2 client assertion type.
 *
 * @since 0.3.0
 * @category Models
 */
export const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly clients: ReadonlyArray<Client>
  /** Supported scopes (default `["mcp:tools"]`); the clients' scopes are added. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /** Default audience when the token request has no `resource` (default: the issuer). */
  readonly audience?: string | undefined
  /** Access token lifetime (default 3600). */
  readonly accessTokenTtlSeconds?: number | undefined
  /** Serve HTTPS with these credentials (e.g. `pki.server`); the issuer is then `https://127.0.0.1:PORT`. */
  readonly https?: TlsCredentials | undefined
  /**
   * With `https`: ask every client for a TLS certificate (never refusing the handshake) and enable RFC 8705
   * (`tls_client_auth`, `self_signed_tls_client_auth`, certificate-bound tokens). Required by clients using those.
   */
  readonly requestClientCertificate?: boolean | undefined
  /** CA certificate(s) (PEM) a `tls_client_auth` certificate must chain to, e.g. `pki.ca`. */
  readonly clientCa?: string | ReadonlyArray<string> | undefined
  /** Issuers whose JWTs the `jwt-bearer` grant accepts (default none: every assertion is refused). */
  readonly trustedAssertionIssuers?: ReadonlyArray<TrustedAssertionIssuer> | undefined
  /** `jwt-bearer` grant: assertion `sub` → registered client id (default: `sub` itself). */
  readonly workloads?: Readonly<Record<string, string>> | undefined
}

/**
 * One request the authorization server received.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RequestRecord extends RecordedRequest {
  /** oidc-provider route name (`token`, `jwks`, `discovery`, …) when it matched one. */
  readonly route: string | undefined
  /** Parsed `application/x-www-form-urlencoded` body (token endpoint). */
  readonly form: Readonly<Record<string, string>> | undefined
  /** The client the request named (set even when its authentication then failed; see `error`). */
  readonly clientId: string | undefined
  /** OAuth `error` code of an error response. */
  readonly error: string | undefined
  /** The issued access token, for a successful token request. */
  readonly accessToken: string | undefined
  /** Why the request failed, as oidc-provider says it (e.g. `client assertion tokens must only be used once`). */
  readonly errorDetail: string | undefined
  /** The `client_assertion` (or, for the `jwt-bearer` grant, the `assertion`) decoded without verification. */
  readonly assertion: AssertionRecord | undefined
  /** `x5t#S256` of the TLS client certificate presented on the connection, if any. */
  readonly clientCertificateThumbprint: string | undefined
}

/**
 * A JWT assertion a token request carried, decoded (not verified).
 *
 * @since 0.3.0
 * @category Models
 */
export interface AssertionRecord {
  /** `client_assertion` (client authentication) or `assertion` (the `jwt-bearer` grant). */
  readonly parameter: "client_assertion" | "assertion"
  readonly header: jose.ProtectedHeaderParameters
  readonly claims: jose.JWTPayload
}

/**
 * Claims for {@link AuthorizationServer.mint}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface MintOptions {
  readonly clientId?: string | undefined
  /** Default: the current default audience. */
  readonly audience?: string | ReadonlyArray<string> | undefined
  readonly scope?: string | undefined
  /** Seconds from now; negative for an already expired token (default: the current TTL). */
  readonly expiresInSeconds?: number | undefined
  /** Default: this server's issuer. */
  readonly issuer?: string | undefined
  readonly extraClaims?: Readonly<Record<string, unknown>> | undefined
  /** Sign with a fresh key that is not in the JWKS (signature check must fail). */
  readonly foreignKey?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface AuthorizationServer {
  readonly issuer: string
  readonly origin: string
  readonly port: number
  /** The real `token_endpoint`. */
  readonly tokenUrl: string
  readonly jwksUrl: string
  /** `/.well-known/openid-configuration` */
  readonly discoveryUrl: string
  /** `/.well-known/oauth-authorization-server` (RFC 8414) */
  readonly metadataUrl: string
  /** The public signing keys (what `jwksUrl` serves). */
  readonly jwks: jose.JSONWebKeySet
  /** All requests seen, oldest first (a copy). */
  readonly requests: ReadonlyArray<RequestRecord>
  /** POST requests to the token endpoint, oldest first. */
  readonly tokenRequests: ReadonlyArray<RequestRecord>
  readonly tokenRequestCount: number
  readonly accessTokenTtlSeconds: number
  /** Takes effect for the next token request. */
  readonly setAccessTokenTtl: (seconds: number) => void
  readonly audience: string
  readonly setAudience: (audience: string) => void
  /** Signs an access token directly with the server key (or a foreign one), e.g. expired or for another audience. */
  readonly mint: (options?: MintOptions) => Promise<string>
  readonly clearRecords: () => void
  /**
   * Rotates a client's secret: from the next request on, the new secret is accepted and the old one refused
   * (`401 invalid_client`). Throws for an unknown client.
   */
  readonly setClientSecret: (clientId: string, secret: string) => void
  /** Replaces a client's public keys (`private_key_jwt` key rotation). Throws for an unknown client. */
  readonly setClientJwks: (clientId: string, jwks: jose.JSONWebKeySet) => void
  /** The decoded assertions of all token requests, oldest first (their `jti`s tell reuse apart). */
  readonly assertions: ReadonlyArray<AssertionRecord>
}

/**
 * Starts the server from plain async code; call `close()` when done.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const start = async (options: Options): Promise<Started<AuthorizationServer>> => {
  const mtls = options.requestClientCertificate === true
  if (mtls && options.https === undefined) {
    throw new Error("AuthorizationServer: requestClientCertificate needs https")
  }
  for (const client of options.clients) {
    const needsMtls = client.authMethod === "tls_client_auth" || client.authMethod === "self_signed_tls_client_auth" ||
      client.certificateBoundAccessTokens === true
    if (needsMtls && !mtls) {
      throw new Error(`AuthorizationServer: client ${client.clientId} needs requestClientCertificate (and https)`)
    }
  }
  const records: Array<internal.MutableRecord<RequestRecord>> = []
  const byRequest = new WeakMap<http.IncomingMessage, internal.MutableRecord<RequestRecord>>()
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined
  const workloads = options.workloads ?? {}
  const listener = await internal.listen(
    (req, res) => {
      const record: internal.MutableRecord<RequestRecord> = {
        ...internal.recordOf(req),
        route: undefined,
        form: undefined,
        clientId: undefined,
        error: undefined,
        accessToken: undefined,
        errorDetail: undefined,
        assertion: undefined,
        clientCertificateThumbprint: internal.peerCertificateThumbprint(req)
      }
      records.push(record)
      byRequest.set(req, record)
      internal.trackStatus(res, record)
      const current = handler
      if (current === undefined) {
        internal.sendJson(res, 503, { error: "temporarily_unavailable" })
      } else if (record.method === "POST" && record.path === "/token") {
        // The body is read here (to record the assertion and, for the jwt-bearer grant, name the client), then handed
        // to oidc-provider in a copy of the request.
        internal.readBody(req).then((body) => {
          const isForm = (req.headers["content-type"] ?? "").toLowerCase().startsWith(
            "application/x-www-form-urlencoded"
          )
          if (!isForm) return current(replayRequest(req, body, record, byRequest), res)
          const form = internal.parseForm(body.toString("utf8"))
          record.form = form
          const jwtBearer = form.grant_type === jwtBearerGrantType
          record.assertion = form.client_assertion !== undefined
            ? decodeAssertion("client_assertion", form.client_assertion)
            : jwtBearer && form.assertion !== undefined
            ? decodeAssertion("assertion", form.assertion)
            : undefined
          if (!jwtBearer || form.client_id !== undefined) {
            return current(replayRequest(req, body, record, byRequest), res)
          }
          // RFC 7523 §2.1 without client authentication: oidc-provider needs a client, so name the one `sub` maps to
          const sub = record.assertion?.claims.sub
          if (typeof sub !== "string" || sub.length === 0) {
            record.route = "token"
            record.error = "invalid_grant"
            record.errorDetail = "the assertion is not a JWT with a sub claim"
            internal.sendJson(res, 400, { error: "invalid_grant", error_description: record.errorDetail })
            return
          }
          const clientId = workloads[sub] ?? sub
          const suffix = `${body.length === 0 ? "" : "&"}client_id=${encodeURIComponent(clientId)}`
          return current(replayRequest(req, Buffer.concat([body, Buffer.from(suffix)]), record, byRequest), res)
        }).catch(() => res.destroy())
      } else {
        current(req, res)
      }
    },
    options.https,
    { requestCert: mtls, ca: options.clientCa }
  )

  try {
    const issuer = listener.origin
    const tokenUrl = `${issuer}/token`
    let ttl = options.accessTokenTtlSeconds ?? 3600
    let audience = options.audience ?? issuer
    const scopes = [
      ...new Set([...(options.scopes ?? ["mcp:tools"]), ...options.clients.flatMap((c) => c.scopes ?? [])])
    ]

    const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true })
    const kid = `test-${Math.random().toString(36).slice(2, 10)}`
    const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: "RS256", use: "sig" }
    const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: "RS256", use: "sig" }

    const store = new Map<string, AdapterPayload>()
    const { Provider: ProviderClass, errors } = await loadProvider()
    const resourceServerInfo = (resource: string) => ({
      scope: scopes.join(" "),
      audience: resource,
      accessTokenTTL: ttl,
      accessTokenFormat: "jwt" as const,
      jwt: { sign: { alg: "RS256" as const } }
    })
    const getCertificate = (ctx: KoaContextWithOIDC): string | undefined => {
      const der = internal.peerCertificateDer(ctx.req)
      return der === undefined ? undefined : new crypto.X509Certificate(der).toString()
    }
    const configuration: Configuration = {
      adapter: (name: string) => makeAdapter(store, name),
      jwks: { keys: [privateJwk as any] },
      scopes,
      clientAuthMethods: [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
        ...(mtls ? ["tls_client_auth", "self_signed_tls_client_auth"] as const : [])
      ],
      enabledJWA: { clientAuthSigningAlgValues: ["HS256", "RS256", "PS256", "ES256", "EdDSA", "Ed25519"] },
      ttl: { ClientCredentials: () => ttl, AccessToken: () => ttl },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: false },
        revocation: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audience,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource) => resourceServerInfo(resource)
        },
        ...(mtls
          ? {
            mTLS: {
              enabled: true,
              certificateBoundAccessTokens: true,
              tlsClientAuth: true,
              selfSignedTlsClientAuth: true,
              getCertificate,
              certificateAuthorized: (ctx: KoaContextWithOIDC) => (ctx.req.socket as tls.TLSSocket).authorized === true,
              certificateSubjectMatches: (ctx: KoaContextWithOIDC, property: string, expected: string) => {
                const der = internal.peerCertificateDer(ctx.req)
                return property === "tls_client_auth_subject_dn" && der !== undefined &&
                  sameDn(new crypto.X509Certificate(der).subject, expected)
              }
            }
          }
          : {})
      }
    }
    const provider: Provider = new ProviderClass(issuer, configuration)
    provider.on("server_error", (ctx: KoaContextWithOIDC, error: Error) => {
      // keep oidc-provider from printing; the 500 response is recorded
      const record = byRequest.get(ctx.req)
      if (record !== undefined) record.errorDetail = error.message
    })
    provider.on(
      "grant.error",
      (ctx: KoaContextWithOIDC, error: { error_detail?: unknown; error_description?: unknown }) => {
        const record = byRequest.get(ctx.req)
        const detail = error.error_detail ?? error.error_description
        if (record !== undefined && typeof detail === "string") record.errorDetail = detail
      }
    )

    const trusted = (options.trustedAssertionIssuers ?? []).map((t) => ({
      issuer: t.issuer,
      keys: jose.createLocalJWKSet(t.jwks)
    }))
    provider.registerGrantType(
      jwtBearerGrantType,
      async (ctx: KoaContextWithOIDC) => {
        const params = ctx.oidc.params as Record<string, unknown>
        const assertion = params.assertion
        if (typeof assertion !== "string" || assertion.length === 0) {
          throw new errors.InvalidRequest("missing required parameter 'assertion'")
        }
        const invalidGrant = (description: string) => new errors.CustomOIDCProviderError("invalid_grant", description)
        let claims: jose.JWTPayload
        try {
          claims = jose.decodeJwt(assertion)
        } catch {
          throw invalidGrant("the assertion is not a JWT")
        }
        const platform = trusted.find((t) => t.issuer === claims.iss)
        if (platform === undefined) throw invalidGrant("the assertion issuer is not trusted")
        try {
          await jose.jwtVerify(assertion, platform.keys, {
            issuer: platform.issuer,
            audience: [issuer, tokenUrl],
            requiredClaims: ["exp", "sub", "jti"],
            algorithms: ["RS256", "PS256", "ES256", "ES384", "EdDSA", "Ed25519"]
          })
        } catch (error) {
          throw invalidGrant(`the assertion is invalid: ${error instanceof Error ? error.message : String(error)}`)
        }
        const client = ctx.oidc.client!
        const sub = claims.sub!
        if ((workloads[sub] ?? sub) !== client.clientId) {
          throw invalidGrant("the assertion subject does not belong to this client")
        }
        const unique = await provider.ReplayDetection.unique(platform.issuer, claims.jti!, claims.exp!)
        if (!unique) throw invalidGrant("the assertion has already been used (jti replayed)")

        const allowed = new Set((client.scope ?? scopes.join(" ")).split(" "))
        const requested = typeof params.scope === "string" ? params.scope.split(" ").filter((s) => s.length > 0) : []
        const refused = requested.filter((s) => !allowed.has(s))
        if (refused.length > 0) {
          throw new errors.InvalidScope("requested scope is not allowed", refused.join(" "))
        }
        const resources = params.resource === undefined
          ? [audience]
          : Array.isArray(params.resource)
          ? params.resource as Array<string>
          : [params.resource as string]
        if (resources.length !== 1) {
          throw new errors.InvalidTarget("only a single resource indicator value is supported for this grant type")
        }
        const token = new provider.ClientCredentials({
          client,
          ...(requested.length === 0 ? {} : { scope: requested.join(" ") })
        })
        token.resourceServer = new provider.ResourceServer(resources[0]!, resourceServerInfo(resources[0]!))
        if (client.tlsClientCertificateBoundAccessTokens === true) {
          const certificate = getCertificate(ctx)
          if (certificate === undefined) throw invalidGrant("mutual TLS client certificate not provided")
          ;(token as unknown as { setThumbprint: (prop: string, input: string) => void }).setThumbprint(
            "x5t",
            certificate
          )
        }
        ctx.oidc.entity("ClientCredentials", token)
        const value = await token.save()
        ctx.body = {
          access_token: value,
          expires_in: token.expiration,
          token_type: "Bearer",
          ...(token.scope === undefined || token.scope === "" ? {} : { scope: token.scope })
        }
      },
      ["assertion", "scope", "resource"],
      ["resource"]
    )

    // Clients live in the adapter, so that a changed secret or key set is seen on the next request (oidc-provider
    // caches adapter clients by the hash of their metadata, static ones forever).
    for (const client of options.clients) {
      const metadata = clientMetadata(client)
      await provider.Client.validate(metadata).catch((error: { error_description?: unknown }) => {
        throw new Error(`AuthorizationServer: client ${client.clientId}: ${String(error.error_description ?? error)}`)
      })
      store.set(`Client:${client.clientId}`, metadata as AdapterPayload)
    }
    const updateClient = (clientId: string, update: (metadata: ClientMetadata) => ClientMetadata) => {
      const current = store.get(`Client:${clientId}`)
      if (current === undefined) throw new Error(`AuthorizationServer: unknown client ${clientId}`)
      store.set(`Client:${clientId}`, update({ ...(current as ClientMetadata) }) as AdapterPayload)
    }

    provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<unknown>) => {
      try {
        await next()
      } finally {
        const record = byRequest.get(ctx.req)
        if (record !== undefined) {
          const oidc = ctx.oidc as KoaContextWithOIDC["oidc"] | undefined
          record.route = oidc?.route
          const body = oidc?.body
          if (record.form === undefined && body !== undefined && typeof body === "object" && body !== null) {
            record.form = flattenForm(body)
          }
          record.clientId = oidc?.client?.clientId ?? record.form?.client_id ?? record.assertion?.claims.iss
          const response = ctx.body as Record<string, unknown> | undefined
          if (response !== undefined && response !== null && typeof response === "object") {
            if (typeof response.error === "string") record.error = response.error
            if (typeof response.access_token === "string") record.accessToken = response.access_token
          }
        }
      }
    })
    handler = provider.callback()

    const mint = async (mintOptions: MintOptions = {}): Promise<string> => {
      const key = mintOptions.foreignKey === true
        ? (await jose.generateKeyPair("RS256")).privateKey
        : privateKey
      const clientId = mintOptions.clientId ?? options.clients[0]?.clientId ?? "test-client"
      const now = Math.floor(Date.now() / 1000)
      const aud = mintOptions.audience ?? audience
      return new jose.SignJWT({
        client_id: clientId,
        ...(mintOptions.scope === undefined ? {} : { scope: mintOptions.scope }),
        ...mintOptions.extraClaims
      })
        .setProtectedHeader({ alg: "RS256", typ: "at+jwt", kid })
        .setIssuer(mintOptions.issuer ?? issuer)
        .setSubject(clientId)
        .setAudience(typeof aud === "string" ? aud : [...aud])
        .setIssuedAt(now)
        .setJti(Math.random().toString(36).slice(2))
        .setExpirationTime(now + (mintOptions.expiresInSeconds ?? ttl))
        .sign(key)
    }

    const isTokenRequest = (r: RequestRecord) => r.method === "POST" && r.path === "/token"
    return {
      issuer,
      origin: listener.origin,
      port: listener.port,
      tokenUrl,
      jwksUrl: `${issuer}/jwks`,
      discoveryUrl: `${issuer}/.well-known/openid-configuration`,
      metadataUrl: `${issuer}/.well-known/oauth-authorization-server`,
      jwks: { keys: [publicJwk] },
      get requests() {
        return records.slice()
      },
      get tokenRequests() {
        return records.filter(isTokenRequest)
      },
      get tokenRequestCount() {
        return records.filter(isTokenRequest).length
      },
      get accessTokenTtlSeconds() {
        return ttl
      },
      setAccessTokenTtl: (seconds) => {
        ttl = seconds
      },
      get audience() {
        return audience
      },
      setAudience: (value) => {
        audience = value
      },
      mint,
      clearRecords: () => {
        records.length = 0
      },
      setClientSecret: (clientId, secret) => updateClient(clientId, (m) => ({ ...m, client_secret: secret })),
      setClientJwks: (clientId, jwks) =>
        updateClient(clientId, (m) => ({ ...m, jwks: { keys: jwks.keys.map((k) => ({ ...k })) } as any })),
      get assertions() {
        return records.flatMap((r) => isTokenRequest(r) && r.assertion !== undefined ? [r.assertion] : [])
      },
      close: listener.close
    }
  } catch (error) {
    await listener.close()
    throw error
  }
}

/**
 * The server as a scoped resource, closed when the scope closes.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options: Options) => Effect.Effect<AuthorizationServer, never, Scope.Scope> = internal.scoped(
  start
)

// -----------------------------------------------------------------------------
// internal
// -----------------------------------------------------------------------------

type ProviderConstructor = new(issuer: string, configuration?: Configuration) => Provider

interface ProviderModule {
  readonly Provider: ProviderConstructor
  readonly errors: typeof Oidc.errors
}

let providerModule: Promise<ProviderModule> | undefined

/**
 * Imports oidc-provider lazily, dropping its one-time "Unsupported runtime" warning on Node 20 (it works there; the
 * warning is only about the supported LTS line).
 */
const loadProvider = (): Promise<ProviderModule> => {
  if (providerModule === undefined) {
    const target = globalThis.console
    const original = target.warn
    target.warn = (...args: Array<unknown>) => {
      if (typeof args[0] === "string" && args[0].includes("oidc-provider WARNING: Unsupported runtime")) return
      original.apply(target, args)
    }
    providerModule = import("oidc-provider").then(
      (module) => ({ Provider: module.default as unknown as ProviderConstructor, errors: module.errors })
    ).finally(() => {
      target.warn = original
    })
  }
  return providerModule
}

const clientMetadata = (client: Client): ClientMetadata => {
  const method = client.authMethod ?? "client_secret_basic"
  if (method.startsWith("client_secret_") && client.clientSecret === undefined) {
    throw new Error(`AuthorizationServer: client ${client.clientId} (${method}) needs a clientSecret`)
  }
  const keys: Array<jose.JWK> = [
    ...(client.jwks?.keys ?? []),
    ...(method === "self_signed_tls_client_auth" && client.certificatePem !== undefined
      ? [certificateJwk(client.certificatePem) as jose.JWK]
      : [])
  ]
  let subjectDn = client.tlsClientAuthSubjectDn
  if (method === "tls_client_auth" && subjectDn === undefined) {
    if (client.certificatePem === undefined) {
      throw new Error(
        `AuthorizationServer: client ${client.clientId} (tls_client_auth) needs tlsClientAuthSubjectDn or certificatePem`
      )
    }
    subjectDn = new crypto.X509Certificate(client.certificatePem).subject.split("\n").join(",")
  }
  return {
    client_id: client.clientId,
    ...(client.clientSecret === undefined ? {} : { client_secret: client.clientSecret }),
    grant_types: method === "none" ? [jwtBearerGrantType] : ["client_credentials", jwtBearerGrantType],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: method,
    ...(client.scopes === undefined ? {} : { scope: client.scopes.join(" ") }),
    ...(keys.length === 0 ? {} : { jwks: { keys: keys.map((k) => ({ ...k })) } as any }),
    ...(method === "tls_client_auth" ? { tls_client_auth_subject_dn: subjectDn } : {}),
    ...(client.certificateBoundAccessTokens === true ? { tls_client_certificate_bound_access_tokens: true } : {})
  }
}

/** Compares two DNs as sets of `type=value` pairs (Node's `X509Certificate.subject` is newline-separated). */
const sameDn = (a: string, b: string): boolean => {
  const normalize = (dn: string) =>
    dn.split(/[\n,]/).map((part) => {
      const i = part.indexOf("=")
      return i === -1 ? part.trim() : `${part.slice(0, i).trim().toUpperCase()}=${part.slice(i + 1).trim()}`
    }).filter((part) => part.length > 0).sort().join("\n")
  return normalize(a) === normalize(b)
}

const decodeAssertion = (
  parameter: AssertionRecord["parameter"],
  jwt: string
): AssertionRecord | undefined => {
  try {
    return { parameter, header: jose.decodeProtectedHeader(jwt), claims: jose.decodeJwt(jwt) }
  } catch {
    return undefined
  }
}

/**
 * A copy of a request whose body was already read, for oidc-provider to read again (same socket, so the TLS client
 * certificate is still there).
 */
const replayRequest = (
  req: http.IncomingMessage,
  body: Buffer,
  record: internal.MutableRecord<RequestRecord>,
  byRequest: WeakMap<http.IncomingMessage, internal.MutableRecord<RequestRecord>>
): http.IncomingMessage => {
  const copy = new http.IncomingMessage(req.socket)
  copy.method = req.method!
  copy.url = req.url!
  copy.httpVersion = req.httpVersion
  copy.httpVersionMajor = req.httpVersionMajor
  copy.httpVersionMinor = req.httpVersionMinor
  copy.headers = { ...req.headers, "content-length": String(body.length) }
  copy.rawHeaders = req.rawHeaders
  // a finished message: destroying it after `end` must not abort the socket
  copy.complete = true
  copy.push(body)
  copy.push(null)
  byRequest.set(copy, record)
  return copy
}

const flattenForm = (body: object): Record<string, string> => {
  const form: Record<string, string> = {}
  for (const [key, value] of Object.entries(body)) {
    if (typeof value === "string") form[key] = value
    else if (Array.isArray(value)) form[key] = value.join(",")
  }
  return form
}

const makeAdapter = (store: Map<string, AdapterPayload>, name: string): Adapter => {
  const key = (id: string) => `${name}:${id}`
  return {
    upsert: async (id, payload) => {
      store.set(key(id), payload)
    },
    find: async (id) => store.get(key(id)),
    findByUserCode: async () => undefined,
    findByUid: async (uid) => {
      for (const [k, payload] of store) {
        if (k.startsWith(`${name}:`) && payload.uid === uid) return payload
      }
      return undefined
    },
    consume: async (id) => {
      const payload = store.get(key(id))
      if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000)
    },
    destroy: async (id) => {
      store.delete(key(id))
    },
    revokeByGrantId: async (grantId) => {
      for (const [k, payload] of store) {
        if (payload.grantId === grantId) store.delete(k)
      }
    }
  }
}

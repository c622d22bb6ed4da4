/**
 * A real OAuth 2.0 authorization server for tests: [oidc-provider](https://github.com/panva/node-oidc-provider) 9
 * configured for the `client_credentials` grant only, issuing RFC 9068 JWT access tokens (`typ: at+jwt`, RS256).
 *
 * - The token's `aud` is the `resource` parameter of the token request (RFC 8707) when given, else the configured
 *   {@link Options.audience} (typically the MCP server URL, settable later with `setAudience`), else the issuer.
 * - `scope` in the token (and the response) is what the client requested, limited to the client's allowed scopes;
 *   oidc-provider issues no scope when none is requested.
 * - Client authentication: `client_secret_basic` (RFC 6749 §2.3.1 form-encoded id and secret, decoded by
 *   oidc-provider) or `client_secret_post`. oidc-provider accepts either method for a secret-based client, whatever
 *   `authMethod` says. A wrong secret or unknown client gets `401 {"error":"invalid_client"}` (with a
 *   `WWW-Authenticate: Basic` challenge when Basic was used).
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
import type * as http from "node:http"
import type { Adapter, AdapterPayload, Configuration, KoaContextWithOIDC, Provider } from "oidc-provider"
import * as internal from "./internal/server.js"
import type { TlsCredentials } from "./TestPki.js"
import type { RecordedRequest, Started } from "./TestServer.js"

/**
 * A registered client.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Client {
  readonly clientId: string
  readonly clientSecret: string
  /** Registered method (default `client_secret_basic`). */
  readonly authMethod?: "client_secret_basic" | "client_secret_post" | undefined
  /** Scopes the client may request (default: all supported scopes). */
  readonly scopes?: ReadonlyArray<string> | undefined
}

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
}

/**
 * Starts the server from plain async code; call `close()` when done.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const start = async (options: Options): Promise<Started<AuthorizationServer>> => {
  const records: Array<internal.MutableRecord<RequestRecord>> = []
  const byRequest = new WeakMap<http.IncomingMessage, internal.MutableRecord<RequestRecord>>()
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined
  const listener = await internal.listen((req, res) => {
    const record: internal.MutableRecord<RequestRecord> = {
      ...internal.recordOf(req),
      route: undefined,
      form: undefined,
      clientId: undefined,
      error: undefined,
      accessToken: undefined
    }
    records.push(record)
    byRequest.set(req, record)
    internal.trackStatus(res, record)
    if (handler === undefined) {
      internal.sendJson(res, 503, { error: "temporarily_unavailable" })
    } else {
      handler(req, res)
    }
  }, options.https)

  try {
    const issuer = listener.origin
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
    const ProviderClass = await loadProvider()
    const configuration: Configuration = {
      adapter: (name: string) => makeAdapter(store, name),
      jwks: { keys: [privateJwk as any] },
      clients: options.clients.map((c) => ({
        client_id: c.clientId,
        client_secret: c.clientSecret,
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: c.authMethod ?? "client_secret_basic",
        ...(c.scopes === undefined ? {} : { scope: c.scopes.join(" ") })
      })),
      scopes,
      clientAuthMethods: ["client_secret_basic", "client_secret_post"],
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
          getResourceServerInfo: (_ctx, resource) => ({
            scope: scopes.join(" "),
            audience: resource,
            accessTokenTTL: ttl,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } }
          })
        }
      }
    }
    const provider: Provider = new ProviderClass(issuer, configuration)
    provider.on("server_error", () => {
      // keep oidc-provider from printing; the 500 response is recorded
    })
    provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<unknown>) => {
      try {
        await next()
      } finally {
        const record = byRequest.get(ctx.req)
        if (record !== undefined) {
          const oidc = ctx.oidc as KoaContextWithOIDC["oidc"] | undefined
          record.route = oidc?.route
          const body = oidc?.body
          if (body !== undefined && typeof body === "object" && body !== null) record.form = flattenForm(body)
          record.clientId = oidc?.client?.clientId
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
      tokenUrl: `${issuer}/token`,
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

let providerModule: Promise<ProviderConstructor> | undefined

/**
 * Imports oidc-provider lazily, dropping its one-time "Unsupported runtime" warning on Node 20 (it works there; the
 * warning is only about the supported LTS line).
 */
const loadProvider = (): Promise<ProviderConstructor> => {
  if (providerModule === undefined) {
    const target = globalThis.console
    const original = target.warn
    target.warn = (...args: Array<unknown>) => {
      if (typeof args[0] === "string" && args[0].includes("oidc-provider WARNING: Unsupported runtime")) return
      original.apply(target, args)
    }
    providerModule = import("oidc-provider").then(
      (module) => module.default as unknown as ProviderConstructor
    ).finally(() => {
      target.warn = original
    })
  }
  return providerModule
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

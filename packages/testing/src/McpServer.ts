/**
 * A real MCP server (SDK `McpServer` over Streamable HTTP) protected by bearer JWTs, with an optional second
 * "service token" header, fake Jira/Jama tools and a record of every request.
 *
 * Request pipeline for the MCP path (`/mcp` by default), in order:
 * 1. `intercept` hook (if set) may answer anything (e.g. a 401 for every GET).
 * 2. Bearer auth (unless `requireAuth: false`): the JWT is verified with `jose` against the JWKS (signature, `exp`,
 *    `iss` when known, `aud` = the server URL or `audience`), then checked against revoked tokens. Failure:
 *    **401** `{"error":"invalid_token",…}` with `WWW-Authenticate: Bearer error="invalid_token",
 *    error_description="…", resource_metadata="…"`. Missing `requiredScopes`: **403** `insufficient_scope`
 *    (RFC 6750 §3.1).
 *    With `requireCertificateBinding` (RFC 8705 §3), a token whose payload has `cnf["x5t#S256"]` is accepted only
 *    on a TLS connection whose client certificate has that SHA-256 thumbprint; otherwise **401** `invalid_token`
 *    (outcome `certificate_mismatch`).
 * 3. Service token (when `serviceToken` is set): a missing or wrong header gets **403** with a JSON-RPC error body
 *    (never 401: a 401 makes MCP clients redo OAuth).
 * 4. MCP: stateful by default (a session per `initialize`, `mcp-session-id` routing; GET opens the SSE stream, DELETE
 *    ends the session; unknown session → 404, no session on a non-initialize request → 400). `mode: "stateless"`
 *    serves POST only and answers GET/DELETE with 405. Other methods: 405.
 *
 * RFC 9728 protected resource metadata is served at `/.well-known/oauth-protected-resource/mcp` (and without the
 * path suffix) naming the issuer as authorization server, so SDK clients can discover the token endpoint.
 *
 * Tools: `echo`, `whoami`, `jira_get_issue`, `jira_search`, `jama_list_releases`, `jama_get_item`, `sleep`. All
 * answer one text content item holding JSON (except `echo`, which returns the text as is).
 *
 * @since 0.1.0
 */
import * as Undici from "@effect/platform-node/Undici"
import { McpServer as SdkMcpServer } from "@modelcontextprotocol/sdk/server/mcp.js"
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as jose from "jose"
import * as crypto from "node:crypto"
import type * as http from "node:http"
import * as z from "zod"
import * as internal from "./internal/server.js"
import { version } from "./internal/version.js"
import type { TlsCredentials } from "./TestPki.js"
import type { RecordedRequest, Started } from "./TestServer.js"

/**
 * The second-header check ("dual mode").
 *
 * @since 0.1.0
 * @category Models
 */
export interface ServiceTokenOptions {
  /** Header name (default `X-Service-Account-Token`). */
  readonly header?: string | undefined
  /** The expected value, or a predicate on the received value. */
  readonly accept: string | ((value: string) => boolean)
}

/**
 * A reply from the `intercept` hook.
 *
 * @since 0.1.0
 * @category Models
 */
export interface InterceptReply {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** A non-string body is sent as JSON. */
  readonly body?: unknown
}

/**
 * @since 0.1.0
 * @category Models
 */
export type Intercept = (request: RequestRecord) => InterceptReply | undefined

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Shorthand for `issuer` + `jwksUrl` (pass an {@link AuthorizationServer} directly). */
  readonly authorizationServer?: { readonly issuer: string; readonly jwksUrl: string } | undefined
  /** Expected `iss`; not checked when neither this nor `authorizationServer` is given. */
  readonly issuer?: string | undefined
  /** Remote JWKS (fetched lazily, cached by jose). */
  readonly jwksUrl?: string | undefined
  /** Local JWKS instead of `jwksUrl`. */
  readonly jwks?: jose.JSONWebKeySet | undefined
  /** CA (PEM) to trust when fetching an `https` `jwksUrl` (e.g. `pki.ca`). */
  readonly ca?: string | undefined
  /** Custom fetch for the JWKS (takes precedence over `ca`). */
  readonly fetch?: ((url: string, init: RequestInit) => Promise<Response>) | undefined
  /** Accepted `aud` value(s) (default: this server's `url`). */
  readonly audience?: string | ReadonlyArray<string> | undefined
  /**
   * Accept non-JWT bearer tokens this predicate approves (e.g. `tok-N` from {@link FaultTokenEndpoint}); they get
   * `clientId: "opaque"` and no scopes. Checked before JWT verification; revocation still applies.
   */
  readonly acceptOpaqueToken?: ((token: string) => boolean) | undefined
  /** Scopes every token must carry (default none). */
  readonly requiredScopes?: ReadonlyArray<string> | undefined
  /** Default `true`; `false` serves MCP without any bearer check. */
  readonly requireAuth?: boolean | undefined
  readonly serviceToken?: ServiceTokenOptions | undefined
  /** Default `"stateful"`. */
  readonly mode?: "stateful" | "stateless" | undefined
  /** Answer POSTs with plain JSON instead of SSE (default `false`). */
  readonly jsonResponse?: boolean | undefined
  /** MCP path (default `/mcp`). */
  readonly path?: string | undefined
  readonly clockToleranceSeconds?: number | undefined
  /**
   * The time (epoch milliseconds) tokens are checked against (default `Date.now`): a controllable clock lets a test
   * expire a token without waiting for it.
   */
  readonly now?: (() => number) | undefined
  /** Register further tools/resources on each session's SDK server. */
  readonly configure?: ((server: SdkMcpServer) => void) | undefined
  readonly intercept?: Intercept | undefined
  readonly https?: TlsCredentials | undefined
  /**
   * With `https`: ask every client for a TLS certificate (never refusing the handshake), to record its thumbprint
   * (default `false`; implied by `requireCertificateBinding`).
   */
  readonly requestClientCertificate?: boolean | undefined
  /**
   * With `https`: a certificate-bound token (`cnf["x5t#S256"]`) is accepted only on a connection presenting that
   * certificate (else 401 `invalid_token`). Tokens without `cnf` are unaffected.
   */
  readonly requireCertificateBinding?: boolean | undefined
}

/**
 * How the auth checks ended for a request.
 *
 * @since 0.1.0
 * @category Models
 */
export type AuthOutcome =
  | "ok"
  | "not_required"
  | "missing_token"
  | "malformed"
  | "invalid_token"
  | "expired"
  | "revoked"
  | "insufficient_scope"
  | "service_token_missing"
  | "service_token_invalid"
  | "intercepted"
  | "certificate_mismatch"

/**
 * @since 0.1.0
 * @category Models
 */
export interface RequestRecord extends RecordedRequest {
  /** JSON-RPC method of the (first) message, e.g. `initialize`, `tools/call`. */
  readonly rpcMethod: string | undefined
  /** All JSON-RPC methods of a batch (responses and notifications included). */
  readonly rpcMethods: ReadonlyArray<string>
  /** The parsed JSON body of a POST. */
  readonly body: unknown
  /** The `mcp-session-id` request header. */
  readonly sessionId: string | undefined
  readonly auth: AuthOutcome | undefined
  /** `client_id` (or `sub`) of a verified token. */
  readonly clientId: string | undefined
  /** Why auth failed (the `error_description`). */
  readonly authError: string | undefined
  /** `x5t#S256` of the TLS client certificate presented on the connection, if any. */
  readonly clientCertificateThumbprint: string | undefined
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface McpServer {
  /** The MCP endpoint, e.g. `http://127.0.0.1:PORT/mcp`. */
  readonly url: string
  readonly origin: string
  readonly port: number
  /** RFC 9728 metadata URL (`/.well-known/oauth-protected-resource/mcp`). */
  readonly resourceMetadataUrl: string
  /** All requests, oldest first (a copy). */
  readonly requests: ReadonlyArray<RequestRecord>
  /** Requests to the MCP path only. */
  readonly mcpRequests: ReadonlyArray<RequestRecord>
  readonly requestCount: number
  /** Responses with status 401. */
  readonly unauthorizedCount: number
  /** Responses with status 403. */
  readonly forbiddenCount: number
  /** Open sessions (stateful mode). */
  readonly sessionCount: number
  /** Rejects this access token from now on (401 `Token has been revoked`). */
  readonly revoke: (token: string) => void
  readonly clearRevocations: () => void
  readonly setServiceToken: (serviceToken: ServiceTokenOptions | undefined) => void
  readonly setIntercept: (intercept: Intercept | undefined) => void
  readonly clearRecords: () => void
}

/**
 * The default service-token header name.
 *
 * @since 0.1.0
 * @category Models
 */
export const defaultServiceTokenHeader = "X-Service-Account-Token"

/**
 * Starts the server from plain async code; call `close()` when done.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const start = async (options: Options = {}): Promise<Started<McpServer>> => {
  const path = options.path ?? "/mcp"
  const mode = options.mode ?? "stateful"
  const requireAuth = options.requireAuth ?? true
  const requireBinding = options.requireCertificateBinding === true
  if ((requireBinding || options.requestClientCertificate === true) && options.https === undefined) {
    throw new Error("McpServer: requestClientCertificate and requireCertificateBinding need https")
  }
  const issuer = options.issuer ?? options.authorizationServer?.issuer
  const jwksUrl = options.jwksUrl ?? options.authorizationServer?.jwksUrl
  if (
    requireAuth && jwksUrl === undefined && options.jwks === undefined && options.acceptOpaqueToken === undefined
  ) {
    throw new Error(
      "McpServer: jwksUrl, jwks, authorizationServer or acceptOpaqueToken is required unless requireAuth is false"
    )
  }
  const records: Array<internal.MutableRecord<RequestRecord>> = []
  const revoked = new Set<string>()
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: SdkMcpServer }>()
  const perRequest = new Set<{ transport: StreamableHTTPServerTransport; server: SdkMcpServer }>()
  let serviceToken = options.serviceToken
  let intercept = options.intercept

  let dispatcher: Undici.Agent | undefined
  const keySet = (() => {
    if (options.jwks !== undefined) return jose.createLocalJWKSet(options.jwks)
    if (jwksUrl === undefined) return undefined
    let fetchImpl = options.fetch
    if (fetchImpl === undefined && options.ca !== undefined) {
      const agent = new Undici.Agent({ connect: { ca: options.ca } })
      dispatcher = agent
      fetchImpl = (url, init) =>
        Undici.fetch(url, { ...(init as Undici.RequestInit), dispatcher: agent }) as unknown as Promise<Response>
    }
    return jose.createRemoteJWKSet(new URL(jwksUrl), {
      cooldownDuration: 0,
      ...(fetchImpl === undefined ? {} : { [jose.customFetch]: fetchImpl as jose.FetchImplementation })
    })
  })()

  let url = ""
  let resourceMetadataUrl = ""

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const record: internal.MutableRecord<RequestRecord> = {
      ...internal.recordOf(req),
      rpcMethod: undefined,
      rpcMethods: [],
      body: undefined,
      sessionId: undefined,
      auth: undefined,
      clientId: undefined,
      authError: undefined,
      clientCertificateThumbprint: internal.peerCertificateThumbprint(req)
    }
    records.push(record)
    internal.trackStatus(res, record)
    record.sessionId = record.headers["mcp-session-id"]
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status
      internal.sendJson(res, status, body, headers)
    }

    const metadataPath = "/.well-known/oauth-protected-resource"
    if (record.method === "GET" && (record.path === metadataPath + path || record.path === metadataPath)) {
      reply(200, {
        resource: url,
        ...(issuer === undefined ? {} : { authorization_servers: [issuer] }),
        scopes_supported: [...(options.requiredScopes ?? [])],
        bearer_methods_supported: ["header"]
      })
      return
    }
    if (record.path !== path) {
      reply(404, { error: "not_found" })
      return
    }

    let body: unknown = undefined
    if (record.method === "POST") {
      const raw = (await internal.readBody(req, 4 * 1024 * 1024)).toString("utf8")
      try {
        body = raw.length === 0 ? undefined : JSON.parse(raw)
      } catch {
        reply(400, { jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null })
        return
      }
      record.body = body
      const messages = Array.isArray(body) ? body : [body]
      record.rpcMethods = messages.flatMap((m) =>
        typeof m === "object" && m !== null && typeof (m as { method?: unknown }).method === "string"
          ? [(m as { method: string }).method]
          : []
      )
      record.rpcMethod = record.rpcMethods[0]
    }
    const rpcId = (() => {
      const first = Array.isArray(body) ? body[0] : body
      const id = typeof first === "object" && first !== null ? (first as { id?: unknown }).id : undefined
      return typeof id === "string" || typeof id === "number" ? id : null
    })()

    const intercepted = intercept?.(record)
    if (intercepted !== undefined) {
      record.auth = "intercepted"
      const isString = typeof intercepted.body === "string"
      const text = intercepted.body === undefined
        ? ""
        : isString
        ? intercepted.body as string
        : JSON.stringify(intercepted.body)
      record.status = intercepted.status
      res.writeHead(intercepted.status, {
        ...(intercepted.body === undefined || isString ? {} : { "content-type": "application/json" }),
        ...intercepted.headers
      })
      res.end(text)
      return
    }

    let authInfo: AuthInfoLike | undefined
    if (requireAuth) {
      const result = await verify(record.headers.authorization, record.clientCertificateThumbprint)
      record.auth = result.outcome
      if (result.outcome !== "ok") {
        record.authError = result.description
        if (result.outcome === "insufficient_scope") {
          reply(403, { error: "insufficient_scope", error_description: result.description }, {
            "www-authenticate": challenge("insufficient_scope", result.description, options.requiredScopes)
          })
        } else {
          reply(401, { error: "invalid_token", error_description: result.description }, {
            "www-authenticate": challenge("invalid_token", result.description, options.requiredScopes)
          })
        }
        return
      }
      authInfo = result.authInfo
      record.clientId = authInfo.clientId
    } else {
      record.auth = "not_required"
    }

    const serviceHeaderName = (serviceToken?.header ?? defaultServiceTokenHeader).toLowerCase()
    const serviceValue = record.headers[serviceHeaderName]
    if (serviceToken !== undefined) {
      const accept = serviceToken.accept
      const ok = serviceValue !== undefined &&
        (typeof accept === "string" ? serviceValue === accept : accept(serviceValue))
      if (!ok) {
        const outcome = serviceValue === undefined ? "service_token_missing" : "service_token_invalid"
        const headerName = serviceToken.header ?? defaultServiceTokenHeader
        const message = serviceValue === undefined ? `Missing ${headerName} header` : `Invalid ${headerName} header`
        record.auth = outcome
        record.authError = message
        reply(403, { jsonrpc: "2.0", error: { code: -32001, message }, id: rpcId })
        return
      }
    }
    ;(req as http.IncomingMessage & { auth?: AuthInfoLike }).auth = {
      ...(authInfo ?? { token: "", clientId: "", scopes: [] }),
      extra: {
        ...authInfo?.extra,
        serviceTokenPresented: serviceValue !== undefined,
        serviceTokenHeader: serviceToken?.header ?? defaultServiceTokenHeader,
        authenticated: authInfo !== undefined
      }
    }

    if (mode === "stateless") {
      if (record.method !== "POST") {
        reply(405, { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed." }, id: null }, {
          allow: "POST"
        })
        return
      }
      const transport = new StreamableHTTPServerTransport(
        options.jsonResponse === true ? { enableJsonResponse: true } : {}
      )
      const server = buildServer(options.configure)
      const entry = { transport, server }
      perRequest.add(entry)
      res.on("close", () => {
        perRequest.delete(entry)
        void transport.close()
        void server.close()
      })
      await server.connect(transport)
      await transport.handleRequest(req, res, body)
      return
    }

    if (!["GET", "POST", "DELETE"].includes(record.method)) {
      reply(405, { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed." }, id: null }, {
        allow: "GET, POST, DELETE"
      })
      return
    }
    const sessionId = record.sessionId
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId)
      if (session === undefined) {
        reply(404, { jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: rpcId })
        return
      }
      await session.transport.handleRequest(req, res, body)
      return
    }
    const initialize = record.method === "POST" &&
      (Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body))
    if (!initialize) {
      reply(400, {
        jsonrpc: "2.0",
        error: { code: -32000, message: "Bad Request: No valid session ID provided" },
        id: rpcId
      })
      return
    }
    const server = buildServer(options.configure)
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      ...(options.jsonResponse === true ? { enableJsonResponse: true } : {}),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server })
      },
      onsessionclosed: (id) => {
        sessions.delete(id)
      }
    })
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId)
    }
    await server.connect(transport)
    await transport.handleRequest(req, res, body)
  }

  const verifiedTokens = new Map<string, jose.JWTPayload>()
  const verify = async (header: string | undefined, certificateThumbprint: string | undefined): Promise<
    | { readonly outcome: "ok"; readonly authInfo: AuthInfoLike }
    | { readonly outcome: Exclude<AuthOutcome, "ok">; readonly description: string }
  > => {
    if (header === undefined) return { outcome: "missing_token", description: "Missing Authorization header" }
    const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header)
    if (match === null) {
      return { outcome: "malformed", description: "Invalid Authorization header format, expected 'Bearer TOKEN'" }
    }
    const token = match[1]!
    if (options.acceptOpaqueToken?.(token) === true) {
      if (revoked.has(token)) return { outcome: "revoked", description: "Token has been revoked" }
      if ((options.requiredScopes ?? []).length > 0) {
        return {
          outcome: "insufficient_scope",
          description: `Missing required scope: ${options.requiredScopes!.join(" ")}`
        }
      }
      return { outcome: "ok", authInfo: { token, clientId: "opaque", scopes: [], extra: {} } }
    }
    if (keySet === undefined) return { outcome: "invalid_token", description: "Invalid token" }
    let payload: jose.JWTPayload
    // like production resource servers, a verified token is remembered until it expires: the signature is checked
    // once per token, not on every request (revocation and scopes still are)
    const remembered = verifiedTokens.get(token)
    const tolerance = options.clockToleranceSeconds ?? 0
    const now = options.now ?? Date.now
    if (
      remembered !== undefined && typeof remembered.exp === "number" && now() / 1000 < remembered.exp + tolerance
    ) {
      payload = remembered
    } else {try {
        const audience = options.audience === undefined
          ? url
          : typeof options.audience === "string"
          ? options.audience
          : [...options.audience]
        const verified = await jose.jwtVerify(token, keySet, {
          audience,
          ...(issuer === undefined ? {} : { issuer }),
          ...(options.clockToleranceSeconds === undefined ? {} : { clockTolerance: options.clockToleranceSeconds }),
          ...(options.now === undefined ? {} : { currentDate: new Date(options.now()) })
        })
        payload = verified.payload
        if (verifiedTokens.size >= 10_000) verifiedTokens.clear()
        verifiedTokens.set(token, payload)
      } catch (error) {
        if (error instanceof jose.errors.JWTExpired) return { outcome: "expired", description: "Token has expired" }
        const message = error instanceof Error ? error.message : String(error)
        return { outcome: "invalid_token", description: `Invalid token: ${message}` }
      }}
    if (revoked.has(token)) return { outcome: "revoked", description: "Token has been revoked" }
    const cnf = payload.cnf as { readonly "x5t#S256"?: unknown } | undefined
    const bound = typeof cnf === "object" && cnf !== null ? cnf["x5t#S256"] : undefined
    if (requireBinding && bound !== undefined && bound !== certificateThumbprint) {
      return {
        outcome: "certificate_mismatch",
        description: certificateThumbprint === undefined
          ? "Certificate-bound token presented without a client certificate"
          : "Certificate-bound token presented with another client certificate"
      }
    }
    const scopes = typeof payload.scope === "string" ? payload.scope.split(" ").filter((s) => s.length > 0) : []
    const missing = (options.requiredScopes ?? []).filter((s) => !scopes.includes(s))
    if (missing.length > 0) {
      return { outcome: "insufficient_scope", description: `Missing required scope: ${missing.join(" ")}` }
    }
    const clientId = typeof payload.client_id === "string" ? payload.client_id : payload.sub ?? ""
    const aud = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud
    const resource = aud === undefined ? undefined : URL.canParse(aud) ? new URL(aud) : undefined
    return {
      outcome: "ok",
      authInfo: {
        token,
        clientId,
        scopes,
        ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }),
        ...(resource === undefined ? {} : { resource }),
        extra: { claims: payload }
      }
    }
  }

  const challenge = (error: string, description: string, scopes: ReadonlyArray<string> | undefined) =>
    [
      `Bearer error="${error}"`,
      `error_description="${description.replace(/["\\]/g, "'")}"`,
      ...(scopes !== undefined && scopes.length > 0 ? [`scope="${scopes.join(" ")}"`] : []),
      `resource_metadata="${resourceMetadataUrl}"`
    ].join(", ")

  const listener = await internal.listen(
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          internal.sendJson(res, 500, {
            jsonrpc: "2.0",
            error: { code: -32603, message: `Internal server error: ${String(error)}` },
            id: null
          })
        } else {
          res.destroy()
        }
      })
    },
    options.https,
    { requestCert: requireBinding || options.requestClientCertificate === true }
  )
  url = `${listener.origin}${path}`
  resourceMetadataUrl = `${listener.origin}/.well-known/oauth-protected-resource${path}`
  listener.onClose(async () => {
    const all = [...sessions.values(), ...perRequest]
    sessions.clear()
    perRequest.clear()
    await Promise.all(all.map(async ({ server, transport }) => {
      await transport.close().catch(() => undefined)
      await server.close().catch(() => undefined)
    }))
    await dispatcher?.destroy().catch(() => undefined)
  })

  const countStatus = (status: number) => records.filter((r) => r.status === status).length
  return {
    url,
    origin: listener.origin,
    port: listener.port,
    resourceMetadataUrl,
    get requests() {
      return records.slice()
    },
    get mcpRequests() {
      return records.filter((r) => r.path === path)
    },
    get requestCount() {
      return records.length
    },
    get unauthorizedCount() {
      return countStatus(401)
    },
    get forbiddenCount() {
      return countStatus(403)
    },
    get sessionCount() {
      return sessions.size
    },
    revoke: (token) => {
      revoked.add(token)
    },
    clearRevocations: () => revoked.clear(),
    setServiceToken: (value) => {
      serviceToken = value
    },
    setIntercept: (value) => {
      intercept = value
    },
    clearRecords: () => {
      records.length = 0
    },
    close: listener.close
  }
}

/**
 * The server as a scoped resource, closed when the scope closes.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make: (options?: Options) => Effect.Effect<McpServer, never, Scope.Scope> = internal.scoped(
  (options: Options | undefined) => start(options)
)

// -----------------------------------------------------------------------------
// fake data
// -----------------------------------------------------------------------------

/**
 * The issue `jira_get_issue` returns for a key (deterministic; `OCSW-2116` is "In Progress").
 *
 * @since 0.1.0
 * @category Fake data
 */
export const fakeJiraIssue = (key: string) => {
  const h = hash(key)
  const statuses = ["To Do", "In Progress", "In Review", "Done", "Blocked"] as const
  const special = key === "OCSW-2116"
  return {
    key,
    summary: special ? "Service account authentication for MCP clients" : `Fake issue ${key}`,
    status: special ? "In Progress" : statuses[h % statuses.length]!,
    priority: ["Low", "Medium", "High"][h % 3]!,
    assignee: ["alice", "bob", "carol", "dave"][h % 4]!,
    project: key.split("-")[0]!,
    updated: new Date(Date.UTC(2025, h % 12, (h % 27) + 1)).toISOString()
  }
}

/**
 * The item `jama_get_item` returns for an id (deterministic).
 *
 * @since 0.1.0
 * @category Fake data
 */
export const fakeJamaItem = (id: number) => ({
  id,
  documentKey: `OCSW-REQ-${id}`,
  itemType: "Requirement",
  fields: {
    name: `Requirement ${id}`,
    status: ["Draft", "Approved", "Rejected"][id % 3]!,
    description: `Fake Jama requirement number ${id}.`
  }
})

/**
 * The releases `jama_list_releases` returns for a project id (deterministic).
 *
 * @since 0.1.0
 * @category Fake data
 */
export const fakeJamaReleases = (projectId: number) =>
  [1, 2, 3].map((n) => ({
    id: projectId * 100 + n,
    name: `Release ${n}.0`,
    releaseDate: new Date(Date.UTC(2025, n * 3, 1)).toISOString().slice(0, 10),
    active: n === 3
  }))

// -----------------------------------------------------------------------------
// internal
// -----------------------------------------------------------------------------

interface AuthInfoLike {
  readonly token: string
  readonly clientId: string
  readonly scopes: Array<string>
  readonly expiresAt?: number
  readonly resource?: URL
  readonly extra?: Record<string, unknown>
}

const hash = (text: string): number => crypto.createHash("sha256").update(text).digest().readUInt32BE(0)

const json = (value: unknown): CallToolResult => ({ content: [{ type: "text", text: JSON.stringify(value) }] })

const buildServer = (configure: ((server: SdkMcpServer) => void) | undefined): SdkMcpServer => {
  const server = new SdkMcpServer({ name: "mcp-auth-test-server", version })
  server.registerTool("echo", {
    description: "Returns the given text",
    inputSchema: { text: z.string() }
  }, async ({ text }) => ({ content: [{ type: "text", text }] }))
  server.registerTool("whoami", {
    description: "Returns the authenticated client id and whether a service token was presented"
  }, async (extra) => {
    const auth = extra.authInfo
    const info = auth?.extra ?? {}
    return json({
      clientId: info.authenticated === true ? auth?.clientId : null,
      scopes: auth?.scopes ?? [],
      serviceTokenPresented: info.serviceTokenPresented === true,
      serviceTokenHeader: info.serviceTokenHeader,
      sessionId: extra.sessionId ?? null
    })
  })
  server.registerTool("jira_get_issue", {
    description: "Gets a Jira issue by key (fake data)",
    inputSchema: { key: z.string() }
  }, async ({ key }) =>
    /^[A-Z][A-Z0-9]*-\d+$/.test(key)
      ? json(fakeJiraIssue(key))
      : { isError: true, content: [{ type: "text", text: `Issue does not exist: ${key}` }] })
  server.registerTool("jira_search", {
    description: "Searches Jira issues with JQL (fake data)",
    inputSchema: { jql: z.string(), maxResults: z.number().int().min(1).max(50).optional() }
  }, async ({ jql, maxResults }) => {
    const project = /project\s*=\s*"?([A-Z][A-Z0-9]*)"?/i.exec(jql)?.[1]?.toUpperCase() ?? "OCSW"
    const total = (hash(jql) % 7) + 3
    const issues = Array.from(
      { length: Math.min(total, maxResults ?? 5) },
      (_, i) => fakeJiraIssue(`${project}-${2100 + ((hash(jql) + i * 7) % 100)}`)
    )
    return json({ jql, total, issues })
  })
  server.registerTool("jama_list_releases", {
    description: "Lists the releases of a Jama project (fake data)",
    inputSchema: { projectId: z.number().int() }
  }, async ({ projectId }) => json({ projectId, releases: fakeJamaReleases(projectId) }))
  server.registerTool("jama_get_item", {
    description: "Gets a Jama item by id (fake data)",
    inputSchema: { id: z.number().int() }
  }, async ({ id }) => json(fakeJamaItem(id)))
  server.registerTool("sleep", {
    description: "Waits the given number of milliseconds (max 10000), then answers",
    inputSchema: { ms: z.number().int().min(0).max(10_000) }
  }, async ({ ms }) => {
    await new Promise((resolve) => setTimeout(resolve, ms))
    return json({ slept: ms })
  })
  configure?.(server)
  return server
}

/**
 * `mcp-auth doctor`: runs the checks of `Doctor.ts` for every function group's auth provider (or one group), prints
 * them and exits with the code of the first failure. Every printed text is scrubbed of the secrets this run knows,
 * the tokens it fetched and the service tokens it produced included.
 *
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as ClientAuthentication from "@mcp-auth/service-account/ClientAuthentication"
import * as Discovery from "@mcp-auth/service-account/Discovery"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import type { ConfigIssue, DiscoveryError } from "@mcp-auth/service-account/ServiceAccountError"
import { ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as ServiceTokenLoader from "@mcp-auth/workflow/ServiceTokenLoader"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Doctor from "../../Doctor.js"
import { DoctorError, ExitCode, report, UsageError } from "../../Errors.js"
import * as Secrets from "../secrets.js"
import * as Validate from "../validate.js"
import { version } from "../versions.js"
import { bearerError, decodeJwt, evaluateClaims, maxSkewSeconds, skewSeconds } from "./claims.js"
import * as Network from "./network.js"

type Outcome = Doctor.Outcome

/** A server's `Date` against the local clock (seconds, `undefined` without one) and how it was read. */
interface Reading {
  readonly skew: number | undefined
  readonly note: string | undefined
}

/** The proxy variables, as `TokenHttpClient` names them in its configuration issues. */
const proxyVariables: ReadonlyArray<string> = ["HTTPS_PROXY", "HTTP_PROXY"]

const passed = (detail: string): Outcome => ({ status: "passed", detail })
const notApplicable = (detail: string): Outcome => ({ status: "not_applicable", detail })
const failed = (detail: string, fix: string, code: number): Outcome => ({ status: "failed", detail, fix, code })

/** The longest detail printed (a configuration error lists every problem). */
const maxDetailChars = 4_000
/** The most bytes of an MCP `initialize` response read. */
const maxInitializeBytes = 1024 * 1024
const protocolVersion = "2025-06-18"

const caHint = (caFile: string | undefined) =>
  "The server may use certificates from an internal Certificate Authority: set ca_file in the provider config to a " +
  `PEM bundle holding it${caFile === undefined ? "" : ` (now ${caFile})`}, or pass --ca-file.`

/** One function group and its provider, or a provider no group uses. */
interface Target {
  readonly group: WorkflowConfig.FunctionGroupConfig | undefined
  readonly name: string
  readonly provider: ServiceAccountConfig.ServiceAccountConfig
}

interface Options {
  readonly config: string
  readonly group: Option.Option<string>
  readonly caFile: Option.Option<string>
  readonly json: boolean
  readonly verbose?: boolean | undefined
}

const humanSeconds = (s: number): string => {
  const a = Math.abs(s)
  return a >= 3600
    ? `${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`
    : a >= 60
    ? `${Math.floor(a / 60)} min ${a % 60} s`
    : `${a} s`
}

/** The checks of one target, sharing what earlier ones found (the token, the service header). */
const makeChecks = (
  workflow: WorkflowConfig.WorkflowConfig,
  target: Target,
  caFileOption: string | undefined
): Record<Doctor.CheckName, Effect.Effect<Outcome>> => {
  const { group, name, provider } = target
  const loadFunction = ServiceTokenLoader.make(workflow.baseDir)
  /** The configuration with its token endpoint: the provider itself, or what the discovery check found. */
  let resolved: ServiceAccountConfig.Resolved | undefined = ServiceAccountConfig.isResolved(provider)
    ? provider
    : undefined
  // the first server contacted: the token endpoint, else where discovery starts (the issuer, or the MCP server)
  const [firstUrl, firstKey] = provider.tokenUrl !== undefined
    ? [provider.tokenUrl, "token_url"] as const
    : provider.discovery?.from === "issuer"
    ? [new URL(provider.issuer!), "issuer"] as const
    : [group?.url ?? new URL(provider.discovery!.trusted[0]!), "server.url"] as const
  // as Workflow.make connects: the token endpoint trusts the provider's ca_file first, the MCP server --ca-file first
  const tokenTls: TokenHttpClient.TlsOptions = {
    ...TokenHttpClient.optionsFromConfig(provider),
    caFile: provider.caFile ?? caFileOption
  }
  const mcpTls: TokenHttpClient.TlsOptions = { ...tokenTls, caFile: caFileOption ?? provider.caFile }
  const tokenHttp = TokenHttpClient.layer(tokenTls)
  const mcpHttp = TokenHttpClient.layer(mcpTls)
  const timeoutMs = Math.min(provider.timeoutSeconds, 30) * 1000
  const proxy = Network.proxyFor(provider, firstUrl)
  /** Discovery, run at most once (by the first check that needs the token endpoint) and shared. */
  const discovered = Effect.runSync(Effect.cached(
    Discovery.resolve(provider, group?.url).pipe(Effect.provide(tokenHttp), Effect.either)
  ))
  /**
   * The server the network checks probe: the token endpoint, configured or discovered; where discovery starts when it
   * fails (a DNS, TCP or TLS problem there is the reason).
   */
  let probe: { readonly url: URL; readonly key: string; readonly proxy: typeof proxy } = {
    url: firstUrl,
    key: firstKey,
    proxy
  }
  const findTarget = provider.tokenUrl !== undefined ? Effect.void : Effect.map(discovered, (found) => {
    if (Either.isRight(found)) {
      const url = found.right.tokenUrl
      probe = { url, key: "the discovered token endpoint", proxy: Network.proxyFor(provider, url) }
    }
  })
  let token: { readonly value: string; readonly scopes: ReadonlyArray<string>; readonly lifetime: number } | undefined
  let serviceHeader: ServiceToken.ServiceHeader | undefined
  /** The certificate error of the token endpoint, when the TLS check failed on one. */
  let tokenCertificateError: string | undefined

  const config = Effect.gen(function*() {
    const issues = yield* Validate.providerIssues(name, provider, loadFunction)
    const add = (found: ReadonlyArray<ConfigIssue>) => {
      for (const issue of found) {
        if (!issues.some((i) => i.toString() === issue.toString())) issues.push(issue)
      }
    }
    for (const tls of group === undefined ? [tokenTls] : [tokenTls, mcpTls]) {
      const files = yield* Effect.either(TokenHttpClient.connectOptions(tls))
      if (Either.isLeft(files)) add(Validate.under(name, files.left))
    }
    // the proxy as the token request and the MCP connection make it: proxy_url, else the proxy variables
    const proxied = yield* Effect.either(
      Effect.scoped(TokenHttpClient.makeDispatcher({ proxy: tokenTls.proxy, environment: tokenTls.environment }))
    )
    const badVariables = Either.isLeft(proxied)
      ? proxied.left.issues.filter((i) => proxyVariables.includes(i.path))
      : []
    if (Either.isLeft(proxied)) {
      add(badVariables)
      add(
        Validate.under(
          name,
          new ConfigurationError({ issues: proxied.left.issues.filter((i) => !badVariables.includes(i)) })
        )
      )
    }
    if (issues.length > 0) {
      const error = new ConfigurationError({ issues })
      const fix = [
        ...(issues.length > badVariables.length ? [report(error).hint ?? ""] : []),
        ...(badVariables.length === 0 ? [] : [
          `Set ${
            badVariables.map((i) => i.path).join(" and ")
          } (or the lower-case spelling) to http://[user:password@]host:port, or unset it.`
        ])
      ]
      return failed(error.message, fix.join(" "), ExitCode.configuration)
    }
    return passed(
      `workflow loaded; ${ClientAuthentication.describe(provider)}; credential and CA files readable${
        proxy === undefined ? "" : `; proxy ${proxy.shown} (from ${proxy.from})`
      }`
    )
  })

  const dnsTcp = Effect.gen(function*() {
    yield* findTarget
    const { proxy } = probe
    const endpoint = proxy ?? Network.endpointOf(probe.url)
    const via = proxy === undefined ? "" : ` (the proxy from ${proxy.from}, ${proxy.shown})`
    const addresses = yield* Network.lookup(endpoint.host, timeoutMs)
    const address = addresses[0]!
    yield* Network.connect(address, endpoint.port, timeoutMs)
    return passed(
      `${endpoint.host}${via} resolves to ${
        addresses.slice(0, 3).join(", ")
      }; TCP connect to ${address}:${endpoint.port}`
    )
  }).pipe(
    Effect.catchAll((error) =>
      Effect.succeed(failed(
        error.message,
        error.code === "ENOTFOUND" || error.code === "EAI_AGAIN"
          ? `The host name does not resolve: check the host of ${probe.key} (and DNS, VPN).`
          : error.code === "ECONNREFUSED"
          ? `Nothing listens there: check the port of ${probe.key}${
            probe.proxy === undefined ? "" : " (or the proxy)"
          } and that the server is up.`
          : error.code === "ETIMEDOUT"
          ? "No answer: a firewall may drop the connection; behind a corporate proxy set proxy_url or HTTPS_PROXY."
          : `Check that ${probe.key} is reachable from here.`,
        ExitCode.network
      ))
    )
  )

  const tls = Effect.gen(function*() {
    yield* findTarget
    const { proxy } = probe
    if (probe.url.protocol !== "https:") return notApplicable(`${probe.key} is http (loopback): no TLS`)
    if (proxy !== undefined) {
      return notApplicable(`through the proxy ${proxy.shown}: the token request checks the certificate`)
    }
    const connectOptions = yield* TokenHttpClient.connectOptions(tokenTls)
    const trust = connectOptions.ca === undefined
      ? `the system roots${process.env.NODE_EXTRA_CA_CERTS ? " and NODE_EXTRA_CA_CERTS" : ""}`
      : `ca_file ${tokenTls.caFile} (and the system roots)`
    const endpoint = Network.endpointOf(probe.url)
    const shake = yield* Network.handshake(endpoint, connectOptions, timeoutMs)
    const now = yield* Clock.currentTimeMillis
    const leaf = `leaf ${shake.subject} issued by ${shake.issuer}`
    if (!shake.authorized) {
      tokenCertificateError = shake.authorizationError
      const localClock = `the local clock says ${new Date(now).toISOString()}`
      return failed(
        `chain not verified against ${trust}: ${shake.authorizationError ?? "unknown error"} (${leaf})`,
        shake.authorizationError === "CERT_HAS_EXPIRED"
          ? `The server's certificate expired${
            shake.validTo === undefined ? "" : ` on ${shake.validTo.toISOString()}`
          } and ${localClock}: if the local clock is ahead, set it right (NTP; see clock skew), else the ` +
            "certificate must be renewed."
          : shake.authorizationError === "CERT_NOT_YET_VALID"
          ? `The server's certificate is valid only from ${
            shake.validFrom === undefined ? "a later date" : shake.validFrom.toISOString()
          } and ${localClock}: the local clock is probably behind, set it right (NTP; see clock skew).`
          : caHint(tokenTls.caFile),
        ExitCode.tls
      )
    }
    if (shake.hostnameError !== undefined) {
      return failed(
        `chain verified against ${trust}, but ${shake.hostnameError}`,
        `Use a ${probe.key} whose host the certificate names (${shake.altNames ?? "no subjectAltName"}).`,
        ExitCode.tls
      )
    }
    const days = shake.validTo === undefined ? undefined : Math.floor((shake.validTo.getTime() - now) / 86_400_000)
    return passed(
      `chain verified against ${trust}; ${leaf}, expires ${
        shake.validTo === undefined ? "?" : `${shake.validTo.toISOString().slice(0, 10)} (${days} days left)`
      }; hostname ${endpoint.host} matches`
    )
  }).pipe(
    Effect.catchAll((error) =>
      Effect.succeed(
        error instanceof Network.ProbeError
          ? failed(error.message, caHint(tokenTls.caFile), ExitCode.tls)
          : failed(error.message, report(error).hint ?? "", ExitCode.configuration)
      )
    )
  )

  const discoveryHint = (error: DiscoveryError) =>
    error.reason === "issuer_mismatch"
      ? "Set issuer to exactly the authorization server's issuer identifier (its metadata's issuer)."
      : error.reason === "issuer_not_trusted"
      ? "Add the authorization server the MCP server names to allowed_issuers (or set issuer) only if you trust it " +
        "with the credentials; else set token_url."
      : error.reason === "resource_mismatch"
      ? "The MCP server's metadata is for another resource: check server.url (it must be the URL the metadata names)."
      : error.reason === "auth_method_unsupported"
      ? "Set auth_method to one the authorization server accepts, with its credential."
      : error.reason === "not_found"
      ? provider.discovery?.from === "mcp_server"
        ? "The MCP server publishes no usable protected-resource metadata (RFC 9728): set issuer or token_url."
        : "Check issuer: its /.well-known/oauth-authorization-server (or openid-configuration) must exist."
      : error.reason === "unreachable"
      ? provider.discovery?.from === "mcp_server"
        ? "Check that the MCP server and the authorization server it names are reachable from here."
        : "Check that the issuer URL is reachable from here."
      : error.reason === "insecure_endpoint"
      ? "The metadata names an http token endpoint: the authorization server must publish an https one."
      : error.reason === "tls"
      ? caHint(tokenTls.caFile)
      : "The metadata is not usable: set token_url, or ask the authorization server's operators."

  const discoveryFailed = (error: DiscoveryError) =>
    failed(
      error.message,
      discoveryHint(error),
      error.reason === "unreachable"
        ? ExitCode.network
        : error.reason === "tls"
        ? ExitCode.tls
        : ExitCode.configuration
    )

  /** No token_url: the token endpoint found as the token provider finds it, from the issuer or the MCP server. */
  const discover = Effect.gen(function*() {
    const found = yield* discovered
    if (Either.isLeft(found)) {
      const error = found.left
      return error._tag === "ConfigurationError"
        ? failed(error.message, report(error).hint ?? "", ExitCode.configuration)
        : discoveryFailed(error)
    }
    resolved = found.right
    const from = provider.discovery?.from === "issuer"
      ? `metadata of issuer ${Scrub.url(found.right.issuer!)}`
      : `the MCP server's metadata names ${Scrub.url(found.right.issuer!)} (pinned)`
    const chosen = [
      `token endpoint ${Scrub.url(found.right.tokenUrl)}`,
      `auth_method ${found.right.authMethod}`,
      ...(found.right.resource === undefined ? [] : [`resource ${Scrub.url(found.right.resource)}`]),
      ...(found.right.scopes.length === 0 ? [] : [`scopes ${found.right.scopes.join(" ")}`])
    ]
    return passed(`${from}; issuer matches; ${chosen.join("; ")}`)
  })

  const discovery = Effect.gen(function*() {
    if (provider.tokenUrl === undefined) return yield* discover
    const tokenUrl = provider.tokenUrl
    const issuer = provider.issuer
    if (issuer === undefined) return notApplicable("not configured (token_url, no issuer)")
    const fetched = yield* Effect.either(
      Discovery.authorizationServer(issuer, {
        timeout: Duration.millis(timeoutMs),
        allowInsecureHttp: provider.allowInsecureHttp
      }).pipe(Effect.provide(tokenHttp))
    )
    if (Either.isLeft(fetched)) {
      const error = fetched.left
      if (error._tag === "ConfigurationError") {
        return failed(error.message, report(error).hint ?? "", ExitCode.configuration)
      }
      return discoveryFailed(error)
    }
    const metadata = fetched.right.value
    if (!Discovery.sameUrl(metadata.tokenEndpoint.href, tokenUrl.href)) {
      return failed(
        `the metadata of ${Scrub.url(issuer)} names the token endpoint ${
          Scrub.url(metadata.tokenEndpoint)
        }, not token_url ${Scrub.url(tokenUrl)}`,
        `Set token_url to ${Scrub.url(metadata.tokenEndpoint)}, or issuer to the authorization server of token_url.`,
        ExitCode.configuration
      )
    }
    return passed(`metadata of ${Scrub.url(issuer)} found; issuer matches; token_endpoint is token_url`)
  })

  const tokenRequest = Effect.gen(function*() {
    const result = yield* Effect.either(
      TokenEndpoint.request(resolved!, { loadFunction }).pipe(Effect.provide(tokenHttp))
    )
    if (Either.isLeft(result)) {
      const error = result.left
      const { code, hint, message } = report(error, Secrets.all())
      return failed(
        `${error._tag}: ${message}`,
        hint ?? `Check token_url and the authorization server's logs for client ${provider.clientId}.`,
        code
      )
    }
    const accessToken = result.right
    const value = Redacted.value(accessToken.token)
    Secrets.add(value)
    const lifetime = Math.round((accessToken.expiresAt - accessToken.issuedAt) / 1000)
    token = { value, scopes: accessToken.scopes, lifetime }
    return passed(
      `${accessToken.tokenType} token from ${Scrub.url(resolved!.tokenUrl)}, expires in ${lifetime} s, scopes ${
        accessToken.scopes.join(" ") || "(none)"
      }`
    )
  })

  const tokenClaims = Effect.gen(function*() {
    const current = token!
    const now = yield* Clock.currentTimeMillis
    const { resource, scopes } = resolved!
    const expectedAudience = resource !== undefined
      ? { value: resource, from: provider.resource === undefined ? "resource (discovered)" : "resource" }
      : provider.audience !== undefined
      ? { value: provider.audience, from: "audience" }
      : group === undefined
      ? undefined
      : { value: Scrub.url(group.url), from: "server.url" }
    const { facts, problems } = evaluateClaims({
      claims: decodeJwt(current.value),
      expectedAudience,
      requestedScopes: scopes,
      responseScopes: current.scopes,
      responseLifetimeSeconds: current.lifetime,
      bufferSeconds: provider.tokenCacheBufferSeconds,
      now: Math.floor(now / 1000)
    })
    return problems.length === 0
      ? passed(facts.join("; "))
      : failed(
        problems.map((p) => p.problem).join("; "),
        problems.map((p) => p.fix).join("; "),
        Doctor.failureCode.token_claims
      )
  })

  /**
   * A server's `Date` against the local clock, from a `HEAD` without credentials, verified as the token request (or
   * the MCP connection) verifies; when the certificate's only fault is its validity dates, which a wrong local clock
   * causes, the same `HEAD` over an unverified, direct connection.
   */
  const readDate = (url: URL, layer: typeof tokenHttp, knownCertificateError: string | undefined) =>
    Effect.gen(function*() {
      const unverified = (code: string) =>
        Network.proxyFor(provider, url) !== undefined
          ? Effect.succeed<Reading>({ skew: undefined, note: `not read (certificate ${code}, through a proxy)` })
          : Effect.gen(function*() {
            const before = yield* Clock.currentTimeMillis
            const date = yield* Network.unverifiedDate(url, timeoutMs)
            const after = yield* Clock.currentTimeMillis
            return { skew: skewSeconds(date, (before + after) / 2), note: `unverified: certificate ${code}` }
          }).pipe(
            Effect.catchAll((error) => Effect.succeed<Reading>({ skew: undefined, note: `no answer (${error.code})` }))
          )
      if (knownCertificateError !== undefined) {
        return Network.clockCertificateErrors.has(knownCertificateError)
          ? yield* unverified(knownCertificateError)
          : { skew: undefined, note: `not asked (TLS failed: ${knownCertificateError})` }
      }
      const verified = yield* Effect.gen(function*() {
        const client = yield* HttpClient.HttpClient
        const before = yield* Clock.currentTimeMillis
        const response = yield* client.execute(HttpClientRequest.head(url))
        const after = yield* Clock.currentTimeMillis
        return skewSeconds(response.headers["date"], (before + after) / 2)
      }).pipe(
        Effect.scoped,
        Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: () => new Error("ETIMEDOUT") }),
        Effect.provide(layer),
        Effect.either
      )
      if (Either.isRight(verified)) return { skew: verified.right, note: undefined }
      const { code } = describeCause(verified.left)
      return code !== undefined && Network.clockCertificateErrors.has(code)
        ? yield* unverified(code)
        : { skew: undefined, note: `no answer (${code ?? verified.left.message})` }
    })

  const clockSkew = Effect.gen(function*() {
    const servers: Array<readonly [string, Reading]> = [[
      resolved === undefined ? "authorization server" : "token endpoint",
      // after a TLS failure for another reason than the dates, the token endpoint is not asked at all
      yield* readDate(resolved?.tokenUrl ?? firstUrl, tokenHttp, tokenCertificateError)
    ]]
    if (group !== undefined) servers.push(["MCP server", yield* readDate(group.url, mcpHttp, undefined)])
    const facts = servers.map(([who, { note, skew }]) =>
      skew === undefined
        ? `${who}: ${note ?? "no Date header"}`
        // the header has whole seconds: a second either way is rounding
        : `${who}: ${Math.abs(skew) <= 1 ? "in step" : `${humanSeconds(skew)} ${skew > 0 ? "ahead" : "behind"}`}${
          note === undefined ? "" : ` (${note})`
        }`
    )
    const off = servers.filter(([, { skew }]) => skew !== undefined && Math.abs(skew) > maxSkewSeconds)
    if (off.length > 0) {
      return failed(
        `${facts.join("; ")}: more than ${maxSkewSeconds} s off the local clock`,
        `Set the local clock right (NTP), or the ${
          off.map(([who]) => who).join(" and ")
        }'s: tokens are checked against clocks (iat, nbf, exp), and certificates too.`,
        Doctor.failureCode.clock_skew
      )
    }
    return servers.some(([, { skew }]) => skew !== undefined)
      ? passed(`${facts.join("; ")} (tolerance ${maxSkewSeconds} s)`)
      : notApplicable(`${facts.join("; ")}: no server's Date to compare with`)
  })

  const serviceToken = Effect.gen(function*() {
    const configured = provider.serviceToken
    if (configured === undefined) return notApplicable("not configured")
    const source = configured._tag === "Static"
      ? "the static token"
      : `function ${typeof configured.function === "string" ? configured.function : "(inline)"}`
    const request = RequestContext.make(group?.url ?? resolved?.tokenUrl ?? firstUrl, "POST", {
      mcpMethod: "initialize"
    })
    const result = yield* Effect.either(
      Effect.flatMap(ServiceToken.ServiceToken, (st) => st.get(request)).pipe(
        Effect.provide(ServiceToken.layerFromConfig(provider, { loadFunction, name }))
      )
    )
    if (Either.isLeft(result)) {
      const { code, hint, message } = report(result.left, Secrets.all())
      return failed(message, hint ?? "Check service_token in the provider config.", code)
    }
    if (Option.isNone(result.right)) {
      return failed(
        `${source} gave no service token`,
        "Check service_token in the provider config and the function or variables behind it.",
        ExitCode.serviceToken
      )
    }
    serviceHeader = result.right.value
    Secrets.add(Redacted.value(serviceHeader.value))
    return passed(`${serviceHeader.name} produced by ${source}`)
  })

  const mcpInitialize = Effect.gen(function*() {
    if (group === undefined) return notApplicable("no function group uses this provider")
    const headers: Record<string, string> = {
      ...group.customHeaders,
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
      authorization: `Bearer ${token!.value}`,
      ...(serviceHeader === undefined ? {} : { [serviceHeader.name]: Redacted.value(serviceHeader.value) })
    }
    const body = {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion,
        capabilities: {},
        clientInfo: { name: "mcp-auth-doctor", version: version("@mcp-auth/cli") }
      }
    }
    const exchange = Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const response = yield* client.execute(
        HttpClientRequest.post(group.url).pipe(
          HttpClientRequest.setHeaders(headers),
          HttpClientRequest.bodyUnsafeJson(body)
        )
      )
      const text = yield* readInitialize(response)
      const session = response.headers["mcp-session-id"]
      if (response.status === 200 && session !== undefined) {
        // end the session the check opened
        yield* client.execute(
          HttpClientRequest.del(group.url).pipe(
            HttpClientRequest.setHeaders({
              ...headers,
              "mcp-session-id": session,
              "mcp-protocol-version": protocolVersion
            })
          )
        ).pipe(Effect.ignore)
      }
      return { status: response.status, headers: response.headers, text }
    }).pipe(
      Effect.scoped,
      Effect.timeoutFail({
        duration: group.toolCallTimeout,
        onTimeout: () => new Error(`no answer in ${Duration.format(group.toolCallTimeout)}`)
      }),
      Effect.provide(mcpHttp),
      Effect.either
    )
    const result = yield* exchange
    const where = Scrub.url(group.url)
    if (Either.isLeft(result)) {
      const error = result.left
      const { code, message } = describeCause(error)
      const tlsProblem = code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(code)
      return failed(
        `${where}: ${error instanceof ConfigurationError ? error.message : message}${
          code === undefined ? "" : ` (${code})`
        }`,
        code !== undefined && Network.clockCertificateErrors.has(code)
          ? "The MCP server's certificate is outside its validity dates for the local clock: if the local clock is " +
            "wrong, set it right (NTP; see clock skew), else the certificate must be renewed."
          : tlsProblem
          ? caHint(mcpTls.caFile)
          : "Check the function group's server.url and that the MCP server is up.",
        tlsProblem ? ExitCode.tls : ExitCode.mcpServer
      )
    }
    const { headers: got, status, text } = result.right
    if (status === 401) {
      const challenge = bearerError(got["www-authenticate"])
      return failed(
        `401 from ${where}: ${challenge.error ?? "no WWW-Authenticate error"}${
          challenge.description === undefined ? "" : ` (${challenge.description})`
        }`,
        "The MCP server refused the token: check that it trusts this authorization server, that the token's audience " +
          "is this server (resource, audience) and that the token is not revoked.",
        ExitCode.mcpServer
      )
    }
    if (status === 403) {
      const challenge = bearerError(got["www-authenticate"])
      if (challenge.error === "insufficient_scope") {
        return failed(
          `403 from ${where}: insufficient_scope${
            challenge.description === undefined ? "" : ` (${challenge.description})`
          }`,
          `Request the scopes the MCP server needs${
            challenge.scope === undefined ? "" : ` (${challenge.scope})`
          } in scopes.`,
          ExitCode.mcpServer
        )
      }
      const message = jsonRpcError(text)
      const header = serviceHeader?.name ?? provider.serviceToken?.header ??
        ServiceAccountConfig.DEFAULT_SERVICE_TOKEN_HEADER
      return failed(
        `403 from ${where}${message === undefined ? "" : `: ${message}`}`,
        provider.serviceToken === undefined
          ? `The MCP server refused the request: if it needs a service token, configure service_token (sent in ${header}).`
          : `The MCP server refused the service token sent in ${header}: check service_token (its value, or the ` +
            "function and the variables behind it) and the header name the server expects.",
        ExitCode.mcpServer
      )
    }
    if (status !== 200) {
      return failed(
        `HTTP ${status} from ${where}`,
        status === 404 || status === 405
          ? "Check the function group's server.url: it must be the MCP endpoint (e.g. …/mcp)."
          : "Check the function group's server.url and the MCP server's logs.",
        ExitCode.mcpServer
      )
    }
    const message = initializeResult(text)
    return message.ok
      ? passed(`200 from ${where}: ${message.detail}`)
      : failed(
        `${where}: ${message.detail}`,
        "Check that server.url is an MCP (streamable HTTP) endpoint.",
        ExitCode.mcpServer
      )
  })

  return {
    config,
    dns_tcp: dnsTcp,
    tls,
    discovery,
    token_request: tokenRequest,
    token_claims: tokenClaims,
    clock_skew: clockSkew,
    service_token: serviceToken,
    mcp_initialize: mcpInitialize
  }
}

/** The innermost message and the first `code` along an error's causes (a request error wraps the socket's). */
const describeCause = (error: unknown): { readonly message: string; readonly code: string | undefined } => {
  let message = error instanceof Error ? error.message : String(error)
  let code: string | undefined
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const { code: c, message: m } = current as { code?: unknown; message?: unknown }
    if (code === undefined && typeof c === "string") code = c
    if (typeof m === "string" && m.length > 0 && depth > 0) message = m
    current = (current as { cause?: unknown }).cause
  }
  return { message, code }
}

/** The JSON-RPC messages of a JSON or SSE body (complete SSE events only). */
const messagesOf = (text: string): Array<unknown> => {
  const trimmed = text.trimStart()
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(trimmed)
      return Array.isArray(parsed) ? parsed : [parsed]
    } catch {
      return []
    }
  }
  const events = text.replace(/\r\n?/g, "\n").split("\n\n").slice(0, -1)
  return events.flatMap((event) => {
    const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n")
    try {
      return data === "" ? [] : [JSON.parse(data) as unknown]
    } catch {
      return []
    }
  })
}

const responseOf = (text: string): Record<string, unknown> | undefined =>
  messagesOf(text).find((m): m is Record<string, unknown> =>
    typeof m === "object" && m !== null && (m as Record<string, unknown>).id === 1
  )

/** The body of the `initialize` response, read until its JSON-RPC response arrives (an SSE stream may stay open). */
const readInitialize = (response: HttpClientResponse.HttpClientResponse) =>
  response.stream.pipe(
    Stream.decodeText(),
    Stream.scan("", (text, chunk) => text + chunk),
    Stream.takeUntil((text) => text.length >= maxInitializeBytes || responseOf(text) !== undefined),
    Stream.runLast,
    Effect.map(Option.getOrElse(() => ""))
  )

const jsonRpcError = (text: string): string | undefined => {
  const message = responseOf(text) ?? messagesOf(text)[0]
  const error = typeof message === "object" && message !== null ? (message as { error?: unknown }).error : undefined
  return typeof error === "object" && error !== null && typeof (error as { message?: unknown }).message === "string"
    ? (error as { message: string }).message
    : undefined
}

const initializeResult = (text: string): { readonly ok: boolean; readonly detail: string } => {
  const message = responseOf(text)
  if (message === undefined) return { ok: false, detail: "no JSON-RPC response to initialize" }
  const error = jsonRpcError(text)
  if (error !== undefined) return { ok: false, detail: `initialize failed: ${error}` }
  const result = message.result as
    | { serverInfo?: { name?: unknown; version?: unknown }; protocolVersion?: unknown }
    | undefined
  const name = typeof result?.serverInfo?.name === "string" ? result.serverInfo.name : "?"
  const serverVersion = typeof result?.serverInfo?.version === "string" ? ` ${result.serverInfo.version}` : ""
  const protocol = typeof result?.protocolVersion === "string" ? result.protocolVersion : "?"
  return { ok: true, detail: `server ${name}${serverVersion}, protocol ${protocol}` }
}

/** Runs the checks of one target in order, skipping those whose dependencies failed. */
const runTarget = (
  checks: Record<Doctor.CheckName, Effect.Effect<Outcome>>,
  group: string | null,
  provider: string | null,
  verbose: boolean
) =>
  Effect.gen(function*() {
    const statuses = new Map<Doctor.CheckName, Doctor.Status>()
    const results: Array<Doctor.CheckResult> = []
    for (const name of Doctor.checks) {
      const blocked = Doctor.blockedBy(name, statuses)
      if (blocked !== undefined) {
        statuses.set(name, "skipped")
        results.push({
          group,
          provider,
          name,
          status: "skipped",
          ms: null,
          detail: `skipped: ${Doctor.labels[blocked]} ${statuses.get(blocked) === "failed" ? "failed" : "was skipped"}`,
          fix: null
        })
        continue
      }
      const start = yield* Clock.currentTimeMillis
      const outcome = yield* checks[name].pipe(
        Effect.catchAllDefect((defect) =>
          Effect.succeed(failed(
            `unexpected error: ${
              defect instanceof Error ? (verbose ? defect.stack ?? defect.message : defect.message) : String(defect)
            }`,
            verbose
              ? "A bug in mcp-auth: please report it with the trace above."
              : "A bug in mcp-auth: rerun with --verbose to print its trace in this check, and please report it.",
            ExitCode.unexpected
          ))
        )
      )
      const ms = (yield* Clock.currentTimeMillis) - start
      statuses.set(name, outcome.status)
      results.push({
        group,
        provider,
        name,
        status: outcome.status,
        ms,
        detail: outcome.detail,
        fix: outcome.status === "failed" ? outcome.fix : null,
        code: outcome.status === "failed" ? outcome.code : undefined
      })
    }
    return results
  })

/** What to check: the groups with an auth provider (or the one named), and providers no group uses. */
const targetsOf = (workflow: WorkflowConfig.WorkflowConfig, file: string, only: string | undefined) => {
  const groups = [...workflow.groups.values()]
  if (only !== undefined) {
    const group = workflow.groups.get(only)
    if (group === undefined) {
      return Either.left(
        new UsageError(
          `no function group ${only} in ${file}`,
          `groups: ${groups.map((g) => g.name).join(", ") || "(none)"}`
        )
      )
    }
    if (group.authProvider === undefined) {
      return Either.left(new UsageError(`function group ${only} has no auth_provider: nothing to check`))
    }
    return Either.right<Array<Target>>([
      { group, name: group.authProvider, provider: workflow.providers.get(group.authProvider)! }
    ])
  }
  const targets: Array<Target> = groups.flatMap((group) =>
    group.authProvider === undefined
      ? []
      : [{ group, name: group.authProvider, provider: workflow.providers.get(group.authProvider)! }]
  )
  for (const [name, provider] of workflow.providers) {
    if (!groups.some((g) => g.authProvider === name)) targets.push({ group: undefined, name, provider })
  }
  return targets.length === 0
    ? Either.left(new UsageError(`${file} has no mcp_service_account provider: nothing to check`))
    : Either.right(targets)
}

/** @internal */
export const doctor = (options: Options) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const loaded = yield* Effect.either(WorkflowConfig.load(options.config))
    const results: Array<Doctor.CheckResult> = []
    if (Either.isLeft(loaded)) {
      const ms = (yield* Clock.currentTimeMillis) - start
      const { hint } = report(loaded.left)
      results.push(
        ...(yield* runTarget(
          {
            ...Object.fromEntries(Doctor.checks.map((name) => [name, Effect.succeed(notApplicable(""))])) as Record<
              Doctor.CheckName,
              Effect.Effect<Outcome>
            >,
            config: Effect.succeed(failed(loaded.left.message, hint ?? "", ExitCode.configuration))
          },
          null,
          null,
          options.verbose === true
        )).map((r) => r.name === "config" ? { ...r, ms } : r)
      )
    } else {
      const workflow = loaded.right
      Secrets.fromConfig(workflow)
      const targets = yield* targetsOf(workflow, options.config, Option.getOrUndefined(options.group))
      for (const target of targets) {
        const checks = makeChecks(workflow, target, Option.getOrUndefined(options.caFile))
        results.push(...yield* runTarget(checks, target.group?.name ?? null, target.name, options.verbose === true))
      }
    }
    // scrubbed at the end, with every token and service token this run has seen
    const shown = results.map((r) => ({
      ...r,
      detail: Secrets.lines(r.detail, maxDetailChars),
      fix: r.fix === null ? null : Secrets.line(r.fix, 1_000)
    }))
    yield* Console.log(options.json ? Doctor.toJson(shown) : Doctor.render(Secrets.line(options.config, 1_000), shown))
    const code = Doctor.exitCode(shown)
    if (code !== ExitCode.ok) {
      const failures = shown.filter((r) => r.status === "failed")
      return yield* Effect.fail(
        new DoctorError(
          `${failures.length} check${failures.length === 1 ? "" : "s"} failed: ${
            failures.map((r) => `${Doctor.labels[r.name]}${r.group === null ? "" : ` (${r.group})`}`).join(", ")
          }`,
          code
        )
      )
    }
  })

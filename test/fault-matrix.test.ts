/**
 * The fault matrix: real HTTP(S) on loopback against the programmable fault endpoint (and the real authorization and
 * MCP servers where it applies). One case per row. Each asserts the typed outcome or the recovery and the number of
 * token requests, and scans every error rendering, log line, span attribute and metric label for the secret, the
 * Basic credential and every token issued.
 */
import { describe, expect, it } from "@effect/vitest"
import { McpClient } from "@mcp-auth/client"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FaultTokenEndpoint, TestPki, TestStack } from "@mcp-auth/testing"
import { Cause, Effect, Exit, Layer, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { capture, expectNoLeak, metricLabels, renderings, spanText } from "./utils/capture.js"
import { authLayer } from "./utils/drivers.js"

const SECRET = "matrix-Secret:42%+zz"
const CLIENT_ID = "svc-matrix"

interface Row {
  readonly name: string
  /** The steps, or a function building them when the row runs (for steps that depend on the time). */
  readonly script?: ReadonlyArray<FaultTokenEndpoint.Step> | (() => ReadonlyArray<FaultTokenEndpoint.Step>)
  readonly fallback?: FaultTokenEndpoint.Step
  readonly tls?: (pki: TestPki.TestPki) => TestPki.TlsCredentials
  readonly config?: Record<string, unknown>
  /** An error tag, or "token" for recovery. */
  readonly outcome: string
  readonly requests: number
  /** Extra checks on the endpoint's records. */
  readonly check?: (endpoint: FaultTokenEndpoint.FaultTokenEndpoint, error: unknown) => void
}

const gaps = (endpoint: FaultTokenEndpoint.FaultTokenEndpoint) =>
  endpoint.requests.slice(1).map((r, i) => r.time - endpoint.requests[i]!.time)

const fast = { retry: { initial_backoff_seconds: 0.05, max_backoff_seconds: 0.2 } }

const rows: ReadonlyArray<Row> = [
  { name: "500", script: [{ status: 500, body: "" }], outcome: "token", requests: 2 },
  { name: "502 with an HTML body", script: [FaultTokenEndpoint.badGatewayHtml()], outcome: "token", requests: 2 },
  {
    name: "503 with Retry-After",
    script: [FaultTokenEndpoint.serviceUnavailable(1)],
    outcome: "token",
    requests: 2,
    check: (e) => expect(gaps(e)[0]).toBeGreaterThanOrEqual(990)
  },
  {
    name: "429 with Retry-After in seconds",
    script: [FaultTokenEndpoint.tooManyRequests(1)],
    outcome: "token",
    requests: 2,
    check: (e) => expect(gaps(e)[0]).toBeGreaterThanOrEqual(990)
  },
  {
    name: "429 with Retry-After as an HTTP-date",
    script: () => [FaultTokenEndpoint.tooManyRequests(new Date(Date.now() + 60_000))],
    config: { retry: { max_elapsed_seconds: 5 } },
    outcome: "RateLimitedError",
    requests: 1,
    check: (_e, error) => {
      // the server's wait (≤ 60 s, less the time the request took), not the 5 s budget
      const seconds = Number(/retry after (\d+(?:\.\d+)?)s/.exec((error as { message: string }).message)?.[1])
      expect(seconds).toBeGreaterThan(5)
      expect(seconds).toBeLessThanOrEqual(60)
    }
  },
  {
    name: "timeout",
    fallback: FaultTokenEndpoint.hang(),
    config: { ...fast, timeout_seconds: 0.3, retry: { ...fast.retry, max_attempts: 2 } },
    outcome: "TokenTimeoutError",
    requests: 2
  },
  {
    name: "connection reset",
    script: [FaultTokenEndpoint.resetConnection()],
    config: fast,
    outcome: "token",
    requests: 2
  },
  {
    name: "slow body",
    fallback: FaultTokenEndpoint.slowBody(2_000),
    config: { ...fast, timeout_seconds: 0.3, retry: { ...fast.retry, max_attempts: 1 } },
    outcome: "TokenTimeoutError",
    requests: 1
  },
  {
    name: "non-JSON 200",
    fallback: FaultTokenEndpoint.nonJsonSuccess(),
    outcome: "MalformedResponseError",
    requests: 1
  },
  {
    name: "missing access_token",
    fallback: FaultTokenEndpoint.missingAccessToken(),
    outcome: "MalformedResponseError",
    requests: 1
  },
  {
    name: "token_type mac",
    fallback: FaultTokenEndpoint.macTokenType(),
    outcome: "MalformedResponseError",
    requests: 1
  },
  { name: "string expires_in", fallback: FaultTokenEndpoint.stringExpiresIn("120"), outcome: "token", requests: 1 },
  {
    name: "expires_in below the buffer (clamped, still cached)",
    fallback: FaultTokenEndpoint.success({ expiresIn: 20 }),
    outcome: "token",
    requests: 1
  },
  {
    name: "TLS self-signed",
    tls: (pki) => pki.selfSigned,
    outcome: "TlsError",
    requests: 0,
    check: (_e, error) => expect(error).toMatchObject({ code: "DEPTH_ZERO_SELF_SIGNED_CERT" })
  },
  {
    name: "TLS unknown CA",
    tls: (pki) => pki.unknownCa.withChain,
    outcome: "TlsError",
    requests: 0,
    check: (_e, error) => expect(error).toMatchObject({ code: "SELF_SIGNED_CERT_IN_CHAIN" })
  },
  {
    name: "TLS wrong host",
    tls: (pki) => pki.wrongHost,
    config: { ca_file: "<test ca>" },
    outcome: "TlsError",
    requests: 0,
    check: (_e, error) => expect(error).toMatchObject({ code: "ERR_TLS_CERT_ALTNAME_INVALID" })
  },
  {
    name: "invalid_client (401)",
    fallback: FaultTokenEndpoint.invalidClient(401),
    outcome: "InvalidCredentialsError",
    requests: 1
  },
  {
    name: "invalid_client (400)",
    fallback: FaultTokenEndpoint.invalidClient(400),
    outcome: "InvalidCredentialsError",
    requests: 1
  }
]

const caFile = (pem: string) => {
  const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-matrix-")), "ca.pem")
  Fs.writeFileSync(file, pem)
  return file
}

const basic = Redacted.value(TokenEndpoint.basicCredential(CLIENT_ID, Redacted.make(SECRET)))

describe("fault matrix: token endpoint", () => {
  for (const row of rows) {
    it.scopedLive(row.name, () =>
      Effect.gen(function*() {
        const pki = yield* Effect.promise(() => TestPki.shared())
        const endpoint = yield* FaultTokenEndpoint.make({
          randomTokens: true,
          ...(row.script ? { script: typeof row.script === "function" ? row.script() : row.script } : {}),
          ...(row.fallback ? { fallback: row.fallback } : {}),
          ...(row.tls ? { https: row.tls(pki) } : {})
        })
        const config = ServiceAccountConfig.decodeSync({
          client_id: CLIENT_ID,
          client_secret: SECRET,
          token_url: endpoint.url,
          ...(row.tls ? {} : { allow_insecure_http: true }),
          ...row.config,
          ...(row.config?.ca_file ? { ca_file: caFile(pki.ca) } : {})
        })
        const run = yield* capture(
          Effect.scoped(Effect.flatMap(TokenProvider.make(config, { name: `matrix-${row.name}` }), (p) => p.get)).pipe(
            Effect.provide(TokenHttpClient.layerFromConfig(config))
          )
        )
        if (row.outcome === "token") {
          expect(Exit.isSuccess(run.exit)).toBe(true)
          if (Exit.isSuccess(run.exit)) expect(endpoint.issuedTokens).toContain(Redacted.value(run.exit.value.token))
        } else {
          expect(Exit.isFailure(run.exit) && Cause.squash(run.exit.cause)).toMatchObject({ _tag: row.outcome })
        }
        expect(endpoint.count).toBe(row.requests)
        row.check?.(endpoint, Exit.isFailure(run.exit) ? Cause.squash(run.exit.cause) : undefined)
        expectNoLeak(
          [...renderings(run.exit), ...run.logs, ...spanText(run.spans), yield* metricLabels()],
          [SECRET, basic, ...endpoint.issuedTokens]
        )
      }))
  }
})

describe("fault matrix: MCP side", () => {
  const CLIENT = { clientId: CLIENT_ID, clientSecret: SECRET }
  const setup = (options: Partial<TestStack.Options>, extra: Record<string, unknown> = {}) =>
    Effect.gen(function*() {
      const stack = yield* TestStack.make({ clients: [CLIENT], ...options })
      const config = ServiceAccountConfig.decodeSync({
        client_id: CLIENT_ID,
        client_secret: SECRET,
        token_url: stack.tokenUrl,
        allow_insecure_http: true,
        ...extra
      })
      return { stack, config }
    })
  const tokensOf = (stack: TestStack.TestStack) =>
    stack.authorizationServer.tokenRequests.map((r) => r.accessToken).filter((t): t is string => t !== undefined)

  it.scopedLive("MCP 401 after revocation: recovered with one extra token request", () =>
    Effect.gen(function*() {
      const { config, stack } = yield* setup({})
      const run = yield* capture(
        Effect.gen(function*() {
          const auth = yield* Layer.build(authLayer(config)) // the provider lives as long as the client
          const client = yield* McpClient.make({ url: stack.mcpUrl }).pipe(Effect.provide(auth))
          yield* client.callTool("echo", { text: "one" })
          stack.mcpServer.revoke(tokensOf(stack)[0]!)
          return yield* client.callTool("echo", { text: "two" })
        }).pipe(Effect.scoped)
      )
      expect(Exit.isSuccess(run.exit) ? "ok" : Cause.pretty(run.exit.cause)).toBe("ok")
      expect(stack.authorizationServer.tokenRequestCount).toBe(2)
      expect(stack.mcpServer.unauthorizedCount).toBe(1)
      expectNoLeak([...run.logs, ...spanText(run.spans), yield* metricLabels()], [SECRET, basic, ...tokensOf(stack)])
    }))

  it.scopedLive("MCP 403 on a bad service header: McpForbiddenError, not retried", () =>
    Effect.gen(function*() {
      const { config, stack } = yield* setup({ serviceToken: { accept: "right-service-token" } }, {
        service_token: { token: "wrong-service-token" }
      })
      const run = yield* capture(
        McpClient.make({ url: stack.mcpUrl }).pipe(Effect.provide(authLayer(config)), Effect.scoped)
      )
      expect(Exit.isFailure(run.exit) && Cause.squash(run.exit.cause)).toMatchObject({ _tag: "McpForbiddenError" })
      expect(stack.mcpServer.forbiddenCount).toBe(1)
      expect(stack.authorizationServer.tokenRequestCount).toBe(1)
      expectNoLeak(
        [...renderings(run.exit), ...run.logs, ...spanText(run.spans), yield* metricLabels()],
        [SECRET, basic, "wrong-service-token", ...tokensOf(stack)]
      )
    }))

  const serviceTokenRows: ReadonlyArray<[string, (kwargs: Record<string, unknown>) => unknown, string]> = [
    ["service-token function throwing", () => {
      throw new Error("Vault connection failed")
    }, "Failed to get service token from function: Vault connection failed"],
    ["service-token function hanging", () => new Promise(() => {}), "no token within 300ms"]
  ]
  for (const [name, fn, message] of serviceTokenRows) {
    it.scopedLive(`${name}: ServiceTokenError, nothing sent to the MCP server`, () =>
      Effect.gen(function*() {
        const { config, stack } = yield* setup({}, { service_token: { function: fn, timeout_seconds: 0.3 } })
        const run = yield* capture(
          McpClient.make({ url: stack.mcpUrl }).pipe(Effect.provide(authLayer(config)), Effect.scoped)
        )
        const error = Exit.isFailure(run.exit) ? Cause.squash(run.exit.cause) : undefined
        expect(error).toMatchObject({ _tag: "ServiceTokenError", reason: "function_failed" })
        expect((error as Error).message).toContain(message)
        expect(stack.mcpServer.requestCount).toBe(0)
        expect(stack.authorizationServer.tokenRequestCount).toBe(1)
        expectNoLeak(
          [...renderings(run.exit), ...run.logs, ...spanText(run.spans), yield* metricLabels()],
          [SECRET, basic, ...tokensOf(stack)]
        )
      }))
  }
})

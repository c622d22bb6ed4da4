/**
 * `mcp-auth doctor` (issue 14), the bundled binary run as a subprocess against real servers on 127.0.0.1: a clean run
 * where every check passes, then one fault per check that makes exactly that check fail and the checks that depend on
 * it skip, with the fix printed and the exit code. No secret, token or service token in any output. Like Cli.test.ts,
 * this file rebuilds the bundle when it is older than the sources.
 */
import { AuthorizationServer, HostileServer, McpServer, TestPki, TestProxy } from "@mcp-auth/testing"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Bundle from "./utils/bundle.js"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../..")
const cliDir = Path.join(root, "packages/cli")
const bin = Path.join(cliDir, "build/bundle/bin.js")

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

interface Check {
  readonly group: string | null
  readonly provider: string | null
  readonly name: string
  readonly status: "passed" | "failed" | "skipped" | "not_applicable"
  readonly ms: number | null
  readonly detail: string
  readonly fix: string | null
}

const SECRET = "doctor-Secret:value%7+q"
const SERVICE_TOKEN = "doctor-service-token-0123456789abcdef"
const OPAQUE_TOKEN = "doctor-opaque-access-token-0123456789"
const SERVICE_HEADER = "X-Doc-Service-Token"
const servers: Array<{ close(): Promise<void> }> = []
let dir: string
let caFile: string
let pki: TestPki.TestPki
let as: AuthorizationServer.AuthorizationServer & { close(): Promise<void> }
let mcp: McpServer.McpServer & { close(): Promise<void> }
let mcpService: McpServer.McpServer & { close(): Promise<void> }

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve) => {
    ChildProcess.execFile(
      process.execPath,
      [bin, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
      }
    )
  })

interface Spec {
  /** Default: the authorization server's; `null` for none (discovery). */
  readonly tokenUrl?: string | null | undefined
  readonly secret?: string | undefined
  readonly issuer?: string | undefined
  /** Default: the MCP server's URL; `null` for none. */
  readonly resource?: string | null | undefined
  readonly mcp?: { readonly url: string } | undefined
  readonly serviceToken?: "serviceToken" | "wrongServiceToken" | "brokenServiceToken" | undefined
  readonly extra?: string | undefined
}

let files = 0
/** A workflow file with one provider (`doc_sa`) and one function group (`docs`); the secret from the environment. */
const workflow = (spec: Spec = {}): string => {
  const server = spec.mcp ?? mcp
  const resource = spec.resource === undefined ? server.url : spec.resource
  const lines = [
    "authentication:",
    "  doc_sa:",
    "    _type: mcp_service_account",
    "    client_id: svc-doc",
    "    client_secret: ${DOCTOR_CLIENT_SECRET}",
    ...(spec.tokenUrl === null ? [] : [`    token_url: ${spec.tokenUrl ?? as.tokenUrl}`]),
    "    scopes: [mcp:tools]",
    `    ca_file: ${caFile}`,
    ...(spec.issuer === undefined ? [] : [`    issuer: ${spec.issuer}`]),
    ...(resource === null ? [] : [`    resource: ${resource}`]),
    ...(spec.serviceToken === undefined ? [] : [
      "    service_token:",
      `      function: ./tokens.mjs#${spec.serviceToken}`,
      `      header: ${SERVICE_HEADER}`,
      "      kwargs:",
      "        token: ${DOCTOR_SERVICE_TOKEN}"
    ]),
    ...(spec.extra === undefined ? [] : [spec.extra]),
    "function_groups:",
    "  docs:",
    "    _type: mcp_client",
    "    server:",
    "      transport: streamable-http",
    `      url: ${server.url}`,
    "      auth_provider: doc_sa",
    ""
  ]
  const file = Path.join(dir, `workflow-${++files}.yml`)
  Fs.writeFileSync(file, lines.join("\n"))
  return file
}

const env = (secret = SECRET) => ({ DOCTOR_CLIENT_SECRET: secret, DOCTOR_SERVICE_TOKEN: SERVICE_TOKEN })

const doctor = async (
  file: string,
  options: {
    readonly secret?: string
    readonly args?: ReadonlyArray<string>
    readonly env?: Record<string, string>
  } = {}
) => {
  const environment = { ...env(options.secret), ...options.env }
  const [human, json] = await Promise.all([
    run(["doctor", "-c", file, ...(options.args ?? [])], environment),
    run(["doctor", "-c", file, "--json", ...(options.args ?? [])], environment)
  ])
  expect(json.stdout, json.stderr.slice(-2_000)).not.toBe("")
  const checks = JSON.parse(json.stdout) as Array<Check>
  expect(json.code).toBe(human.code)
  return { human, json, checks, code: human.code }
}

const statuses = (checks: ReadonlyArray<Check>) => Object.fromEntries(checks.map((c) => [c.name, c.status]))

/** The printed line of a check, and the fix line under it when there is one. */
const lineOf = (stdout: string, label: string) => {
  const lines = stdout.split("\n")
  const at = lines.findIndex((l) => new RegExp(`^  [✓✗–·] ${label} `).test(l))
  expect(at, `no line for ${label} in\n${stdout}`).toBeGreaterThanOrEqual(0)
  const fix = lines.slice(at + 1).find((l) => !/^ {6}/.test(l) || l.startsWith("      fix: "))
  return { line: lines[at]!, fix: fix?.startsWith("      fix: ") ? fix.slice(11) : undefined }
}

const now = () => Math.floor(Date.now() / 1000)

const closedPort = async (): Promise<number> => {
  const server = Net.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as Net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const hostile = async (handler: HostileServer.Handler, https: TestPki.TlsCredentials = pki.server) => {
  const server = await HostileServer.start(handler, { https })
  servers.push(server)
  return server
}

beforeAll(async () => {
  Bundle.ensureBundle()
  pki = await TestPki.shared()
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-doctor-"))
  caFile = Path.join(dir, "ca.pem")
  Fs.writeFileSync(caFile, pki.ca)
  Fs.writeFileSync(
    Path.join(dir, "tokens.mjs"),
    [
      "export const serviceToken = (kwargs) => kwargs.token",
      "export const wrongServiceToken = () => \"not-the-service-token\"",
      "export const brokenServiceToken = () => { throw new Error(\"the vault is sealed\") }",
      ""
    ].join("\n")
  )
  as = await AuthorizationServer.start({
    clients: [{ clientId: "svc-doc", clientSecret: SECRET }],
    scopes: ["mcp:tools"],
    https: pki.server
  })
  const common = {
    authorizationServer: as,
    requiredScopes: ["mcp:tools"],
    ca: pki.ca,
    https: pki.server,
    acceptOpaqueToken: (token: string) => token === OPAQUE_TOKEN
  }
  mcp = await McpServer.start(common)
  mcpService = await McpServer.start({ ...common, serviceToken: { header: SERVICE_HEADER, accept: SERVICE_TOKEN } })
  servers.push(mcp, mcpService, as)
}, 90_000)

afterAll(async () => {
  for (const server of servers.reverse()) await server.close()
  if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
})

const allPassed = {
  config: "passed",
  dns_tcp: "passed",
  tls: "passed",
  discovery: "passed",
  token_request: "passed",
  token_claims: "passed",
  clock_skew: "passed",
  service_token: "passed",
  mcp_initialize: "passed"
}

describe("mcp-auth doctor (built binary)", () => {
  it("passes every check against a working setup (exit 0, lines and JSON)", async () => {
    const file = workflow({ issuer: as.issuer, mcp: mcpService, serviceToken: "serviceToken" })
    const { checks, code, human } = await doctor(file)
    expect(code, human.stdout + human.stderr).toBe(0)
    expect(statuses(checks)).toEqual(allPassed)
    expect(checks.map((c) => c.name)).toEqual(Object.keys(allPassed))
    for (const check of checks) {
      expect(check).toMatchObject({ group: "docs", provider: "doc_sa", fix: null })
      expect(typeof check.ms).toBe("number")
    }
    expect(lineOf(human.stdout, "TLS").line).toMatch(/chain verified against ca_file .*ca\.pem.*days left.*matches/)
    expect(lineOf(human.stdout, "MCP initialize").line).toMatch(/200 from .*: server /)
    expect(lineOf(human.stdout, "service token").line).toContain(`${SERVICE_HEADER} produced by function`)
    expect(human.stdout).toContain("group docs → provider doc_sa")
    expect(human.stdout).toContain("✓ 0 failed, 9 passed, 0 skipped, 0 not applicable")
    expect(human.stdout).toContain("– skipped (a check it depends on failed)")
    expect(human.stderr).toBe("")
  }, 60_000)

  it("marks discovery and the service token as not applicable when they are not configured", async () => {
    const { checks, code, human } = await doctor(workflow())
    expect(code).toBe(0)
    expect(statuses(checks)).toEqual({ ...allPassed, discovery: "not_applicable", service_token: "not_applicable" })
    expect(lineOf(human.stdout, "discovery").line).toMatch(
      /^ {2}· discovery .*not configured \(token_url, no issuer\)$/
    )
  }, 60_000)

  it("config: lists every unset variable at once, skips everything else (exit 3)", async () => {
    const file = workflow({ extra: "    audience: ${DOCTOR_UNSET_AUDIENCE}" })
    Fs.writeFileSync(file, Fs.readFileSync(file, "utf8").replace("client_id: svc-doc", "client_id: ${DOCTOR_UNSET_ID}"))
    const { checks, code, human } = await doctor(file)
    expect(code).toBe(3)
    expect(checks[0]).toMatchObject({ name: "config", status: "failed", group: null, provider: null })
    expect(checks[0]!.detail).toContain("DOCTOR_UNSET_ID is not set")
    expect(checks[0]!.detail).toContain("DOCTOR_UNSET_AUDIENCE is not set")
    expect(checks[0]!.fix).toContain("Verify all environment variables are set in your CI/CD platform")
    expect(checks.slice(1).every((c) => c.status === "skipped" && c.ms === null)).toBe(true)
    expect(lineOf(human.stdout, "DNS and TCP").line).toContain("skipped: config and environment failed")
    expect(human.stderr).toContain("Error: 1 check failed: config and environment")
  }, 60_000)

  it("config: an invalid HTTPS_PROXY fails without quoting it, everything else skips (exit 3)", async () => {
    const { checks, code, human } = await doctor(workflow(), { env: { HTTPS_PROXY: "ftp://user:pw@proxy.invalid:21" } })
    expect(code).toBe(3)
    expect(checks[0]).toMatchObject({ name: "config", status: "failed", group: "docs", provider: "doc_sa" })
    expect(checks[0]!.detail).toContain("HTTPS_PROXY must be an http:// or https:// proxy URL")
    expect(checks[0]!.fix).toBe(
      "Set HTTPS_PROXY (or the lower-case spelling) to http://[user:password@]host:port, or unset it."
    )
    expect(checks.slice(1).every((c) => c.status === "skipped")).toBe(true)
    expect(human.stdout + human.stderr).not.toContain("proxy.invalid")
  }, 60_000)

  it("DNS and TCP: a token_url on a closed port fails, the token checks skip (exit 7)", async () => {
    const port = await closedPort()
    const { checks, code, human } = await doctor(workflow({ tokenUrl: `https://127.0.0.1:${port}/token` }))
    expect(code).toBe(7)
    expect(statuses(checks)).toEqual({
      config: "passed",
      dns_tcp: "failed",
      tls: "skipped",
      discovery: "not_applicable",
      token_request: "skipped",
      token_claims: "skipped",
      clock_skew: "skipped",
      service_token: "not_applicable",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "DNS and TCP")
    expect(line).toContain("ECONNREFUSED")
    expect(fix).toContain("Nothing listens there: check the port of token_url")
  }, 60_000)

  it("DNS and TCP: a token_url whose host does not resolve fails (exit 7)", async () => {
    // .invalid never resolves (RFC 6761): no traffic leaves the machine
    const { checks, code, human } = await doctor(workflow({ tokenUrl: "https://doctor-check.invalid/token" }))
    expect(code).toBe(7)
    expect(statuses(checks)).toEqual({
      config: "passed",
      dns_tcp: "failed",
      tls: "skipped",
      discovery: "not_applicable",
      token_request: "skipped",
      token_claims: "skipped",
      clock_skew: "skipped",
      service_token: "not_applicable",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "DNS and TCP")
    expect(line).toMatch(/doctor-check\.invalid (does not resolve \((ENOTFOUND|EAI_AGAIN)\)|did not resolve in)/)
    expect(fix).toBe("The host name does not resolve: check the host of token_url (and DNS, VPN).")
  }, 60_000)

  it("DNS and TCP: through HTTPS_PROXY every request goes through the proxy and every check passes", async () => {
    const proxy = await TestProxy.start()
    servers.push(proxy)
    const { checks, code, human } = await doctor(workflow(), { env: { HTTPS_PROXY: proxy.url } })
    expect(code, human.stdout).toBe(0)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      // the handshake with the token endpoint is the token request's, through the tunnel
      tls: "not_applicable",
      discovery: "not_applicable",
      service_token: "not_applicable"
    })
    expect(lineOf(human.stdout, "DNS and TCP").line).toContain(
      `127.0.0.1 (the proxy from HTTPS_PROXY, ${proxy.url}) resolves to 127.0.0.1; TCP connect to 127.0.0.1:${proxy.port}`
    )
    expect(lineOf(human.stdout, "TLS").line).toContain(`through the proxy ${proxy.url}`)
    expect(new Set(proxy.connectTargets)).toEqual(
      new Set([new URL(as.tokenUrl).host, new URL(mcp.url).host])
    )
  }, 60_000)

  it("DNS and TCP: a proxy that is down fails with the proxy in the fix (exit 7)", async () => {
    const port = await closedPort()
    const { checks, code, human } = await doctor(workflow(), { env: { HTTPS_PROXY: `http://127.0.0.1:${port}` } })
    expect(code).toBe(7)
    expect(statuses(checks)).toMatchObject({
      dns_tcp: "failed",
      tls: "skipped",
      token_request: "skipped",
      clock_skew: "skipped",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "DNS and TCP")
    expect(line).toContain(`cannot connect to 127.0.0.1:${port} (ECONNREFUSED)`)
    expect(fix).toContain("check the port of token_url (or the proxy)")
  }, 60_000)

  it("TLS: a token endpoint whose CA is not trusted fails with the ca_file hint (exit 6)", async () => {
    const untrusted = await HostileServer.start((_, res) => {
      res.end("{}")
    }, { https: pki.unknownCa.leafOnly })
    servers.push(untrusted)
    const { checks, code, human } = await doctor(workflow({ tokenUrl: `${untrusted.origin}/token` }))
    expect(code).toBe(6)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      tls: "failed",
      discovery: "not_applicable",
      token_request: "skipped",
      token_claims: "skipped",
      // the MCP server's Date is still read; the untrusted token endpoint is not asked
      clock_skew: "passed",
      service_token: "not_applicable",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "TLS")
    expect(line).toMatch(/chain not verified against ca_file .*ca\.pem/)
    expect(fix).toContain("set ca_file in the provider config")
    expect(lineOf(human.stdout, "clock skew").line).toContain(
      "token endpoint: not asked (TLS failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE); MCP server: in step"
    )
    expect(untrusted.requests).toHaveLength(0)
  }, 60_000)

  it(
    "TLS: an expired certificate fails with the local clock in the hint; clock skew reads the Date unverified",
    async () => {
      // what a local clock far ahead looks like: the server's certificate seems expired, the server's Date behind
      const expired = await pki.issue({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], validityDays: -1 })
      const endpoint = await hostile((_, res) => {
        res.setHeader("date", new Date(Date.now() - 3 * 3600_000).toUTCString())
        res.end("{}")
      }, expired)
      const { checks, code, human } = await doctor(workflow({ tokenUrl: `${endpoint.origin}/token` }))
      expect(code).toBe(6)
      expect(statuses(checks)).toEqual({
        ...allPassed,
        tls: "failed",
        discovery: "not_applicable",
        token_request: "skipped",
        token_claims: "skipped",
        clock_skew: "failed",
        service_token: "not_applicable",
        mcp_initialize: "skipped"
      })
      const tls = lineOf(human.stdout, "TLS")
      expect(tls.line).toContain("CERT_HAS_EXPIRED")
      expect(tls.fix).toMatch(
        /^The server's certificate expired on \S+ and the local clock says \S+: if the local clock/
      )
      expect(tls.fix).toContain("set it right (NTP; see clock skew)")
      const skew = lineOf(human.stdout, "clock skew")
      expect(skew.line).toMatch(
        /token endpoint: (3 h 0 min|2 h 59 min) behind \(unverified: certificate CERT_HAS_EXPIRED\); MCP server: /
      )
      expect(skew.fix).toContain("Set the local clock right (NTP), or the token endpoint's")
      // one bare HEAD per run (the lines and the JSON): no credentials, no body, nothing else
      expect(endpoint.requests.map((r) => r.method)).toEqual(["HEAD", "HEAD"])
      for (const request of endpoint.requests) {
        expect(request.body).toBe("")
        expect(request.headers.authorization).toBeUndefined()
      }
    },
    60_000
  )

  it("discovery: metadata naming another issuer fails, the token request skips (exit 3)", async () => {
    const metadata = await hostile((req, res) => {
      res.setHeader("content-type", "application/json")
      res.end(JSON.stringify({ issuer: "https://elsewhere.example", token_endpoint: as.tokenUrl }))
    })
    const { checks, code, human } = await doctor(workflow({ issuer: metadata.origin }))
    expect(code).toBe(3)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "failed",
      token_request: "skipped",
      token_claims: "skipped",
      service_token: "not_applicable",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "discovery")
    expect(line).toContain("issuer_mismatch")
    expect(fix).toContain("Set issuer to exactly the authorization server's issuer")
  }, 60_000)

  it("discovery: metadata naming another token endpoint than token_url fails with the fix", async () => {
    let issuer = ""
    const metadata = await hostile((_, res) => {
      res.setHeader("content-type", "application/json")
      res.end(JSON.stringify({ issuer, token_endpoint: "https://127.0.0.1:1/other/token" }))
    })
    issuer = metadata.origin
    const { checks, code, human } = await doctor(workflow({ issuer: metadata.origin }))
    expect(code).toBe(3)
    expect(statuses(checks)).toMatchObject({ discovery: "failed", token_request: "skipped", mcp_initialize: "skipped" })
    const { fix, line } = lineOf(human.stdout, "discovery")
    expect(line).toContain("names the token endpoint https://127.0.0.1:1/other/token, not token_url")
    expect(fix).toBe(
      "Set token_url to https://127.0.0.1:1/other/token, or issuer to the authorization server of token_url."
    )
  }, 60_000)

  it("discovery: an issuer that does not answer fails as a network problem (exit 7)", async () => {
    const port = await closedPort()
    const { checks, code, human } = await doctor(workflow({ issuer: `https://127.0.0.1:${port}` }))
    expect(code).toBe(7)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "failed",
      token_request: "skipped",
      token_claims: "skipped",
      service_token: "not_applicable",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "discovery")
    expect(line).toContain("unreachable")
    expect(fix).toBe("Check that the issuer URL is reachable from here.")
  }, 60_000)

  it(
    "discovery without token_url, from issuer: the token endpoint comes from its metadata, every check passes",
    async () => {
      const { checks, code, human } = await doctor(workflow({ tokenUrl: null, issuer: as.issuer }))
      expect(code, human.stdout).toBe(0)
      expect(statuses(checks)).toEqual({ ...allPassed, service_token: "not_applicable" })
      expect(lineOf(human.stdout, "discovery").line).toContain(
        `metadata of issuer ${
          new URL(as.issuer).href
        }; issuer matches; token endpoint ${as.tokenUrl}; auth_method client_secret_basic`
      )
      expect(lineOf(human.stdout, "token request").line).toContain(`token from ${as.tokenUrl}`)
    },
    60_000
  )

  it(
    "discovery from the MCP server (allowed_issuers): the 401 leads to the pinned server, every check passes",
    async () => {
      const file = workflow({ tokenUrl: null, resource: null, extra: `    allowed_issuers: [${as.issuer}]` })
      const { checks, code, human } = await doctor(file)
      expect(code, human.stdout).toBe(0)
      expect(statuses(checks)).toEqual({ ...allPassed, service_token: "not_applicable" })
      expect(lineOf(human.stdout, "discovery").line).toContain(
        `the MCP server's metadata names ${
          new URL(as.issuer).href
        } (pinned); issuer matches; token endpoint ${as.tokenUrl}; ` +
          `auth_method client_secret_basic; resource ${mcp.url}`
      )
      // resource came from the MCP server's metadata: the token's audience is checked against it
      expect(lineOf(human.stdout, "token claims").line).toContain("resource (discovered)")
    },
    60_000
  )

  it(
    "discovery: an MCP server naming an unpinned authorization server fails, nothing reaches that server (exit 3)",
    async () => {
      const rogue = await AuthorizationServer.start({
        clients: [{ clientId: "svc-doc", clientSecret: SECRET }],
        scopes: ["mcp:tools"],
        https: pki.server
      })
      const rogueMcp = await McpServer.start({ authorizationServer: rogue, ca: pki.ca, https: pki.server })
      servers.push(rogueMcp, rogue)
      const file = workflow({
        tokenUrl: null,
        resource: null,
        mcp: rogueMcp,
        extra: `    allowed_issuers: [${as.issuer}]`
      })
      const { checks, code, human } = await doctor(file)
      expect(code).toBe(3)
      expect(statuses(checks)).toEqual({
        ...allPassed,
        discovery: "failed",
        token_request: "skipped",
        token_claims: "skipped",
        service_token: "not_applicable",
        mcp_initialize: "skipped"
      })
      const { fix, line } = lineOf(human.stdout, "discovery")
      expect(line).toContain("issuer_not_trusted")
      expect(line).toContain("no credentials were sent")
      expect(fix).toContain("allowed_issuers")
      expect(rogue.requests).toHaveLength(0)
      expect(human.stdout + human.stderr).not.toContain(SECRET)
    },
    60_000
  )

  it("token request: a wrong client secret fails with the typed error and its hint (exit 4)", async () => {
    const { checks, code, human } = await doctor(workflow({ mcp: mcpService, serviceToken: "serviceToken" }), {
      secret: "a-wrong-Secret:value"
    })
    expect(code).toBe(4)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      token_request: "failed",
      token_claims: "skipped",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "token request")
    expect(line).toContain("InvalidCredentialsError")
    expect(fix).toContain("Verify your client ID and client secret are correct")
    expect(human.stdout + human.stderr).not.toContain("a-wrong-Secret:value")
  }, 60_000)

  it("token claims: a token for another audience fails, and MCP initialize confirms it (exit 3)", async () => {
    as.setAudience("https://other.example/mcp")
    try {
      const { checks, code, human } = await doctor(workflow({ resource: null }))
      expect(code).toBe(3)
      expect(statuses(checks)).toEqual({
        ...allPassed,
        discovery: "not_applicable",
        token_claims: "failed",
        service_token: "not_applicable",
        // the claims are read unverified: the server's answer still runs, and agrees
        mcp_initialize: "failed"
      })
      const { fix, line } = lineOf(human.stdout, "token claims")
      expect(line).toContain(`aud is https://other.example/mcp, not ${mcp.url} (server.url)`)
      expect(fix).toContain(`set resource: ${mcp.url}`)
    } finally {
      as.setAudience(as.issuer)
    }
  }, 60_000)

  it("token claims: a lifetime not above token_cache_buffer_seconds fails", async () => {
    as.setAccessTokenTtl(120)
    try {
      const { checks, code, human } = await doctor(workflow())
      expect(code).toBe(3)
      // a short lifetime costs refreshes, not access: the server accepts the token
      expect(statuses(checks)).toMatchObject({ token_claims: "failed", mcp_initialize: "passed" })
      const { fix, line } = lineOf(human.stdout, "token claims")
      expect(line).toContain("the token lives 120 s, not more than token_cache_buffer_seconds (300 s)")
      expect(fix).toContain("lower token_cache_buffer_seconds below 60")
    } finally {
      as.setAccessTokenTtl(3600)
    }
  }, 60_000)

  it("token claims: granted scopes missing a requested one fail", async () => {
    const endpoint = await hostile(async (_, res) => {
      const token = await as.mint({ clientId: "svc-doc", audience: mcp.url, scope: "mcp:read" })
      res.setHeader("content-type", "application/json")
      res.end(JSON.stringify({ access_token: token, token_type: "Bearer", expires_in: 3600 }))
    })
    const { checks, code, human } = await doctor(workflow({ tokenUrl: `${endpoint.origin}/token` }))
    expect(code).toBe(3)
    expect(statuses(checks)).toMatchObject({
      token_request: "passed",
      token_claims: "failed",
      mcp_initialize: "failed"
    })
    const { fix, line } = lineOf(human.stdout, "token claims")
    expect(line).toContain("scopes granted: mcp:read; missing: mcp:tools")
    expect(fix).toContain("grant the client the scopes mcp:tools")
  }, 60_000)

  const unsigned = (claims: Record<string, unknown>) =>
    [{ alg: "RS256", typ: "at+jwt" }, claims].map((p) => Buffer.from(JSON.stringify(p)).toString("base64url"))
      .join(".") + ".bm90LXNpZ25lZA"
  it.each([
    {
      claim: "nbf",
      token: () => as.mint({ audience: mcp.url, scope: "mcp:tools", extraClaims: { nbf: now() + 7200 } }),
      problem: /nbf is 7[12]\d\d s in the future of the local clock/
    },
    {
      claim: "iat",
      token: async () =>
        unsigned({ iss: as.issuer, aud: mcp.url, scope: "mcp:tools", iat: now() + 7200, exp: now() + 10_800 }),
      problem: /iat is 7[12]\d\d s in the future of the local clock/
    },
    {
      claim: "exp",
      token: () => as.mint({ audience: mcp.url, scope: "mcp:tools", expiresInSeconds: -600 }),
      problem: /exp is \d+ s in the past of the local clock/
    }
  ])("token claims: a token whose $claim disagrees with the local clock fails (exit 3)", async ({ problem, token }) => {
    const endpoint = await hostile(async (_, res) => {
      res.setHeader("content-type", "application/json")
      res.end(JSON.stringify({ access_token: await token(), token_type: "Bearer", expires_in: 3600 }))
    })
    const { checks, code, human } = await doctor(workflow({ tokenUrl: `${endpoint.origin}/token` }))
    expect(code).toBe(3)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      token_claims: "failed",
      service_token: "not_applicable",
      // the MCP server refuses such a token too
      mcp_initialize: "failed"
    })
    const { fix, line } = lineOf(human.stdout, "token claims")
    expect(line).toMatch(problem)
    expect(fix).toContain("set the local clock right (NTP), or the authorization server's")
  }, 60_000)

  it("clock skew: a token endpoint whose Date is hours off fails; the rest passes (exit 3)", async () => {
    const endpoint = await hostile((req, res) => {
      res.setHeader("date", new Date(Date.now() - 3 * 3600_000).toUTCString())
      res.setHeader("content-type", "application/json")
      res.end(
        req.method === "POST"
          ? JSON.stringify({ access_token: OPAQUE_TOKEN, token_type: "Bearer", expires_in: 3600, scope: "mcp:tools" })
          : "{}"
      )
    })
    // opaque tokens carry no scopes for the test MCP server: one that requires none
    const opaque = await McpServer.start({ https: pki.server, acceptOpaqueToken: (t) => t === OPAQUE_TOKEN })
    servers.push(opaque)
    const { checks, code, human } = await doctor(
      workflow({ tokenUrl: `${endpoint.origin}/token`, mcp: opaque, resource: null })
    )
    expect(code).toBe(3)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      clock_skew: "failed",
      service_token: "not_applicable"
    })
    const { fix, line } = lineOf(human.stdout, "clock skew")
    // the measured skew includes part of the request's round trip: a loaded machine may read a little off
    expect(line).toMatch(/token endpoint: (3 h 0 min|2 h 59 min) behind; MCP server: (in step|\d+ s (ahead|behind))/)
    expect(fix).toContain("Set the local clock right (NTP), or the token endpoint's")
    expect(lineOf(human.stdout, "token claims").line).toContain("opaque token")
  }, 60_000)

  it("clock skew: no server answering with a Date is not applicable, not a pass", async () => {
    const server = await hostile((req, res) => {
      res.sendDate = false
      res.setHeader("content-type", "application/json")
      if (req.method !== "POST") {
        res.end()
        return
      }
      res.end(JSON.stringify(
        req.path === "/token"
          ? { access_token: OPAQUE_TOKEN, token_type: "Bearer", expires_in: 3600, scope: "mcp:tools" }
          : { jsonrpc: "2.0", id: 1, result: { protocolVersion: "2025-06-18", serverInfo: { name: "dateless" } } }
      ))
    })
    const { checks, code, human } = await doctor(
      workflow({ tokenUrl: `${server.origin}/token`, mcp: { url: `${server.origin}/mcp` }, resource: null })
    )
    expect(code).toBe(0)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      clock_skew: "not_applicable",
      service_token: "not_applicable"
    })
    expect(lineOf(human.stdout, "clock skew").line).toMatch(
      /^ {2}· clock skew .*token endpoint: no Date header; MCP server: no Date header: no server's Date to compare with$/
    )
    expect(human.stdout + human.stderr).not.toContain(OPAQUE_TOKEN)
  }, 60_000)

  it("service token: a function that throws fails, MCP initialize skips (exit 9)", async () => {
    const { checks, code, human } = await doctor(workflow({ mcp: mcpService, serviceToken: "brokenServiceToken" }))
    expect(code).toBe(9)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      service_token: "failed",
      mcp_initialize: "skipped"
    })
    const { fix, line } = lineOf(human.stdout, "service token")
    expect(line).toContain("the vault is sealed")
    expect(fix).toContain("Check service_token in the provider config")
  }, 60_000)

  it("MCP initialize: a 401 is decoded from WWW-Authenticate (exit 10)", async () => {
    const otherAudience = await McpServer.start({
      authorizationServer: as,
      ca: pki.ca,
      https: pki.server,
      audience: "https://another.example/mcp"
    })
    servers.push(otherAudience)
    const { checks, code, human } = await doctor(workflow({ mcp: otherAudience }))
    expect(code).toBe(10)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      service_token: "not_applicable",
      mcp_initialize: "failed"
    })
    const { fix, line } = lineOf(human.stdout, "MCP initialize")
    expect(line).toMatch(/401 from .*: invalid_token \(.+\)/)
    expect(fix).toContain("The MCP server refused the token")
  }, 60_000)

  it("MCP initialize: a 403 for a wrong service token names the header (exit 10)", async () => {
    const { checks, code, human } = await doctor(workflow({ mcp: mcpService, serviceToken: "wrongServiceToken" }))
    expect(code).toBe(10)
    expect(statuses(checks)).toEqual({ ...allPassed, discovery: "not_applicable", mcp_initialize: "failed" })
    const { fix, line } = lineOf(human.stdout, "MCP initialize")
    expect(line).toContain(`403 from ${mcpService.url}: Invalid ${SERVICE_HEADER} header`)
    expect(fix).toContain(`The MCP server refused the service token sent in ${SERVICE_HEADER}`)
  }, 60_000)

  it("MCP initialize: a 403 insufficient_scope names the scopes the server needs (exit 10)", async () => {
    const demanding = await McpServer.start({
      authorizationServer: as,
      requiredScopes: ["mcp:tools", "mcp:admin"],
      ca: pki.ca,
      https: pki.server
    })
    servers.push(demanding)
    const { checks, code, human } = await doctor(workflow({ mcp: demanding }))
    expect(code).toBe(10)
    expect(statuses(checks)).toEqual({
      ...allPassed,
      discovery: "not_applicable",
      service_token: "not_applicable",
      mcp_initialize: "failed"
    })
    const { fix, line } = lineOf(human.stdout, "MCP initialize")
    expect(line).toMatch(/403 from .*: insufficient_scope \(Missing required scope: mcp:admin\)$/)
    expect(fix).toBe("Request the scopes the MCP server needs (mcp:tools mcp:admin) in scopes.")
  }, 60_000)

  it("MCP initialize: a server echoing the token in its 401 gets it printed redacted", async () => {
    let seen: string | undefined
    const echo = await hostile((req, res) => {
      seen = req.headers.authorization?.replace(/^Bearer /, "")
      res.statusCode = 401
      res.setHeader("www-authenticate", `Bearer error="invalid_token", error_description="token ${seen} revoked"`)
      res.end()
    })
    const { checks, code, human, json } = await doctor(workflow({ mcp: { url: `${echo.origin}/mcp` } }))
    expect(code).toBe(10)
    expect(seen).toBeDefined()
    expect(checks.find((c) => c.name === "mcp_initialize")!.detail).toContain("token <redacted> revoked")
    expect(human.stdout + human.stderr + json.stdout + json.stderr).not.toContain(seen!)
  }, 60_000)

  it("--group picks one group; an unknown group is a usage error (exit 2)", async () => {
    const file = workflow()
    const one = await run(["doctor", "-c", file, "--group", "docs", "--json"], env())
    expect(one.code).toBe(0)
    expect(new Set((JSON.parse(one.stdout) as Array<Check>).map((c) => c.group))).toEqual(new Set(["docs"]))
    const unknown = await run(["doctor", "-c", file, "--group", "nope"], env())
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("no function group nope")
  }, 60_000)

  it("prints no secret, access token or service token in any output", async () => {
    const issued = as.tokenRequests.length
    const ran = [
      await doctor(workflow({ issuer: as.issuer, mcp: mcpService, serviceToken: "serviceToken" })),
      // a refused service token: the header is named, never the value
      await doctor(workflow({ mcp: mcpService, serviceToken: "wrongServiceToken" })),
      // a refused secret
      await doctor(workflow({ mcp: mcpService, serviceToken: "serviceToken" }), { secret: `${SECRET}-wrong` })
    ]
    expect(ran.map((r) => r.code)).toEqual([0, 10, 4])
    const tokens = as.tokenRequests.slice(issued).map((r) => r.accessToken).filter((t): t is string => t !== undefined)
    expect(tokens).toHaveLength(4)
    const all = ran.flatMap(({ human, json }) => [human.stdout, human.stderr, json.stdout, json.stderr]).join("\n")
    for (const secret of [SECRET, `${SECRET}-wrong`, SERVICE_TOKEN, ...tokens]) expect(all).not.toContain(secret)
    // and the URL-encoded forms the secret travels in
    expect(all).not.toContain(encodeURIComponent(SECRET))
  }, 60_000)
})

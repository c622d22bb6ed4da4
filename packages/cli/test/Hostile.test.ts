/**
 * The bundled `mcp-auth` binary against hostile servers on 127.0.0.1 (issue 12): a token endpoint that never stops
 * sending or sends tokens no header can carry, an MCP server that echoes the bearer token, sends terminal escape
 * sequences or drops the connection during `tools/call`, credentials in the MCP URL, an alias-bomb workflow, and
 * `--args` nested too deep. Each test asserts what the CLI prints and how it exits, and what the server saw. Like
 * Cli.test.ts, this file rebuilds the bundle when it is older than the sources (unless `MCP_AUTH_CLI_BIN` names another
 * binary to test).
 */
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as HostileServer from "@mcp-auth/testing/HostileServer"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import type * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Bundle from "./utils/bundle.js"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../..")
const cliDir = Path.join(root, "packages/cli")
// MCP_AUTH_CLI_BIN: run these tests against another build (e.g. a pre-change bundle, to see them fail)
const otherBin = process.env.MCP_AUTH_CLI_BIN
const bin = otherBin ?? Path.join(cliDir, "build/bundle/bin.js")

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const SECRET = "hostile-Secret:value%9+z"
const ACCESS_TOKEN = "hostile-access-token-0123456789abcdef"
const outputs: Array<string> = []
const tempDirs: Array<string> = []
const servers: Array<{ close(): Promise<void> }> = []

const run = (args: ReadonlyArray<string>): Promise<Run> =>
  new Promise((resolve) => {
    ChildProcess.execFile(
      process.execPath,
      [bin, ...args],
      { env: { PATH: process.env.PATH ?? "" }, timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        outputs.push(stdout, stderr)
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
      }
    )
  })

const start = async (handler: HostileServer.Handler) => {
  const server = await HostileServer.start(handler)
  servers.push(server)
  return server
}

const workflowFile = (yaml: string): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-hostile-"))
  tempDirs.push(dir)
  const file = Path.join(dir, "workflow.yml")
  Fs.writeFileSync(file, yaml)
  return file
}

/** A provider on `tokenUrl` and, with `mcpUrl`, one function group `g` using it. */
const workflow = (tokenUrl: string, mcpUrl?: string): string =>
  workflowFile(`authentication:
  sa:
    _type: mcp_service_account
    client_id: svc-hostile
    client_secret: "${SECRET}"
    token_url: ${tokenUrl}
    allow_insecure_http: true
    timeout_seconds: 20
    retry:
      max_attempts: 1
${
    mcpUrl === undefined ? "" : `function_groups:
  g:
    _type: mcp_client
    server:
      transport: streamable-http
      url: "${mcpUrl}"
      auth_provider: sa
    tool_call_timeout: 10
`
  }`)

const json = (res: Http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const tokenResponse = (res: Http.ServerResponse, fields: Record<string, unknown> = {}) =>
  json(res, 200, { access_token: ACCESS_TOKEN, token_type: "Bearer", expires_in: 3600, ...fields })

interface JsonRpc {
  readonly id?: number | string
  readonly method?: string
  readonly params?: { readonly protocolVersion?: string; readonly name?: string }
}

const rpc = (record: HostileServer.RequestRecord): JsonRpc | undefined => {
  try {
    return JSON.parse(record.body) as JsonRpc
  } catch {
    return undefined
  }
}

/** How many `tools/call` requests the server received. */
const toolCalls = (server: HostileServer.HostileServer) =>
  server.requestsTo("/mcp").filter((r) => rpc(r)?.method === "tools/call").length

/**
 * A minimal MCP server over Streamable HTTP with JSON responses and no session: `initialize`, notifications (202),
 * `tools/list` with `tools`, and `tools/call` answered by `call`. `/token` answers a valid token.
 */
const mcp = (options: {
  readonly tools?: ReadonlyArray<{ readonly name: string; readonly description?: string }>
  readonly call?: (record: HostileServer.RequestRecord, res: Http.ServerResponse, message: JsonRpc) => void
  readonly mcp?: (record: HostileServer.RequestRecord, res: Http.ServerResponse) => boolean
}): HostileServer.Handler =>
(record, res) => {
  if (record.path === "/token") return tokenResponse(res)
  if (options.mcp?.(record, res) === true) return
  if (record.method !== "POST") {
    res.writeHead(405).end()
    return
  }
  const message = rpc(record)
  if (message?.id === undefined) {
    res.writeHead(202).end()
    return
  }
  const result = (value: unknown) => json(res, 200, { jsonrpc: "2.0", id: message.id, result: value })
  switch (message.method) {
    case "initialize":
      return result({
        protocolVersion: message.params?.protocolVersion ?? "2025-06-18",
        capabilities: { tools: {} },
        serverInfo: { name: "hostile", version: "1.0.0" }
      })
    case "tools/list":
      return result({
        tools: (options.tools ?? [{ name: "echo" }]).map((t) => ({ ...t, inputSchema: { type: "object" } }))
      })
    case "tools/call":
      if (options.call !== undefined) return options.call(record, res, message)
      return result({ content: [{ type: "text", text: "ok" }] })
    default:
      return json(res, 200, { jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "not found" } })
  }
}

/** C0/C1 controls (ESC, CSI, BEL, …) but line feed and tab, DEL, bidi and zero-width characters. */
// eslint-disable-next-line no-control-regex
const unsafe = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/

beforeAll(() => {
  if (otherBin === undefined) Bundle.ensureBundle()
}, 120_000)

afterAll(async () => {
  for (const server of servers) await server.close()
  for (const dir of tempDirs) Fs.rmSync(dir, { recursive: true, force: true })
})

describe("mcp-auth against hostile servers (built binary)", () => {
  it("token: an endless token body is cut at 1 MiB, a token-endpoint error (exit 8), nothing leaked", async () => {
    const written: Array<Promise<number>> = []
    const server = await start((_, res) => {
      written.push(HostileServer.endless(res, { prefix: "{\"access_token\":\"" }))
    })
    const result = await run(["token", "-c", workflow(`${server.origin}/token`)])
    expect(result.code, result.stderr).toBe(8)
    expect(written.length).toBeGreaterThan(0)
    const bound = 1024 * 1024 + HostileServer.defaultChunkBytes + HostileServer.socketBufferBytes()
    for (const bytes of await Promise.all(written)) expect(bytes).toBeLessThanOrEqual(bound)
    const output = result.stdout + result.stderr
    expect(output).not.toContain(SECRET)
    expect(output).not.toContain("a".repeat(64))
    expect(output.length).toBeLessThan(4096)
  })

  it("token: a token with CR/LF, NUL or non-ASCII is a malformed response (exit 8), never printed", async () => {
    const tokens = [
      "evil-token-crlf\r\nX-Injected: yes-0123456789",
      "evil-token-nul\u0000after-the-nul-0123456789",
      "evil-token-nön-ascii-0123456789",
      "evil-token-esc\u001b[2J-0123456789"
    ]
    for (const token of tokens) {
      const server = await start((_, res) => tokenResponse(res, { access_token: token }))
      const [plain, shown] = await Promise.all([
        run(["token", "-c", workflow(`${server.origin}/token`)]),
        run(["token", "-c", workflow(`${server.origin}/token`), "--show-token"])
      ])
      for (const result of [plain, shown]) {
        expect(result.code, JSON.stringify(token) + result.stderr).toBe(8)
        expect(result.stdout + result.stderr).not.toContain("0123456789")
        expect(result.stdout + result.stderr).not.toMatch(unsafe)
      }
    }
  })

  it("token: expires_in 1e20 prints a valid expires_at", async () => {
    const server = await start((_, res) => tokenResponse(res, { expires_in: 1e20 }))
    const result = await run(["token", "-c", workflow(`${server.origin}/token`)])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^expires_at: {3}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(in \d+s\)$/m)
  })

  it("token: the granted scope is printed without secrets; one with control characters is refused", async () => {
    const echoing = await start((_, res) => tokenResponse(res, { scope: `mcp:tools echoed=${SECRET}` }))
    const escaping = await start((_, res) =>
      tokenResponse(res, {
        scope: `mcp:tools \u001b[2Jcleared \u009b31mred \u001b]8;;https://evil.example/\u0007link\u001b]8;;\u0007`
      })
    )
    const [echoed, escaped] = await Promise.all([
      run(["token", "-c", workflow(`${echoing.origin}/token`)]),
      run(["token", "-c", workflow(`${escaping.origin}/token`)])
    ])
    expect(echoed.code, echoed.stderr).toBe(0)
    expect(echoed.stdout).toContain("scopes:       mcp:tools echoed=<redacted>")
    expect(escaped.code, escaped.stderr).toBe(8)
    for (const result of [echoed, escaped]) {
      expect(result.stdout + result.stderr).not.toMatch(unsafe)
      expect(result.stdout + result.stderr).not.toContain(SECRET)
    }
  })

  it("validate: user info in server.url is a configuration error (exit 3), the password never printed", async () => {
    const server = await start(mcp({}))
    const file = workflow(
      `${server.origin}/token`,
      `http://hostile-user:hostile-pass-0123@127.0.0.1:${server.port}/mcp?api_key=api-key-K-0123456789`
    )
    const result = await run(["validate", "-c", file])
    expect(result.code, result.stdout + result.stderr).toBe(3)
    expect(result.stdout + result.stderr).not.toContain("hostile-pass-0123")
    expect(result.stdout + result.stderr).not.toContain("api-key-K-0123456789")
    expect(server.requests).toHaveLength(0)
  })

  it("validate: a static service token with CR/LF is a configuration error (exit 3), its value never printed", async () => {
    const file = workflowFile(`authentication:
  sa:
    _type: mcp_service_account
    client_id: svc-hostile
    client_secret: "${SECRET}"
    token_url: http://127.0.0.1:9/token
    allow_insecure_http: true
    service_token:
      token: "svc-token\\r\\nX-Injected: yes-0123456789"
      header: X-Service-Token
`)
    const result = await run(["validate", "-c", file])
    expect(result.code, result.stdout + result.stderr).toBe(3)
    expect(result.stderr).toContain("service_token.token")
    expect(result.stdout + result.stderr).not.toContain("0123456789")
  })

  it("a query in server.url is never printed: progress line and an error echoing the URL", async () => {
    const key = "api-key-K-0123456789"
    const server = await start(mcp({
      // the MCP endpoint answers 500 with the URL it was sent, query included
      mcp: (record, res) => {
        if (record.path !== "/mcp") return false
        res.writeHead(500, { "content-type": "text/plain" }).end(`failed for ${record.url} (api_key=${key})`)
        return true
      }
    }))
    const file = workflow(`${server.origin}/token`, `http://127.0.0.1:${server.port}/mcp?api_key=${key}`)
    const [valid, list] = await Promise.all([run(["validate", "-c", file]), run(["tools", "list", "-c", file])])
    expect(valid.code, valid.stderr).toBe(0)
    expect(list.code, list.stderr).toBe(10)
    expect(list.stderr).toContain(`… connecting g to http://127.0.0.1:${server.port}/mcp?<redacted>`)
    expect(server.requestsTo("/mcp").length).toBeGreaterThan(0)
    for (const result of [valid, list]) {
      expect(result.stdout + result.stderr).not.toContain(key)
      expect(result.stdout + result.stderr).not.toContain(encodeURIComponent(key))
    }
  })

  it("tools call: a connection closed during tools/call is not replayed (the server saw one call)", async () => {
    const server = await start(mcp({ call: (_, res) => res.socket?.destroy() }))
    const result = await run([
      "tools",
      "call",
      "-c",
      workflow(`${server.origin}/token`, `${server.origin}/mcp`),
      "g.echo"
    ])
    expect(result.code, result.stderr).toBe(10)
    expect(toolCalls(server)).toBe(1)
  })

  it("tool names, descriptions, results and an MCP 500 body: no control characters, no echoed token", async () => {
    const escapes =
      "\u001b[2J \u009b31mred\u001b[0m \u001b]8;;https://evil.example/\u0007link\u001b]8;;\u0007 \u202eabc"
    const server = await start(mcp({
      tools: [
        { name: "echo", description: `Echoes ${escapes}\nsecond line` },
        { name: `evil\u001b[2J-name`, description: "evil name" },
        { name: "fail", description: "fails" }
      ],
      call: (record, res, message) => {
        const bearer = record.headers.authorization ?? ""
        if (message.params?.name === "fail") {
          res.writeHead(500, { "content-type": "text/plain" }).end(`internal error ${escapes} for ${bearer}`)
          return
        }
        json(res, 200, {
          jsonrpc: "2.0",
          id: message.id,
          result: { content: [{ type: "text", text: `result ${escapes}\nyou sent ${bearer}` }] }
        })
      }
    }))
    const file = workflow(`${server.origin}/token`, `${server.origin}/mcp`)
    const [list, echo, fail] = await Promise.all([
      run(["tools", "list", "-c", file]),
      run(["tools", "call", "-c", file, "g.echo"]),
      run(["tools", "call", "-c", file, "g.fail"])
    ])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toContain("g.echo")
    expect(list.stdout).toContain("red")
    expect(list.stdout).not.toContain("second line")
    expect(echo.code, echo.stderr).toBe(0)
    expect(echo.stdout).toContain("you sent Bearer <redacted>")
    expect(fail.code, fail.stderr).toBe(10)
    expect(fail.stderr).toContain("internal error")
    // the server did receive the token, and echoed it
    expect(server.requestsTo("/mcp").some((r) => r.headers.authorization === `Bearer ${ACCESS_TOKEN}`)).toBe(true)
    for (const result of [list, echo, fail]) {
      expect(result.stdout + result.stderr).not.toMatch(unsafe)
      expect(result.stdout + result.stderr).not.toContain(ACCESS_TOKEN)
    }
  })

  it("a YAML alias bomb or a huge workflow is a configuration error (exit 3), for validate, token and tools", async () => {
    const levels = Array.from({ length: 9 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(", ")}]`)
    const bomb = workflowFile(["l0: &l0 \"lol\"", ...levels, "authentication: *l9", ""].join("\n"))
    // 8 MiB of map entries: far above any sane workflow
    const huge = workflowFile(Array.from({ length: 400_000 }, (_, i) => `key${i}: value-${i}`).join("\n"))
    const results = await Promise.all([
      run(["validate", "-c", bomb]),
      run(["token", "-c", bomb]),
      run(["tools", "list", "-c", bomb]),
      run(["validate", "-c", huge])
    ])
    for (const result of results) {
      expect(result.code, result.stderr).toBe(3)
      expect(result.stderr).not.toContain("Unexpected error")
    }
  })

  it("--args nested too deep, or otherwise odd: a usage error (exit 2) before anything connects", async () => {
    const server = await start(mcp({}))
    const file = workflow(`${server.origin}/token`, `${server.origin}/mcp`)
    // 60 000 levels: as deep as one command-line argument can carry (Linux caps one at 128 KiB)
    const deep = `{"a":${"[".repeat(60_000)}${"]".repeat(60_000)}}`
    const call = (args: string) => run(["tools", "call", "-c", file, "g.echo", "--args", args])
    const [tooDeep, justTooDeep, infinite, notObject, invalid] = await Promise.all([
      call(deep),
      call(`{"a":${"[".repeat(64)}${"]".repeat(64)}}`),
      call("{\"n\":1e400}"),
      call("\"text\""),
      call(`{"a":"${"x".repeat(100_000)}`)
    ])
    for (const result of [tooDeep, justTooDeep]) {
      expect(result.code, result.stderr).toBe(2)
      expect(result.stderr).toContain("Error: --args nests too deep: at most 64 levels")
    }
    expect(infinite.code, infinite.stderr).toBe(2)
    expect(notObject.code, notObject.stderr).toBe(2)
    expect(invalid.code, invalid.stderr).toBe(2)
    expect(invalid.stderr.length).toBeLessThan(4096)
    expect(server.requests).toHaveLength(0)
    // 64 levels are fine: the call is sent
    const deepest = await call(`{"a":${"[".repeat(63)}${"]".repeat(63)}}`)
    expect(deepest.code, deepest.stderr).toBe(0)
    expect(toolCalls(server)).toBe(1)
  })
})

describe("every output of this file", () => {
  it("has neither the client secret nor the access token, in any form", () => {
    expect(outputs.length).toBeGreaterThan(0)
    const basic = Redacted.value(TokenEndpoint.basicCredential("svc-hostile", Redacted.make(SECRET)))
    const forms = [SECRET, ACCESS_TOKEN, basic].flatMap(Scrub.forms)
    for (const text of outputs) for (const form of forms) expect(text).not.toContain(form)
  })
})

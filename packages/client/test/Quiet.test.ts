/**
 * Quiet by default (issue 10): a program embedding the Promise API, run as a subprocess, goes through a token fetch, a
 * refresh (the MCP server rejects the first token; the refetch hits one 500 and is retried) and a failure (a wrong
 * secret). Its stdout must stay empty whatever the log settings: an MCP stdio server or a CLI piping JSON embeds this
 * library. The fixture runs the TypeScript sources through tsx, with `@mcp-auth/*` mapped to `packages/∗/src`.
 */
import { createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import { FaultTokenEndpoint, RecordingServer } from "@mcp-auth/testing"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const here = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.resolve(here, "../../..")
const fixture = Path.join(here, "fixtures/quiet-program.ts")
const tsconfig = Path.join(here, "fixtures/tsconfig.json")

/** tsx's ESM loader, from the workspace packages that declare it. */
const tsxLoader = (): string => {
  for (const from of ["packages/client", "packages/workflow", "packages/bench"]) {
    try {
      return pathToFileURL(createRequire(Path.join(root, from, "package.json")).resolve("tsx")).href
    } catch {
      // not declared there
    }
  }
  throw new Error("tsx is not installed in the workspace")
}

const CLIENT_ID = "quiet-client"
const SECRET = "quiet-Secret:value%9"

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly result: {
    readonly status: number
    readonly token: string
    readonly failure: unknown
    readonly records: ReadonlyArray<{ readonly method: string; readonly message: string; readonly fields?: any }>
  }
}

let endpoint: FaultTokenEndpoint.FaultTokenEndpoint & { close(): Promise<void> }
let server: RecordingServer.RecordingServer & { close(): Promise<void> }
let loader: string
let dir: string

beforeAll(async () => {
  loader = tsxLoader()
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-quiet-"))
  endpoint = await FaultTokenEndpoint.start({ expectCredentials: { clientId: CLIENT_ID, clientSecret: SECRET } })
  // the first token the endpoint issued in a run is rejected, as if the MCP server had rotated its keys
  server = await RecordingServer.start({
    respond: (request) =>
      request.headers.authorization === `Bearer ${endpoint.issuedTokens[0]}`
        ? { status: 401, body: { error: "invalid_token" } }
        : { status: 200, body: { ok: true } }
  })
})

afterAll(async () => {
  await server?.close()
  await endpoint?.close()
  if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
})

const run = async (mode: "default" | "none" | "logger"): Promise<Run> => {
  endpoint.reset()
  server.clearRecords()
  endpoint.setScript([
    FaultTokenEndpoint.success(),
    { status: 500, body: { error: "server_error" } },
    FaultTokenEndpoint.success()
  ])
  const resultFile = Path.join(dir, `${mode}.json`)
  const { code, stderr, stdout } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = ChildProcess.spawn(process.execPath, ["--import", loader, fixture], {
        cwd: here,
        env: {
          PATH: process.env.PATH ?? "",
          TSX_TSCONFIG_PATH: tsconfig,
          QUIET_MODE: mode,
          QUIET_TOKEN_URL: endpoint.url,
          QUIET_SERVER_URL: `${server.url}/mcp`,
          QUIET_CLIENT_ID: CLIENT_ID,
          QUIET_SECRET: SECRET,
          QUIET_RESULT: resultFile
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let err = ""
      child.stdout.on("data", (chunk) => out += String(chunk))
      child.stderr.on("data", (chunk) => err += String(chunk))
      child.on("error", reject)
      child.on("close", (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }))
    }
  )
  expect(stderr).not.toContain("quiet-program failed")
  expect(code).toBe(0)
  const result = JSON.parse(Fs.readFileSync(resultFile, "utf8")) as Run["result"]

  // the program really went through a fetch, a retried refresh and a failure
  const [first, second] = endpoint.issuedTokens
  expect(endpoint.requests.map((r) => r.outcome)).toEqual([
    `issue ${first}`,
    "reply 500",
    `issue ${second}`,
    "invalid_client"
  ])
  expect(server.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${first}`, `Bearer ${second}`])
  expect(result.status).toBe(200)
  expect(result.token).toBe(second)
  expect(result.failure).toBe("InvalidCredentialsError")
  for (const text of [stdout, stderr, JSON.stringify(result.records)]) {
    expect(text).not.toContain(SECRET)
    expect(text).not.toContain(first)
    expect(text).not.toContain(second)
  }
  return { code, stdout, stderr, result }
}

describe("the Promise API is quiet by default", () => {
  it("default options: nothing on stdout, only the warnings on stderr", async () => {
    const { result, stderr, stdout } = await run("default")
    expect(stdout).toBe("")
    const lines = stderr.split("\n").filter((line) => line.length > 0)
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line).toMatch(/ level=(WARN|ERROR) /)
    expect(stderr).toContain("Token request failed; retrying")
    expect(stderr).toContain("Invalid service account credentials")
    expect(stderr).not.toContain("Fetching new service account token")
    expect(stderr).not.toContain("Service account token acquired")
    expect(result.records).toEqual([])
  }, 60_000)

  it("logLevel none: nothing on stdout or stderr", async () => {
    const { stderr, stdout } = await run("none")
    expect(stdout).toBe("")
    expect(stderr).toBe("")
  }, 60_000)

  it("logLevel debug with a logger of one's own: every line goes to it, none to stdout or stderr", async () => {
    const { result, stderr, stdout } = await run("logger")
    expect(stdout).toBe("")
    expect(stderr).toBe("")
    const lines = (method: string, message: string) =>
      result.records.filter((r) => r.method === method && r.message.startsWith(message))
    // four attempts: the first fetch, the 500 and its retry, the wrong secret
    expect(lines("debug", "Fetching new service account token")).toHaveLength(4)
    expect(lines("debug", "Service account token acquired")).toHaveLength(2)
    expect(lines("debug", "Dropped the cached service account token")).toHaveLength(1)
    const retried = lines("warn", "Token request failed; retrying")
    expect(retried).toHaveLength(1)
    expect(retried[0]!.fields).toMatchObject({ error: "TokenEndpointError", attempt: 1, token_url: endpoint.url })
    expect(lines("warn", "Invalid service account credentials")).toHaveLength(1)
    expect(result.records.filter((r) => r.method === "info" || r.method === "error")).toEqual([])
  }, 60_000)

  it("rejects an unknown level or a logger without the four methods at once", () => {
    const config = { client_id: CLIENT_ID, client_secret: SECRET, token_url: "https://idp.example.com/token" }
    expect(() => createServiceAccountAuth(config, { logLevel: "loud" as never })).toThrow(/logLevel must be one of/)
    expect(() => createServiceAccountAuth(config, { logLevel: "toString" as never })).toThrow(TypeError)
    expect(() => createServiceAccountAuth(config, { logger: { warn: () => undefined } as never })).toThrow(
      /needs debug, info, warn and error/
    )
  })
})

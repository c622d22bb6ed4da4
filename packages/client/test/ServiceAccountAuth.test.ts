/**
 * The Promise API's providers share what a process can share (one runtime, one HTTP client per distinct
 * `httpClient`/`ca_file`, `logger` and `logLevel`), while each keeps its own token cache, scope and behaviour.
 * Real time against loopback endpoints: the assertions hold whatever the scheduling.
 */
import { createServiceAccountAuth, type Logger } from "@mcp-auth/client/ServiceAccountAuth"
import { FaultTokenEndpoint, TestPki } from "@mcp-auth/testing"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as Util from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const here = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.resolve(here, "../../..")

let plain: FaultTokenEndpoint.FaultTokenEndpoint & { close(): Promise<void> }
let secure: FaultTokenEndpoint.FaultTokenEndpoint & { close(): Promise<void> }
let dir: string
let caFile: string

beforeAll(async () => {
  const pki = await TestPki.shared()
  plain = await FaultTokenEndpoint.start()
  secure = await FaultTokenEndpoint.start({ https: pki.server })
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-shared-"))
  caFile = Path.join(dir, "ca.pem")
  Fs.writeFileSync(caFile, pki.ca)
})

afterAll(async () => {
  await plain?.close()
  await secure?.close()
  if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
})

const block = (clientId: string, tokenUrl = plain.url, extra: Record<string, unknown> = {}) => ({
  client_id: clientId,
  client_secret: "shared-secret",
  token_url: tokenUrl,
  scopes: "mcp:tools",
  allow_insecure_http: true,
  retry: { max_attempts: 1 },
  ...extra
})

const recorder = () => {
  const lines: Array<{ readonly message: string; readonly fields: Readonly<Record<string, unknown>> | undefined }> = []
  const record = (message: string, fields?: Readonly<Record<string, unknown>>) => {
    lines.push({ message, fields })
  }
  const logger: Logger = { debug: record, info: record, warn: record, error: record }
  return { lines, logger }
}

describe("createServiceAccountAuth: many providers in one process", () => {
  it("providers with the same options keep their own tokens; closing one leaves the other working", async () => {
    plain.reset()
    const a = createServiceAccountAuth(block("shared-a"))
    const b = createServiceAccountAuth(block("shared-b"))
    const [tokenA, tokenB] = await Promise.all([a.getToken(), b.getToken()])
    expect(tokenA.accessToken).not.toBe(tokenB.accessToken)
    expect(plain.requests.map((r) => r.basic?.clientId).sort()).toEqual(["shared-a", "shared-b"])

    await a.close()
    await expect(a.getHeaders()).rejects.toThrow("this auth was closed")
    await expect(a.invalidate(tokenA.accessToken)).rejects.toThrow("this auth was closed")
    // b still serves its token and still reaches the endpoint through the shared client
    expect((await b.getHeaders()).Authorization).toBe(`Bearer ${tokenB.accessToken}`)
    expect(await b.invalidate(tokenB.accessToken)).toEqual({ _tag: "Dropped" })
    const renewed = await b.getToken()
    expect(renewed.accessToken).not.toBe(tokenB.accessToken)
    expect(plain.count).toBe(3)
    await b.close()

    // the shared runtime went with its last provider: a new provider with the same options builds a new one
    const c = createServiceAccountAuth(block("shared-c"))
    expect((await c.getToken()).accessToken).toMatch(/^tok-/)
    await c.close()
  })

  it("a provider with a ca_file and one without keep their own TLS trust", async () => {
    secure.reset()
    // the same logging for all three (none: the TLS failures would warn), so ca_file is the only difference
    const quiet = { logLevel: "none" } as const
    const untrusting = createServiceAccountAuth(block("tls-none", secure.url), quiet)
    const trusting = createServiceAccountAuth(block("tls-ca", secure.url, { ca_file: caFile }), quiet)
    const untrustingToo = createServiceAccountAuth(block("tls-none-2", secure.url), quiet)
    try {
      await expect(untrusting.getToken()).rejects.toMatchObject({ _tag: "TlsError" })
      expect((await trusting.getToken()).accessToken).toMatch(/^tok-/)
      await expect(untrustingToo.getToken()).rejects.toMatchObject({ _tag: "TlsError" })
    } finally {
      await untrusting.close()
    }
    // closing one without a ca_file leaves the one with it working, and the other one without it failing
    expect(await trusting.invalidate((await trusting.getToken()).accessToken)).toEqual({ _tag: "Dropped" })
    expect((await trusting.getToken()).accessToken).toMatch(/^tok-/)
    await expect(untrustingToo.getToken()).rejects.toMatchObject({ _tag: "TlsError" })
    expect(secure.requests.every((r) => r.basic?.clientId === "tls-ca")).toBe(true)
    await trusting.close()
    await untrustingToo.close()
  })

  it("providers with different loggers and levels log to their own logger only", async () => {
    plain.reset()
    const one = recorder()
    const two = recorder()
    const first = createServiceAccountAuth(block("log-one"), { logger: one.logger, logLevel: "debug" })
    const second = createServiceAccountAuth(block("log-two"), { logger: two.logger, logLevel: "debug" })
    const silent = createServiceAccountAuth(block("log-silent"), { logger: two.logger, logLevel: "none" })
    await first.getToken()
    expect(one.lines.some((l) => l.message === "Fetching new service account token")).toBe(true)
    expect(two.lines).toEqual([])
    await silent.getToken()
    expect(two.lines).toEqual([])
    const before = one.lines.length
    await second.getToken()
    expect(two.lines.some((l) => l.message === "Fetching new service account token")).toBe(true)
    expect(one.lines.length).toBe(before)
    await Promise.all([first.close(), second.close(), silent.close()])
  })

  it("invalidate says what it did: Dropped, NotCurrent, or Throttled within a second of the last drop", async () => {
    plain.reset()
    const auth = createServiceAccountAuth(block("invalidate"))
    const first = (await auth.getToken()).accessToken
    const t0 = Date.now()
    expect(await auth.invalidate(first)).toEqual({ _tag: "Dropped" })
    expect(await auth.invalidate(first)).toEqual({ _tag: "NotCurrent" })
    const second = (await auth.getToken()).accessToken
    expect(second).not.toBe(first)
    const result = await auth.invalidate(second)
    if (Date.now() - t0 < 1000) {
      // both calls fell within the second after the drop, whatever the scheduling
      expect(result._tag).toBe("Throttled")
    } else {
      expect(["Throttled", "Dropped"]).toContain(result._tag)
    }
    if (result._tag === "Throttled") {
      expect(result.retryAfterMillis).toBeGreaterThan(0)
      expect(result.retryAfterMillis).toBeLessThanOrEqual(1000)
      // held back: the token is still the cached one
      expect((await auth.getToken()).accessToken).toBe(second)
    }
    await auth.close()
  })

  it("getHeaders hands out a copy: changing it does not change the next call's headers", async () => {
    const auth = createServiceAccountAuth(block("headers-copy"))
    const first = await auth.getHeaders()
    first.Authorization = "Bearer changed"
    first["X-Extra"] = "1"
    const second = await auth.getHeaders()
    expect(second.Authorization).not.toBe("Bearer changed")
    expect(second).toEqual({ Authorization: `Bearer ${(await auth.getToken()).accessToken}` })
    await auth.close()
  })

  it("the warm getHeaders follows the token provider: never the dropped token, nothing after close", async () => {
    plain.reset()
    const auth = createServiceAccountAuth(block("warm-follows"))
    const bearer = async () => (await auth.getHeaders()).Authorization!
    const first = await bearer()
    expect(await bearer()).toBe(first) // warm: served from the auth's mirror
    // the headers it keeps in clear are never printed with it
    expect(Util.inspect(auth, { showHidden: true, depth: 8 })).not.toContain(first.slice("Bearer ".length))
    expect(plain.count).toBe(1)
    expect(await auth.invalidate(first.slice("Bearer ".length))).toEqual({ _tag: "Dropped" })
    const second = await bearer()
    expect(second).not.toBe(first)
    expect(await bearer()).toBe(second)
    expect(plain.count).toBe(2)
    // every member but getHeaders may be passed on as it is
    const { close, getToken } = auth
    expect(`Bearer ${(await getToken()).accessToken}`).toBe(second)
    await close()
    await expect(auth.getHeaders()).rejects.toThrow(/closed/)
  })

  it("a program using providers that share a runtime and closing them exits on its own", async () => {
    plain.reset()
    const loader = pathToFileURL(createRequire(Path.join(root, "packages/client/package.json")).resolve("tsx")).href
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = ChildProcess.spawn(
        process.execPath,
        ["--import", loader, Path.join(here, "fixtures/shared-exit-program.ts")],
        {
          cwd: here,
          env: {
            PATH: process.env.PATH ?? "",
            TSX_TSCONFIG_PATH: Path.join(here, "fixtures/tsconfig.json"),
            SHARED_TOKEN_URL: plain.url
          },
          stdio: ["ignore", "ignore", "pipe"]
        }
      )
      let err = ""
      child.stderr.on("data", (chunk) => err += String(chunk))
      child.on("error", reject)
      // no process.exit in the program: it ends only when nothing keeps the event loop alive
      child.on("close", (exitCode) => resolve({ code: exitCode, stderr: err }))
    })
    expect(stderr).toBe("")
    expect(code).toBe(0)
    expect(plain.requests.map((r) => r.basic?.clientId).sort()).toEqual(["exit-a", "exit-b", "exit-c"])
  })
})

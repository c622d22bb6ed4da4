/**
 * Peak memory of the `mcp-auth` CLI against two hostile servers (issue 12): a token endpoint whose body never ends
 * (`200 {"access_token":"aaaa…`) and an MCP server whose `tools/call` response never ends (initialize and tools/list
 * answer normally, beside a normal token endpoint). Each case runs the given CLI under `/usr/bin/time -v` and prints
 * its peak RSS, exit code, last stderr line, wall time, and the bytes the server wrote before the CLI hung up.
 *
 *   node packages/cli/scripts/hostile-rss.mjs [path/to/bin.js]     (default: packages/cli/build/bundle/bin.js)
 *
 * Self-contained (node:http, no workspace imports) and using only workflow keys that existed before issue 12, so that
 * it runs against an older bundle too. Linux only (/usr/bin/time, GNU time).
 */
import { Buffer } from "node:buffer"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

const cliDir = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const bin = Path.resolve(process.argv[2] ?? Path.join(cliDir, "build/bundle/bin.js"))
const time = "/usr/bin/time"
const timeoutSeconds = 30
const toolCallTimeout = 10
const chunk = Buffer.alloc(64 * 1024, 0x61)

if (!Fs.existsSync(time)) {
  process.stderr.write(`${time} is missing (apt-get install time)\n`)
  process.exit(2)
}
if (!Fs.existsSync(bin)) {
  process.stderr.write(`no CLI at ${bin}: build it (node packages/cli/scripts/bundle.mjs) or pass its path\n`)
  process.exit(2)
}

/** Writes `prefix` then `a`s until the client goes away; resolves with the bytes written. */
const endless = (res, prefix) =>
  new Promise((resolve) => {
    let written = 0
    res.writeHead(200, { "content-type": "application/json" })
    const head = Buffer.from(prefix)
    written += head.length
    res.write(head)
    const pump = () => {
      while (!res.destroyed && res.socket !== null && !res.socket.destroyed) {
        written += chunk.length
        if (!res.write(chunk)) return void res.once("drain", pump)
      }
    }
    res.once("close", () => resolve(written))
    pump()
  })

const json = (res, status, body) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = []
    req.on("data", (c) => chunks.push(c))
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.once("error", reject)
  })

/** Starts a server on 127.0.0.1; `written` collects what endless bodies wrote. */
const serve = async (handler) => {
  const written = []
  const server = Http.createServer((req, res) => {
    readBody(req).then((body) => handler(req, res, body, written)).catch(() => res.destroy())
  })
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
  const origin = `http://127.0.0.1:${server.address().port}`
  const close = () =>
    new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  return { origin, written, close }
}

const tokenResponse = (res) =>
  json(res, 200, { access_token: "rss-probe-token", token_type: "Bearer", expires_in: 3600 })

// 1. the token endpoint's body never ends
const endlessToken = await serve((_req, res, _body, written) => {
  written.push(endless(res, "{\"access_token\":\""))
})

// 2. a normal token endpoint and an MCP endpoint (JSON responses, no session) whose tools/call never ends
const endlessCall = await serve((req, res, body, written) => {
  if (req.url === "/token") return tokenResponse(res)
  if (req.method !== "POST") return void res.writeHead(405).end()
  let message
  try {
    message = JSON.parse(body)
  } catch {
    return json(res, 400, { error: "not JSON" })
  }
  if (message.id === undefined) return void res.writeHead(202).end() // a notification
  const result = (value) => json(res, 200, { jsonrpc: "2.0", id: message.id, result: value })
  switch (message.method) {
    case "initialize":
      return result({
        protocolVersion: message.params?.protocolVersion ?? "2025-06-18",
        capabilities: { tools: {} },
        serverInfo: { name: "hostile-rss", version: "1.0.0" }
      })
    case "tools/list":
      return result({ tools: [{ name: "endless", description: "never ends", inputSchema: { type: "object" } }] })
    case "tools/call":
      written.push(
        endless(res, `{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":{"content":[{"type":"text","text":"`)
      )
      return
    default:
      return json(res, 200, { jsonrpc: "2.0", id: message.id, error: { code: -32601, message: "Method not found" } })
  }
})

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-hostile-rss-"))
const workflow = (name, tokenUrl, mcpUrl) => {
  const file = Path.join(dir, `${name}.yml`)
  Fs.writeFileSync(
    file,
    `authentication:
  sa:
    _type: mcp_service_account
    client_id: rss-probe
    client_secret: rss-probe-secret
    token_url: ${tokenUrl}
    allow_insecure_http: true
    timeout_seconds: ${timeoutSeconds}
    retry:
      max_attempts: 1
` + (mcpUrl === undefined ? "" : `function_groups:
  g:
    _type: mcp_client
    server:
      transport: streamable-http
      url: ${mcpUrl}
      auth_provider: sa
    tool_call_timeout: ${toolCallTimeout}
`)
  )
  return file
}

/** Runs the CLI under /usr/bin/time -v (its report to a file, apart from the CLI's stderr). */
const measure = (args) =>
  new Promise((resolve) => {
    const report = Path.join(dir, `time-${Math.random().toString(36).slice(2)}.txt`)
    const started = process.hrtime.bigint()
    const child = ChildProcess.spawn(time, ["-v", "-o", report, process.execPath, bin, ...args], {
      env: { PATH: process.env.PATH ?? "" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stderr = ""
    child.stdout.resume()
    child.stderr.on("data", (c) => {
      stderr = (stderr + String(c)).slice(-64 * 1024)
    })
    child.on("close", (code) => {
      const wall = Number(process.hrtime.bigint() - started) / 1e9
      const text = Fs.existsSync(report) ? Fs.readFileSync(report, "utf8") : ""
      const field = (name) => new RegExp(`^\\s*${name}: (.*)$`, "m").exec(text)?.[1]?.trim()
      const lines = stderr.trim().split("\n")
      const cut = (line) => line.length > 300 ? `${line.slice(0, 300)}…` : line
      resolve({
        code: Number(field("Exit status") ?? code),
        rssKiB: Number(field("Maximum resident set size \\(kbytes\\)")),
        wall: field("Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)") ?? `${wall.toFixed(2)}s`,
        lastLine: cut(lines.at(-1) ?? ""),
        errorLine: cut(lines.findLast((line) => line.startsWith("Error:")) ?? "(none)")
      })
    })
  })

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

const cases = [
  {
    name: `token vs endless token body (timeout_seconds: ${timeoutSeconds})`,
    server: endlessToken,
    args: ["token", "-c", workflow("endless-token", `${endlessToken.origin}/token`)]
  },
  {
    name: `tools call vs endless tools/call body (tool_call_timeout: ${toolCallTimeout})`,
    server: endlessCall,
    args: [
      "tools",
      "call",
      "-c",
      workflow("endless-call", `${endlessCall.origin}/token`, `${endlessCall.origin}/mcp`),
      "g.endless"
    ]
  }
]

process.stdout.write(`mcp-auth CLI: ${bin}\nnode ${process.version}, ${Os.cpus().length} cores\n\n`)
try {
  for (const c of cases) {
    const before = c.server.written.length
    const result = await measure(c.args)
    const written = await Promise.all(c.server.written.slice(before))
    process.stdout.write(
      [
        `${c.name}`,
        `  peak RSS:        ${(result.rssKiB / 1024).toFixed(1)} MiB (${result.rssKiB} KiB)`,
        `  exit code:       ${result.code}`,
        `  wall time:       ${result.wall}`,
        `  server wrote:    ${written.map(mib).join(" + ") || "nothing"} (${written.length} response(s))`,
        `  error line:      ${result.errorLine}`,
        `  last stderr:     ${result.lastLine}`,
        ""
      ].join("\n") + "\n"
    )
  }
} finally {
  await Promise.all([endlessToken.close(), endlessCall.close()])
  Fs.rmSync(dir, { recursive: true, force: true })
}

/**
 * The soak's child process: the testing servers and the fault rules, away from the process whose heap and fibers are
 * measured.
 *
 * - `AuthorizationServer` (oidc-provider) issues 2 s RS256 JWTs for the MCP server's URL.
 * - `McpServer` (the SDK server over Streamable HTTP, stateful) verifies them against the JWKS, with a clock
 *   tolerance of 1 s: a JWT's `exp` is whole seconds (`floor(iat) + 2`), so without it a 2 s token can die up to 1 s
 *   before the `expires_in` the client was told. Revocation is `McpServer.revoke(token)`.
 * - `FaultTokenEndpoint` is the token URL the client is given; a responder picks each request's fate (seeded PRNG):
 *   forward to the authorization server, forward after a slow delay, a 5xx, or a connection reset; during the outage
 *   every request gets 503. Every answer waits the endpoint's fixed latency first.
 */
import { AuthorizationServer, FaultTokenEndpoint, McpServer } from "@mcp-auth/testing"
import { monitorEventLoopDelay } from "node:perf_hooks"
import {
  CLIENT_ID,
  CLIENT_SECRET,
  type FaultKind,
  SCOPE,
  type Settings,
  type ToChild,
  type ToParent
} from "./protocol.js"

const send = (message: ToParent) => process.send!(message)

/** mulberry32: a small seeded PRNG, so a run's fault sequence (by request index) is reproducible. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const main = async (settings: Settings) => {
  const authorizationServer = await AuthorizationServer.start({
    clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }],
    scopes: [SCOPE],
    accessTokenTtlSeconds: settings.tokenSeconds
  })
  const mcpServer = await McpServer.start({
    authorizationServer,
    clockToleranceSeconds: settings.clockToleranceSeconds
  })
  authorizationServer.setAudience(mcpServer.url)

  const random = prng(settings.seed)
  const kinds: Array<FaultKind> = []
  let faults = false
  let outage = false
  const toAs = FaultTokenEndpoint.forward(authorizationServer.tokenUrl)
  const serverErrors: ReadonlyArray<FaultTokenEndpoint.Step> = [
    FaultTokenEndpoint.oauthError("server_error", 500),
    FaultTokenEndpoint.badGatewayHtml(),
    FaultTokenEndpoint.serviceUnavailable(),
    { status: 504, body: { error: "temporarily_unavailable" } }
  ]
  const endpoint = await FaultTokenEndpoint.start({
    latencyMs: settings.tokenLatencyMs,
    fallback: ({ index }) => {
      // one draw per request whatever the mode, so the sequence by index does not depend on when the outage falls
      const u = random()
      const v = random()
      let kind: FaultKind = "ok"
      let step: FaultTokenEndpoint.Step = toAs
      if (outage) {
        kind = "outage"
        step = FaultTokenEndpoint.serviceUnavailable()
      } else if (faults) {
        const { reset, serverError, slow } = settings.faults
        if (u < serverError) {
          kind = "5xx"
          step = serverErrors[Math.floor(v * serverErrors.length)]!
        } else if (u < serverError + reset) {
          kind = "reset"
          step = FaultTokenEndpoint.resetConnection()
        } else if (u < serverError + reset + slow) {
          kind = "slow"
          const [min, max] = settings.slowMs
          step = { ...toAs, delayMs: Math.round(min + v * (max - min)) }
        }
      }
      kinds[index] = kind
      return step
    }
  })

  // MCP 401s by reason, swept once a second so the server's request records do not grow for the whole run (a record's
  // status is set when its response ends: unfinished ones are kept and looked at again)
  const unauthorized: Record<string, number> = {}
  let mcpRequests = 0
  let pending: Array<McpServer.RequestRecord> = []
  const sweep = () => {
    const batch = mcpServer.requests
    mcpServer.clearRecords()
    const open: Array<McpServer.RequestRecord> = []
    for (const record of [...pending, ...batch]) {
      if (record.status === undefined) {
        open.push(record)
        continue
      }
      mcpRequests++
      if (record.status === 401) {
        const reason = record.auth ?? "unknown"
        unauthorized[reason] = (unauthorized[reason] ?? 0) + 1
      }
    }
    pending = open
  }
  const sweeper = setInterval(sweep, 1000)

  const lag = monitorEventLoopDelay({ resolution: 10 })
  let cpuFrom: NodeJS.CpuUsage | undefined
  let cpuFromAt = 0
  let cpuPercent = 0
  process.on("message", (message: ToChild) => {
    switch (message._tag) {
      case "Faults":
        faults = message.on
        if (message.on) {
          lag.enable()
          cpuFrom = process.cpuUsage()
          cpuFromAt = performance.now()
        } else {
          lag.disable()
          const used = process.cpuUsage(cpuFrom)
          cpuPercent = Math.round((used.user + used.system) / 10 / (performance.now() - cpuFromAt))
        }
        return
      case "Outage":
        outage = message.on
        return
      case "Revoke": {
        // every token issued so far (revoking the grant); the count says how many were still within their lifetime
        const now = Date.now()
        let live = 0
        for (const record of authorizationServer.tokenRequests) {
          if (record.accessToken === undefined) continue
          mcpServer.revoke(record.accessToken)
          if (record.time > now - (settings.tokenSeconds + settings.clockToleranceSeconds + 1) * 1000) live++
        }
        send({ _tag: "Revoked", id: message.id, at: now, tokens: live })
        return
      }
      case "Report": {
        sweep()
        send({
          _tag: "Report",
          tokenRequests: endpoint.requests.map((record) => ({
            at: record.time,
            kind: kinds[record.index] ?? "ok",
            outcome: record.outcome ?? "pending",
            status: record.status ?? 0
          })),
          unauthorized,
          mcpRequests,
          sessions: mcpServer.sessionCount,
          childRssMiB: Math.round(process.memoryUsage().rss / 1048576),
          lag: {
            p50Ms: Math.round(lag.percentile(50) / 1e6),
            p99Ms: Math.round(lag.percentile(99) / 1e6),
            maxMs: Math.round(lag.max / 1e6)
          },
          cpuPercent
        })
        return
      }
      case "Close":
        clearInterval(sweeper)
        void Promise.allSettled([endpoint.close(), mcpServer.close(), authorizationServer.close()]).then(() =>
          process.exit(0)
        )
        return
    }
  })
  send({ _tag: "Ready", tokenUrl: endpoint.url, mcpUrl: mcpServer.url })
}

if (process.send !== undefined) {
  const settings = JSON.parse(process.env.SOAK_SETTINGS ?? "null") as Settings | null
  if (settings === null) throw new Error("servers.ts: SOAK_SETTINGS is not set")
  // the parent going away ends this process too
  process.on("disconnect", () => process.exit(0))
  main(settings).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  })
}

/**
 * E1 / E2, child side: MCP tool calls over Streamable HTTP with the SDK's `Client` and
 * `StreamableHTTPClientTransport`, authenticated by our Promise-API `fetch`, by nothing (auth disabled on the
 * server), by a static bearer header (control), or by the SDK's own `ClientCredentialsProvider`.
 */
import { createServiceAccountAuth } from "@mcp-auth/client/ServiceAccountAuth"
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import {
  StreamableHTTPClientTransport,
  type StreamableHTTPClientTransportOptions
} from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"
import { oursConfig } from "./peers/oursConfig.js"
import { CLIENT_ID, CLIENT_SECRET, type Endpoint, SCOPE } from "./protocol.js"
import type { ChildContext } from "./scenarios.js"
import { median } from "./stats.js"

const endpoint = (context: ChildContext, name: string): Endpoint => {
  const found = context.job.endpoints[name]
  if (found === undefined) throw new Error(`no endpoint ${name}`)
  return found
}

const connect = async (url: string, options: StreamableHTTPClientTransportOptions): Promise<Client> => {
  const client = new Client({ name: "mcp-auth-bench", version: "0.0.0" })
  await client.connect(new StreamableHTTPClientTransport(new URL(url), options))
  return client
}

const call = (client: Client) => client.callTool({ name: "echo", arguments: { text: "ping" } })

interface Load {
  readonly ok: number
  readonly failed: number
  readonly seconds: number
  readonly callsPerSecond: number
  readonly errors: Record<string, number>
}

/** `concurrency` callers calling `echo` back to back for `durationMs`. */
const load = async (client: Client, durationMs: number, concurrency: number): Promise<Load> => {
  const start = performance.now()
  const end = start + durationMs
  let ok = 0
  let failed = 0
  const errors: Record<string, number> = {}
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      try {
        await call(client)
        ok++
      } catch (error) {
        failed++
        const text = error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error)
        const key = text.replace(/\s+/g, " ").slice(0, 120)
        errors[key] = (errors[key] ?? 0) + 1
      }
    }
  }))
  const seconds = (performance.now() - start) / 1000
  return { ok, failed, seconds, callsPerSecond: ok / seconds, errors }
}

export const runMcp = async (context: ChildContext): Promise<unknown> => {
  const { job, mark, ready } = context
  const concurrency = typeof job.params.concurrency === "number" ? job.params.concurrency : 8
  const durationMs = typeof job.params.durationMs === "number" ? job.params.durationMs : 1500

  if (job.scenario === "e1") {
    const noauth = endpoint(context, "noauth")
    const secured = endpoint(context, "auth")
    const auth = createServiceAccountAuth(
      oursConfig({ endpoint: secured, windowMs: 300_000 }),
      { serverUrl: secured.serverUrl }
    )
    const { accessToken } = await auth.getToken()
    const variants: Record<string, Client> = {
      "no auth": await connect(noauth.serverUrl!, {}),
      ours: await connect(secured.serverUrl!, { fetch: auth.fetch }),
      "static bearer": await connect(secured.serverUrl!, {
        requestInit: { headers: { Authorization: `Bearer ${accessToken}` } }
      })
    }
    const names = Object.keys(variants)
    await ready()
    // warm-up (server and client JIT), not counted
    await Promise.all(names.map((name) => load(variants[name]!, 2000, concurrency)))
    // all variants at once, in windows: each gets the share of client and server time its per-call cost leaves it,
    // and every window sees the same machine state for all of them
    const rates: Record<string, Array<number>> = Object.fromEntries(names.map((n) => [n, []]))
    const rounds = typeof job.params.rounds === "number" ? job.params.rounds : 4
    for (let round = 0; round < rounds; round++) {
      await mark(`window-${round}`)
      const results = await Promise.all(names.map((name) => load(variants[name]!, durationMs, concurrency)))
      for (const [i, name] of names.entries()) {
        const result = results[i]!
        if (result.failed > 0) {
          throw new Error(`${name}: ${result.failed} calls failed: ${JSON.stringify(result.errors)}`)
        }
        rates[name]!.push(result.callsPerSecond)
      }
    }
    for (const client of Object.values(variants)) await client.close()
    await auth.close()
    return {
      concurrency,
      durationMs,
      rounds,
      callsPerSecond: Object.fromEntries(names.map((n) => [n, median(rates[n]!)])),
      samples: rates
    }
  }

  // E2: ours and the SDK's ClientCredentialsProvider side by side, at the same time, across token expiries
  const ours = endpoint(context, "ours")
  const sdk = endpoint(context, "sdk")
  const asTokenUrl = job.params.asTokenUrl as string
  const auth = createServiceAccountAuth(oursConfig({ endpoint: ours, windowMs: 300_000 }), {
    serverUrl: ours.serverUrl
  })
  const provider = new ClientCredentialsProvider({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    scope: SCOPE,
    expectedIssuer: sdk.issuer!
  })
  // the SDK discovers the authorization server's own token endpoint; send its token POSTs through the bench
  // endpoint in front of it, which adds the same 50 ms and counts them
  const rewrite: FetchLike = (url, init) => String(url) === asTokenUrl ? fetch(sdk.tokenUrl, init) : fetch(url, init)
  const oursClient = await connect(ours.serverUrl!, { fetch: auth.fetch })
  const sdkClient = await connect(sdk.serverUrl!, { authProvider: provider, fetch: rewrite })
  await ready()
  // warm-up (server and client JIT), not counted
  await Promise.all([load(oursClient, 2000, concurrency), load(sdkClient, 2000, concurrency)])
  await mark("measure")
  const [oursLoad, sdkLoad] = await Promise.all([
    load(oursClient, durationMs, concurrency),
    load(sdkClient, durationMs, concurrency)
  ])
  await mark("end")
  await oursClient.close()
  await sdkClient.close()
  await auth.close()
  return { concurrency, durationMs, ours: oursLoad, sdk: sdkLoad }
}

/**
 * The benchmark orchestrator: runs every scenario (each peer in its own child process), then writes
 * `results/latest.json` and renders `BENCHMARKS.md` from it.
 *
 * `BENCH_ONLY=t1t4,t2` (or the ids as arguments: `pnpm bench cli`) runs a subset (ids: cli t1t4 t3t9 t6 t7t11 t2 memory
 * many e1 e2 fleet) and writes its JSON to the system temp directory instead, leaving the committed files alone; with
 * `BENCH_MERGE=1` its scenarios replace theirs in `results/latest.json` and `BENCHMARKS.md` is rendered again.
 */
import * as TestPki from "@mcp-auth/testing/TestPki"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { prepareRunner } from "./children.js"
import { cliStartup } from "./cliStartup.js"
import { type BenchEnv, startSdkHerd, t1t4, t2, t3t9, t6, t7t11 } from "./plans.js"
import { fleet } from "./plansFleet.js"
import { many } from "./plansMany.js"
import { e1, e2, memory } from "./plansMcp.js"
import { render, renderFile } from "./report.js"
import type { Results, ScenarioResult } from "./results.js"

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const readVersion = (dir: string): string => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { version: string }).version
  } catch {
    return "?"
  }
}

/** A direct dependency of the bench package, or (with `via`) a dependency of one. */
const version = (name: string, via?: string): string => {
  const direct = path.join(benchDir, "node_modules", name)
  if (via === undefined) return readVersion(direct)
  const parent = fs.realpathSync(path.join(benchDir, "node_modules", via))
  const depth = via.startsWith("@") ? 2 : 1
  const siblings = path.join(parent, ...Array.from({ length: depth }, () => ".."))
  return readVersion(path.join(siblings, name))
}

const versions = (): Record<string, string> => ({
  "@mcp-auth/service-account": readVersion(path.join(benchDir, "..", "service-account")),
  "@mcp-auth/client": readVersion(path.join(benchDir, "..", "client")),
  effect: version("effect"),
  "@modelcontextprotocol/sdk": version("@modelcontextprotocol/sdk"),
  "@smithy/property-provider": version("@smithy/property-provider"),
  "@smithy/core": version("@smithy/core", "@smithy/property-provider"),
  "@badgateway/oauth2-client": version("@badgateway/oauth2-client"),
  auth0: version("auth0"),
  "@azure/identity": version("@azure/identity"),
  "@azure/core-rest-pipeline": version("@azure/core-rest-pipeline"),
  "@azure/core-auth": version("@azure/core-auth"),
  "google-auth-library": version("google-auth-library"),
  gaxios: version("gaxios", "google-auth-library")
})

type Step = (env: BenchEnv) => Promise<ScenarioResult | ReadonlyArray<ScenarioResult>>

/**
 * The run order. The MCP SDK's 10 000-caller herd (T1) runs in the background beside the count-based T1/T4 batch;
 * every other step runs before it starts or after it has finished.
 */
const runAll = async (
  env: BenchEnv,
  only: ReadonlyArray<string> | undefined,
  report: (id: string, list: ReadonlyArray<ScenarioResult>, seconds: number) => void
) => {
  const wanted = (id: string) => only === undefined || only.includes(id)
  const results: Array<ScenarioResult> = []
  const step = async (id: string, run: Step) => {
    if (!wanted(id)) return
    const t0 = Date.now()
    const result = await run(env)
    const list = Array.isArray(result) ? result : [result as ScenarioResult]
    results.push(...list)
    report(id, list, (Date.now() - t0) / 1000)
  }
  // first, while the machine is quiet: cold starts of the CLI
  await step("cli", () => cliStartup())
  await step("t3t9", t3t9)
  await step("t6", t6)
  if (wanted("t1t4")) {
    const t0 = Date.now()
    const herd = startSdkHerd(env)
    const { finishT1, t4 } = await t1t4(env)
    const t1 = await finishT1(await herd)
    results.push(t1, t4)
    report("t1t4", [t1, t4], (Date.now() - t0) / 1000)
  }
  await step("t7t11", t7t11)
  await step("t2", t2)
  await step("memory", memory)
  await step("many", () => many())
  await step("e1", () => e1())
  await step("e2", () => e2())
  await step("fleet", () => fleet())
  return results
}

const order = ["T1", "T2", "T3", "T4", "T6", "T7", "T9", "T11", "E1", "E2", "Memory", "Many", "Fleet", "CLI"]

/** Writes `BENCHMARKS.md`, keeping the soak block `pnpm soak` added to it. */
const writeMarkdown = (results: Results) => {
  const file = path.join(benchDir, "BENCHMARKS.md")
  const previous = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined
  fs.writeFileSync(file, renderFile(results, previous))
}

const main = async () => {
  const started = Date.now()
  // `BENCH_ONLY=cli,t6` or arguments: `pnpm bench cli t6`
  const ids = process.env.BENCH_ONLY?.split(",") ?? process.argv.slice(2)
  const selected = ids.map((s) => s.trim()).filter((s) => s.length > 0)
  const only = selected.length > 0 ? selected : undefined
  if (only === undefined || only.some((id) => id !== "cli")) await prepareRunner()
  const pki = await TestPki.shared()
  const caFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "mcp-auth-bench-")), "ca.pem")
  fs.writeFileSync(caFile, pki.ca)
  const env: BenchEnv = { pki, caFile }

  const scenarios = await runAll(env, only, (id, list, seconds) => {
    process.stdout.write(`[bench] ${id}: ${seconds.toFixed(1)} s\n`)
    for (const s of list) {
      process.stdout.write(
        `  ${s.id}: ${s.verdict.ours} → ${s.verdict.met === null ? "?" : s.verdict.met ? "met" : "MISSED"}\n`
      )
      for (const [peer, error] of Object.entries(s.errors)) {
        process.stdout.write(`    error ${peer}: ${error.split("\n")[0]}\n`)
      }
    }
  })
  scenarios.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id))

  const cpus = os.cpus()
  const results: Results = {
    generatedAt: new Date().toISOString(),
    machine: {
      cpu: cpus[0]?.model.trim() ?? "unknown",
      cores: cpus.length,
      memoryGiB: Math.round(os.totalmem() / 1024 ** 3 * 10) / 10,
      platform: `${os.type()} ${os.release()} ${os.arch()}`
    },
    node: process.version,
    versions: versions(),
    settings: { tokenLatencyMs: 50, host: "127.0.0.1" },
    totalSeconds: (Date.now() - started) / 1000,
    scenarios
  }
  fs.rmSync(path.dirname(caFile), { recursive: true, force: true })

  if (only !== undefined && process.env.BENCH_MERGE === "1") {
    // replace these scenarios in the committed results (the others keep their figures and date), then re-render
    const file = path.join(benchDir, "results", "latest.json")
    const previous = JSON.parse(fs.readFileSync(file, "utf8")) as Results
    const ids = new Set(scenarios.map((s) => s.id))
    const merged: Results = {
      ...previous,
      scenarios: [...previous.scenarios.filter((s) => !ids.has(s.id)), ...scenarios]
        .sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id))
    }
    fs.writeFileSync(file, JSON.stringify(merged, null, 2) + "\n")
    writeMarkdown(merged)
    process.stdout.write(`[bench] merged ${[...ids].join(", ")} into BENCHMARKS.md and results/latest.json\n`)
  } else if (only !== undefined) {
    const file = path.join(os.tmpdir(), `mcp-auth-bench-partial-${Date.now()}.json`)
    fs.writeFileSync(file, JSON.stringify(results, null, 2) + "\n")
    fs.writeFileSync(file.replace(/\.json$/, ".md"), render(results))
    process.stdout.write(`[bench] partial run written to ${file} (and .md)\n`)
  } else {
    fs.mkdirSync(path.join(benchDir, "results"), { recursive: true })
    fs.writeFileSync(path.join(benchDir, "results", "latest.json"), JSON.stringify(results, null, 2) + "\n")
    writeMarkdown(results)
    process.stdout.write(
      `[bench] wrote BENCHMARKS.md and results/latest.json in ${results.totalSeconds.toFixed(0)} s\n`
    )
  }
}

await main()
process.exit(0)

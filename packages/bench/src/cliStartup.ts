/**
 * CLI start-up: the bundled `mcp-auth` binary (what `@mcp-auth/cli` ships) started cold, one fresh process per run,
 * against `node -e 0` started the same way in the same run. Rounds interleave the commands so drift in the machine's
 * speed hits all of them alike.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { Row, ScenarioResult } from "./results.js"
import { median } from "./stats.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const cliDir = path.join(root, "packages/cli")
const bin = path.join(cliDir, "build/bundle/bin.js")
const example = "examples/nat-workflows/config-mcp-service-account-jira.yml"
const timeBinary = "/usr/bin/time"

const warmup = 2
const rounds = 15

interface Command {
  readonly key: string
  readonly label: string
  readonly args: ReadonlyArray<string>
  /** The most this command may take, as a multiple of `node -e 0`. */
  readonly maxRatio?: number | undefined
  readonly maxPeakMiB?: number | undefined
}

const commands: ReadonlyArray<Command> = [
  { key: "node", label: "node -e 0", args: ["-e", "0"] },
  { key: "version", label: "mcp-auth --version", args: [bin, "--version"], maxRatio: 3, maxPeakMiB: 60 },
  { key: "help", label: "mcp-auth --help", args: [bin, "--help"] },
  { key: "validate", label: `mcp-auth validate -c ${example}`, args: [bin, "validate", "-c", example], maxRatio: 5 }
]

// what the example's ${VARIABLES} need; nothing is contacted
const env = {
  PATH: process.env.PATH ?? "",
  SERVICE_ACCOUNT_CLIENT_ID: "svc-bench",
  SERVICE_ACCOUNT_CLIENT_SECRET: "bench-secret",
  SERVICE_ACCOUNT_TOKEN_URL: "https://auth.example.com/oauth2/token",
  SERVICE_ACCOUNT_SCOPES: "mcp:tools",
  CORPORATE_MCP_SERVICE_ACCOUNT_JIRA_URL: "https://jira.example.com/mcp",
  JIRA_SERVICE_TOKEN: "bench-service-token"
}

interface Sample {
  readonly wallMs: number
  readonly peakMiB: number | undefined
}

/** One cold run. Wall time from spawn to exit; peak RSS from GNU time (`%M`, KiB) when it is installed. */
const runOnce = (command: Command, withTime: boolean, scratch: string): Sample => {
  const rssFile = path.join(scratch, "rss")
  const [file, args] = withTime
    ? [timeBinary, ["-o", rssFile, "-f", "%M", process.execPath, ...command.args]]
    : [process.execPath, command.args]
  const start = process.hrtime.bigint()
  const result = ChildProcess.spawnSync(file, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6
  if (result.status !== 0) {
    throw new Error(`${command.label} exited ${result.status}: ${String(result.stderr).split("\n")[0]}`)
  }
  const peakMiB = withTime ? Number(fs.readFileSync(rssFile, "utf8").trim().split("\n").pop()) / 1024 : undefined
  return { wallMs, peakMiB }
}

const round1 = (n: number) => Math.round(n * 10) / 10
const round2 = (n: number) => Math.round(n * 100) / 100

/** The JavaScript `--help` loads: the entry, the program it imports and the program's static imports. */
const bundleSizes = () => {
  const meta = JSON.parse(fs.readFileSync(path.join(cliDir, "build/bundle-meta.json"), "utf8")) as {
    outputs: Record<string, { bytes: number; imports: ReadonlyArray<{ path: string; kind: string }> }>
  }
  const js = Object.entries(meta.outputs).filter(([file]) => file.endsWith(".js"))
  const entry = js.find(([file]) => file.endsWith("/bin.js"))![0]
  const loaded = new Set<string>()
  const visit = (file: string, kinds: ReadonlyArray<string>) => {
    if (loaded.has(file) || meta.outputs[file] === undefined) return
    loaded.add(file)
    for (const i of meta.outputs[file]!.imports) if (kinds.includes(i.kind)) visit(i.path, ["import-statement"])
  }
  // the entry's one dynamic import is the program itself
  visit(entry, ["import-statement", "dynamic-import"])
  const kib = (files: Iterable<string>) => Math.round([...files].reduce((s, f) => s + meta.outputs[f]!.bytes, 0) / 1024)
  return { files: js.length, totalKiB: kib(js.map(([f]) => f)), startupKiB: kib(loaded) }
}

export const cliStartup = async (): Promise<ScenarioResult> => {
  const started = Date.now()
  // bench what ships: the bundle, built from the sources now
  ChildProcess.execFileSync(process.execPath, [path.join(cliDir, "scripts/bundle.mjs")], { stdio: "pipe" })
  const withTime = fs.existsSync(timeBinary)
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "mcp-auth-bench-cli-"))
  const samples = new Map(commands.map((c) => [c.key, [] as Array<Sample>]))
  const errors: Record<string, string> = {}
  try {
    for (let round = 0; round < warmup + rounds; round++) {
      for (const command of commands) {
        const sample = runOnce(command, withTime, scratch)
        if (round >= warmup) samples.get(command.key)!.push(sample)
      }
    }
  } catch (error) {
    errors.cli = error instanceof Error ? error.message : String(error)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }

  const wall = (key: string) => median(samples.get(key)!.map((s) => s.wallMs))
  const peak = (key: string) => {
    const values = samples.get(key)!.map((s) => s.peakMiB).filter((v): v is number => v !== undefined)
    return values.length === 0 ? null : round1(Math.max(...values))
  }
  const complete = Object.keys(errors).length === 0
  const base = complete ? wall("node") : NaN
  const rows: Array<Row> = commands.map((c) => {
    const target = [
      c.maxRatio === undefined ? undefined : `≤ ${c.maxRatio}×`,
      c.maxPeakMiB === undefined ? undefined : `≤ ${c.maxPeakMiB} MiB`
    ].filter((t) => t !== undefined).join(", ")
    return {
      label: c.label,
      values: complete
        ? {
          wall: Math.round(wall(c.key)),
          ratio: round2(wall(c.key) / base),
          peak: peak(c.key),
          target: target || "–"
        }
        : { wall: null, ratio: null, peak: null, target: target || "–" }
    }
  })
  const ratio = (key: string) => wall(key) / base
  const limited = commands.filter((c) => c.maxRatio !== undefined || c.maxPeakMiB !== undefined)
  // undecided when a run failed or peak memory could not be measured
  const met = !complete || !withTime ?
    null :
    limited.every((c) =>
      (c.maxRatio === undefined || ratio(c.key) <= c.maxRatio) &&
      (c.maxPeakMiB === undefined || (peak(c.key) ?? Infinity) <= c.maxPeakMiB)
    )
  const sizes = bundleSizes()
  return {
    id: "CLI",
    title: "CLI start-up: cold runs of the bundled mcp-auth binary",
    target: "`--version` ≤ 3× and `validate -c <example>` ≤ 5× the wall time of `node -e 0` (medians, same run); " +
      "peak memory of `--version` ≤ 60 MiB",
    columns: [
      { key: "wall", label: "median wall (ms)" },
      { key: "ratio", label: "ratio to node -e 0" },
      { key: "peak", label: "peak RSS (MiB, max of runs)" },
      { key: "target", label: "target" }
    ],
    rows,
    notApplicable: {},
    errors,
    method: [
      `${rounds} counted rounds after ${warmup} warm-up rounds; each round starts every command once, in the order of ` +
      "the table, each as a fresh process (cold start of Node and the binary; the OS file cache is warm).",
      "Wall time is measured in the parent from spawn to exit; the ratio divides medians taken in the same run.",
      withTime
        ? "Peak RSS is GNU time's maximum resident set size (`/usr/bin/time -f %M`) of each run; the table gives " +
          "the largest over the counted runs. GNU time wraps every command alike, `node -e 0` included."
        : "Peak RSS not measured: /usr/bin/time (GNU time) is not installed (apt-get install time).",
      `The binary is \`packages/cli/build/bundle/bin.js\`, rebuilt from the sources before the runs: ${sizes.files} ` +
      `JavaScript files, ${sizes.totalKiB} KiB minified in all. \`mcp-auth --version\` is answered by the entry file ` +
      "(with the version read from package.json at build time) before effect and @effect/cli load; `--help`, and " +
      `every command before it runs, loads ${sizes.startupKiB} KiB (effect, @effect/cli and the command table), so ` +
      "the `--help` row is the start-up of the command line itself. The commands' implementations, the MCP SDK and " +
      "@mcp-auth/testing are loaded only by the commands that use them.",
      `\`validate\` reads \`${example}\` with its environment variables set; it contacts no server.`,
      `Measured ${new Date(started).toISOString()}. Run only this table: \`npx -y pnpm@12.4.2 bench cli\` (or ` +
      "`BENCH_ONLY=cli`); `BENCH_MERGE=1` puts its figures into this file."
    ],
    verdict: complete
      ? {
        ours: `--version ${ratio("version").toFixed(2)}× / ${peak("version") ?? "?"} MiB, --help ${
          ratio("help").toFixed(2)
        }×, validate ${ratio("validate").toFixed(2)}×`,
        met
      }
      : { ours: "error", met: null },
    data: Object.fromEntries([...samples].map(([key, list]) => [key, list])),
    wallSeconds: Math.round((Date.now() - started) / 100) / 10
  }
}

/**
 * Parent side: one child process per (peer, scenario), driven over IPC. A batch starts its children together, waits
 * until every one has set up (`ready`), then tells all of them to go at once, so that module loading never overlaps
 * with measuring.
 *
 * Children run `runner.ts` transpiled to plain JavaScript (`build/runner/`, type stripping only, with the workspace's
 * TypeScript), started as `node --expose-gc build/runner/runner.js`. Under `--import tsx` every module load of a
 * child crosses Node 20's off-thread loader hooks, which doubled each child's start-up (≈ 1 s more CPU per child, for
 * some 60 children on 2 cores). If TypeScript cannot be loaded, children fall back to `--import tsx/esm` on the
 * sources.
 */
import { type ChildProcess, fork } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { ChildMessage, Job, ParentMessage } from "./protocol.js"

const srcDir = path.dirname(fileURLToPath(import.meta.url))
const outDir = path.join(srcDir, "..", "build", "runner")

interface Entry {
  readonly script: string
  readonly execArgv: ReadonlyArray<string>
}

let entry: Entry | undefined

/** Transpiles `src/` into `build/runner/` (once per run). */
export const prepareRunner = async (): Promise<Entry> => {
  if (entry !== undefined) return entry
  try {
    const ts = (await import("typescript")).default
    fs.rmSync(outDir, { recursive: true, force: true })
    const walk = (dir: string): Array<string> =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
        d.isDirectory() ? walk(path.join(dir, d.name)) : d.name.endsWith(".ts") ? [path.join(dir, d.name)] : []
      )
    for (const file of walk(srcDir)) {
      const output = ts.transpileModule(fs.readFileSync(file, "utf8"), {
        fileName: file,
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2022,
          verbatimModuleSyntax: true,
          sourceMap: false
        }
      })
      const target = path.join(outDir, path.relative(srcDir, file)).replace(/\.ts$/, ".js")
      fs.mkdirSync(path.dirname(target), { recursive: true })
      fs.writeFileSync(target, output.outputText)
    }
    entry = { script: path.join(outDir, "runner.js"), execArgv: ["--expose-gc"] }
  } catch {
    entry = { script: path.join(srcDir, "runner.ts"), execArgv: ["--expose-gc", "--import", "tsx/esm"] }
  }
  return entry
}

export interface ChildRun {
  readonly job: Job
  readonly env?: Readonly<Record<string, string>> | undefined
  /** Killed (and reported as an error) after this long; default 90 s. */
  readonly timeoutMs?: number | undefined
  /** Called as each mark arrives (e.g. to read and clear server records between phases). */
  readonly onMark?: ((name: string, at: number) => void) | undefined
}

export interface ChildOutcome {
  readonly result: unknown
  /** Per-repetition measurements (interleaved runs). */
  readonly samples: ReadonlyArray<unknown>
  readonly error: string | undefined
  readonly marks: Readonly<Record<string, number>>
  /** When the child got the go signal (epoch ms). */
  readonly goAt: number
  readonly wallMs: number
}

interface Started {
  readonly ready: Promise<void>
  readonly go: () => void
  readonly stop: () => void
  /** The next sample the child sends. */
  readonly nextSample: () => Promise<unknown>
  readonly done: Promise<ChildOutcome>
}

const start = (run: ChildRun): Started => {
  if (entry === undefined) throw new Error("call prepareRunner() first")
  const child: ChildProcess = fork(entry.script, [], {
    execArgv: [...entry.execArgv],
    env: { ...process.env, ...run.env },
    stdio: ["ignore", "ignore", "pipe", "ipc"]
  })
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-4000)
  })
  const marks: Record<string, number> = {}
  const started = Date.now()
  let goAt = 0
  let result: unknown = undefined
  let error: string | undefined
  const samples: Array<unknown> = []
  let onSample: ((data: unknown) => void) | undefined
  let exited = false
  let markReady: () => void = () => undefined
  const ready = new Promise<void>((resolve) => (markReady = resolve))
  child.on("message", (message: ChildMessage) => {
    if (message.type === "ready") markReady()
    else if (message.type === "mark") {
      marks[message.name] = message.at
      run.onMark?.(message.name, message.at)
    } else if (message.type === "result") result = message.data
    else if (message.type === "sample") {
      samples.push(message.data)
      onSample?.(message.data)
    } else if (message.type === "error") error = message.message
  })
  const timer = setTimeout(() => {
    error ??= `timed out after ${run.timeoutMs ?? 90_000} ms`
    child.kill("SIGKILL")
  }, run.timeoutMs ?? 90_000)
  const done = new Promise<ChildOutcome>((resolve) => {
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      exited = true
      markReady()
      onSample?.(undefined)
      if (result === undefined && error === undefined) {
        error = `exited with ${code ?? signal}${
          stderr.length > 0 ? `: ${stderr.trim().split("\n").slice(-5).join(" | ")}` : ""
        }`
      }
      resolve({ result, error, samples, marks, goAt, wallMs: Date.now() - started })
    })
  })
  child.send({ type: "job", job: run.job } satisfies ParentMessage)
  return {
    ready,
    go: () => {
      if (goAt === 0) goAt = Date.now()
      if (child.connected) child.send({ type: "go" } satisfies ParentMessage)
    },
    stop: () => {
      if (child.connected) child.send({ type: "stop" } satisfies ParentMessage)
    },
    nextSample: () => exited ? Promise.resolve(undefined) : new Promise<unknown>((resolve) => (onSample = resolve)),
    done
  }
}

/** Runs children together behind a start barrier. */
export const runBatch = async (runs: ReadonlyArray<ChildRun>): Promise<Array<ChildOutcome>> => {
  const started = runs.map(start)
  await Promise.all(started.map((s) => s.ready))
  for (const s of started) s.go()
  return Promise.all(started.map((s) => s.done))
}

/**
 * Starts all children together, then runs `reps` rounds in which each child in turn measures one repetition while
 * the others wait, so that load from outside the benchmark hits every child alike. Children must call `sample`.
 */
export const runInterleaved = async (runs: ReadonlyArray<ChildRun>, reps: number): Promise<Array<ChildOutcome>> => {
  const started = runs.map(start)
  await Promise.all(started.map((s) => s.ready))
  for (let rep = 0; rep < reps; rep++) {
    for (const s of started) {
      const next = s.nextSample()
      s.go()
      await next
    }
  }
  for (const s of started) s.stop()
  return Promise.all(started.map((s) => s.done))
}

/** Runs children one after the other (for CPU-bound measurements). */
export const runSequential = async (runs: ReadonlyArray<ChildRun>): Promise<Array<ChildOutcome>> => {
  const outcomes: Array<ChildOutcome> = []
  for (const run of runs) outcomes.push(...await runBatch([run]))
  return outcomes
}

/**
 * The bundled `mcp-auth` binary the CLI tests run. The test command builds it once, before the tests; a test file run
 * alone rebuilds it when it is missing or older than what it is made of. Test files running at once take a lock, so
 * the bundle is never built twice over itself.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root. */
export const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../..")
const cliDir = Path.join(root, "packages/cli")
/** The built binary. */
export const bin = Path.join(cliDir, "build/bundle/bin.js")
const notices = Path.join(cliDir, "build/bundle/THIRD_PARTY_NOTICES.md")
const lock = Path.join(cliDir, "build/.bundle-lock")

/** The newest modification time of the files under a directory (0 when it does not exist). */
const newest = (dir: string): number =>
  Fs.existsSync(dir)
    ? Fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile())
      .reduce((max, e) => Math.max(max, Fs.statSync(Path.join(e.parentPath, e.name)).mtimeMs), 0)
    : 0

const mtime = (file: string) => Fs.existsSync(file) ? Fs.statSync(file).mtimeMs : 0

/** Whether the bundle is older than every package's sources and package.json, the examples and the bundle script. */
const stale = (): boolean => {
  const packages = Path.join(root, "packages")
  const sources = Math.max(
    mtime(Path.join(cliDir, "scripts/bundle.mjs")),
    newest(Path.join(root, "examples/nat-workflows")),
    ...Fs.readdirSync(packages).flatMap((name) => [
      newest(Path.join(packages, name, "src")),
      mtime(Path.join(packages, name, "package.json"))
    ])
  )
  const built = Fs.existsSync(bin) && Fs.existsSync(notices) ? mtime(bin) : 0
  return built <= sources
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/** Builds the bundle if it is stale, one test file at a time (a lock left by a killed run expires after 5 minutes). */
export const ensureBundle = (): void => {
  if (!stale()) return
  Fs.mkdirSync(Path.dirname(lock), { recursive: true })
  for (;;) {
    try {
      Fs.mkdirSync(lock)
      break
    } catch {
      if (Date.now() - mtime(lock) > 300_000) Fs.rmSync(lock, { recursive: true, force: true })
      else sleep(200)
    }
  }
  try {
    // another file may have built it while this one waited
    if (stale()) {
      ChildProcess.execFileSync(process.execPath, [Path.join(cliDir, "scripts/bundle.mjs")], { stdio: "pipe" })
    }
  } finally {
    Fs.rmSync(lock, { recursive: true, force: true })
  }
}

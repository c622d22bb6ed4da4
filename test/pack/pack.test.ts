/**
 * The pack test: every public package packs into a tarball that works outside this repository.
 *
 * Packs the packages with pnpm (which rewrites `workspace:` ranges), checks each tarball and its manifest, installs
 * the tarballs with plain `npm install` into a temporary project under the OS temp directory, and then, from there:
 * imports every public entry point with `import` and `require()`, type-checks a strict consumer against the packed
 * declarations, runs the installed `mcp-auth` bin against the installed test servers, and runs a Promise-API program
 * that must exit by itself. A second project installs only @mcp-auth/cli: what `npm ls --omit=dev` lists, and its bin.
 *
 * Needs the build (`tsc -b` and the CLI bundle, made by the test command first: packing runs no lifecycle scripts) and
 * the npm registry. Writes a summary (file counts and sizes, the `npm ls` output) to test/pack/.last-run.json and
 * .last-npm-ls.txt (git-ignored).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const here = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.resolve(here, "../..")
const fixtures = Path.join(here, "fixtures")

/** The packages the issue names; every other non-private package under packages/ is packed too. */
const EXPECTED_PUBLIC = [
  "@mcp-auth/cli",
  "@mcp-auth/client",
  "@mcp-auth/service-account",
  "@mcp-auth/testing",
  "@mcp-auth/workflow"
]
/** Peers the consumer supplies (one instance each); the install pins them to the workspace's ranges. */
const FRAMEWORK_PEERS = ["effect", "@effect/platform", "@effect/platform-node", "@modelcontextprotocol/sdk"]
/** What a CLI-only install must not pull in: the test servers and their dependencies, the TS loader (optional peers). */
const CLI_ONLY_FORBIDDEN = ["oidc-provider", "node-forge", "express", "zod", "tsx", "@mcp-auth/testing"]

// ---------------------------------------------------------------------------------------------------------------------
// processes

interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** npm and pnpm settings of an outer `pnpm test` must not leak into the temp projects' npm. */
const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const keep = new Set(["npm_config_registry", "npm_config_cache", "npm_config_userconfig", "npm_config_cafile"])
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase()
    if ((lower.startsWith("npm_") || lower.startsWith("pnpm_")) && !keep.has(lower)) continue
    env[key] = value
  }
  return { ...env, NO_COLOR: "1", NODE_OPTIONS: "", ...extra }
}

const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: {
    readonly cwd: string
    readonly env?: NodeJS.ProcessEnv
    readonly timeout: number
    readonly signal?: AbortSignal
  }
): Promise<Run> =>
  new Promise((resolve) => {
    const started = Date.now()
    ChildProcess.execFile(command, args, {
      cwd: options.cwd,
      env: options.env ?? cleanEnv(),
      timeout: options.timeout,
      ...(options.signal ? { signal: options.signal } : {}),
      maxBuffer: 64 * 1024 * 1024
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
      resolve({ code, signal: error?.signal ?? null, stdout, stderr, ms: Date.now() - started })
    })
  })

const ok = (what: string, result: Run): Run => {
  if (result.code !== 0) {
    throw new Error(
      `${what} failed (exit ${result.code}, signal ${result.signal}, ${result.ms} ms)\n` +
        `--- stdout\n${result.stdout.slice(-8000)}\n--- stderr\n${result.stderr.slice(-8000)}`
    )
  }
  return result
}

/** The last stdout line that is a JSON object. */
const lastJson = (stdout: string): any => {
  const lines = stdout.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("{")).reverse()
  for (const line of lines) {
    try {
      return JSON.parse(line)
    } catch {
      // a log line that starts with a brace
    }
  }
  throw new Error(`no JSON line in:\n${stdout}`)
}

const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "") // eslint-disable-line no-control-regex

// ---------------------------------------------------------------------------------------------------------------------
// tarballs

interface Packed {
  readonly name: string
  readonly version: string
  readonly tarball: string
  /** The extracted `package/` directory. */
  readonly dir: string
  readonly files: ReadonlyArray<string>
  readonly size: number
  readonly unpackedSize: number
  readonly manifest: any
  readonly manifestText: string
}

const publicPackages = (): Array<{ readonly name: string; readonly dir: string; readonly manifest: any }> =>
  Fs.readdirSync(Path.join(root, "packages"))
    .map((d) => Path.join(root, "packages", d))
    .filter((d) => Fs.existsSync(Path.join(d, "package.json")))
    .map((dir) => ({ dir, manifest: JSON.parse(Fs.readFileSync(Path.join(dir, "package.json"), "utf8")) }))
    .filter(({ manifest }) => manifest.private !== true)
    .map(({ dir, manifest }) => ({ name: manifest.name as string, dir, manifest }))
    .sort((a, b) => a.name.localeCompare(b.name))

const walk = (dir: string, base = dir): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(Path.join(dir, e.name), base) : [Path.relative(base, Path.join(dir, e.name))]
  )

const extract = async (tarball: string, into: string): Promise<Packed> => {
  Fs.mkdirSync(into, { recursive: true })
  const listing = ok("tar -tzf", await run("tar", ["-tzf", tarball], { cwd: into, timeout: 30_000 }))
  ok("tar -xzf", await run("tar", ["-xzf", tarball, "-C", into], { cwd: into, timeout: 30_000 }))
  const dir = Path.join(into, "package")
  const files = listing.stdout.split("\n").filter((l) => l !== "" && !l.endsWith("/")).map((l) =>
    l.replace(/^package\//, "")
  ).sort()
  const manifestText = Fs.readFileSync(Path.join(dir, "package.json"), "utf8")
  const manifest = JSON.parse(manifestText)
  return {
    name: manifest.name,
    version: manifest.version,
    tarball,
    dir,
    files,
    size: Fs.statSync(tarball).size,
    unpackedSize: walk(dir).reduce((n, f) => n + Fs.statSync(Path.join(dir, f)).size, 0),
    manifest,
    manifestText
  }
}

const binFiles = (p: Packed): Set<string> =>
  new Set(
    Object.values<string>(typeof p.manifest.bin === "string" ? { bin: p.manifest.bin } : p.manifest.bin ?? {}).map((
      b
    ) => Path.posix.normalize(b))
  )

/** Whether the package is a library (exports "."), not only a bin. */
const hasMainEntry = (p: Packed): boolean =>
  p.manifest.exports === undefined ? p.manifest.main !== undefined : typeof p.manifest.exports === "string" ||
    (p.manifest.exports["."] !== undefined && p.manifest.exports["."] !== null)

/** The specifiers a user can import: the keys of `exports`, with `*` patterns expanded over the packed files. */
const entryPoints = (p: Packed): Array<string> => {
  const exports = p.manifest.exports
  if (exports === undefined || typeof exports === "string") return hasMainEntry(p) ? [p.name] : []
  const bins = binFiles(p)
  const found = new Set<string>()
  for (const [key, target] of Object.entries<any>(exports)) {
    if (key === "./package.json" || target === null) continue
    const file = typeof target === "string" ? target : target.default ?? target.import ?? target.require
    if (typeof file !== "string") continue
    if (!key.includes("*")) {
      found.add(key === "." ? p.name : `${p.name}/${key.slice(2)}`)
      continue
    }
    const [prefix, suffix] = Path.posix.normalize(file).split("*") as [string, string]
    for (const f of p.files) {
      if (!f.startsWith(prefix) || !f.endsWith(suffix) || bins.has(f)) continue
      const stem = f.slice(prefix.length, f.length - suffix.length)
      // nested modules (internal/) are not public; ./index is "." again
      if (stem.includes("/") || (stem === "index" && exports["."] != null)) continue
      found.add(`${p.name}/${key.replace("*", stem).slice(2)}`)
    }
  }
  return [...found]
}

/** Bare specifiers a built file imports (static, dynamic, `export … from`; `.d.ts` files too). */
const importedPackages = (source: string): Set<string> => {
  const found = new Set<string>()
  // JSDoc examples mention packages a module does not import
  const text = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)["']([^"'.][^"']*)["']/g
  for (const match of text.matchAll(pattern)) {
    const specifier = match[1]!
    if (specifier.startsWith("node:")) continue
    const parts = specifier.split("/")
    found.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!)
  }
  return found
}

const collectTypesTargets = (
  exports: unknown,
  into: Array<{ key: string; conditions: Array<string>; types?: string }>
) => {
  if (exports === null || typeof exports !== "object") return
  for (const [key, value] of Object.entries(exports as Record<string, unknown>)) {
    if (value !== null && typeof value === "object") {
      const conditions = Object.keys(value)
      const types = (value as Record<string, unknown>).types
      into.push({ key, conditions, ...(typeof types === "string" ? { types } : {}) })
    }
  }
}

/** Emits dist/*.js from the fixtures' *.ts with the temp project's TypeScript, without type information. */
const TRANSPILE = `
import ts from "typescript"
import * as Fs from "node:fs"
Fs.mkdirSync("dist", { recursive: true })
for (const file of Fs.readdirSync(".").filter((f) => f.endsWith(".ts"))) {
  const { outputText } = ts.transpileModule(Fs.readFileSync(file, "utf8"), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true }
  })
  Fs.writeFileSync("dist/" + file.replace(/\\.ts$/, ".js"), outputText)
}
`

// ---------------------------------------------------------------------------------------------------------------------
// the run

const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-pack-"))
const tarballs = Path.join(work, "tarballs")
const consumer = Path.join(work, "consumer")
const cliOnly = Path.join(work, "cli-only")
const packed = new Map<string, Packed>()
const timings: Record<string, number> = {}
let strictCheck: Promise<Run> | undefined
const stopStrictCheck = new AbortController()
let servers: ChildProcess.ChildProcessWithoutNullStreams | undefined
let serverInfo: {
  tokenUrl: string
  mcpUrl: string
  clientId: string
  clientSecret: string
  serviceToken: string
}
let serverLines: Readline.Interface
let importResults: { esm?: any; cjs?: any; cjsStderr?: string } = {}
let npmLsText = ""

/** The range our packages ask of a framework peer (the dependencies test checks they agree). */
const peerRange = (dep: string): string => {
  for (const p of packed.values()) {
    const range = p.manifest.peerDependencies?.[dep]
    if (typeof range === "string") return range
  }
  throw new Error(`no package has ${dep} as a peer`)
}

const nextServerLine = (): Promise<any> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the servers program did not answer within 30 s")), 30_000)
    serverLines.once("line", (line) => {
      clearTimeout(timer)
      resolve(JSON.parse(line))
    })
  })

const serverStats = async (): Promise<{ tokenRequests: number; unauthorized: number; forbidden: number }> => {
  const answer = nextServerLine()
  servers!.stdin.write("stats\n")
  return answer
}

const versionLine = (version: string) => new RegExp(`(^|\\s)${version.replace(/\./g, "\\.")}$`)

/** Runs the `mcp-auth` bin a project installed, with the servers' variables; no secret may appear in its output. */
const mcpAuthIn = (project: string) => async (...args: Array<string>): Promise<string> => {
  const cli = packed.get("@mcp-auth/cli")!
  const binName = typeof cli.manifest.bin === "string" ? cli.name.split("/")[1]! : Object.keys(cli.manifest.bin)[0]!
  expect(binName).toBe("mcp-auth")
  const env = cleanEnv({
    SERVICE_ACCOUNT_CLIENT_ID: serverInfo.clientId,
    SERVICE_ACCOUNT_CLIENT_SECRET: serverInfo.clientSecret,
    SERVICE_ACCOUNT_TOKEN_URL: serverInfo.tokenUrl,
    PACK_MCP_URL: serverInfo.mcpUrl,
    JIRA_SERVICE_TOKEN: serverInfo.serviceToken
  })
  const bin = Path.join(project, "node_modules/.bin", binName)
  const result = ok(`mcp-auth ${args.join(" ")}`, await run(bin, args, { cwd: project, env, timeout: 60_000 }))
  const output = stripAnsi(result.stdout + result.stderr)
  expect(output).not.toContain(serverInfo.clientSecret)
  expect(output).not.toContain(serverInfo.serviceToken)
  return stripAnsi(result.stdout)
}

describe("packed packages, installed outside the repository", () => {
  beforeAll(async () => {
    expect(Path.relative(root, work).startsWith("..")).toBe(true) // the temp project is outside the repo
    const publics = publicPackages()
    for (const p of publics) {
      if (p.manifest.files?.includes("build/esm") && !Fs.existsSync(Path.join(p.dir, "build/esm/index.js"))) {
        throw new Error(`${p.name} is not built: run \`npx tsc -b tsconfig.json\` first (the test command does)`)
      }
    }
    // the CLI ships its bundle: built once by the test command, so packing here runs no prepack (no rebuild while the
    // CLI test runs it)
    if (!Fs.existsSync(Path.join(root, "packages/cli/build/bundle/bin.js"))) {
      throw new Error(
        "@mcp-auth/cli is not bundled: run `node packages/cli/scripts/bundle.mjs` first (the test command does)"
      )
    }

    // pack: pnpm rewrites workspace: ranges; one recursive call for all packages
    let t = Date.now()
    ok(
      "pnpm pack",
      await run("npx", [
        "-y",
        "pnpm@12.4.2",
        "-r",
        ...publics.flatMap((p) => ["--filter", p.name]),
        "pack",
        "--ignore-scripts",
        "--pack-destination",
        tarballs
      ], { cwd: root, env: cleanEnv(), timeout: 180_000 })
    )
    timings.pack = Date.now() - t
    for (const file of Fs.readdirSync(tarballs).filter((f) => f.endsWith(".tgz")).sort()) {
      const p = await extract(Path.join(tarballs, file), Path.join(work, "extracted", file.replace(/\.tgz$/, "")))
      packed.set(p.name, p)
    }

    // one temp project with everything; another with only the CLI (and whatever @mcp-auth packages it requires)
    Fs.mkdirSync(consumer, { recursive: true })
    Fs.mkdirSync(cliOnly, { recursive: true })
    for (const f of Fs.readdirSync(fixtures)) Fs.copyFileSync(Path.join(fixtures, f), Path.join(consumer, f))
    Fs.writeFileSync(
      Path.join(consumer, "package.json"),
      JSON.stringify({ name: "mcp-auth-pack-consumer", private: true, type: "module" }, null, 2)
    )
    Fs.writeFileSync(Path.join(cliOnly, "package.json"), JSON.stringify({ name: "mcp-auth-cli-only", private: true }))
    Fs.copyFileSync(Path.join(fixtures, "workflow.yml"), Path.join(cliOnly, "workflow.yml"))
    const npmFlags = ["--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts", "--loglevel=error"]
    const cliClosure = new Set<string>(["@mcp-auth/cli"])
    for (let grew = true; grew;) {
      grew = false
      for (const name of [...cliClosure]) {
        const m = packed.get(name)?.manifest ?? {}
        const required = [
          ...Object.keys(m.dependencies ?? {}),
          ...Object.keys(m.peerDependencies ?? {}).filter((d) => m.peerDependenciesMeta?.[d]?.optional !== true)
        ]
        for (const d of required) {
          if (d.startsWith("@mcp-auth/") && !cliClosure.has(d)) {
            cliClosure.add(d)
            grew = true
          }
        }
      }
    }
    t = Date.now()
    const [consumerInstall, cliInstall] = await Promise.all([
      run("npm", [
        "install",
        ...npmFlags,
        ...[...packed.values()].map((p) => p.tarball),
        ...FRAMEWORK_PEERS.map((d) => `${d}@${peerRange(d)}`),
        "typescript@~5.9.3",
        "@types/node@^20.19"
      ], { cwd: consumer, timeout: 300_000 }),
      run(
        "npm",
        ["install", ...npmFlags, ...[...cliClosure].map((n) => packed.get(n)!.tarball)],
        {
          cwd: cliOnly,
          timeout: 300_000
        }
      )
    ])
    ok("npm install (consumer)", consumerInstall)
    ok("npm install (CLI only)", cliInstall)
    timings.npmInstall = Date.now() - t

    // the strict type-check (skipLibCheck: false) is slow: it runs while the programs run, awaited by its test
    const tsc = Path.join(consumer, "node_modules/typescript/bin/tsc")
    const strictStarted = Date.now()
    const strictArgs = [tsc, "-p", ".", "--noEmit", "--listFiles"]
    const strictOptions = { cwd: consumer, timeout: 300_000, signal: stopStrictCheck.signal }
    strictCheck = run(process.execPath, strictArgs, strictOptions).then((r) => {
      timings.strictTypeCheck = Date.now() - strictStarted
      return r
    })
    // the programs, transpiled file by file (the strict run above type-checks them)
    t = Date.now()
    ok(
      "transpile",
      await run(process.execPath, ["--input-type=module", "-e", TRANSPILE], { cwd: consumer, timeout: 60_000 })
    )
    timings.emit = Date.now() - t

    // the installed test servers, in their own process
    servers = ChildProcess.spawn(process.execPath, ["dist/servers.js"], { cwd: consumer, env: cleanEnv() })
    let serverStderr = ""
    servers.stderr.on("data", (chunk) => (serverStderr += String(chunk)))
    serverLines = Readline.createInterface({ input: servers.stdout })
    serverInfo = await nextServerLine().catch((error) => {
      throw new Error(`${error.message}\n${serverStderr}`)
    })
  }, 600_000)

  afterAll(async () => {
    if (servers !== undefined && servers.exitCode === null) {
      const exited = new Promise<void>((resolve) => servers!.once("exit", () => resolve()))
      servers.stdin.end()
      const timer = setTimeout(() => servers!.kill(), 15_000)
      await exited
      clearTimeout(timer)
    }
    stopStrictCheck.abort() // if a failure ended the run early
    await strictCheck
    const summary = {
      date: new Date().toISOString(),
      node: process.version,
      packages: [...packed.values()].map((p) => ({
        name: p.name,
        version: p.version,
        files: p.files.length,
        tarballBytes: p.size,
        unpackedBytes: p.unpackedSize
      })),
      requireEsm: importResults.cjs === undefined ? undefined : {
        warnings: importResults.cjs.warnings,
        stderr: importResults.cjsStderr
      },
      timingsMs: timings
    }
    if (packed.size > 0) {
      Fs.writeFileSync(Path.join(here, ".last-run.json"), `${JSON.stringify(summary, null, 2)}\n`)
      process.stdout.write(
        `packed (file count, tarball size, unpacked size):\n${
          summary.packages.map((p) =>
            `  ${p.name}@${p.version}: ${p.files} files, ${(p.tarballBytes / 1024).toFixed(1)} kB, ` +
            `${(p.unpackedBytes / 1024).toFixed(1)} kB unpacked`
          ).join("\n")
        }\n`
      )
    }
    if (npmLsText !== "") Fs.writeFileSync(Path.join(here, ".last-npm-ls.txt"), npmLsText)
    Fs.rmSync(work, { recursive: true, force: true })
  }, 60_000)

  it("packs every public package", () => {
    expect([...packed.keys()].sort()).toEqual(publicPackages().map((p) => p.name))
    expect([...packed.keys()]).toEqual(expect.arrayContaining(EXPECTED_PUBLIC))
  })

  it("each tarball: compiled JS, declarations with maps to shipped sources, README, no tests or build info", () => {
    for (const p of packed.values()) {
      const has = (f: string) => p.files.includes(f)
      expect(p.files, p.name).toEqual(expect.arrayContaining(["package.json", "README.md"]))
      if (hasMainEntry(p)) {
        expect(p.files, p.name).toEqual(
          expect.arrayContaining(["build/esm/index.js", "build/esm/index.d.ts", "build/esm/index.d.ts.map"])
        )
      }
      expect(p.files.filter((f) => /(^|\/)(test|tests|__tests__)\//.test(f) || /\.test\.[cm]?[jt]s$/.test(f)), p.name)
        .toEqual([])
      expect(p.files.filter((f) => f.includes("tsbuildinfo") || f.includes("node_modules/")), p.name).toEqual([])
      // every module has its declaration and declaration map; every map points at a source that is in the tarball
      for (const js of p.files.filter((f) => /^build\/esm\/.+\.js$/.test(f))) {
        const base = js.replace(/\.js$/, "")
        expect(has(`${base}.d.ts`), `${p.name}: ${base}.d.ts`).toBe(true)
        expect(has(`${base}.d.ts.map`), `${p.name}: ${base}.d.ts.map`).toBe(true)
        const map = JSON.parse(Fs.readFileSync(Path.join(p.dir, `${base}.d.ts.map`), "utf8"))
        for (const source of map.sources as Array<string>) {
          const target = Path.posix.normalize(Path.posix.join(Path.posix.dirname(js), source))
          expect(has(target), `${p.name}: ${base}.d.ts.map → ${target}`).toBe(true)
        }
      }
    }
  })

  it("packed manifests: no workspace: ranges, types exports point at .d.ts, publishing fields, bin in the tarball", () => {
    for (const p of packed.values()) {
      const m = p.manifest
      expect(p.manifestText, p.name).not.toContain("workspace:")
      expect(m.license, p.name).toEqual(expect.any(String))
      expect(m.repository?.url, p.name).toEqual(expect.any(String))
      expect(m.keywords?.length, p.name).toBeGreaterThan(0)
      expect(m.engines?.node, p.name).toEqual(expect.any(String))
      expect(typeof m.sideEffects === "boolean" || Array.isArray(m.sideEffects), `${p.name}: sideEffects`).toBe(true)
      expect(m.files, p.name).toEqual(expect.any(Array))
      expect(m.type, p.name).toBe("module")
      for (const field of ["main", "module", "types", "typings"]) {
        if (m[field] !== undefined) {
          expect(p.files, `${p.name}: ${field}`).toContain(Path.posix.normalize(m[field]))
          expect(m[field], `${p.name}: ${field}`).not.toMatch(/(^|\/)src\//)
        }
      }
      const targets: Array<{ key: string; conditions: Array<string>; types?: string }> = []
      collectTypesTargets(m.exports, targets)
      // a library exports ".", a bin-only package (the bundled CLI) may export nothing but package.json
      if (m.bin === undefined) expect(targets.map((t) => t.key), p.name).toContain(".")
      for (const target of targets) {
        // "types" first (TypeScript takes the first condition that matches), pointing at a declaration file
        expect(target.conditions[0], `${p.name} ${target.key}`).toBe("types")
        expect(target.types, `${p.name} ${target.key}`).toMatch(/\.d\.ts$/)
        expect(target.types, `${p.name} ${target.key}`).not.toMatch(/(^|\/)src\//)
        if (!target.types!.includes("*")) expect(p.files).toContain(Path.posix.normalize(target.types!))
      }
      // our own packages at the packed versions
      for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
        for (const [dep, range] of Object.entries<string>(m[field] ?? {})) {
          const sibling = packed.get(dep)
          if (sibling !== undefined) {
            expect([`^${sibling.version}`, `~${sibling.version}`, sibling.version], `${p.name} ${field} ${dep}`)
              .toContain(range)
          }
        }
      }
      if (m.bin !== undefined) {
        for (const bin of Object.values<string>(typeof m.bin === "string" ? { x: m.bin } : m.bin)) {
          expect(p.files, `${p.name} bin`).toContain(Path.posix.normalize(bin))
          expect(Fs.readFileSync(Path.join(p.dir, bin), "utf8").startsWith("#!/usr/bin/env node"), `${p.name} bin`)
            .toBe(true)
        }
      }
      // the bundled CLI inlines third-party code: their licences ship with it
      if (p.name === "@mcp-auth/cli") expect(p.files).toContain("build/bundle/THIRD_PARTY_NOTICES.md")
    }
  })

  it("dependencies: everything the built files import is declared; the frameworks are peers with one range", () => {
    const peerRanges = new Map<string, Set<string>>()
    for (const p of packed.values()) {
      const m = p.manifest
      const declared = new Set([
        p.name,
        ...Object.keys(m.dependencies ?? {}),
        ...Object.keys(m.peerDependencies ?? {}),
        ...Object.keys(m.optionalDependencies ?? {})
      ])
      const imported = new Set<string>()
      for (const f of p.files.filter((f) => /^build\/esm\/.+\.(js|d\.ts)$/.test(f))) {
        for (const dep of importedPackages(Fs.readFileSync(Path.join(p.dir, f), "utf8"))) imported.add(dep)
      }
      expect([...imported].filter((d) => !declared.has(d)), `${p.name}: imported but not declared`).toEqual([])
      for (const dep of FRAMEWORK_PEERS.filter((d) => imported.has(d))) {
        // a library must share the user's effect / SDK instance; an application (a package with a bin) may own them
        if (m.bin === undefined) {
          expect(m.peerDependencies?.[dep], `${p.name}: ${dep} as a peer`).toEqual(expect.any(String))
          expect(m.dependencies?.[dep], `${p.name}: ${dep} not a dependency`).toBeUndefined()
        }
        const range = m.peerDependencies?.[dep] ?? m.dependencies?.[dep]
        peerRanges.set(dep, (peerRanges.get(dep) ?? new Set()).add(range))
        // the range the package's own tests run against
        if (m.devDependencies?.[dep] !== undefined) expect(range, `${p.name}: ${dep}`).toBe(m.devDependencies[dep])
      }
    }
    // one range per framework across our packages: one instance in the user's tree
    for (const [dep, ranges] of peerRanges) expect([...ranges], dep).toHaveLength(1)
  })

  it("the temp project installed our packages from the tarballs", () => {
    const lock = JSON.parse(Fs.readFileSync(Path.join(consumer, "package-lock.json"), "utf8"))
    for (const name of packed.keys()) {
      expect(lock.packages[`node_modules/${name}`]?.resolved, name).toMatch(/^file:.*\.tgz$/)
    }
  })

  it("imports every public entry point with import and with require() (require(esm), no flags)", async () => {
    const entries = [...packed.values()].flatMap(entryPoints)
    expect(entries).toEqual(expect.arrayContaining([...packed.values()].filter(hasMainEntry).map((p) => p.name)))
    expect(entries).toContain("@mcp-auth/client")
    const blocked = [...packed.values()].flatMap((p) => {
      const internal = p.files.find((f) => /^build\/esm\/internal\/[^/]+\.js$/.test(f))
      return internal === undefined ? [] : [`${p.name}/internal/${Path.posix.basename(internal, ".js")}`]
    })
    const args = [JSON.stringify(entries), JSON.stringify(blocked)]
    const imports = (file: string) => run(process.execPath, [file, ...args], { cwd: consumer, timeout: 60_000 })
    const [esmRun, cjsRun] = await Promise.all([imports("imports.mjs"), imports("imports.cjs")])
    const esm = ok("imports.mjs", esmRun)
    const cjs = ok("imports.cjs", cjsRun)
    importResults = { esm: lastJson(esm.stdout), cjs: lastJson(cjs.stdout), cjsStderr: cjs.stderr }
    for (const result of [importResults.esm, importResults.cjs]) {
      expect(Object.keys(result.exports).sort()).toEqual([...entries].sort())
      // a module may export only types (TestServer); every package's main entry exports values
      for (const entry of packed.keys()) {
        if (entries.includes(entry)) expect(result.exports[entry].length, entry).toBeGreaterThan(0)
      }
      for (const specifier of blocked) {
        expect(result.refused[specifier], specifier).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
      }
      expect(result.configError).toBe("ConfigurationError")
    }
    // require() sees the same module namespaces as import
    expect(importResults.cjs.exports).toEqual(importResults.esm.exports)
    // Node ≥ 20.19 (and 22.12) loads ES modules with require() unflagged; any warning is recorded in .last-run.json
    for (const warning of importResults.cjs.warnings) expect(warning).toMatch(/^ExperimentalWarning: /)
  }, 120_000)

  it(
    "the installed mcp-auth bin: --version, --help, validate, tools list against the installed test servers",
    async () => {
      const cli = packed.get("@mcp-auth/cli")!
      const mcpAuth = mcpAuthIn(consumer)
      expect((await mcpAuth("--version")).trim()).toMatch(versionLine(cli.version))
      const help = await mcpAuth("--help")
      for (const command of ["validate", "token", "tools list", "tools call"]) expect(help).toContain(command)

      const before = await serverStats()
      const validate = await mcpAuth("validate", "-c", "workflow.yml")
      expect(validate).toContain("valid")
      expect(validate).toContain("mcp_jira")
      expect((await serverStats()).tokenRequests).toBe(before.tokenRequests) // validate fetches no token

      const tools = await mcpAuth("tools", "list", "-c", "workflow.yml")
      expect(tools).toContain("mcp_jira.echo")
      expect(tools).toContain("mcp_jira.jira_get_issue")
      const after = await serverStats()
      expect(after.tokenRequests).toBe(before.tokenRequests + 1)
      expect(after.unauthorized).toBe(before.unauthorized)
      expect(after.forbidden).toBe(before.forbidden)
    },
    120_000
  )

  it("the strict consumer runs: Effect layers, AuthHeaders, catchTags, the workflow loader", async () => {
    const result = ok(
      "node dist/consumer.js",
      await run(process.execPath, ["dist/consumer.js"], {
        cwd: consumer,
        env: cleanEnv({
          SERVICE_ACCOUNT_CLIENT_ID: serverInfo.clientId,
          SERVICE_ACCOUNT_CLIENT_SECRET: serverInfo.clientSecret,
          SERVICE_ACCOUNT_TOKEN_URL: serverInfo.tokenUrl,
          PACK_MCP_URL: serverInfo.mcpUrl,
          JIRA_SERVICE_TOKEN: serverInfo.serviceToken
        }),
        timeout: 60_000
      })
    )
    const output = lastJson(result.stdout)
    expect(output.good).toBe("ok Authorization,X-Jira-Service-Token bearer=true fresh")
    expect(output.wrongSecret).toBe("InvalidCredentialsError 401")
    expect(output.workflow.providers).toEqual(["jira_service_account"])
    expect(output.workflow.tools).toEqual(expect.arrayContaining(["echo", "jira_get_issue"]))
    expect(output.workflow.issue).toContain("OCSW-2116")
    expect(output.promiseApi).toBe("ConfigurationError")
  }, 120_000)

  it(
    "a Promise-API program: 100 concurrent getToken() → 1 token request, an SDK Client over auth.fetch, exits by itself",
    async () => {
      // no process.exit() in the program: if close() leaves anything running, the timeout kills it and this fails
      const result = await run(process.execPath, ["dist/promise.js"], { cwd: consumer, timeout: 90_000 })
      expect(result.signal, `killed: the process did not exit by itself\n${result.stdout}\n${result.stderr}`).toBeNull()
      ok("node dist/promise.js", result)
      const output = lastJson(result.stdout)
      expect(output).toMatchObject({
        tokens: 100,
        distinctTokens: 1,
        tokenType: "Bearer",
        tokenRequestsAfterGetToken: 1,
        tokenRequests: 1,
        unauthorized: 0,
        echo: "hello from the packed tarballs"
      })
      expect(output.tools).toEqual(expect.arrayContaining(["echo"]))
    },
    120_000
  )

  it(
    "a CLI-only install: no test servers, express, zod or TS loader in npm ls --omit=dev --all; the bin works",
    async () => {
      const ls = (...extra: Array<string>) =>
        run("npm", ["ls", "--omit=dev", "--all", ...extra], { cwd: cliOnly, timeout: 60_000 })
      const [text, jsonRun] = await Promise.all([ls(), ls("--json")])
      npmLsText = text.stdout
      const json = ok("npm ls --json", jsonRun)
      const installed: Array<{ name: string; path: Array<string> }> = []
      const visit = (node: any, path: Array<string>) => {
        for (const [name, child] of Object.entries<any>(node.dependencies ?? {})) {
          if (child.version === undefined) continue // an unmet optional peer: listed, not installed
          installed.push({ name, path: [...path, name] })
          visit(child, [...path, name])
        }
      }
      visit(JSON.parse(json.stdout), [])
      expect(installed.map((d) => d.name)).toContain("@mcp-auth/cli")
      expect(installed.filter((d) => CLI_ONLY_FORBIDDEN.includes(d.name)).map((d) => d.path.join(" > "))).toEqual([])

      // and the bin works there, with nothing else installed next to it
      const mcpAuth = mcpAuthIn(cliOnly)
      expect((await mcpAuth("--version")).trim()).toMatch(versionLine(packed.get("@mcp-auth/cli")!.version))
      const before = await serverStats()
      expect(await mcpAuth("tools", "list", "-c", "workflow.yml")).toContain("mcp_jira.jira_get_issue")
      expect((await serverStats()).tokenRequests).toBe(before.tokenRequests + 1)
    },
    120_000
  )

  it(
    "a strict TypeScript consumer type-checks against the packed declarations only (skipLibCheck: false)",
    async () => {
      const config = Fs.readFileSync(Path.join(consumer, "tsconfig.json"), "utf8")
      expect(config).toMatch(/"skipLibCheck": false/)
      expect(config).toMatch(/"exactOptionalPropertyTypes": true/)
      const result = await strictCheck!
      expect(result.code, `tsc --noEmit:\n${result.stdout}\n${result.stderr}`).toBe(0)
      // what TypeScript loaded: nothing from the repository; our packages through their build/esm declarations only
      const loaded = result.stdout.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("/"))
      expect(loaded.filter((f) => f.startsWith(`${root}/`)), "files from the repository").toEqual([])
      const ours = loaded.filter((f) => f.includes("/node_modules/@mcp-auth/"))
      expect(ours.length).toBeGreaterThan(0)
      expect(ours.filter((f) => !/\/node_modules\/@mcp-auth\/[a-z-]+\/build\/esm\/.+\.d\.ts$/.test(f))).toEqual([])
    },
    300_000
  )
})

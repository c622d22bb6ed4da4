/**
 * Bundles the `mcp-auth` executable into build/bundle (what `bin` points at and what the package ships): one
 * minified ESM entry plus the chunks loaded when a command runs, with linked source maps into the TypeScript sources.
 * The workspace packages are read from their sources; @mcp-auth/testing (the demo's servers), tsx (TypeScript
 * service-token modules) and ioredis (shared_cache) stay external, as optional peer dependencies. The examples the demo runs are copied next
 * to the bundle, their service-token function compiled to JavaScript so that the demo does not need tsx. The
 * licences of the inlined third-party packages are written to build/bundle/THIRD_PARTY_NOTICES.md.
 */
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import process from "node:process"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"

const cli = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const packages = Path.dirname(cli)
const root = Path.dirname(packages)
const outdir = Path.join(cli, "build/bundle")
const external = ["@mcp-auth/testing", "tsx", "tsx/*", "ioredis"]

const manifests = Fs.readdirSync(packages)
  .map((dir) => Path.join(packages, dir, "package.json"))
  .filter((file) => Fs.existsSync(file))
  .map((file) => ({ dir: Path.dirname(file), ...JSON.parse(Fs.readFileSync(file, "utf8")) }))

/** `@mcp-auth/x` and `@mcp-auth/x/Module` resolve to `packages/x/src/{index,Module}.ts`, as in the tests. */
const workspaceSources = {
  name: "workspace-sources",
  setup(build) {
    build.onResolve({ filter: /^@mcp-auth\// }, ({ path }) => {
      if (external.includes(path) || path.startsWith("@mcp-auth/testing/")) return { path, external: true }
      const [, name, module] = /^(@mcp-auth\/[a-z-]+)(?:\/(.+))?$/.exec(path) ?? []
      const manifest = manifests.find((m) => m.name === name)
      if (manifest === undefined || module?.startsWith("internal/")) return undefined
      return { path: Path.join(manifest.dir, "src", `${module ?? "index"}.ts`) }
    })
  }
}

/**
 * Versions are read from package.json files at run time by the sources, which the bundle cannot do (the workspace
 * packages are not installed beside it): the CLI's `internal/versions.ts` and any package's `internal/version.ts`
 * get the versions read from the package.json files now.
 */
const versions = {
  name: "versions",
  setup(build) {
    build.onLoad({ filter: /[\\/]cli[\\/]src[\\/]internal[\\/]versions\.ts$/ }, () => {
      const table = Object.fromEntries(manifests.map((m) => [m.name, m.version]))
      return {
        loader: "ts",
        contents: `const versions: Record<string, string> = ${JSON.stringify(table)}\n` +
          `export const version = (pkg: string): string => versions[pkg]!\n`
      }
    })
    build.onLoad({ filter: /[\\/]src[\\/]internal[\\/]version\.ts$/ }, ({ path }) => {
      const manifest = manifests.find((m) => path.startsWith(Path.join(m.dir, "src") + Path.sep))
      if (manifest === undefined) return undefined
      return { loader: "ts", contents: `export const version: string = ${JSON.stringify(manifest.version)}\n` }
    })
  }
}

/** A bundled module that still reads a workspace package.json at run time would fail where the CLI is installed. */
const checkNoWorkspaceReads = (dir) => {
  for (const file of Fs.readdirSync(dir).filter((f) => f.endsWith(".js"))) {
    const found = /@mcp-auth\/(?!testing\b)[a-z-]+\/package\.json/.exec(Fs.readFileSync(Path.join(dir, file), "utf8"))
    if (found !== null) throw new Error(`${file} reads ${found[0]} at run time: inline it in scripts/bundle.mjs`)
  }
}

const copyExamples = async (into) => {
  const from = Path.join(root, "examples/nat-workflows")
  const to = Path.join(into, "examples/nat-workflows")
  Fs.mkdirSync(Path.join(to, "scripts"), { recursive: true })
  for (const file of Fs.readdirSync(from).filter((f) => f.endsWith(".yml"))) {
    const text = Fs.readFileSync(Path.join(from, file), "utf8")
    Fs.writeFileSync(Path.join(to, file), text.replace(/(function: "\.\/scripts\/[\w-]+)\.ts#/g, "$1.js#"))
  }
  for (const file of Fs.readdirSync(Path.join(from, "scripts")).filter((f) => f.endsWith(".ts"))) {
    const source = Fs.readFileSync(Path.join(from, "scripts", file), "utf8")
    const { code } = await esbuild.transform(source, { loader: "ts", format: "esm", target: "node20" })
    Fs.writeFileSync(Path.join(to, "scripts", file.replace(/\.ts$/, ".js")), code)
  }
}

/**
 * The third-party packages inlined in the bundle, with their licence texts: esbuild keeps only `/*! *\/` comments, so
 * the MIT/ISC/Apache notices of effect, the MCP SDK, undici, yaml, … ship in build/bundle/THIRD_PARTY_NOTICES.md.
 * A package is the directory after the last `node_modules/` of an input path (pnpm's layout included:
 * node_modules/.pnpm/<x>/node_modules/<name>/…) with at least one byte in an output.
 */
const writeNotices = (into, metafile) => {
  const dirs = new Set()
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      if (bytesInOutput === 0) continue
      const parts = Path.resolve(cli, input).split(Path.sep)
      const at = parts.lastIndexOf("node_modules")
      if (at === -1) continue
      const length = parts[at + 1]?.startsWith("@") ? 2 : 1
      dirs.add(parts.slice(0, at + 1 + length).join(Path.sep))
    }
  }
  const entries = [...dirs].map((dir) => {
    const manifest = JSON.parse(Fs.readFileSync(Path.join(dir, "package.json"), "utf8"))
    const license = typeof manifest.license === "string"
      ? manifest.license
      : manifest.license?.type ?? manifest.licenses?.map((l) => l.type ?? l).join(" OR ") ?? "UNKNOWN"
    const texts = Fs.readdirSync(dir).filter((f) => /^(licen[cs]e|copying|notice)([.-].*)?$/i.test(f)).sort()
      .map((f) => Fs.readFileSync(Path.join(dir, f), "utf8").trim())
    return { name: manifest.name, version: manifest.version, license, texts }
  }).sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version))
  const text = [
    "# Third-party notices",
    "",
    "The `mcp-auth` bundle (build/bundle) includes code from the following npm packages, under their licences.",
    ...entries.flatMap(({ license, name, texts, version }) => [
      "",
      `## ${name}@${version}`,
      "",
      `License: ${license}`,
      ...texts.flatMap((t) => {
        const fence = "`".repeat(Math.max(3, ...(t.match(/`+/g) ?? []).map((run) => run.length + 1)))
        return ["", `${fence}text`, t, fence]
      })
    ]),
    ""
  ].join("\n")
  Fs.writeFileSync(Path.join(into, "THIRD_PARTY_NOTICES.md"), text)
}

/**
 * Replaces build/bundle with the staging folder. Two builds may run at once (a test and `pnpm pack`, say): the swap
 * is serialised by a lock directory (mkdir is atomic; a lock older than a minute is a crashed build's and is taken
 * over), and if putting the new folder in place fails, the previous one is put back, so build/bundle is never left
 * missing by an error.
 */
const swapIn = async (staging) => {
  const lock = Path.join(Path.dirname(outdir), ".bundle.lock")
  for (let attempt = 0;; attempt++) {
    try {
      Fs.mkdirSync(lock)
      break
    } catch (error) {
      if (error.code !== "EEXIST" || attempt >= 600) throw error
      try {
        if (Date.now() - Fs.statSync(lock).mtimeMs > 60_000) Fs.rmSync(lock, { recursive: true, force: true })
      } catch {
        // released meanwhile
      }
      await sleep(100)
    }
  }
  try {
    const old = `${staging}-old`
    const had = Fs.existsSync(outdir)
    if (had) Fs.renameSync(outdir, old)
    try {
      Fs.renameSync(staging, outdir)
    } catch (error) {
      if (had) Fs.renameSync(old, outdir)
      throw error
    }
    Fs.rmSync(old, { recursive: true, force: true })
  } finally {
    Fs.rmSync(lock, { recursive: true, force: true })
  }
}

/**
 * Builds into a fresh sibling folder, then swaps it in, so a binary running from build/bundle while another process
 * rebuilds (a test, the pack step, the benchmark) finds complete files, and concurrent builds do not collide.
 */
export const bundle = async () => {
  Fs.mkdirSync(Path.dirname(outdir), { recursive: true })
  const staging = Fs.mkdtempSync(Path.join(Path.dirname(outdir), ".bundle-"))
  try {
    const result = await esbuild.build({
      absWorkingDir: cli,
      // the compiler settings of the TypeScript build, for every package's sources
      tsconfig: Path.join(cli, "tsconfig.src.json"),
      entryPoints: { bin: "src/bin.ts" },
      outdir: staging,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      target: "node20",
      minify: true,
      sourcemap: "linked",
      sourcesContent: false,
      legalComments: "linked",
      chunkNames: "[name]-[hash]",
      external,
      plugins: [workspaceSources, versions],
      // bundled CommonJS modules require Node's built-ins
      banner: {
        js:
          "import{createRequire as __mcpAuthRequire}from\"node:module\";const require=__mcpAuthRequire(import.meta.url);"
      },
      metafile: true,
      logLevel: "warning"
    })
    checkNoWorkspaceReads(staging)
    await copyExamples(staging)
    Fs.chmodSync(Path.join(staging, "bin.js"), 0o755)
    // output paths as if built in place (the benchmark reads them)
    const metafile = JSON.parse(JSON.stringify(result.metafile).replaceAll(Path.relative(cli, staging), "build/bundle"))
    writeNotices(staging, result.metafile)
    await swapIn(staging)
    const metaFile = Path.join(cli, "build/bundle-meta.json")
    Fs.writeFileSync(`${metaFile}.${process.pid}`, JSON.stringify(metafile))
    Fs.renameSync(`${metaFile}.${process.pid}`, metaFile)
    return { ...result, metafile }
  } finally {
    Fs.rmSync(staging, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { metafile } = await bundle()
  const js = Object.entries(metafile.outputs).filter(([file]) => file.endsWith(".js"))
  const total = js.reduce((sum, [, output]) => sum + output.bytes, 0)
  process.stdout.write(
    `mcp-auth bundle: ${js.length} files, ${(total / 1024).toFixed(0)} KiB in ${Path.relative(root, outdir)}\n`
  )
}

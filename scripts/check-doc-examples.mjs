/**
 * Type-checks every ```ts example in the doc comments of the public packages' sources (`src/**`, `src/internal`
 * excluded) and in their README.md files. Each example is written as its own module to
 * `packages/<name>/build/doc-examples/` (git-ignored), so it resolves third-party imports like a user of that package;
 * `@mcp-auth/*` resolves to the workspace sources through the `paths` of `tsconfig.docs.json` (internal modules are
 * refused, as the packages' `exports` refuse them). One strict TypeScript program checks them all; an error is
 * reported at the line of the comment or README it comes from. Exits with 1 on any error.
 *
 * Usage: node scripts/check-doc-examples.mjs [--verbose]
 */
import * as fs from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const packages = ["service-account", "client", "workflow", "cli", "testing"]
const verbose = process.argv.includes("--verbose")
const out = (line) => process.stdout.write(`${line}\n`)
const err = (line) => process.stderr.write(`${line}\n`)

const sourceFiles = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "internal" ? [] : sourceFiles(file)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [file] : []
  })

/** The ```ts blocks of a markdown file, with the 1-based line of their first code line. */
const markdownExamplesOf = (file) => {
  const examples = []
  let block
  fs.readFileSync(file, "utf8").split("\n").forEach((line, index) => {
    if (block === undefined) {
      if (/^```(ts|typescript)\s*$/.test(line.trim())) block = { line: index + 2, code: [] }
    } else if (line.trim() === "```") {
      examples.push(block)
      block = undefined
    } else {
      block.code.push(line)
    }
  })
  return examples
}

/** The ```ts blocks of the `/** … *\/` comments of one file, with the 1-based source line of their first code line. */
const examplesOf = (file) => {
  const lines = fs.readFileSync(file, "utf8").split("\n")
  const examples = []
  let inComment = false
  let block
  lines.forEach((raw, index) => {
    if (!inComment) {
      if (/^\s*\/\*\*/.test(raw) && !/\*\/\s*$/.test(raw)) inComment = true
      return
    }
    if (/\*\/\s*$/.test(raw)) {
      if (block !== undefined) throw new Error(`${path.relative(root, file)}:${block.line - 1}: unclosed code fence`)
      inComment = false
      return
    }
    const text = raw.replace(/^\s*\* ?/, "")
    if (block === undefined) {
      const fence = /^```(ts|typescript)\s*$/.exec(text.trim())
      if (fence !== null) block = { line: index + 2, code: [] }
    } else if (text.trim() === "```") {
      examples.push(block)
      block = undefined
    } else {
      block.code.push(text)
    }
  })
  return examples
}

const configFile = path.join(root, "tsconfig.docs.json")
const parsedConfig = ts.getParsedCommandLineOfConfigFile(configFile, {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => {
    throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
  }
})
const options = {
  ...parsedConfig.options,
  noEmit: true,
  // an example may declare a value only to show its type
  noUnusedLocals: false,
  noUnusedParameters: false
}

/** example file → { source, line } */
const origins = new Map()
const problems = []
for (const pkg of packages) {
  const dir = path.join(root, "packages", pkg, "build", "doc-examples")
  fs.rmSync(dir, { recursive: true, force: true })
  const readme = path.join(root, "packages", pkg, "README.md")
  const files = [
    ...sourceFiles(path.join(root, "packages", pkg, "src")).map((file) => [file, examplesOf(file)]),
    ...(fs.existsSync(readme) ? [[readme, markdownExamplesOf(readme)]] : [])
  ]
  for (const [file, examples] of files) {
    const source = path.relative(root, file)
    for (const example of examples) {
      const code = example.code.join("\n")
      const internal = /from\s+["']@mcp-auth\/[a-z-]+\/internal\//.exec(code)
      if (internal !== null) {
        problems.push(`${source}:${example.line}: examples must not import internal modules (${internal[0]})`)
      }
      const name = `${path.basename(file).replace(/\.(ts|md)$/, "")}.L${example.line}.ts`
      fs.mkdirSync(dir, { recursive: true })
      const target = path.join(dir, name)
      fs.writeFileSync(target, `${code}\n`)
      origins.set(path.resolve(target), { source, line: example.line })
    }
  }
}

const program = ts.createProgram({ rootNames: [...origins.keys()], options })
// only the examples: the sources are type-checked by `tsc -b`, and checking them here again would double the time
const diagnostics = [
  ...program.getOptionsDiagnostics(),
  ...program.getGlobalDiagnostics(),
  ...[...origins.keys()].flatMap((file) => {
    const sourceFile = program.getSourceFile(file)
    return [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)]
  })
]
for (const d of diagnostics) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, "\n")
  if (d.file === undefined) {
    problems.push(`TS${d.code}: ${message}`)
    continue
  }
  const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0)
  const origin = origins.get(path.resolve(d.file.fileName))
  problems.push(
    origin === undefined
      ? `${path.relative(root, d.file.fileName)}:${line + 1}: TS${d.code}: ${message}`
      : `${origin.source}:${origin.line + line}: TS${d.code} in the doc example at line ${origin.line}: ${message}`
  )
}

if (verbose) {
  for (const [file, origin] of origins) out(`${origin.source}:${origin.line} -> ${path.relative(root, file)}`)
}
if (problems.length > 0) {
  for (const problem of problems) err(problem)
  err(`check-doc-examples: ${problems.length} error(s) in ${origins.size} doc examples`)
  process.exit(1)
}
out(`check-doc-examples: ${origins.size} doc examples type-check`)

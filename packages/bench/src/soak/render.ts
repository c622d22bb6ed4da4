/**
 * Re-renders the soak's terminal table and its `BENCHMARKS.md` block from `results/soak.json` (or the file given as
 * the first argument), without running the soak: `node --import tsx src/soak/render.ts [results.json]`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type SoakResults, spliceBlock, terminal } from "./report.js"

const benchDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const source = process.argv[2] ?? path.join(benchDir, "results", "soak.json")
const results = JSON.parse(fs.readFileSync(source, "utf8")) as SoakResults
process.stdout.write(terminal(results))
const mdPath = path.join(benchDir, "BENCHMARKS.md")
fs.writeFileSync(mdPath, spliceBlock(fs.existsSync(mdPath) ? fs.readFileSync(mdPath, "utf8") : "", results))
process.stdout.write(`\nsoak block: ${mdPath}\n`)

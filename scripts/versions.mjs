/**
 * Writes `src/internal/version.ts` of the packages that report their own version at run time (the MCP client's
 * `clientInfo`, the test MCP server's `serverInfo`) from their package.json, the one version source. A constant,
 * not a read of package.json at run time, so that the packages still load when a user bundles them. Run by
 * `changeset-version` after the bump; `test/versions.test.ts` fails when a file and its package.json disagree.
 *
 * Usage: node scripts/versions.mjs
 */
import * as fs from "node:fs"
import * as path from "node:path"
import process from "node:process"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The packages with a generated version module. */
export const packages = ["client", "testing"]

/** The module text for a version. */
export const versionModule = (version) =>
  `/**
 * This package's version, generated from its package.json by scripts/versions.mjs (run by \`changeset-version\`).
 * Do not edit: test/versions.test.ts checks that it matches package.json.
 *
 * @internal
 */
export const version: string = ${JSON.stringify(version)}
`

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const name of packages) {
    const dir = path.join(root, "packages", name)
    const { version } = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
    fs.writeFileSync(path.join(dir, "src/internal/version.ts"), versionModule(version))
  }
}

#!/usr/bin/env node
/**
 * The `mcp-auth` executable. `mcp-auth --version` is answered here, before the command table (effect, @effect/cli)
 * is loaded, with the same output; every other invocation loads the program. With `--verbose`, stack traces point
 * into the TypeScript sources: source maps are switched on before the program is loaded.
 *
 * @since 0.1.0
 */
import { version } from "./internal/versions.js"

const args = process.argv.slice(2)

if (args.length === 1 && args[0] === "--version") {
  // as @effect/cli prints it: the version as a paragraph
  process.stdout.write(`${version("@mcp-auth/cli")}\n\n`)
} else {
  if (args.includes("--verbose")) process.setSourceMapsEnabled(true)
  await import("./internal/main.js")
}

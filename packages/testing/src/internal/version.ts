import { createRequire } from "node:module"

/**
 * This package's version, read from its package.json (the one version source), through the package's own name so it
 * resolves the same from `src` (tests) and from `build/esm` (installed).
 *
 * @internal
 */
export const version: string =
  (createRequire(import.meta.url)("@mcp-auth/testing/package.json") as { readonly version: string }).version

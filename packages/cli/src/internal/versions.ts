/**
 * The versions of the mcp-auth packages, from their package.json files: read when this module loads, or, in the
 * bundled binary, when it is built (the bundler replaces this module with the versions it read).
 *
 * @internal
 */
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)

/** @internal */
export const version = (pkg: string): string => (require(`${pkg}/package.json`) as { version: string }).version

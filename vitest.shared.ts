import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { ViteUserConfig } from "vitest/config"

const root = path.dirname(fileURLToPath(import.meta.url))

/** Workspace packages resolve to their TypeScript sources, so tests never need a build. */
export const shared: ViteUserConfig = {
  resolve: {
    alias: [
      { find: /^@mcp-auth\/([a-z-]+)$/, replacement: path.join(root, "packages/$1/src/index.ts") },
      { find: /^@mcp-auth\/([a-z-]+)\/(.+)$/, replacement: path.join(root, "packages/$1/src/$2.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: [path.join(root, "vitest.setup.ts")],
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
}

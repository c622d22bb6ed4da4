import { defineConfig, mergeConfig } from "vitest/config"
import { shared } from "./vitest.shared.js"

const project = (name: string, root: string, include?: Array<string>) =>
  mergeConfig(shared, { test: { name, root, ...(include ? { include } : {}) } })

export default defineConfig({
  test: {
    projects: [
      project("service-account", "packages/service-account"),
      project("testing", "packages/testing"),
      project("client", "packages/client"),
      project("workflow", "packages/workflow"),
      project("cli", "packages/cli"),
      project("e2e", "test", ["**/*.test.ts"])
    ]
  }
})

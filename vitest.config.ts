import { defineConfig, mergeConfig } from "vitest/config"
import { shared } from "./vitest.shared.js"

const project = (name: string, root: string, test: Record<string, unknown> = {}) =>
  mergeConfig(shared, { test: { name, root, ...test } })

export default defineConfig({
  test: {
    // Vitest's default on CI is one worker per core less one: a single worker on a 2-core runner, so the files ran one
    // after another although most of their time is spent waiting (real servers, subprocesses, timers)
    maxWorkers: 4,
    minWorkers: 1,
    projects: [
      project("service-account", "packages/service-account"),
      project("testing", "packages/testing"),
      project("client", "packages/client"),
      project("workflow", "packages/workflow"),
      // each test runs the CLI as several subprocesses: a liveness bound, generous for a loaded machine
      project("cli", "packages/cli", { testTimeout: 120_000 }),
      project("e2e", "test", { include: ["**/*.test.ts"] })
    ]
  }
})

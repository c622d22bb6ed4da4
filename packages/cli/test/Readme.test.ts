import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const readme = Fs.readFileSync(
  Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../README.md"),
  "utf8"
)

describe("README configuration reference", () => {
  it("documents every field of both Schemas, with its default", () => {
    for (const field of [...ServiceAccountConfig.fieldDocs, ...WorkflowConfig.mcpClientFieldDocs]) {
      const row = readme.split("\n").find((line) => line.startsWith(`| \`${field.name}\` |`))
      expect(row, field.name).toBeDefined()
      if ("default" in field) expect(row).toContain(`\`${JSON.stringify(field.default)}\``)
    }
  })

  it("names the two set-up commands", () => {
    expect(readme).toContain("npx -y pnpm@12.4.2 install && npx -y pnpm@12.4.2 demo")
    expect(readme).toContain("npx -y pnpm@12.4.2 install && npx -y pnpm@12.4.2 test")
  })
})

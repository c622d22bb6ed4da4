import type { FieldDoc } from "@mcp-auth/service-account/ConfigSchema"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const readme = Fs.readFileSync(
  Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../README.md"),
  "utf8"
)

/** The rows of each table in the README's "Configuration reference" section, in order. */
const referenceTables = (): Array<Array<string>> => {
  const start = readme.indexOf("\n## Configuration reference\n")
  const end = readme.indexOf("\n## ", start + 1)
  expect(start, "the README has a Configuration reference section").toBeGreaterThan(-1)
  const tables: Array<Array<string>> = []
  let current: Array<string> | undefined
  for (const line of readme.slice(start, end === -1 ? undefined : end).split("\n")) {
    if (line.startsWith("| key |")) tables.push(current = [])
    else if (current !== undefined && line.startsWith("| `")) current.push(line)
    else if (!line.startsWith("|---")) current = undefined
  }
  return tables
}

const cell = (text: string) => text.replaceAll("|", "\\|")

/** The row a field should have: key, type, default (or **required**), description, all from the Schema. */
const row = (field: FieldDoc): string => {
  const value = field.required ? "**required**" : "default" in field ? `\`${JSON.stringify(field.default)}\`` : ""
  return `| \`${field.name}\` | ${cell(field.type)} | ${value} | ${cell(field.description)} |`
}

describe("README configuration reference", () => {
  it("documents exactly the fields of both Schemas, in order, with their types, defaults and descriptions", () => {
    const tables = referenceTables()
    expect(tables.length).toBe(2)
    // on a failure the diff shows the rows to paste into the README
    expect(tables[0]).toEqual(ServiceAccountConfig.fieldDocs.map(row))
    expect(tables[1]).toEqual(WorkflowConfig.mcpClientFieldDocs.map(row))
  })

  it("the mcp_client defaults it shows are what decoding gives for a missing key", () => {
    const minimal = { _type: "mcp_client", server: { url: "https://mcp.example.com/mcp" } }
    const decoded: Record<string, unknown> = Schema.decodeUnknownSync(WorkflowConfig.McpClientInput)(minimal)
    const documented = WorkflowConfig.mcpClientFieldDocs.filter((field) => "default" in field)
    expect(documented.map((field) => field.name)).toEqual(
      expect.arrayContaining([
        "server.transport",
        "tool_call_timeout",
        "reconnect_max_attempts",
        "reconnect_max_backoff"
      ])
    )
    for (const field of documented) {
      const value = field.name.split(".").reduce<unknown>((v, key) => (v as Record<string, unknown>)[key], decoded)
      expect(value, field.name).toStrictEqual(field.default)
    }
  })

  it("names the two set-up commands", () => {
    expect(readme).toContain("npx -y pnpm@12.4.2 install && npx -y pnpm@12.4.2 demo")
    expect(readme).toContain("npx -y pnpm@12.4.2 install && npx -y pnpm@12.4.2 test")
  })
})

/**
 * `mcp-auth info components`: NAT's component table (package, version, component_type, component_name,
 * description with an `Args:` line per field), generated from the Schemas so it cannot drift, nested fields included.
 *
 * @since 0.1.0
 */
import type { FieldDoc } from "@mcp-auth/service-account/ConfigSchema"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import { version } from "./internal/versions.js"

/**
 * @since 0.1.0
 * @category Models
 */
export interface Component {
  readonly package: string
  readonly version: string
  readonly component_type: string
  readonly component_name: string
  readonly summary: string
  readonly fields: ReadonlyArray<FieldDoc>
}

/**
 * The components mcp-auth implements.
 *
 * @since 0.1.0
 * @category Constants
 */
export const components: ReadonlyArray<Component> = [
  {
    package: "@mcp-auth/service-account",
    version: version("@mcp-auth/service-account"),
    component_type: "auth_provider",
    component_name: "mcp_service_account",
    summary: "OAuth2 client-credentials service account for headless MCP clients (RFC 6749 §4.4), with an optional " +
      "service token header for the dual pattern",
    fields: ServiceAccountConfig.fieldDocs
  },
  {
    package: "@mcp-auth/workflow",
    version: version("@mcp-auth/workflow"),
    component_type: "function_group",
    component_name: "mcp_client",
    summary: "MCP client function group over streamable-http, authenticated by an auth_provider",
    fields: WorkflowConfig.mcpClientFieldDocs
  }
]

const formatDefault = (value: unknown): string => JSON.stringify(value)

/**
 * One `Args:` line per field, as NAT prints them: `name (type): description. Defaults to X.`
 *
 * @since 0.1.0
 * @category Combinators
 */
export const argsLine = (field: FieldDoc): string => {
  const description = field.description.replace(/\.+$/, "")
  const defaults = "default" in field ? ` Defaults to ${formatDefault(field.default)}.` : ""
  return `${field.name} (${field.type}): ${description}.${defaults}`
}

/**
 * The description column: the summary, a blank line, `Args:` and a line per field.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const description = (component: Component): string =>
  [`${component.summary}.`, "", "  Args:", ...component.fields.map((f) => `    ${argsLine(f)}`)].join("\n")

/**
 * NAT's matching: `type` exactly, `query` a case-sensitive substring of package, version, name or description.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const search = (type: string | undefined, query: string | undefined): ReadonlyArray<Component> =>
  components.filter((c) =>
    (type === undefined || c.component_type === type) &&
    (query === undefined ||
      [c.package, c.version, c.component_name, description(c)].some((text) => text.includes(query)))
  )

const wrap = (text: string, width: number): Array<string> =>
  text.split("\n").flatMap((line) => {
    if (line.length <= width) return [line]
    const indent = /^\s*/.exec(line)![0] + "  "
    const out: Array<string> = []
    let rest = line
    while (rest.length > width) {
      const cut = rest.lastIndexOf(" ", width)
      const at = cut > indent.length ? cut : width
      out.push(rest.slice(0, at))
      rest = indent + rest.slice(at).trimStart()
    }
    return [...out, rest]
  })

/**
 * A bordered table with a line between rows, like NAT's.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const table = (rows: ReadonlyArray<Component>, width = 160): string => {
  const headers = ["package", "version", "component_type", "component_name", "description"]
  const cells = rows.map((c) => [c.package, c.version, c.component_type, c.component_name, description(c)])
  const widths = headers.slice(0, 4).map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)))
  const last = Math.max(40, width - widths.reduce((a, b) => a + b, 0) - 3 * headers.length - 1)
  const all = [...widths, last]
  const line = (l: string, m: string, r: string) => `${l}${all.map((w) => "─".repeat(w + 2)).join(m)}${r}`
  const row = (values: ReadonlyArray<string>) => {
    const columns = values.map((v, i) => i === 4 ? wrap(v, last) : [v])
    const height = Math.max(...columns.map((c) => c.length))
    return Array.from(
      { length: height },
      (_, k) => `│${columns.map((c, i) => ` ${(c[k] ?? "").padEnd(all[i]!)} `).join("│")}│`
    ).join("\n")
  }
  return [
    "mcp-auth Search Results",
    line("┌", "┬", "┐"),
    row(headers),
    ...cells.flatMap((r) => [line("├", "┼", "┤"), row(r)]),
    line("└", "┴", "┘")
  ].join("\n")
}

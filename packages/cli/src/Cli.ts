/**
 * The `mcp-auth` commands.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { ServiceTokenLoader, Workflow, WorkflowConfig } from "@mcp-auth/workflow"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { ToolError, UsageError } from "./Errors.js"
import * as Info from "./Info.js"

const verbose = Options.boolean("verbose").pipe(Options.withDescription("Print stack traces and debug logs"))
const config = Options.text("config").pipe(
  Options.withAlias("c"),
  Options.withDescription("The NAT workflow YAML (authentication: and function_groups:)")
)
const caFile = Options.text("ca-file").pipe(
  Options.optional,
  Options.withDescription("A PEM bundle to trust for MCP servers and token endpoints (internal CA)")
)

const progress = (message: string) => Console.error(`… ${message}`)

const infoComponents = Command.make("components", {
  type: Options.text("type").pipe(
    Options.withAlias("t"),
    Options.optional,
    Options.withDescription("e.g. auth_provider")
  ),
  query: Options.text("query").pipe(
    Options.withAlias("q"),
    Options.optional,
    Options.withDescription("e.g. mcp_service_account")
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print JSON instead of a table")),
  verbose
}, ({ json, query, type }) =>
  Effect.gen(function*() {
    const found = Info.search(Option.getOrUndefined(type), Option.getOrUndefined(query))
    if (json) {
      const rows = found.map((c) => ({
        package: c.package,
        version: c.version,
        component_type: c.component_type,
        component_name: c.component_name,
        description: Info.description(c),
        fields: c.fields
      }))
      return yield* Console.log(JSON.stringify(rows, null, 2))
    }
    yield* Console.log(found.length === 0 ? "No components match." : Info.table(found))
  })).pipe(Command.withDescription("List mcp-auth's components and every option, nested ones included"))

const info = Command.make("info").pipe(
  Command.withDescription("Describe components"),
  Command.withSubcommands([infoComponents])
)

const validate = Command.make("validate", { config, verbose }, ({ config }) =>
  Effect.gen(function*() {
    const workflow = yield* WorkflowConfig.load(config)
    // service-token functions are loaded now, as they would be at start-up
    const load = ServiceTokenLoader.make(workflow.baseDir)
    for (const provider of workflow.providers.values()) {
      const fn = provider.serviceToken?._tag === "Function" ? provider.serviceToken.function : undefined
      if (typeof fn === "string") yield* load(fn)
    }
    const groups = [...workflow.groups.values()].map((g) =>
      `${g.name} (${g.transport} ${g.url.origin}${g.url.pathname}${
        g.authProvider ? ` → ${g.authProvider}` : ", no auth"
      })`
    )
    yield* Console.log(`✓ ${config} is valid`)
    yield* Console.log(`  providers:       ${[...workflow.providers.keys()].join(", ") || "(none)"}`)
    yield* Console.log(`  function groups: ${groups.join(", ") || "(none)"}`)
    if (workflow.ignored.length > 0) yield* Console.log(`  ignored:         ${workflow.ignored.join("; ")}`)
  })).pipe(Command.withDescription("Check a workflow: every config and environment problem at once"))

const token = Command.make("token", {
  config,
  provider: Options.text("provider").pipe(Options.optional, Options.withDescription("An authentication: entry")),
  showToken: Options.boolean("show-token").pipe(Options.withDescription("Print the access token itself")),
  caFile,
  verbose
}, ({ caFile, config, provider, showToken }) =>
  Effect.gen(function*() {
    const workflow = yield* WorkflowConfig.load(config)
    const names = [...workflow.providers.keys()]
    const name = Option.getOrElse(provider, () => names.length === 1 ? names[0]! : "")
    if (!workflow.providers.has(name)) {
      return yield* Effect.fail(
        new UsageError(
          names.length === 0 ? `${config} has no mcp_service_account provider` : `choose a provider with --provider`,
          `providers in ${config}: ${names.join(", ") || "(none)"}`
        )
      )
    }
    const running = yield* Workflow.make(workflow, { caFile: Option.getOrUndefined(caFile), connect: false })
    const tokens = running.providers.get(name)!
    yield* progress(`requesting a token for ${name} from ${tokens.tokenUrl}`)
    const accessToken = yield* tokens.get
    const now = yield* Clock.currentTimeMillis
    yield* Console.log(`provider:     ${name}`)
    yield* Console.log(`token_url:    ${tokens.tokenUrl}`)
    yield* Console.log(`token_type:   ${accessToken.tokenType}`)
    yield* Console.log(`scopes:       ${accessToken.scopes.join(" ") || "(none)"}`)
    yield* Console.log(
      `expires_at:   ${new Date(accessToken.expiresAt).toISOString()} (in ${
        Math.round((accessToken.expiresAt - now) / 1000)
      }s)`
    )
    yield* Console.log(
      `access_token: ${showToken ? Redacted.value(accessToken.token) : "<redacted> (pass --show-token to print it)"}`
    )
  }).pipe(Effect.scoped)).pipe(Command.withDescription("Fetch a token and show its type, scopes and expiry"))

const connectGroups = (file: string, groups: ReadonlyArray<string> | undefined, ca: Option.Option<string>) =>
  Effect.gen(function*() {
    const workflow = yield* WorkflowConfig.load(file)
    for (const group of groups ?? []) {
      if (!workflow.groups.has(group)) {
        return yield* Effect.fail(
          new UsageError(`no function group ${group} in ${file}`, `groups: ${[...workflow.groups.keys()].join(", ")}`)
        )
      }
    }
    for (const g of workflow.groups.values()) {
      if (groups === undefined || groups.includes(g.name)) yield* progress(`connecting ${g.name} to ${g.url.href}`)
    }
    return yield* Workflow.make(workflow, { caFile: Option.getOrUndefined(ca), groups })
  })

const toolsList = Command.make("list", {
  config,
  group: Options.text("group").pipe(Options.optional, Options.withDescription("Only this function group")),
  caFile,
  verbose
}, ({ caFile, config, group }) =>
  Effect.gen(function*() {
    const workflow = yield* connectGroups(
      config,
      Option.match(group, { onNone: () => undefined, onSome: (g) => [g] }),
      caFile
    )
    for (const g of workflow.groups.values()) {
      const tools = yield* g.listTools
      yield* Console.log(`${g.name} (${tools.length} tools)`)
      for (const tool of tools) {
        const alias = tool.name === tool.serverName ? "" : ` [server: ${tool.serverName}]`
        yield* Console.log(`  ${g.name}.${tool.name}${alias}  ${(tool.description ?? "").split("\n")[0]}`)
      }
    }
  }).pipe(Effect.scoped)).pipe(Command.withDescription("List the tools of every (or one) function group"))

/** A tool result as text: JSON text pretty-printed, other content as JSON. */
export const renderResult = (result: CallToolResult): string =>
  result.content.map((item) => {
    if (item.type !== "text") return JSON.stringify(item)
    try {
      return JSON.stringify(JSON.parse(item.text), null, 2)
    } catch {
      return item.text
    }
  }).join("\n")

const toolsCall = Command.make("call", {
  config,
  target: Args.text({ name: "GROUP.TOOL" }).pipe(Args.withDescription("e.g. mcp_jira.jira_get_issue")),
  args: Options.text("args").pipe(Options.withDefault("{}"), Options.withDescription("Tool arguments as JSON")),
  caFile,
  verbose
}, ({ args, caFile, config, target }) =>
  Effect.gen(function*() {
    const dot = target.indexOf(".")
    if (dot <= 0 || dot === target.length - 1) {
      return yield* Effect.fail(new UsageError(`expected GROUP.TOOL, got ${target}`, "e.g. mcp_jira.jira_get_issue"))
    }
    const parsed = yield* Effect.try({
      try: () => JSON.parse(args) as unknown,
      catch: () => new UsageError("--args is not valid JSON", "e.g. --args '{\"key\": \"OCSW-2116\"}'")
    })
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* Effect.fail(
        new UsageError("--args must be a JSON object", "e.g. --args '{\"key\": \"OCSW-2116\"}'")
      )
    }
    const [group, tool] = [target.slice(0, dot), target.slice(dot + 1)]
    const workflow = yield* connectGroups(config, [group], caFile)
    const result = yield* workflow.groups.get(group)!.callTool(tool, parsed as Record<string, unknown>)
    yield* Console.log(renderResult(result))
    if (result.isError === true) return yield* Effect.fail(new ToolError(`tool ${target} returned an error`))
  }).pipe(Effect.scoped)).pipe(Command.withDescription("Call a tool: GROUP.TOOL --args '{…}'"))

const tools = Command.make("tools").pipe(
  Command.withDescription("List and call MCP tools"),
  Command.withSubcommands([toolsList, toolsCall])
)

const demo = Command.make("demo", {
  examples: Options.text("examples").pipe(
    Options.optional,
    Options.withDescription("The examples/nat-workflows folder")
  ),
  ttl: Options.integer("ttl").pipe(Options.withDefault(5), Options.withDescription("Token lifetime in seconds")),
  verbose
}, ({ examples, ttl }) =>
  // loaded on demand: the embedded servers are only needed here
  Effect.flatMap(
    Effect.promise(() => import("./Demo.js")),
    (Demo) => Demo.run({ examples: Option.getOrUndefined(examples), ttlSeconds: ttl })
  ))
  .pipe(Command.withDescription("Run the three example configs against embedded HTTPS servers and print a timeline"))

const root = Command.make("mcp-auth").pipe(
  Command.withDescription("Headless service-account authentication for MCP clients"),
  Command.withSubcommands([info, validate, token, tools, demo])
)

/**
 * @since 0.1.0
 * @category Constructors
 */
export const run = Command.run(root, { name: "mcp-auth", version: "0.1.0" })

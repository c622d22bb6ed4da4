/**
 * The `mcp-auth` commands. What a command runs is loaded when it runs (the MCP SDK for `token` and `tools`, the test
 * servers for `demo`), so `--help`, `--version` and `validate` start fast.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { version } from "./internal/versions.js"

const verbose = Options.boolean("verbose").pipe(Options.withDescription("Print stack traces and debug logs"))
const config = Options.text("config").pipe(
  Options.withAlias("c"),
  Options.withDescription("The NAT workflow YAML (authentication: and function_groups:)")
)
const caFile = Options.text("ca-file").pipe(
  Options.optional,
  Options.withDescription("A PEM bundle to trust for MCP servers and token endpoints (internal CA)")
)

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
    const Info = yield* Effect.promise(() => import("./Info.js"))
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
  Effect.flatMap(
    Effect.promise(() => import("./internal/validate.js")),
    (command) => command.validate(config)
  )).pipe(Command.withDescription("Check a workflow: every config and environment problem at once"))

const connected = Effect.promise(() => import("./internal/connected.js"))

const token = Command.make("token", {
  config,
  provider: Options.text("provider").pipe(Options.optional, Options.withDescription("An authentication: entry")),
  showToken: Options.boolean("show-token").pipe(Options.withDescription("Print the access token itself")),
  json: Options.boolean("json").pipe(Options.withDescription("Print JSON instead of lines")),
  caFile,
  verbose
}, (options) => Effect.flatMap(connected, (command) => command.token(options))).pipe(
  Command.withDescription(
    "Fetch a token and show how the client authenticated (the method, never the credential), its type, scopes and " +
      "expiry"
  )
)

const toolsList = Command.make("list", {
  config,
  group: Options.text("group").pipe(Options.optional, Options.withDescription("Only this function group")),
  caFile,
  verbose
}, (options) => Effect.flatMap(connected, (command) => command.toolsList(options))).pipe(
  Command.withDescription("List the tools of every (or one) function group")
)

/**
 * A tool result as text: JSON text pretty-printed, other content as JSON. What the server sent is made safe to print
 * in a terminal: every one of `secrets` (in each form it travels) removed, control characters and escape sequences
 * replaced (line breaks and tabs kept), at most {@link maxResultChars} characters.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const renderResult = (result: CallToolResult, secrets: Iterable<string> = []): string =>
  Scrub.text(
    result.content.map((item) => {
      if (item.type !== "text") return JSON.stringify(item)
      try {
        return JSON.stringify(JSON.parse(item.text), null, 2)
      } catch {
        return item.text
      }
    }).join("\n"),
    secrets,
    { multiline: true, max: maxResultChars }
  )

/**
 * The most characters of a tool result `tools call` prints (then `…`).
 *
 * @since 0.2.0
 * @category Constants
 */
export const maxResultChars = 1_000_000

/**
 * How deeply `--args` may nest (objects and arrays): deeper is a usage error, before connecting.
 *
 * @since 0.2.0
 * @category Constants
 */
export const maxArgsDepth = 64

const toolsCall = Command.make("call", {
  config,
  target: Args.text({ name: "GROUP.TOOL" }).pipe(Args.withDescription("e.g. mcp_jira.jira_get_issue")),
  args: Options.text("args").pipe(
    Options.withDefault("{}"),
    Options.withDescription(`Tool arguments as a JSON object (nested at most ${maxArgsDepth} levels)`)
  ),
  caFile,
  verbose
}, (options) => Effect.flatMap(connected, (command) => command.toolsCall(options))).pipe(
  Command.withDescription("Call a tool: GROUP.TOOL --args '{…}'")
)

const tools = Command.make("tools").pipe(
  Command.withDescription("List and call MCP tools"),
  Command.withSubcommands([toolsList, toolsCall])
)

const doctor = Command.make("doctor", {
  config,
  group: Options.text("group").pipe(
    Options.optional,
    Options.withDescription("Only this function group (default: every group with an auth_provider)")
  ),
  json: Options.boolean("json").pipe(
    Options.withDescription("Print a JSON array of { group, provider, name, status, ms, detail, fix }")
  ),
  caFile,
  verbose
}, (options) =>
  Effect.flatMap(
    Effect.promise(() => import("./internal/doctor/run.js")),
    (command) => command.doctor(options)
  )).pipe(
    Command.withDescription(
      "Run the troubleshooting guide as checks: configuration, DNS/TCP, TLS, discovery, token request, token claims, " +
        "clock skew, service token, MCP initialize. Exit 0 only if none failed"
    )
  )

const testing = "@mcp-auth/testing"

const isMissingPackage = (cause: unknown, name: string): boolean =>
  cause instanceof Error && (cause as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND" &&
  cause.message.includes(`'${name}'`)

// the embedded servers come from @mcp-auth/testing, an optional peer dependency: loaded here only
const loadDemo = Effect.tryPromise({ try: () => import("./Demo.js"), catch: (cause) => cause }).pipe(
  Effect.catchAll((cause) =>
    isMissingPackage(cause, testing)
      ? Effect.flatMap(Effect.promise(() => import("./Errors.js")), ({ UsageError }) =>
        Effect.fail(
          new UsageError(
            `mcp-auth demo runs the test servers of ${testing}, which is not installed: npm i -D ${testing} ` +
              `(npm i -g ${testing} next to a global mcp-auth)`
          )
        ))
      : Effect.die(cause)
  )
)

const demo = Command.make(
  "demo",
  {
    examples: Options.text("examples").pipe(
      Options.optional,
      Options.withDescription("The examples/nat-workflows folder")
    ),
    ttl: Options.integer("ttl").pipe(Options.withDefault(5), Options.withDescription("Token lifetime in seconds")),
    verbose
  },
  ({ examples, ttl }) =>
    Effect.flatMap(loadDemo, (Demo) => Demo.run({ examples: Option.getOrUndefined(examples), ttlSeconds: ttl }))
)
  .pipe(
    Command.withDescription(
      `Run the three example configs against embedded HTTPS servers and print a timeline (needs ${testing})`
    )
  )

const root = Command.make("mcp-auth").pipe(
  Command.withDescription("Headless service-account authentication for MCP clients"),
  Command.withSubcommands([info, validate, token, tools, doctor, demo])
)

/**
 * @since 0.1.0
 * @category Constructors
 */
export const run = Command.run(root, { name: "mcp-auth", version: version("@mcp-auth/cli") })

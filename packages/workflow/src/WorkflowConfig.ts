/**
 * A NeMo Agent toolkit (NAT) workflow YAML, as far as mcp-auth runs it: `authentication:` entries with
 * `_type: mcp_service_account` and `function_groups:` entries with `_type: mcp_client`. Other sections (`llms:`,
 * `workflow:`, `functions:`, …) and other entry types are ignored, so a NAT config loads unchanged.
 *
 * Loading reports every problem at once: unset `${VAR}`s with their YAML paths, provider and client schema errors,
 * references to missing providers, and NAT's transport rules.
 *
 * @since 0.1.0
 */
// the defaults' module, not McpClient: that one loads the MCP SDK, which `validate` and `info` must not wait for
import * as McpClientDefaults from "@mcp-auth/client/McpClientDefaults"
import * as ConfigSchema from "@mcp-auth/service-account/ConfigSchema"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as YAML from "yaml"
import * as Interpolation from "./Interpolation.js"

/** NAT durations: a number of seconds, or a string such as "60", "30s", "1.5m", "PT1M". */
const parseSeconds = (u: unknown): number | undefined => {
  if (typeof u === "number") return Number.isFinite(u) && u >= 0 ? u : undefined
  if (typeof u !== "string") return undefined
  const text = u.trim()
  const iso = /^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$/i.exec(text)
  if (iso !== null && text.length > 2) {
    return Number(iso[1] ?? 0) * 3600 + Number(iso[2] ?? 0) * 60 + Number(iso[3] ?? 0)
  }
  const plain = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text)
  if (plain === null) return undefined
  const n = Number(plain[1])
  return plain[2] === "ms" ? n / 1000 : plain[2] === "m" ? n * 60 : plain[2] === "h" ? n * 3600 : n
}

const seconds = (field: string) =>
  Schema.transformOrFail(Schema.Unknown, Schema.Number, {
    strict: true,
    decode: (u, _, ast) => {
      const n = parseSeconds(u)
      return n === undefined
        ? ParseResult.fail(
          new ParseResult.Type(
            ast,
            u,
            `${field} must be a duration ≥ 0 (seconds, "30s", "PT1M"), got ${JSON.stringify(u)}`
          )
        )
        : ParseResult.succeed(n)
    },
    encode: ParseResult.succeed
  }).annotations({ identifier: "float" })

const nameList = (field: string) =>
  Schema.Array(ConfigSchema.nonEmptyString(`${field}[]`, "give a tool name")).annotations({
    message: () => ({ message: `${field} must be a list of tool names`, override: true })
  })

const withDefault = ConfigSchema.withDefault

// McpClient's defaults in the schema's units (seconds); written once, in McpClientDefaults
const reconnectDefaults = {
  enabled: McpClientDefaults.defaultReconnect.enabled,
  maxAttempts: McpClientDefaults.defaultReconnect.maxAttempts,
  initialBackoffSeconds: Duration.toSeconds(McpClientDefaults.defaultReconnect.initialBackoff),
  maxBackoffSeconds: Duration.toSeconds(McpClientDefaults.defaultReconnect.maxBackoff)
}

const ServerFields = {
  transport: withDefault(
    Schema.Literal("streamable-http", "sse", "stdio").annotations({
      message: (issue) => ({
        message: `server.transport must be streamable-http, sse or stdio, got ${JSON.stringify(issue.actual)}`,
        override: true
      })
    }),
    "streamable-http",
    "MCP transport"
  ),
  url: Schema.optional(Schema.NullOr(ConfigSchema.nonEmptyString("server.url", "give the MCP endpoint URL")))
    .annotations({ description: "MCP server URL (streamable-http, sse)" }),
  auth_provider: Schema.optional(
    Schema.NullOr(ConfigSchema.nonEmptyString("server.auth_provider", "name an authentication entry"))
  )
    .annotations({ description: "Name of an authentication: entry" }),
  custom_headers: Schema.optional(
    Schema.NullOr(
      Schema.Record({ key: Schema.String, value: Schema.String }).annotations({
        message: () => ({
          message: "server.custom_headers must be a map of header names to string values",
          override: true
        })
      })
    )
  ).annotations({ description: "Static headers for every MCP request (auth headers win)" }),
  command: Schema.optional(Schema.NullOr(Schema.String)).annotations({ description: "stdio only" }),
  args: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))).annotations({ description: "stdio only" }),
  env: Schema.optional(Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String })))
    .annotations({ description: "stdio only" })
}

const ToolOverride = Schema.Struct({
  alias: Schema.optional(Schema.NullOr(ConfigSchema.nonEmptyString("tool_overrides.alias", "give a tool name"))),
  description: Schema.optional(Schema.NullOr(Schema.String))
})

const McpClientFields = {
  _type: Schema.propertySignature(Schema.Literal("mcp_client")).annotations({ description: "The type of the object" }),
  server: Schema.propertySignature(
    Schema.Struct(ServerFields).annotations({
      message: () => "server must be a map (transport, url, auth_provider, …)"
    })
  ).annotations({ description: "The MCP server to connect to" }),
  include: withDefault(nameList("include"), [], "Only these tools (server names); not with exclude"),
  exclude: withDefault(nameList("exclude"), [], "All tools but these (server names); not with include"),
  tool_overrides: Schema.optional(Schema.NullOr(Schema.Record({ key: Schema.String, value: ToolOverride })))
    .annotations({
      description: "Per tool: an alias and a description to expose instead of the server's"
    }),
  tool_call_timeout: withDefault(
    seconds("tool_call_timeout"),
    Duration.toSeconds(McpClientDefaults.defaultToolCallTimeout),
    "Timeout of one tool call or tool listing, in seconds"
  ),
  auth_flow_timeout: withDefault(
    seconds("auth_flow_timeout"),
    300,
    "Interactive OAuth only; not used for service accounts"
  ),
  reconnect_enabled: withDefault(
    ConfigSchema.boolean("reconnect_enabled"),
    reconnectDefaults.enabled,
    "Reconnect and retry once after a connection failure"
  ),
  reconnect_max_attempts: withDefault(
    ConfigSchema.number("reconnect_max_attempts", { min: 0, integer: true }),
    reconnectDefaults.maxAttempts,
    "Connection attempts per reconnect"
  ),
  reconnect_initial_backoff: withDefault(
    ConfigSchema.number("reconnect_initial_backoff", { min: 0, unit: "seconds" }),
    reconnectDefaults.initialBackoffSeconds,
    "First reconnect backoff ceiling in seconds; doubles per attempt, full jitter"
  ),
  reconnect_max_backoff: withDefault(
    ConfigSchema.number("reconnect_max_backoff", { min: 0, unit: "seconds" }),
    reconnectDefaults.maxBackoffSeconds,
    "Longest reconnect backoff in seconds"
  ),
  // accepted for compatibility; mcp-auth has no agent runtime that would use them
  middleware: Schema.optional(Schema.Unknown).annotations({ description: "NAT agent middleware (ignored)" }),
  session_aware_tools: Schema.optional(Schema.Unknown).annotations({ description: "NAT sessions (ignored)" }),
  max_sessions: Schema.optional(Schema.Unknown).annotations({ description: "NAT sessions (ignored)" }),
  session_idle_timeout: Schema.optional(Schema.Unknown).annotations({ description: "NAT sessions (ignored)" })
}

/**
 * A `function_groups:` entry with `_type: mcp_client`, as NAT users write it.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const McpClientInput = Schema.Struct(McpClientFields).annotations({ identifier: "mcp_client" })

/**
 * Every `mcp_client` field, `server.*` included, read from the Schema (used by `mcp-auth info components`).
 *
 * @since 0.1.0
 * @category Models
 */
export const mcpClientFieldDocs: ReadonlyArray<ConfigSchema.FieldDoc> = ConfigSchema.describeFields(McpClientFields, {
  server: ServerFields
})

/**
 * @since 0.1.0
 * @category Models
 */
export interface FunctionGroupConfig {
  readonly name: string
  readonly transport: "streamable-http" | "sse"
  readonly url: URL
  readonly authProvider: string | undefined
  readonly customHeaders: Readonly<Record<string, string>>
  readonly include: ReadonlyArray<string>
  readonly exclude: ReadonlyArray<string>
  readonly toolOverrides: Readonly<
    Record<string, { readonly alias?: string | undefined; readonly description?: string | undefined }>
  >
  readonly toolCallTimeout: Duration.Duration
  readonly reconnect: {
    readonly enabled: boolean
    readonly maxAttempts: number
    readonly initialBackoff: Duration.Duration
    readonly maxBackoff: Duration.Duration
  }
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface WorkflowConfig {
  /** Where the YAML came from (a path, or `<inline>`). */
  readonly source: string
  /** The directory relative module references resolve against (the config file's). */
  readonly baseDir: string
  /** `authentication:` entries with `_type: mcp_service_account`, by name. */
  readonly providers: ReadonlyMap<string, ServiceAccountConfig.ServiceAccountConfig>
  /** `function_groups:` entries with `_type: mcp_client` that mcp-auth runs, by name. */
  readonly groups: ReadonlyMap<string, FunctionGroupConfig>
  /** What was skipped, and why (sections and entries mcp-auth does not run). */
  readonly ignored: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface LoadOptions {
  /** Variables for `${VAR}` (default: `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Base directory for relative module references (default: the file's directory, or the working directory). */
  readonly baseDir?: string | undefined
}

const isRecord = ConfigSchema.isRecord

const toGroup = (name: string, input: typeof McpClientInput.Type): FunctionGroupConfig => ({
  name,
  transport: input.server.transport === "sse" ? "sse" : "streamable-http",
  url: new URL(input.server.url!),
  authProvider: input.server.auth_provider ?? undefined,
  customHeaders: input.server.custom_headers ?? {},
  include: input.include,
  exclude: input.exclude,
  toolOverrides: Object.fromEntries(
    Object.entries(input.tool_overrides ?? {}).map(([tool, o]) => [tool, {
      alias: o.alias ?? undefined,
      description: o.description ?? undefined
    }])
  ),
  toolCallTimeout: Duration.seconds(input.tool_call_timeout),
  reconnect: {
    enabled: input.reconnect_enabled,
    maxAttempts: input.reconnect_max_attempts,
    initialBackoff: Duration.seconds(input.reconnect_initial_backoff),
    maxBackoff: Duration.seconds(input.reconnect_max_backoff)
  }
})

// what a server block's missing keys decode to (the defaults are written once, in ServerFields)
const serverDefaults = Schema.decodeUnknownSync(Schema.Struct(ServerFields))({})

/** NAT's transport rules and cross-entry checks for one mcp_client entry. */
const groupProblems = (
  raw: Record<string, unknown>,
  authentication: Record<string, unknown>
): Array<ConfigSchema.Problem> => {
  const problems: Array<ConfigSchema.Problem> = []
  const server = isRecord(raw.server) ? raw.server : {}
  const transport = server.transport ?? serverDefaults.transport
  const provider = server.auth_provider
  const stdio = server.command != null || server.args != null || server.env != null
  if (transport === "stdio") {
    if (provider != null) {
      problems.push({ path: "server.auth_provider", message: "Authentication is not supported for stdio transport" })
    }
  } else if (transport === "sse" || transport === "streamable-http") {
    if (stdio) {
      problems.push({
        path: "server",
        message: `command, args, and env should not be set when using ${String(transport)} transport`
      })
    }
    if (server.url == null) {
      problems.push({ path: "server.url", message: `url is required when using ${String(transport)} transport` })
    } else if (typeof server.url === "string" && server.url.trim() !== "") {
      let url: URL | undefined
      try {
        url = new URL(server.url)
        if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme")
      } catch {
        problems.push({ path: "server.url", message: `server.url ${JSON.stringify(server.url)} is not an http(s) URL` })
      }
      if (url?.protocol === "http:" && provider != null && !ConfigSchema.isLoopbackHost(url.hostname)) {
        problems.push({
          path: "server.url",
          message: "server.url must use https when auth_provider is set: credentials are never sent in clear text " +
            "(http only for loopback hosts)"
        })
      }
    }
    if (transport === "sse") {
      if (provider != null) {
        problems.push({ path: "server.auth_provider", message: "Authentication is not supported for SSE transport." })
      }
      if (server.custom_headers != null) {
        problems.push({ path: "server.custom_headers", message: "custom_headers is not supported for SSE transport" })
      }
    }
  }
  if (typeof provider === "string" && provider.trim() !== "") {
    const entry = authentication[provider]
    if (entry === undefined) {
      const known = Object.keys(authentication)
      problems.push({
        path: "server.auth_provider",
        message: `auth_provider ${JSON.stringify(provider)} is not defined under authentication:` +
          (known.length > 0 ? ` (defined: ${known.join(", ")})` : "")
      })
    } else if (!isRecord(entry) || entry._type !== "mcp_service_account") {
      problems.push({
        path: "server.auth_provider",
        message: `auth_provider ${JSON.stringify(provider)} has _type ${
          JSON.stringify(isRecord(entry) ? entry._type : undefined)
        }: mcp-auth runs only mcp_service_account (interactive mcp_oauth2 needs a browser)`
      })
    }
  }
  const include = Array.isArray(raw.include) ? raw.include : []
  const exclude = Array.isArray(raw.exclude) ? raw.exclude : []
  if (include.length > 0 && exclude.length > 0) {
    problems.push({ path: "include", message: "include and exclude cannot be used together" })
  }
  const initial = Number(raw.reconnect_initial_backoff ?? reconnectDefaults.initialBackoffSeconds)
  const max = Number(raw.reconnect_max_backoff ?? reconnectDefaults.maxBackoffSeconds)
  if (Number.isFinite(initial) && Number.isFinite(max) && max < initial) {
    problems.push({
      path: "reconnect_max_backoff",
      message: "reconnect_max_backoff must be greater than or equal to reconnect_initial_backoff"
    })
  }
  return problems
}

/**
 * Validates an already parsed workflow document.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromDocument = (
  document: unknown,
  options: LoadOptions & { readonly source?: string | undefined } = {}
): Either.Either<WorkflowConfig, ConfigurationError> => {
  const env = options.env ?? process.env
  const source = options.source ?? "<inline>"
  const baseDir = options.baseDir ?? process.cwd()
  if (!isRecord(document)) {
    return Either.left(
      new ConfigurationError({ issues: [new ConfigIssue({ path: "", message: "the workflow must be a YAML map" })] })
    )
  }
  const issues: Array<ConfigIssue> = []
  const ignored: Array<string> = []
  for (const key of Object.keys(document)) {
    if (key !== "authentication" && key !== "function_groups") ignored.push(`${key}: (not run by mcp-auth)`)
  }
  const section = (name: string): Record<string, unknown> => {
    const value = document[name]
    if (value == null) return {}
    if (!isRecord(value)) {
      issues.push(new ConfigIssue({ path: name, message: `${name} must be a map of names to entries` }))
      return {}
    }
    return value
  }
  const authentication = section("authentication")
  const functionGroups = section("function_groups")

  const providers = new Map<string, ServiceAccountConfig.ServiceAccountConfig>()
  for (const [name, raw] of Object.entries(authentication)) {
    if (!isRecord(raw) || raw._type !== "mcp_service_account") {
      ignored.push(
        `authentication.${name}: _type ${JSON.stringify(isRecord(raw) ? raw._type : raw)} (not run by mcp-auth)`
      )
      continue
    }
    const path = `authentication.${name}`
    const { unset, value } = Interpolation.interpolate(raw, env, path)
    issues.push(...unsetIssues(unset))
    const decoded = ServiceAccountConfig.decodeEither(value, { path })
    if (Either.isLeft(decoded)) {
      // an unset variable already explains the empty value it left behind
      const explained = new Set(unset.map((u) => u.path))
      issues.push(...decoded.left.issues.filter((i) => !explained.has(i.path)))
    } else providers.set(name, decoded.right)
  }

  const groups = new Map<string, FunctionGroupConfig>()
  for (const [name, raw] of Object.entries(functionGroups)) {
    if (!isRecord(raw) || raw._type !== "mcp_client") {
      ignored.push(
        `function_groups.${name}: _type ${JSON.stringify(isRecord(raw) ? raw._type : raw)} (not run by mcp-auth)`
      )
      continue
    }
    const path = `function_groups.${name}`
    const { unset, value } = Interpolation.interpolate(raw, env, path)
    issues.push(...unsetIssues(unset))
    const explained = new Set(unset.map((u) => u.path))
    const problems = [
      ...ConfigSchema.problems(McpClientInput, value),
      ...groupProblems(value as Record<string, unknown>, authentication)
    ]
    const groupIssues = ConfigSchema.toIssues(problems, path).filter((i) => !explained.has(i.path))
    issues.push(...groupIssues)
    if (groupIssues.length === 0 && problems.length === 0) {
      const decoded = Schema.decodeUnknownSync(McpClientInput)(value)
      if (decoded.server.transport === "stdio") {
        ignored.push(`${path}: stdio transport (mcp-auth runs HTTP servers only)`)
      } else groups.set(name, toGroup(name, decoded))
    }
  }
  if (issues.length > 0) return Either.left(new ConfigurationError({ issues }))
  return Either.right({ source, baseDir, providers, groups, ignored })
}

const unsetIssues = (unset: ReadonlyArray<Interpolation.UnsetVariable>): Array<ConfigIssue> =>
  unset.map((u) =>
    new ConfigIssue({
      path: u.path,
      message:
        `environment variable ${u.name} is not set: export it (in CI, add it to the job's secrets or variables)` +
        ` or give a default with \${${u.name}:-default}`
    })
  )

/**
 * Parses YAML text. Syntax errors are reported with their line and column.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const parse = (
  text: string,
  options: LoadOptions & { readonly source?: string | undefined } = {}
): Either.Either<WorkflowConfig, ConfigurationError> => {
  const document = YAML.parseDocument(text, { prettyErrors: true })
  if (document.errors.length > 0) {
    return Either.left(
      new ConfigurationError({
        issues: document.errors.map((e) =>
          new ConfigIssue({
            path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "",
            message: `YAML syntax error: ${e.message.split("\n")[0]}`
          })
        )
      })
    )
  }
  return fromDocument(document.toJS(), options)
}

/**
 * Reads and validates a workflow file. Relative module references resolve against the file's directory.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const load = (file: string, options: LoadOptions = {}): Effect.Effect<WorkflowConfig, ConfigurationError> =>
  Effect.flatMap(
    Effect.try({
      try: () => Fs.readFileSync(file, "utf8"),
      catch: (cause) =>
        new ConfigurationError({
          issues: [
            new ConfigIssue({
              path: file,
              message: `cannot read the workflow file (${
                (cause as NodeJS.ErrnoException).code ?? "error"
              }): check the path`
            })
          ]
        })
    }),
    (text) =>
      parse(text, {
        ...options,
        source: file,
        baseDir: options.baseDir ?? Path.dirname(Path.resolve(file))
      })
  )

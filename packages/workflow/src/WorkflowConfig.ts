/**
 * A NeMo Agent toolkit (NAT) workflow YAML, as far as mcp-auth runs it: `authentication:` entries with
 * `_type: mcp_service_account` and `function_groups:` entries with `_type: mcp_client`. Other sections (`llms:`,
 * `workflow:`, `functions:`, …) and other entry types are ignored, so a NAT config loads unchanged.
 *
 * Loading reports every problem at once: unset `${VAR}`s with their YAML paths, provider and client schema errors,
 * references to missing providers, and NAT's transport rules.
 *
 * Limits, so that loading takes bounded time and memory whatever the file holds (each is a `ConfigurationError` with
 * the line and column when there is one, never an unexpected error):
 * - a workflow is at most {@link maxWorkflowBytes} bytes (1 MiB) of UTF-8, checked before parsing, for files and
 *   inline text alike; a file that is not valid UTF-8 is refused;
 * - one YAML document; keys are plain values (no `? [a, b]` keys), each at most once per map (checked in linear time:
 *   the `yaml` library's own check is quadratic, minutes for a 1 MiB map);
 * - at most 1000 aliases (`*name`), each referring to an anchor defined before it and outside itself (no cycles); with
 *   aliases resolved, at most 1 000 000 values nested at most 100 levels deep (an "alias bomb" is refused, whether
 *   this check or the library's alias count catches it first).
 *
 * Relative file paths in an `mcp_service_account` entry (`ca_file`, `client_secret_file`, `private_key_file`,
 * `certificate_file`, `client_assertion.file`, `tls_client_certificate_file`, `tls_client_key_file`) resolve against
 * the workflow file's directory (`baseDir`), like `service_token.function` and `client_assertion.function` modules;
 * absolute paths (and `${VAR}`s holding one) are used as they are.
 *
 * A URL in the configuration carries no credentials: `server.url` with user info (`https://user:pass@host/…`) is
 * refused, and messages show URLs without their query and fragment (`?<redacted>`), as `Scrub.url` prints them.
 *
 * @since 0.1.0
 */
// the defaults' module, not McpClient: that one loads the MCP SDK, which `validate` and `info` must not wait for
import * as McpClientDefaults from "@mcp-auth/client/McpClientDefaults"
import * as ConfigSchema from "@mcp-auth/service-account/ConfigSchema"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Yaml from "./internal/yaml.js"
import * as Interpolation from "./Interpolation.js"

/**
 * The largest workflow accepted, in bytes of UTF-8 (1 MiB), file or inline text; checked before parsing so that
 * parse time stays bounded.
 *
 * @since 0.2.0
 * @category Constants
 */
export const maxWorkflowBytes: number = Yaml.limits.bytes

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
    "Reconnect after a connection failure: tools/list is retried once, a tools/call only if the connection was refused"
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
  max_response_bytes: withDefault(
    ConfigSchema.number("max_response_bytes", { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true, unit: "bytes" }),
    McpClientDefaults.defaultMaxResponseBytes,
    "Most bytes read from one MCP response (a JSON body, or one SSE event); a larger one fails the call"
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
  /** `max_response_bytes`: the most bytes read from one MCP response. */
  readonly maxResponseBytes: number
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
  /** The directory relative module references and file paths resolve against (the config file's). */
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
  /**
   * Base directory for relative module references and file paths (default: the file's directory, or the working
   * directory for inline text).
   */
  readonly baseDir?: string | undefined
}

const isRecord = ConfigSchema.isRecord

/** `map[key]` if `map` has it as its own key: a YAML key never reaches `Object.prototype`. */
const own = (map: Record<string, unknown>, key: string): unknown => Object.hasOwn(map, key) ? map[key] : undefined

/** `map[key]` if it is a map, else `{}`. */
const ownMap = (map: Record<string, unknown>, key: string): Record<string, unknown> => {
  const value = own(map, key)
  return isRecord(value) ? value : {}
}

/** A value as messages show it: strings quoted and cut, other values by kind (never a whole binary or map). */
const show = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u.length > 60 ? `${u.slice(0, 60)}…` : u)
  if (u === null || typeof u === "number" || typeof u === "boolean" || u === undefined) return String(u)
  if (Array.isArray(u)) return "a list"
  return isRecord(u) && Object.getPrototypeOf(u) === Object.prototype ? "a map" : `a ${typeof u}`
}

/** Values one `authentication:` or `function_groups:` entry may hold (NAT entries hold tens). */
const maxEntryValues = 10_000

/**
 * Whether `value` holds more than {@link maxEntryValues} values (aliases resolved: a shared node counts each time it
 * appears; typed arrays count their elements). Checked before interpolation and decoding, whose cost grows with the
 * size of the entry (Schema decoding of a 700 000-key map takes seconds); stops counting at the limit.
 */
const tooManyValues = (value: unknown): boolean => {
  let count = 0
  const stack: Array<unknown> = [value]
  while (stack.length > 0) {
    const node = stack.pop()
    count += 1
    if (count > maxEntryValues) return true
    if (ArrayBuffer.isView(node)) count += node.byteLength
    else if (node instanceof Map || node instanceof Set) count += node.size
    else if (Array.isArray(node)) stack.push(...node.slice(0, maxEntryValues))
    else if (isRecord(node)) {
      const values = Object.values(node)
      if (values.length > maxEntryValues) return true
      stack.push(...values)
    }
  }
  return count > maxEntryValues
}

const tooManyValuesIssue = (path: string) =>
  new ConfigIssue({
    path,
    message: `the entry holds more than ${maxEntryValues} values (aliases resolved); entries are small: remove what ` +
      "does not belong to it"
  })

const decodeToolOverride = Schema.decodeUnknownSync(ToolOverride)

/**
 * `raw` is the validated input that `input` was decoded from: maps keyed by names (headers, tools) are rebuilt from its
 * own entries, since a decoded record drops a `__proto__` key (it sets the object's prototype instead).
 */
const toGroup = (
  name: string,
  input: typeof McpClientInput.Type,
  raw: Record<string, unknown>
): FunctionGroupConfig => ({
  name,
  transport: input.server.transport === "sse" ? "sse" : "streamable-http",
  url: new URL(input.server.url!),
  authProvider: input.server.auth_provider ?? undefined,
  customHeaders: Object.fromEntries(
    Object.entries(ownMap(ownMap(raw, "server"), "custom_headers")).map(([header, value]) => [header, String(value)])
  ),
  include: input.include,
  exclude: input.exclude,
  toolOverrides: Object.fromEntries(
    Object.entries(ownMap(raw, "tool_overrides")).map(([tool, value]) => {
      const o = decodeToolOverride(value)
      return [tool, { alias: o.alias ?? undefined, description: o.description ?? undefined }]
    })
  ),
  toolCallTimeout: Duration.seconds(input.tool_call_timeout),
  maxResponseBytes: input.max_response_bytes,
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
  const server = ownMap(raw, "server")
  const transport = own(server, "transport") ?? serverDefaults.transport
  const provider = own(server, "auth_provider")
  const serverUrl = own(server, "url")
  const stdio = own(server, "command") != null || own(server, "args") != null || own(server, "env") != null
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
    if (serverUrl == null) {
      problems.push({ path: "server.url", message: `url is required when using ${String(transport)} transport` })
    } else if (typeof serverUrl === "string" && serverUrl.trim() !== "") {
      let url: URL | undefined
      try {
        url = new URL(serverUrl)
      } catch {
        // the value is not echoed: it may hold credentials (https://user:password@…) or a key in its query
        problems.push({ path: "server.url", message: "server.url is not a valid URL: use https://host/path" })
      }
      if (url !== undefined && url.protocol !== "https:" && url.protocol !== "http:") {
        problems.push({
          path: "server.url",
          message: `server.url ${Scrub.url(url)} is not an http(s) URL: use https://host/path`
        })
        url = undefined
      }
      if (url !== undefined && (url.username !== "" || url.password !== "")) {
        problems.push({
          path: "server.url",
          message:
            `server.url ${
              Scrub.url(url)
            } carries user info (user:password@): remove it; credentials belong in an authentication: entry ` +
            "(auth_provider) or in custom_headers"
        })
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
      if (own(server, "custom_headers") != null) {
        problems.push({ path: "server.custom_headers", message: "custom_headers is not supported for SSE transport" })
      }
    }
  }
  if (typeof provider === "string" && provider.trim() !== "") {
    if (!Object.hasOwn(authentication, provider)) {
      const known = Object.keys(authentication)
      problems.push({
        path: "server.auth_provider",
        message: `auth_provider ${JSON.stringify(provider)} is not defined under authentication:` +
          (known.length > 0 ? ` (defined: ${known.join(", ")})` : "")
      })
    } else {
      const entry = authentication[provider]
      const type = isRecord(entry) ? own(entry, "_type") : undefined
      if (type !== "mcp_service_account") {
        problems.push({
          path: "server.auth_provider",
          message: `auth_provider ${JSON.stringify(provider)} has _type ${
            isRecord(entry) ? show(type) : `missing (the entry is ${show(entry)})`
          }: mcp-auth runs only mcp_service_account (interactive mcp_oauth2 needs a browser)`
        })
      }
    }
  }
  const include = own(raw, "include")
  const exclude = own(raw, "exclude")
  if (Array.isArray(include) && include.length > 0 && Array.isArray(exclude) && exclude.length > 0) {
    problems.push({ path: "include", message: "include and exclude cannot be used together" })
  }
  const initial = Number(own(raw, "reconnect_initial_backoff") ?? reconnectDefaults.initialBackoffSeconds)
  const max = Number(own(raw, "reconnect_max_backoff") ?? reconnectDefaults.maxBackoffSeconds)
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
    const value = own(document, name)
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
    if (!isRecord(raw) || own(raw, "_type") !== "mcp_service_account") {
      ignored.push(
        `authentication.${name}: _type ${show(isRecord(raw) ? own(raw, "_type") : raw)} (not run by mcp-auth)`
      )
      continue
    }
    const path = `authentication.${name}`
    if (tooManyValues(raw)) {
      issues.push(tooManyValuesIssue(path))
      continue
    }
    const { unset, value } = Interpolation.interpolate(raw, env, path)
    issues.push(...unsetIssues(unset))
    const decoded = ServiceAccountConfig.decodeEither(value, { path })
    if (Either.isLeft(decoded)) {
      // an unset variable already explains the empty value it left behind
      const explained = new Set(unset.map((u) => u.path))
      issues.push(...decoded.left.issues.filter((i) => !explained.has(i.path)))
    } else providers.set(name, resolvePaths(decoded.right, baseDir))
  }

  const groups = new Map<string, FunctionGroupConfig>()
  for (const [name, raw] of Object.entries(functionGroups)) {
    if (!isRecord(raw) || own(raw, "_type") !== "mcp_client") {
      ignored.push(
        `function_groups.${name}: _type ${show(isRecord(raw) ? own(raw, "_type") : raw)} (not run by mcp-auth)`
      )
      continue
    }
    const path = `function_groups.${name}`
    if (tooManyValues(raw)) {
      issues.push(tooManyValuesIssue(path))
      continue
    }
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
      } else groups.set(name, toGroup(name, decoded, value as Record<string, unknown>))
    }
  }
  for (const [name, provider] of providers) {
    if (provider.sharedCache !== undefined && provider.sharedCache.url === undefined) {
      issues.push(
        new ConfigIssue({
          path: `authentication.${name}.shared_cache.url`,
          message: "shared_cache.url is required in a workflow: give the Redis URL, e.g. " +
            "rediss://mcp-auth:${REDIS_PASSWORD}@redis.internal:6379/0"
        })
      )
    }
  }
  for (const [name, provider] of providers) {
    if (provider.discovery?.from !== "mcp_server") continue
    const servers = new Set([...groups.values()].filter((g) => g.authProvider === name).map((g) => g.url.href))
    if (servers.size !== 1) {
      issues.push(
        new ConfigIssue({
          path: `authentication.${name}`,
          message: servers.size === 0
            ? "the token endpoint is discovered from the MCP server (no token_url or issuer), but no function group " +
              "uses this provider: set token_url or issuer"
            : `the token endpoint is discovered from the MCP server, but ${servers.size} servers use this provider ` +
              "(each would need its own resource): give each server its own provider, or set token_url or issuer"
        })
      )
    }
  }
  if (issues.length > 0) return Either.left(new ConfigurationError({ issues }))
  return Either.right({ source, baseDir, providers, groups, ignored })
}

/** The provider's file paths, relative ones resolved against `baseDir` (see the module documentation). */
const resolvePaths = (
  config: ServiceAccountConfig.ServiceAccountConfig,
  baseDir: string
): ServiceAccountConfig.ServiceAccountConfig => {
  const resolve = (file: string | undefined) => file === undefined ? undefined : Path.resolve(baseDir, file)
  const assertion = config.clientAssertion
  const tls = config.tlsClientCertificate
  return {
    ...config,
    caFile: resolve(config.caFile),
    sharedCache: config.sharedCache === undefined
      ? undefined
      : { ...config.sharedCache, caFile: resolve(config.sharedCache.caFile) },
    clientSecretFile: resolve(config.clientSecretFile),
    privateKeyFile: resolve(config.privateKeyFile),
    certificateFile: resolve(config.certificateFile),
    clientAssertion: assertion?._tag === "File"
      ? { _tag: "File", path: Path.resolve(baseDir, assertion.path) }
      : assertion,
    tlsClientCertificate: tls === undefined
      ? undefined
      : {
        ...tls,
        certificateFile: Path.resolve(baseDir, tls.certificateFile),
        keyFile: Path.resolve(baseDir, tls.keyFile)
      }
  }
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
 * Parses YAML text. Syntax errors are reported with their line and column; text over {@link maxWorkflowBytes} is
 * refused before parsing (see the module documentation for every limit).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const parse = (
  text: string,
  options: LoadOptions & { readonly source?: string | undefined } = {}
): Either.Either<WorkflowConfig, ConfigurationError> => {
  const parsed = Yaml.parse(text)
  return "issues" in parsed
    ? Either.left(new ConfigurationError({ issues: parsed.issues }))
    : fromDocument(parsed.value, options)
}

const readError = (file: string, message: string) =>
  new ConfigurationError({ issues: [new ConfigIssue({ path: file, message })] })

/**
 * At most `limit + 1` bytes of a file (enough to tell it is too large), whatever its size: a FIFO, a device or a file
 * that grows is never read whole.
 */
const readBounded = (file: string, limit: number): Buffer => {
  const fd = Fs.openSync(file, "r")
  try {
    const buffer = Buffer.alloc(limit + 1)
    let length = 0
    while (length < buffer.length) {
      const n = Fs.readSync(fd, buffer, length, buffer.length - length, null)
      if (n === 0) break
      length += n
    }
    return buffer.subarray(0, length)
  } finally {
    Fs.closeSync(fd)
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * Reads and validates a workflow file. Relative module references resolve against the file's directory. A file over
 * {@link maxWorkflowBytes} or not valid UTF-8 is refused before parsing.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const load = (file: string, options: LoadOptions = {}): Effect.Effect<WorkflowConfig, ConfigurationError> =>
  Effect.flatMap(
    Effect.try({
      try: () => readBounded(file, maxWorkflowBytes),
      catch: (cause) =>
        readError(
          file,
          `cannot read the workflow file (${(cause as NodeJS.ErrnoException).code ?? "error"}): check the path`
        )
    }),
    (bytes) => {
      if (bytes.length > maxWorkflowBytes) {
        let size = `more than ${maxWorkflowBytes} bytes`
        try {
          const stat = Fs.statSync(file)
          if (stat.isFile()) size = `${stat.size} bytes`
        } catch {
          // the size is only for the message
        }
        return Either.left(new ConfigurationError({ issues: [Yaml.tooLarge(file, size)] }))
      }
      let text: string
      try {
        text = utf8.decode(bytes)
      } catch {
        return Either.left(readError(file, "the workflow file is not valid UTF-8: save it as UTF-8"))
      }
      return parse(text, {
        ...options,
        source: file,
        baseDir: options.baseDir ?? Path.dirname(Path.resolve(file))
      })
    }
  )

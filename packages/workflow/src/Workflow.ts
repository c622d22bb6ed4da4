/**
 * A workflow running: one token provider per `authentication:` entry (shared by every function group that references
 * it, one token cache each, as in NAT) and one MCP client per function group, with NAT's include/exclude and tool
 * overrides applied.
 *
 * @example
 * ```ts
 * import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
 * import { Workflow, WorkflowConfig } from "@mcp-auth/workflow"
 * import { Console, Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   // ${VAR}s come from process.env; every problem is reported at once as a ConfigurationError
 *   const config = yield* WorkflowConfig.load("config-mcp-service-account-jira.yml")
 *   const workflow = yield* Workflow.make(config) // providers and MCP clients live until the scope closes
 *   const jira = workflow.groups.get("mcp_jira")
 *   if (jira === undefined) return yield* Effect.dieMessage("no function group mcp_jira")
 *   const tools = yield* jira.listTools
 *   yield* Console.log(tools.map((tool) => tool.name).join(", "))
 *   return yield* jira.callTool("jira_get_issue", { key: "OCSW-2116" })
 * })
 *
 * NodeRuntime.runMain(Effect.scoped(program))
 * ```
 *
 * @since 0.1.0
 */
import type { FetchLike } from "@mcp-auth/client/AuthenticatedFetch"
import * as McpClient from "@mcp-auth/client/McpClient"
import { type McpCallError, McpRequestError } from "@mcp-auth/client/McpClientError"
import * as TrustedFetch from "@mcp-auth/client/TrustedFetch"
import * as AuthHeaders from "@mcp-auth/service-account/AuthHeaders"
import * as ClientAuthentication from "@mcp-auth/service-account/ClientAuthentication"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import type * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import {
  ConfigIssue,
  ConfigurationError,
  type ServiceTokenError,
  type TokenError
} from "@mcp-auth/service-account/ServiceAccountError"
import * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import type * as SharedTokenStore from "@mcp-auth/service-account/SharedTokenStore"
import * as SharedTokenStoreRedis from "@mcp-auth/service-account/SharedTokenStoreRedis"
import * as TokenHttpClient from "@mcp-auth/service-account/TokenHttpClient"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as ServiceTokenLoader from "./ServiceTokenLoader.js"
import type { FunctionGroupConfig, WorkflowConfig } from "./WorkflowConfig.js"

/**
 * A tool as a function group exposes it: the alias from `tool_overrides` if any.
 *
 * @since 0.1.0
 * @category Models
 */
export interface GroupTool {
  readonly name: string
  readonly serverName: string
  readonly description: string | undefined
  readonly inputSchema: Tool["inputSchema"]
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface FunctionGroup {
  readonly name: string
  readonly config: FunctionGroupConfig
  /** Tools after include/exclude and overrides. */
  readonly listTools: Effect.Effect<ReadonlyArray<GroupTool>, McpCallError>
  /** Calls a tool by its exposed name (alias or server name). */
  readonly callTool: (tool: string, args?: Record<string, unknown>) => Effect.Effect<CallToolResult, McpCallError>
}

/**
 * @since 0.1.0
 * @category Models
 */
export interface Workflow {
  readonly config: WorkflowConfig
  readonly providers: ReadonlyMap<string, TokenProvider.TokenProvider>
  readonly groups: ReadonlyMap<string, FunctionGroup>
}

/**
 * @since 0.1.0
 * @category Models
 */
export type StartError = ConfigurationError | ServiceTokenError | TokenError | McpCallError

/**
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /**
   * A PEM bundle trusted for MCP servers and for token endpoints without their own `ca_file`. An MCP server trusts
   * this bundle if it is given, else the `ca_file` of its group's `auth_provider` (groups without one: the system
   * roots).
   */
  readonly caFile?: string | undefined
  /** Connect only these function groups (default: all). */
  readonly groups?: ReadonlyArray<string> | undefined
  /** Whether to connect MCP clients at all (`false` for token-only commands). */
  readonly connect?: boolean | undefined
}

/**
 * Applies `include` / `exclude` and `tool_overrides` to a client.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const functionGroup = (config: FunctionGroupConfig, client: McpClient.McpClient): FunctionGroup => {
  const allowed = (serverName: string) =>
    config.include.length > 0 ? config.include.includes(serverName) : !config.exclude.includes(serverName)
  // tool names come from the server: an own-key lookup, so that a tool named `constructor` finds no override
  const override = (serverName: string) =>
    Object.hasOwn(config.toolOverrides, serverName) ? config.toolOverrides[serverName] : undefined
  const exposed = (serverName: string) => override(serverName)?.alias ?? serverName
  const serverNameOf = (tool: string) =>
    Object.entries(config.toolOverrides).find(([, o]) => o.alias === tool)?.[0] ?? tool
  const listTools = Effect.map(
    client.listTools,
    (tools) =>
      tools.filter((t) => allowed(t.name)).map((t): GroupTool => ({
        name: exposed(t.name),
        serverName: t.name,
        description: override(t.name)?.description ?? t.description,
        inputSchema: t.inputSchema
      }))
  )
  return {
    name: config.name,
    config,
    listTools,
    callTool: (tool, args) => {
      const serverName = serverNameOf(tool)
      return allowed(serverName)
        ? client.callTool(serverName, args)
        : Effect.fail(
          new McpRequestError({
            url: Scrub.url(config.url),
            operation: "tools/call",
            reason: "protocol",
            detail: `tool ${tool} is not exposed by function group ${config.name} (include/exclude)`
          })
        )
    }
  }
}

/** A provider's `ConfigurationError`, its paths under `authentication.<name>` as the loader reports them. */
const underProvider = (name: string) => (error: ConfigurationError): ConfigurationError =>
  new ConfigurationError({
    issues: error.issues.map((issue) =>
      new ConfigIssue({
        path: issue.path === "" ? `authentication.${name}` : `authentication.${name}.${issue.path}`,
        message: issue.message
      })
    )
  })

/**
 * Starts a workflow in the current scope: checks every provider's key, certificate, secret and assertion files (a
 * missing or malformed one is a `ConfigurationError` naming `authentication.<name>.<field>` and the file), loads
 * service-token functions, builds the providers (fetching a token at once for `preflight_auth: true`) and connects the
 * MCP clients.
 *
 * Connections: a token endpoint trusts its provider's `ca_file` (else `options.caFile`), presents the provider's TLS
 * client certificate and goes through its `proxy_url` (else `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`, as they are when
 * the workflow starts). A function group's MCP server gets the same certificate and proxy as its `auth_provider` (so
 * certificate-bound tokens work) and trusts `options.caFile` if given, else the provider's `ca_file`; groups without
 * an `auth_provider` use the proxy variables and `options.caFile`. A `client_assertion.function` given as
 * `"./file.ts#export"` resolves against the workflow file's directory, like `service_token.function`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (config: WorkflowConfig, options: Options = {}): Effect.Effect<Workflow, StartError, Scope.Scope> =>
  Effect.gen(function*() {
    if (config.ignored.length > 0) {
      yield* Effect.logDebug("Ignoring what mcp-auth does not run").pipe(
        Effect.annotateLogs({ source: config.source, ignored: config.ignored.join("; ") })
      )
    }
    const loadFunction = ServiceTokenLoader.make(config.baseDir)
    const wanted = [...config.groups.values()].filter((g) =>
      options.groups === undefined || options.groups.includes(g.name)
    )
    const auth = new Map<string, Context.Context<AuthHeaders.AuthHeaders>>()
    const providers = new Map<string, TokenProvider.TokenProvider>()
    for (const [name, provider] of config.providers) {
      yield* ClientAuthentication.check(provider).pipe(Effect.mapError(underProvider(name)))
    }
    // a provider that discovers its token endpoint from the MCP server uses its first function group's server (the
    // loader refuses such a provider without a group)
    const mcpUrls = new Map<string, string>()
    for (const group of config.groups.values()) {
      if (group.authProvider !== undefined && !mcpUrls.has(group.authProvider)) {
        mcpUrls.set(group.authProvider, group.url.href)
      }
    }
    // one shared token store per Redis (URL and CA), for every provider that shares tokens through it
    const stores = new Map<string, Context.Context<SharedTokenStore.SharedTokenStore>>()
    const storeFor = (provider: ServiceAccountConfig.ServiceAccountConfig, name: string) => {
      const shared = provider.sharedCache
      if (shared === undefined) return Effect.succeed(Context.empty() as Context.Context<never>)
      const id = JSON.stringify([shared.url === undefined ? null : Redacted.value(shared.url), shared.caFile ?? null])
      const built = stores.get(id)
      if (built !== undefined) return Effect.succeed(built)
      return Layer.build(SharedTokenStoreRedis.layerFromConfig(provider)).pipe(
        Effect.mapError(underProvider(name)),
        Effect.tap((context) => stores.set(id, context))
      )
    }
    for (const [name, provider] of config.providers) {
      const store = yield* storeFor(provider, name)
      const tokenLayer = TokenProvider.layer(provider, { name, loadFunction, mcpUrl: mcpUrls.get(name) }).pipe(
        Layer.provide(Layer.succeedContext(store)),
        Layer.provide(
          TokenHttpClient.layer({
            ...TokenHttpClient.optionsFromConfig(provider),
            caFile: provider.caFile ?? options.caFile
          })
        )
      )
      const context = yield* Layer.build(
        AuthHeaders.layer.pipe(
          Layer.provide(ServiceToken.layerFromConfig(provider, { loadFunction, name })),
          Layer.provideMerge(tokenLayer)
        )
      )
      const tokens = Context.get(context, TokenProvider.TokenProvider)
      if (provider.preflightAuth) yield* tokens.get
      providers.set(name, tokens)
      auth.set(name, context)
    }
    const groups = new Map<string, FunctionGroup>()
    if (options.connect !== false) {
      // one fetch (one connection pool) per auth provider, and one for the groups without
      const fetches = new Map<string | undefined, FetchLike>()
      const fetchFor = (
        providerName: string | undefined
      ): Effect.Effect<FetchLike, ConfigurationError, Scope.Scope> => {
        const made = fetches.get(providerName)
        if (made !== undefined) return Effect.succeed(made)
        const provider = providerName === undefined ? undefined : config.providers.get(providerName)
        return (provider === undefined
          ? TrustedFetch.make({ caFile: options.caFile })
          : TrustedFetch.fromConfig(provider, { caFile: options.caFile }).pipe(
            Effect.mapError(underProvider(providerName!))
          )).pipe(Effect.tap((fetch) => fetches.set(providerName, fetch)))
      }
      for (const group of wanted) {
        const fetch = yield* fetchFor(group.authProvider)
        const clientOptions: McpClient.Options = {
          url: group.url,
          name: group.name,
          transport: group.transport,
          headers: group.customHeaders,
          fetch,
          toolCallTimeout: group.toolCallTimeout,
          maxResponseBytes: group.maxResponseBytes,
          reconnect: group.reconnect
        }
        const context = group.authProvider === undefined ? undefined : auth.get(group.authProvider)
        const client = context === undefined
          ? yield* McpClient.makeUnauthenticated(clientOptions)
          : yield* McpClient.make(clientOptions).pipe(Effect.provide(context))
        groups.set(group.name, functionGroup(group, client))
      }
    }
    return { config, providers, groups }
  })

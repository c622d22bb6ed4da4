/**
 * The commands that reach servers: `token`, `tools list`, `tools call`. They load the MCP SDK and undici, so they live
 * apart from the rest and are loaded when one of them runs.
 *
 * @internal
 */
import * as Workflow from "@mcp-auth/workflow/Workflow"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { renderResult } from "../Cli.js"
import { ToolError, UsageError } from "../Errors.js"

const progress = (message: string) => Console.error(`… ${message}`)

/** @internal */
export const token = (options: {
  readonly config: string
  readonly provider: Option.Option<string>
  readonly showToken: boolean
  readonly caFile: Option.Option<string>
}) =>
  Effect.gen(function*() {
    const { caFile, config, provider, showToken } = options
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
  }).pipe(Effect.scoped)

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

/** @internal */
export const toolsList = (options: {
  readonly config: string
  readonly group: Option.Option<string>
  readonly caFile: Option.Option<string>
}) =>
  Effect.gen(function*() {
    const workflow = yield* connectGroups(
      options.config,
      Option.match(options.group, { onNone: () => undefined, onSome: (g) => [g] }),
      options.caFile
    )
    for (const g of workflow.groups.values()) {
      const tools = yield* g.listTools
      yield* Console.log(`${g.name} (${tools.length} tools)`)
      for (const tool of tools) {
        const alias = tool.name === tool.serverName ? "" : ` [server: ${tool.serverName}]`
        yield* Console.log(`  ${g.name}.${tool.name}${alias}  ${(tool.description ?? "").split("\n")[0]}`)
      }
    }
  }).pipe(Effect.scoped)

/** @internal */
export const toolsCall = (options: {
  readonly config: string
  readonly target: string
  readonly args: string
  readonly caFile: Option.Option<string>
}) =>
  Effect.gen(function*() {
    const { args, caFile, config, target } = options
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
  }).pipe(Effect.scoped)

/**
 * The commands that reach servers: `token`, `tools list`, `tools call`. They load the MCP SDK and undici, so they live
 * apart from the rest and are loaded when one of them runs.
 *
 * @internal
 */
import * as ClientAuthentication from "@mcp-auth/service-account/ClientAuthentication"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as Workflow from "@mcp-auth/workflow/Workflow"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { maxArgsDepth, renderResult } from "../Cli.js"
import { ToolError, UsageError } from "../Errors.js"
import * as Secrets from "./secrets.js"

const progress = (message: string) => Console.error(`… ${message}`)

/** A tool description in `tools list`: its first line, at most this many characters. */
const maxDescriptionChars = 200

/** `expires_at` as printed by `mcp-auth token`, whatever number the provider holds. */
const expiry = (expiresAt: number, now: number): string => {
  const date = new Date(expiresAt)
  const seconds = Math.round((expiresAt - now) / 1000)
  return Number.isNaN(date.getTime())
    ? `not a valid date (expires_in too large: ${Number.isFinite(seconds) ? seconds : "?"}s)`
    : `${date.toISOString()} (in ${seconds}s)`
}

const argsExample = "e.g. --args '{\"key\": \"OCSW-2116\"}'"

/**
 * What is wrong with parsed `--args` that JSON.parse accepts: nesting deeper than `maxArgsDepth` (the MCP SDK's
 * serialiser would overflow the stack) or a number that is not finite (1e400 parses as Infinity, sent as null).
 * Walked without recursion.
 */
const argsProblem = (value: unknown): string | undefined => {
  const stack: Array<readonly [unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!
    if (typeof current === "number" && !Number.isFinite(current)) {
      return "--args has a number out of range (JSON would send it as null)"
    }
    if (typeof current !== "object" || current === null) continue
    if (depth + 1 > maxArgsDepth) {
      return `--args nests too deep: at most ${maxArgsDepth} levels of objects and arrays`
    }
    for (const child of Object.values(current)) stack.push([child, depth + 1])
  }
  return undefined
}

/** `--args` as the tool's arguments: a JSON object of sane depth, checked before anything connects. */
const parseArgs = (args: string) =>
  Effect.gen(function*() {
    const parsed = yield* Effect.try({
      try: () => JSON.parse(args) as unknown,
      catch: (cause) =>
        new UsageError(
          cause instanceof RangeError
            ? `--args nests too deep: at most ${maxArgsDepth} levels of objects and arrays`
            : "--args is not valid JSON",
          argsExample
        )
    })
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* Effect.fail(new UsageError("--args must be a JSON object", argsExample))
    }
    const problem = argsProblem(parsed)
    if (problem !== undefined) return yield* Effect.fail(new UsageError(problem, argsExample))
    return parsed as Record<string, unknown>
  })

/** @internal */
export const token = (options: {
  readonly config: string
  readonly provider: Option.Option<string>
  readonly showToken: boolean
  readonly caFile: Option.Option<string>
  readonly json: boolean
}) =>
  Effect.gen(function*() {
    const { caFile, config, json, provider, showToken } = options
    const workflow = yield* WorkflowConfig.load(config)
    Secrets.fromConfig(workflow)
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
    Secrets.watch(running.providers.values())
    // the token endpoint (discovered when not configured) and how the client authenticates there, in words (never the
    // credential): the method and where its credential comes from
    const resolved = yield* tokens.resolved
    const tokenUrl = Scrub.url(resolved.tokenUrl)
    const method = Secrets.line(ClientAuthentication.describe(resolved), 1_000)
    yield* progress(`requesting a token for ${name} from ${tokenUrl} with ${method}`)
    const accessToken = yield* tokens.get
    const now = yield* Clock.currentTimeMillis
    // with shared_cache: whether another process of the fleet had published the token
    const shared = (yield* tokens.state).sharedCache
    const source = shared === undefined
      ? undefined
      : shared.lastSource === "fleet"
      ? "fleet cache (shared_cache)"
      : shared.unavailableSince !== undefined
      ? "token endpoint (shared_cache unavailable: fail open)"
      : "token endpoint (requested by this process; shared_cache on)"
    const scopes = Secrets.line(accessToken.scopes.join(" "), 1_000)
    if (json) {
      const seconds = Math.round((accessToken.expiresAt - now) / 1000)
      const date = new Date(accessToken.expiresAt)
      return yield* Console.log(JSON.stringify(
        {
          provider: name,
          token_url: tokenUrl,
          auth_method: method,
          ...(source === undefined ? {} : { source }),
          token_type: Secrets.line(accessToken.tokenType),
          scopes: scopes === "" ? [] : scopes.split(" "),
          expires_at: Number.isNaN(date.getTime()) ? null : date.toISOString(),
          expires_in: Number.isFinite(seconds) ? seconds : null,
          access_token: showToken ? Redacted.value(accessToken.token) : null
        },
        null,
        2
      ))
    }
    yield* Console.log(`provider:     ${name}`)
    yield* Console.log(`token_url:    ${tokenUrl}`)
    yield* Console.log(`auth_method:  ${method}`)
    if (source !== undefined) yield* Console.log(`source:       ${source}`)
    yield* Console.log(`token_type:   ${Secrets.line(accessToken.tokenType)}`)
    yield* Console.log(`scopes:       ${scopes || "(none)"}`)
    yield* Console.log(`expires_at:   ${expiry(accessToken.expiresAt, now)}`)
    yield* Console.log(
      `access_token: ${showToken ? Redacted.value(accessToken.token) : "<redacted> (pass --show-token to print it)"}`
    )
  }).pipe(Effect.scoped)

const connectGroups = (file: string, groups: ReadonlyArray<string> | undefined, ca: Option.Option<string>) =>
  Effect.gen(function*() {
    const workflow = yield* WorkflowConfig.load(file)
    Secrets.fromConfig(workflow)
    for (const group of groups ?? []) {
      if (!workflow.groups.has(group)) {
        return yield* Effect.fail(
          new UsageError(`no function group ${group} in ${file}`, `groups: ${[...workflow.groups.keys()].join(", ")}`)
        )
      }
    }
    for (const g of workflow.groups.values()) {
      if (groups === undefined || groups.includes(g.name)) {
        yield* progress(`connecting ${g.name} to ${Scrub.url(g.url)}`)
      }
    }
    const running = yield* Workflow.make(workflow, { caFile: Option.getOrUndefined(ca), groups })
    Secrets.watch(running.providers.values())
    return running
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
        const alias = tool.name === tool.serverName ? "" : ` [server: ${Secrets.line(tool.serverName)}]`
        const description = Secrets.line((tool.description ?? "").split(/\r?\n/)[0]!, maxDescriptionChars)
        yield* Console.log(`  ${g.name}.${Secrets.line(tool.name)}${alias}  ${description}`)
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
    const parsed = yield* parseArgs(args)
    const [group, tool] = [target.slice(0, dot), target.slice(dot + 1)]
    const workflow = yield* connectGroups(config, [group], caFile)
    const result = yield* workflow.groups.get(group)!.callTool(tool, parsed)
    yield* Console.log(renderResult(result, Secrets.all()))
    if (result.isError === true) return yield* Effect.fail(new ToolError(`tool ${target} returned an error`))
  }).pipe(Effect.scoped)

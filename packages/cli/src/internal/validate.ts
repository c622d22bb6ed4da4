/**
 * `mcp-auth validate`: reads the workflow, reads and checks every credential file its providers name (keys,
 * certificates, secret and assertion files) and loads its service-token functions; connects to nothing.
 *
 * @internal
 */
import * as ClientAuthentication from "@mcp-auth/service-account/ClientAuthentication"
import type * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import { ConfigIssue, ConfigurationError } from "@mcp-auth/service-account/ServiceAccountError"
import type * as ServiceToken from "@mcp-auth/service-account/ServiceToken"
import * as ServiceTokenLoader from "@mcp-auth/workflow/ServiceTokenLoader"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"

/**
 * One provider's credential files and keys, checked as its first token request would read them, and its
 * `client_assertion.function` module loaded (not called): the problems, each under `authentication.<name>.<field>`
 * and naming the file, never its contents.
 *
 * @internal
 */
export const providerIssues = (
  name: string,
  provider: ServiceAccountConfig.ServiceAccountConfig,
  load: ServiceToken.FunctionLoader
): Effect.Effect<Array<ConfigIssue>> =>
  Effect.gen(function*() {
    const issues: Array<ConfigIssue> = []
    const assertion = provider.clientAssertion
    if (assertion?._tag === "Function" && typeof assertion.function === "string") {
      const loaded = yield* Effect.either(load(assertion.function))
      if (Either.isLeft(loaded)) {
        issues.push(
          new ConfigIssue({
            path: `authentication.${name}.client_assertion.function`,
            message: `client_assertion.function cannot be loaded: ${loaded.left.detail}`
          })
        )
      }
    }
    const checked = yield* Effect.either(ClientAuthentication.check(provider))
    if (Either.isLeft(checked)) issues.push(...under(name, checked.left))
    return issues
  })

/** A provider's configuration issues under `authentication.<name>`. @internal */
export const under = (name: string, error: ConfigurationError): Array<ConfigIssue> =>
  error.issues.map((issue) =>
    new ConfigIssue({
      path: `authentication.${name}${issue.path === "" ? "" : `.${issue.path}`}`,
      message: issue.message
    })
  )

/**
 * Every provider's {@link providerIssues}: one `ConfigurationError` listing the problems of all providers.
 *
 * @internal
 */
export const checkCredentials = (workflow: WorkflowConfig.WorkflowConfig) =>
  Effect.gen(function*() {
    const load = ServiceTokenLoader.make(workflow.baseDir)
    const issues: Array<ConfigIssue> = []
    for (const [name, provider] of workflow.providers) issues.push(...yield* providerIssues(name, provider, load))
    if (issues.length > 0) return yield* Effect.fail(new ConfigurationError({ issues }))
  })

/** @internal */
export const validate = (config: string) =>
  Effect.gen(function*() {
    const workflow = yield* WorkflowConfig.load(config)
    yield* checkCredentials(workflow)
    // service-token functions are loaded now, as they would be at start-up
    const load = ServiceTokenLoader.make(workflow.baseDir)
    for (const provider of workflow.providers.values()) {
      const fn = provider.serviceToken?._tag === "Function" ? provider.serviceToken.function : undefined
      if (typeof fn === "string") yield* load(fn)
    }
    const providers = [...workflow.providers].map(([name, provider]) =>
      `${name} (${ClientAuthentication.describe(provider)})`
    )
    const groups = [...workflow.groups.values()].map((g) =>
      `${g.name} (${g.transport} ${g.url.origin}${g.url.pathname}${
        g.authProvider ? ` → ${g.authProvider}` : ", no auth"
      })`
    )
    yield* Console.log(`✓ ${config} is valid`)
    yield* Console.log(`  providers:       ${providers.join(", ") || "(none)"}`)
    yield* Console.log(`  function groups: ${groups.join(", ") || "(none)"}`)
    if (workflow.ignored.length > 0) yield* Console.log(`  ignored:         ${workflow.ignored.join("; ")}`)
  })

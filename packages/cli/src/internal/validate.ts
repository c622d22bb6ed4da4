/**
 * `mcp-auth validate`: reads the workflow and loads its service-token functions; connects to nothing.
 *
 * @internal
 */
import * as ServiceTokenLoader from "@mcp-auth/workflow/ServiceTokenLoader"
import * as WorkflowConfig from "@mcp-auth/workflow/WorkflowConfig"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"

/** @internal */
export const validate = (config: string) =>
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
  })

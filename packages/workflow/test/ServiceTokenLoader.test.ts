import { describe, expect, it } from "@effect/vitest"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import { ServiceTokenLoader } from "@mcp-auth/workflow"
import { Effect } from "effect"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const dir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "fixtures/modules")
const load = ServiceTokenLoader.make(dir)
const context = RequestContext.make("https://mcp.example.com/mcp", "POST", { mcpMethod: "tools/call" })

describe("ServiceTokenLoader", () => {
  it.live("loads a TypeScript export relative to the config file", () =>
    Effect.gen(function*() {
      const fn = yield* load("./tokens.ts#fromKwargs")
      expect(yield* Effect.promise(async () => fn({ prefix: "p" }, context))).toBe("p:tools/call")
    }))

  it.live("loads a JavaScript module", () =>
    Effect.gen(function*() {
      const fn = yield* load("./plain.mjs#getToken")
      expect(fn({}, context)).toBe("from-plain-js")
    }))

  it.live("maps a NAT dotted path to a module next to the config", () =>
    Effect.gen(function*() {
      const fn = yield* load("nat_pkg.service_tokens.get_service_token")
      expect(yield* Effect.promise(async () => fn({}, context))).toEqual(["X-Nat-Token", "from-dotted-path"])
    }))

  it.live("says clearly what is missing", () =>
    Effect.gen(function*() {
      const missingModule = yield* Effect.flip(load("./nope.ts#f"))
      expect(missingModule.message).toBe(
        `Failed to load service token function './nope.ts#f': module ${Path.join(dir, "nope.ts")} does not exist`
      )
      const missingExport = yield* Effect.flip(load("./tokens.ts#getJira"))
      expect(missingExport.message).toBe(
        "Failed to load service token function './tokens.ts#getJira': ./tokens.ts has no exported function getJira (it exports: fromKwargs)"
      )
      const notFunction = yield* Effect.flip(load("./tokens.ts#notAFunction"))
      expect(notFunction.reason).toBe("load_failed")
      const python = yield* Effect.flip(
        load("nat_service_account_auth_mcp.scripts.service_tokens.get_jira_service_token")
      )
      expect(python.message).toContain("a NAT Python path is not importable from Node")
      expect(python.message).toContain("\"./path/to/module.ts#get_jira_service_token\"")
      const noHash = yield* Effect.flip(load("./tokens.ts"))
      expect(noHash.message).toContain("give a module and an export separated by '#'")
    }))
})

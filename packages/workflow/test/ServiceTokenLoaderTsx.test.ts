import { describe, expect, it } from "@effect/vitest"
import * as RequestContext from "@mcp-auth/service-account/RequestContext"
import { ServiceTokenLoader } from "@mcp-auth/workflow"
import { Effect } from "effect"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const dir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "fixtures/modules")
const context = RequestContext.make("https://mcp.example.com/mcp", "POST", { mcpMethod: "tools/call" })

// a real failed resolution, as when tsx is not installed
const missingPackage = "@mcp-auth/not-installed-tsx/esm/api"
let tsxLoads = 0
const withoutTsx = ServiceTokenLoader.makeWith(dir, () => {
  tsxLoads++
  return import(/* @vite-ignore */ missingPackage)
})

describe("ServiceTokenLoader without tsx (an optional peer dependency)", () => {
  it.live("a TypeScript module fails with a ServiceTokenError saying to install tsx", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(withoutTsx("./tokens.ts#fromKwargs"))
      expect(error._tag).toBe("ServiceTokenError")
      expect(error.reason).toBe("load_failed")
      expect(error.message).toBe(
        "Failed to load service token function './tokens.ts#fromKwargs': cannot load ./tokens.ts: install tsx " +
          "(npm i tsx) to load TypeScript service-token modules, or compile it to .js"
      )
      expect(error.cause).toBeInstanceOf(Error)
      const dotted = yield* Effect.flip(withoutTsx("nat_pkg.service_tokens.get_service_token"))
      expect(dotted.message).toContain("install tsx (npm i tsx)")
    }))

  it.live("a JavaScript module never loads tsx", () =>
    Effect.gen(function*() {
      const before = tsxLoads
      const fn = yield* withoutTsx("./plain.mjs#getToken")
      expect(fn({}, context)).toBe("from-plain-js")
      expect(tsxLoads).toBe(before)
    }))

  it.live("a missing module is reported before tsx is needed; a package falls back to require rules without tsx", () =>
    Effect.gen(function*() {
      const before = tsxLoads
      const missing = yield* Effect.flip(withoutTsx("./nope.ts#f"))
      expect(missing.message).toContain("does not exist")
      expect(tsxLoads).toBe(before)
      // a package is imported through tsx (`import` conditions) when it is installed: here it is not, so the package
      // is resolved by `require` rules, and a missing one is named as such, not as a missing tsx
      const unresolved = yield* Effect.flip(withoutTsx("no-such-package/tokens#f"))
      expect(unresolved.message).toContain(
        `Failed to load service token function 'no-such-package/tokens#f': cannot resolve no-such-package/tokens from ${dir}`
      )
      expect(tsxLoads).toBe(before + 1)
    }))

  it.live("with tsx installed, a package export loads as `import` resolves it", () =>
    Effect.gen(function*() {
      const fn = yield* ServiceTokenLoader.make(dir)("effect/Function#constant")
      expect((fn as unknown as (value: string) => () => string)("from-a-package")()).toBe("from-a-package")
    }))
})

/**
 * Loads `service_token.function` references. NAT uses a Python dotted path; mcp-auth uses a module specifier and an
 * export: `./scripts/service-tokens.ts#getJiraServiceToken` (relative to the config file; TypeScript works) or
 * `package/subpath#name`. A NAT dotted path `pkg.mod.fn` is tried as `./pkg/mod.{ts,mts,js,mjs}#fn`, so a function
 * ported to TypeScript at the same place keeps the config unchanged.
 *
 * Loaded eagerly at start-up, with a clear error if the module or the export is missing.
 *
 * @since 0.1.0
 */
import type { ServiceTokenFunction } from "@mcp-auth/service-account/ServiceAccountConfig"
import { ServiceTokenError } from "@mcp-auth/service-account/ServiceAccountError"
import type { FunctionLoader } from "@mcp-auth/service-account/ServiceToken"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"

const failure = (reference: string, detail: string, cause?: unknown) =>
  new ServiceTokenError({
    reason: "load_failed",
    detail: `'${reference}': ${detail}`,
    ...(cause !== undefined ? { cause } : {})
  })

const extensions = [".ts", ".mts", ".js", ".mjs", ".cjs"]

/** `module#export`, or a NAT dotted path mapped to a file next to the config. */
const split = (reference: string, baseDir: string): { module: string; name: string } | string => {
  const hash = reference.lastIndexOf("#")
  if (hash > 0 && hash < reference.length - 1) {
    return { module: reference.slice(0, hash), name: reference.slice(hash + 1) }
  }
  const dot = reference.lastIndexOf(".")
  if (hash === -1 && dot > 0 && !reference.includes("/")) {
    const stem = Path.join(baseDir, ...reference.slice(0, dot).split("."))
    const file = extensions.map((ext) => `${stem}${ext}`).find((f) => Fs.existsSync(f))
    if (file !== undefined) return { module: file, name: reference.slice(dot + 1) }
    return `a NAT Python path is not importable from Node: write the function in TypeScript or JavaScript and ` +
      `reference it as "./path/to/module.ts#${reference.slice(dot + 1)}" (relative to the config file)`
  }
  return "give a module and an export separated by '#', e.g. \"./scripts/service-tokens.ts#getJiraServiceToken\""
}

/**
 * A loader resolving relative modules against `baseDir` (the config file's directory).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (baseDir: string): FunctionLoader => (reference) =>
  Effect.gen(function*() {
    const target = split(reference, baseDir)
    if (typeof target === "string") return yield* failure(reference, target)
    const relative = target.module.startsWith(".") || Path.isAbsolute(target.module)
    const specifier = relative ? pathToFileURL(Path.resolve(baseDir, target.module)).href : target.module
    if (relative && !Fs.existsSync(Path.resolve(baseDir, target.module))) {
      return yield* failure(reference, `module ${Path.resolve(baseDir, target.module)} does not exist`)
    }
    const module = yield* Effect.tryPromise({
      // tsx (TypeScript support) is loaded only when a workflow references a module
      try: () =>
        import("tsx/esm/api").then(({ tsImport }) =>
          tsImport(specifier, pathToFileURL(Path.join(baseDir, "workflow.yml")).href) as Promise<
            Record<string, unknown>
          >
        ),
      catch: (cause) =>
        failure(
          reference,
          `cannot import ${target.module}: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`,
          cause
        )
    })
    const fn = module[target.name] ??
      (target.name === "default" ? undefined : (module.default as Record<string, unknown> | undefined)?.[target.name])
    if (typeof fn !== "function") {
      const exported = Object.keys(module).filter((k) => typeof module[k] === "function")
      return yield* failure(
        reference,
        `${target.module} has no exported function ${target.name}` +
          (exported.length > 0 ? ` (it exports: ${exported.join(", ")})` : "")
      )
    }
    return fn as ServiceTokenFunction
  })

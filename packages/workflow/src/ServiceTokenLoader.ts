/**
 * Loads `service_token.function` references. NAT uses a Python dotted path; mcp-auth uses a module specifier and an
 * export: `./scripts/service-tokens.ts#getJiraServiceToken` (relative to the config file; TypeScript works) or
 * `package/subpath#name`. A NAT dotted path `pkg.mod.fn` is tried as `./pkg/mod.{ts,mts,js,mjs}#fn`, so a function
 * ported to TypeScript at the same place keeps the config unchanged.
 *
 * TypeScript modules are imported through `tsx` (an optional peer dependency, loaded only for them); JavaScript
 * modules through Node itself. Loaded eagerly at start-up, with a clear error if the module, the export or `tsx` is
 * missing.
 *
 * @since 0.1.0
 */
import type { ServiceTokenFunction } from "@mcp-auth/service-account/ServiceAccountConfig"
import { ServiceTokenError } from "@mcp-auth/service-account/ServiceAccountError"
import type { FunctionLoader } from "@mcp-auth/service-account/ServiceToken"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
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
 * The part of `tsx/esm/api` the loader uses.
 *
 * @internal
 */
export interface TsxApi {
  readonly tsImport: (specifier: string, parentURL: string) => Promise<unknown>
}

const typeScript = /\.(?:[cm]?ts|tsx)$/

const isRelative = (module: string) => module.startsWith(".") || Path.isAbsolute(module)

/** The file a module specifier names: relative to `baseDir`, or resolved from there as a package (`require` rules). */
const resolveFile = (reference: string, module: string, baseDir: string) => {
  if (isRelative(module)) {
    const file = Path.resolve(baseDir, module)
    return Fs.existsSync(file)
      ? Effect.succeed(file)
      : Effect.fail(failure(reference, `module ${file} does not exist`))
  }
  return Effect.try({
    try: () => createRequire(Path.join(baseDir, "workflow.yml")).resolve(module),
    catch: (cause) => failure(reference, `cannot resolve ${module} from ${baseDir}: ${firstLine(cause)}`, cause)
  })
}

const firstLine = (cause: unknown) => cause instanceof Error ? cause.message.split("\n")[0] : String(cause)

/**
 * {@link make} with the way `tsx` is loaded given, so the path where it is not installed can be tested.
 *
 * @internal
 */
export const makeWith = (baseDir: string, loadTsx: () => Promise<TsxApi>): FunctionLoader => (reference) =>
  Effect.gen(function*() {
    const target = split(reference, baseDir)
    if (typeof target === "string") return yield* failure(reference, target)
    const parent = pathToFileURL(Path.join(baseDir, "workflow.yml")).href
    const cannotImport = (cause: unknown) =>
      failure(reference, `cannot import ${target.module}: ${firstLine(cause)}`, cause)
    const tsx = Effect.tryPromise({
      try: loadTsx,
      catch: (cause) =>
        failure(
          reference,
          `cannot load ${target.module}: install tsx (npm i tsx) to load TypeScript service-token modules, ` +
            `or compile it to .js`,
          cause
        )
    })
    const withTsx = (specifier: string) =>
      Effect.flatMap(
        tsx,
        ({ tsImport }) => Effect.tryPromise({ try: () => tsImport(specifier, parent), catch: cannotImport })
      )
    const byFile = Effect.flatMap(resolveFile(reference, target.module, baseDir), (file) =>
      typeScript.test(file)
        // TypeScript needs tsx, an optional peer dependency, loaded only now; JavaScript is imported by Node itself
        ? withTsx(pathToFileURL(file).href)
        : Effect.tryPromise({ try: () => import(pathToFileURL(file).href) as Promise<unknown>, catch: cannotImport }))
    // a package is resolved as `import` would (its `import` condition) through tsx when it is there, else by `require`
    // rules (a package that exports only an `import` condition then needs tsx)
    const module = yield* (isRelative(target.module)
      ? byFile
      : Effect.flatMap(
        Effect.option(Effect.tryPromise(loadTsx)),
        Option.match({
          onNone: () => byFile,
          onSome: ({ tsImport }) =>
            Effect.tryPromise({ try: () => tsImport(target.module, parent), catch: cannotImport })
        })
      ))
    const exports = module as Record<string, unknown>
    const fn = exports[target.name] ??
      (target.name === "default" ? undefined : (exports.default as Record<string, unknown> | undefined)?.[target.name])
    if (typeof fn !== "function") {
      const exported = Object.keys(exports).filter((k) => typeof exports[k] === "function")
      return yield* failure(
        reference,
        `${target.module} has no exported function ${target.name}` +
          (exported.length > 0 ? ` (it exports: ${exported.join(", ")})` : "")
      )
    }
    return fn as ServiceTokenFunction
  })

/**
 * A loader resolving relative modules against `baseDir` (the config file's directory). TypeScript modules need
 * `tsx` (an optional peer dependency); without it, loading one fails with a `ServiceTokenError` saying to install it.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (baseDir: string): FunctionLoader => makeWith(baseDir, () => import("tsx/esm/api"))

/**
 * TypeDoc plugin for this repository's layout (Effect style: one `Module.ts` per namespace, re-exported with
 * `export * as Module from "./Module.js"`, its documentation in the comment at the top of the file).
 *
 * - Names each entry-point module after its import path, read from the nearest package.json: `@mcp-auth/client`
 *   instead of `client/src`; an entry point other than `src/index.ts` is a deep import
 *   (`@mcp-auth/service-account/TokenHttpClient`).
 * - Documents a package's entry module with its package.json `description`.
 * - Uses the comment at the top of a module file as the documentation of its namespace. TypeDoc reads such a comment
 *   only when it carries `@module`/`@packageDocumentation`; here it is the module's documentation by convention, and
 *   the `@since` of the re-export in `index.ts` is kept when the file's comment has none.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Comment, CommentTag, Converter, MinimalSourceFile, ReflectionKind } from "typedoc"
import ts from "typescript"

const manifestOf = (file) => {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json")
    if (fs.existsSync(manifest)) return JSON.parse(fs.readFileSync(manifest, "utf8"))
  }
  return undefined
}

const isIndex = (file) => path.basename(file) === "index.ts"

/**
 * The text of the `/** … *\/` comment a file starts with, without the ` * ` margins, when it is the file's header
 * (followed by the imports or another comment, not by the declaration it would document); otherwise undefined.
 */
const headerOf = (sourceFile) => {
  const match = /^\s*\/\*\*([\s\S]*?)\*\/\s*(?=import\b|\/[*/])/.exec(sourceFile.text)
  if (match === null) return undefined
  return match[1].split("\n").map((line) => line.replace(/^\s*\* ?/, "")).join("\n").trim()
}

/** Splits a comment body into its summary and its block tags (`@since 0.1.0`, `@see …`). */
const split = (body) => {
  const summary = []
  const tags = []
  for (const line of body.split("\n")) {
    const tag = /^(@[a-zA-Z]+)\s*(.*)$/.exec(line)
    if (tag !== null) tags.push({ tag: tag[1], lines: [tag[2]] })
    else if (tags.length > 0) tags[tags.length - 1].lines.push(line)
    else summary.push(line)
  }
  return { summary: summary.join("\n").trim(), tags }
}

const sourceFileOf = (context, reflection) => {
  let symbol = context.getSymbolFromReflection(reflection)
  if (symbol === undefined) return undefined
  if (symbol.flags & ts.SymbolFlags.Alias) symbol = context.checker.getAliasedSymbol(symbol)
  return symbol.declarations?.find(ts.isSourceFile)
}

/** @param {import("typedoc").Application} app */
export const load = (app) => {
  // set when the reflection is created, applied once conversion is done (TypeDoc sets the re-export's comment later)
  const headers = new Map()
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(ReflectionKind.Namespace | ReflectionKind.Module)) return
    const sourceFile = sourceFileOf(context, reflection)
    if (sourceFile === undefined || isIndex(sourceFile.fileName)) return
    const header = headerOf(sourceFile)
    if (header === undefined || /@(module|packageDocumentation)\b/.test(header)) return
    const parse = (text) =>
      app.converter.parseRawComment(new MinimalSourceFile(text, sourceFile.fileName), context.project.files).content
    const { summary, tags } = split(header)
    const blockTags = tags.map(({ lines, tag }) => new CommentTag(tag, parse(lines.join("\n").trim())))
    headers.set(reflection, new Comment(parse(summary), blockTags))
  })

  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const [reflection, comment] of headers) {
      for (const existing of reflection.comment?.blockTags ?? []) {
        if (!comment.blockTags.some((t) => t.tag === existing.tag)) comment.blockTags.push(existing)
      }
      reflection.comment = comment
    }
    headers.clear()
    for (const module of context.project.getChildrenByKind(ReflectionKind.Module)) {
      const file = module.sources?.[0]?.fullFileName
      const manifest = file === undefined ? undefined : manifestOf(file)
      if (manifest === undefined) {
        app.logger.error(`typedoc-plugin: no package.json above the module ${module.name}`)
      } else if (isIndex(file)) {
        module.name = manifest.name
        module.comment = new Comment([{ kind: "text", text: manifest.description ?? "" }])
      } else {
        module.name = `${manifest.name}/${path.basename(file, ".ts")}`
      }
    }
  })
}

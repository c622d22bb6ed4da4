/**
 * Bounded YAML loading: a size limit checked before parsing, the library's parse errors with their location and a fix
 * hint, and a linear pass over the syntax tree (duplicate keys, complex keys, aliases, nesting) before the tree is
 * turned into JavaScript values. Nothing here throws: every failure is a list of issues.
 *
 * Why the pass: the `yaml` library's duplicate-key check (`uniqueKeys`) compares each key with every earlier key of
 * its map (quadratic: 138 s for a 1 MiB map of 100 000 keys on a 2-core machine, 1.8 s without it), and resolving an
 * alias scans every earlier anchor and alias (quadratic in the number of aliases: 205 s for 1 MiB of aliases). Its
 * own alias check bounds neither the size of what aliases expand to nor cycles, which later recursive walks would
 * not survive.
 *
 * @internal
 */
import { ConfigIssue } from "@mcp-auth/service-account/ServiceAccountError"
import * as YAML from "yaml"

/** @internal */
export const limits = {
  /** Bytes of a workflow (UTF-8), file or inline text. */
  bytes: 1024 * 1024,
  /** Aliases (`*name`) in one document. */
  aliases: 1000,
  /** Values the document expands to once aliases are resolved (keys and values count one each). */
  values: 1_000_000,
  /** Nesting levels once aliases are resolved. */
  depth: 100,
  /** Parse errors listed; the rest are counted. */
  errors: 10
} as const

/** @internal */
export const mebibytes = (bytes: number): string => `${bytes / (1024 * 1024)} MiB`

/** @internal */
export const tooLarge = (where: string, size: string): ConfigIssue =>
  new ConfigIssue({
    path: where,
    message: `the workflow is ${size}, over the ${mebibytes(limits.bytes)} (${limits.bytes} bytes) limit on ` +
      "workflow files: remove what mcp-auth does not need (sections other than authentication: and " +
      "function_groups: are ignored) or split the workflow"
  })

const hints: Partial<Record<YAML.ErrorCode, string>> = {
  BAD_INDENT: "check the indentation: entries of one map or list start in the same column",
  TAB_AS_INDENT: "indent with spaces, not tabs",
  MULTIPLE_DOCS: "a workflow is one YAML document: remove the second `---` and what follows, or merge the documents",
  RESOURCE_EXHAUSTION: "the YAML is nested too deeply: flatten it",
  MISSING_CHAR: "a quote or bracket is not closed: close it",
  BAD_DQ_ESCAPE: "in double quotes write a backslash as \\\\, or use single quotes",
  MULTILINE_IMPLICIT_KEY: "a key must fit on one line: quote it or check for a missing `:` on the previous line",
  BLOCK_AS_IMPLICIT_KEY: "a key must be a plain value: check for a missing `:` or a misplaced `-`",
  KEY_OVER_1024_CHARS: "a plain key must be shorter than 1024 characters",
  BAD_ALIAS: "an alias is `*name`, referring to an earlier `&name`",
  ALIAS_PROPS: "an alias (`*name`) cannot carry a tag or an anchor",
  MULTIPLE_ANCHORS: "give a node one `&anchor` at most",
  MULTIPLE_TAGS: "give a node one `!tag` at most",
  TAG_RESOLVE_FAILED: "the value does not match its `!!tag`: fix the value or remove the tag",
  BAD_DIRECTIVE: "remove the `%` directive line",
  BAD_COLLECTION_TYPE: "the tag does not fit this kind of node: remove it"
}
const defaultHint =
  "fix the YAML syntax; quote values that contain `: `, ` #`, or start with `{`, `[`, `*`, `&`, `!`, " +
  "`|`, `>`, `%` or `@`"

type Position = { readonly line: number; readonly col: number }

const at = (position: Position | undefined): string =>
  position === undefined ? "" : `line ${position.line}, column ${position.col}`

/** One line of a library message, without the source excerpt `prettyErrors` appends; bounded. */
const firstLine = (message: string): string => {
  const line = message.split("\n", 1)[0] ?? ""
  const bare = line.replace(/ at line \d+, column \d+:?$/, "")
  return bare.length > 200 ? `${bare.slice(0, 200)}…` : bare
}

const syntaxIssues = (errors: ReadonlyArray<YAML.YAMLError>): Array<ConfigIssue> => {
  const shown = errors.slice(0, limits.errors).map((e) =>
    new ConfigIssue({
      path: at(e.linePos?.[0]),
      message: `YAML syntax error: ${firstLine(e.message)}: ${hints[e.code] ?? defaultHint}`
    })
  )
  if (errors.length > limits.errors) {
    shown.push(new ConfigIssue({ path: "", message: `${errors.length - limits.errors} more YAML errors not shown` }))
  }
  return shown
}

/** The key a scalar becomes in a JavaScript object (as the library's `toJS` names it), or undefined if not simple. */
const objectKey = (value: unknown): string | undefined =>
  value === null || value === undefined
    ? ""
    : typeof value === "string" || typeof value === "number" || typeof value === "boolean" ||
        typeof value === "bigint"
    ? String(value)
    : undefined

const quote = (key: string): string => JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key)

type Frame = {
  readonly node: YAML.Node
  readonly children: ReadonlyArray<YAML.Node>
  next: number
  size: number
  depth: number
}

/**
 * Checks a parsed document in one pass over its syntax tree (each node visited once, aliases resolved through a map
 * kept in document order): keys are scalars (or aliases of scalars) and unique in their map; every alias refers to an
 * anchor defined before it and outside itself; at most {@link limits}.aliases aliases; once aliases are resolved, at
 * most {@link limits}.values values nested at most {@link limits}.depth levels. Post-order: a map's keys are checked
 * once its aliases are resolved. Stops at the first structural problem (duplicate keys are all reported).
 */
const check = (document: YAML.Document.Parsed, lines: YAML.LineCounter): Array<ConfigIssue> => {
  const issues: Array<ConfigIssue> = []
  const where = (node: YAML.Node | null | undefined): string =>
    at(node?.range ? lines.linePos(node.range[0]) : undefined)
  const metrics = new Map<YAML.Node, { readonly size: number; readonly depth: number }>()
  const anchors = new Map<string, YAML.Node>()
  const open = new Set<YAML.Node>()
  let aliases = 0

  /** The node an alias stands for, or an issue. */
  const resolve = (alias: YAML.Alias): YAML.Node | ConfigIssue => {
    aliases += 1
    if (aliases > limits.aliases) {
      return new ConfigIssue({
        path: where(alias),
        message:
          `more than ${limits.aliases} aliases (*name) in the workflow: write the values out or use fewer aliases`
      })
    }
    const target = anchors.get(alias.source)
    if (target === undefined) {
      return new ConfigIssue({
        path: where(alias),
        message:
          `alias *${alias.source} refers to no anchor &${alias.source} defined before it: define the anchor first`
      })
    }
    if (open.has(target)) {
      return new ConfigIssue({
        path: where(alias),
        message: `alias *${alias.source} is inside the node it refers to (&${alias.source}): a cycle; remove it`
      })
    }
    return target
  }

  const targets = new Map<YAML.Alias, YAML.Node>()

  const childrenOf = (node: YAML.Node): Array<YAML.Node> => {
    if (YAML.isSeq(node)) return node.items.filter((item): item is YAML.Node => YAML.isNode(item))
    if (!YAML.isMap(node)) return []
    const children: Array<YAML.Node> = []
    for (const pair of node.items) {
      if (YAML.isNode(pair.key)) children.push(pair.key)
      if (YAML.isNode(pair.value)) children.push(pair.value)
    }
    return children
  }

  /** Run when a map is complete (its alias keys resolved): keys are scalars, each once. */
  const checkKeys = (map: YAML.YAMLMap): ConfigIssue | undefined => {
    const seen = new Map<string, YAML.Node>()
    for (const pair of map.items) {
      const key: unknown = pair.key
      const keyNode = YAML.isNode(key) ? key : undefined
      const resolved = YAML.isAlias(keyNode) ? targets.get(keyNode) : keyNode
      if (resolved !== undefined && !YAML.isScalar(resolved)) {
        return new ConfigIssue({
          path: where(keyNode ?? map),
          message: "a map key must be a plain value, not a map or a list: write the key as a string"
        })
      }
      const name = objectKey(resolved === undefined ? key : resolved.value)
      if (name === undefined) continue
      const first = seen.get(name)
      if (first === undefined) seen.set(name, keyNode ?? map)
      else {
        issues.push(
          new ConfigIssue({
            path: where(keyNode ?? map),
            message: `duplicate key ${quote(name)} (first at ${where(first)}): a key may appear once in a map; ` +
              "remove or rename one of them"
          })
        )
      }
    }
    return undefined
  }

  const root = document.contents
  if (!YAML.isNode(root)) return issues
  const enter = (node: YAML.Node): Frame | ConfigIssue => {
    if (YAML.isAlias(node)) {
      const target = resolve(node)
      if (target instanceof ConfigIssue) return target
      targets.set(node, target)
      const m = metrics.get(target) ?? { size: 1, depth: 1 }
      return { node, children: [], next: 0, size: m.size, depth: m.depth }
    }
    if (node.anchor) anchors.set(node.anchor, node)
    open.add(node)
    return { node, children: childrenOf(node), next: 0, size: 1, depth: 1 }
  }
  const first = enter(root)
  if (first instanceof ConfigIssue) return [...issues, first]
  const stack: Array<Frame> = [first]
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!
    if (frame.next < frame.children.length) {
      const child = enter(frame.children[frame.next++]!)
      if (child instanceof ConfigIssue) return [...issues, child]
      stack.push(child)
      continue
    }
    stack.pop()
    open.delete(frame.node)
    if (YAML.isMap(frame.node)) {
      const keyIssue = checkKeys(frame.node)
      if (keyIssue !== undefined) return [...issues, keyIssue]
    }
    if (!YAML.isAlias(frame.node)) metrics.set(frame.node, { size: frame.size, depth: frame.depth })
    const parent = stack[stack.length - 1]
    if (parent === undefined) break
    parent.size += frame.size
    parent.depth = Math.max(parent.depth, frame.depth + 1)
    if (parent.size > limits.values) {
      return [
        ...issues,
        new ConfigIssue({
          path: where(parent.node),
          message: `this node expands to more than ${limits.values} values once aliases (*name) are resolved: ` +
            "aliases must not multiply the document; write the values out or use fewer aliases"
        })
      ]
    }
    if (parent.depth > limits.depth) {
      return [
        ...issues,
        new ConfigIssue({
          path: where(parent.node),
          message: `values nested more than ${limits.depth} levels deep (aliases resolved): flatten the structure`
        })
      ]
    }
  }
  return issues
}

/**
 * Parses one YAML document into JavaScript values, or returns every problem found, each with its location when known.
 *
 * @internal
 */
export const parse = (text: string): { readonly value: unknown } | { readonly issues: ReadonlyArray<ConfigIssue> } => {
  // a UTF-16 code unit is at least one UTF-8 byte: the cheap test first
  if (text.length > limits.bytes || Buffer.byteLength(text, "utf8") > limits.bytes) {
    return { issues: [tooLarge("", `${Buffer.byteLength(text, "utf8")} bytes`)] }
  }
  const lines = new YAML.LineCounter()
  let document: YAML.Document.Parsed
  try {
    // uniqueKeys off: `check` finds duplicate keys in linear time (the library's check is quadratic)
    document = YAML.parseDocument(text, {
      prettyErrors: true,
      uniqueKeys: false,
      lineCounter: lines,
      logLevel: "error"
    })
  } catch (cause) {
    return { issues: [unexpected("parsing", cause)] }
  }
  if (document.errors.length > 0) return { issues: syntaxIssues(document.errors) }
  const issues = check(document, lines)
  if (issues.length > 0) return { issues }
  try {
    return { value: document.toJS({ maxAliasCount: 100 }) }
  } catch (cause) {
    return { issues: [unexpected("reading", cause)] }
  }
}

const unexpected = (stage: string, cause: unknown): ConfigIssue => {
  const message = cause instanceof Error ? firstLine(cause.message) : "unknown error"
  const hint = /alias/i.test(message)
    ? "aliases (*name) must not multiply the document: write the values out or use fewer aliases"
    : defaultHint
  return new ConfigIssue({ path: "", message: `YAML error while ${stage} the workflow: ${message}: ${hint}` })
}

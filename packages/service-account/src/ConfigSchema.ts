/**
 * Building blocks for configuration Schemas written the way NAT users write YAML: friendly messages that never print
 * a secret, numbers and booleans that may arrive as strings (from `${VAR}` interpolation or environment variables),
 * and decoding that reports every problem at once with its path and a "did you mean" for unknown keys.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type * as Types from "effect/Types"
import {
  closest,
  isHeaderName,
  isHeaderValue,
  isLoopbackHost as isLoopback,
  reservedHeaderReason
} from "./internal/text.js"
import { ConfigIssue } from "./ServiceAccountError.js"

const fail = (ast: SchemaAST.AST, message: string) => ParseResult.fail(new ParseResult.Type(ast, "<value>", message))

/**
 * A non-empty string (after trimming).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const nonEmptyString = (field: string, hint: string) =>
  Schema.String.annotations({ message: () => `${field} must be a string` }).pipe(
    Schema.filter((s) => s.trim().length > 0, { message: () => `${field} must not be empty: ${hint}` })
  )

/**
 * A secret: a string or an already `Redacted` string, decoded to `Redacted`. Its value never appears in a message.
 * With `headerValue`, a value that cannot be sent in an HTTP header (CR, LF, NUL, another control character, or a
 * character above U+00FF) is rejected too.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const secret = (field: string, hint: string, options?: { readonly headerValue?: boolean | undefined }) =>
  Schema.transformOrFail(Schema.Unknown, Schema.RedactedFromSelf(Schema.String), {
    strict: true,
    decode: (u, _, ast) => {
      const value = typeof u === "string" ? u : Redacted.isRedacted(u) ? Redacted.value(u) : undefined
      if (typeof value !== "string") return fail(ast, `${field} must be a string`)
      if (value.trim().length === 0) return fail(ast, `${field} must not be empty: ${hint}`)
      if (options?.headerValue === true && !isHeaderValue(value)) {
        return fail(
          ast,
          `${field} cannot be sent in an HTTP header: it contains a line break (CR or LF), NUL, another control ` +
            "character or a character above U+00FF; check the value (or the variable behind it), e.g. for a " +
            "trailing newline"
        )
      }
      return ParseResult.succeed(Redacted.isRedacted(u) ? u as Redacted.Redacted<string> : Redacted.make(value))
    },
    encode: ParseResult.succeed
  }).annotations({ identifier: "SecretStr" })

const numeric = (u: unknown): number | undefined =>
  typeof u === "number" ? u : typeof u === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(u) ? Number(u) : undefined

/**
 * Whether a value is a YAML/JSON map (not null, not a list).
 *
 * @since 0.1.0
 * @category Guards
 */
export const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Whether a host name is loopback (`localhost`, `127.0.0.0/8`, `::1`): the only hosts credentials may be sent to
 * over plain http.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isLoopbackHost: (hostname: string) => boolean = isLoopback

/**
 * A number, also accepted as a numeric string, with a range check.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const number = (
  field: string,
  options: {
    readonly min: number
    readonly exclusiveMin?: boolean
    /** An inclusive upper bound. */
    readonly max?: number
    readonly integer?: boolean
    readonly unit?: string
  }
) =>
  Schema.transformOrFail(Schema.Unknown, Schema.Number, {
    strict: true,
    decode: (u, _, ast) => {
      const n = numeric(u)
      if (n === undefined) return fail(ast, `${field} must be a number, got ${JSON.stringify(u)}`)
      const what = `${options.integer ? "a whole number" : "a number"}${options.unit ? ` of ${options.unit}` : ""}`
      const bound = `${options.exclusiveMin ? ">" : "≥"} ${options.min}` +
        (options.max !== undefined ? ` and ≤ ${options.max}` : "")
      const ok = Number.isFinite(n) && (options.integer ? Number.isInteger(n) : true) &&
        (options.exclusiveMin ? n > options.min : n >= options.min) &&
        (options.max === undefined || n <= options.max)
      return ok ? ParseResult.succeed(n) : fail(ast, `${field} must be ${what} ${bound}, got ${String(u)}`)
    },
    encode: ParseResult.succeed
  }).annotations({ identifier: options.integer ? "int" : "float" })

const fresh = <A>(value: A): A => typeof value === "object" && value !== null ? structuredClone(value) : value

/**
 * An optional field whose default is written once: the value decoding fills in when the key is missing is the
 * `default` annotation that the documentation reads (the README table, `mcp-auth info components`), so the two cannot
 * drift. Lists and maps are copied for each decoding.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const withDefault = <S extends Schema.Schema.All>(
  self: S,
  value: Types.NoInfer<Schema.Schema.Type<S>>,
  description: string
): Schema.optionalWith<S, { default: () => Schema.Schema.Type<S> }> =>
  Schema.optionalWith(self, { default: (): Schema.Schema.Type<S> => fresh(value) }).annotations({
    description,
    default: value
  })

/**
 * A boolean, also accepted as the strings `true` / `false`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const boolean = (field: string) =>
  Schema.transformOrFail(Schema.Unknown, Schema.Boolean, {
    strict: true,
    decode: (u, _, ast) =>
      typeof u === "boolean"
        ? ParseResult.succeed(u)
        : u === "true" || u === "false"
        ? ParseResult.succeed(u === "true")
        : fail(ast, `${field} must be true or false, got ${JSON.stringify(u)}`),
    encode: ParseResult.succeed
  }).annotations({ identifier: "bool" })

/**
 * An HTTP header name that may carry a credential next to `Authorization` (never `Authorization` itself, nor a header
 * the HTTP client or the MCP transport owns).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const headerName = (field: string) =>
  Schema.String.annotations({ message: () => `${field} must be a string` }).pipe(
    Schema.filter((h) => isHeaderName(h), {
      message: (issue) => `${field} ${JSON.stringify(issue.actual)} is not a valid HTTP header name`
    }),
    Schema.filter((h) => reservedHeaderReason(h) === undefined, {
      message: (issue) =>
        `${field} must not be ${JSON.stringify(issue.actual)}: that header is reserved (${
          reservedHeaderReason(String(issue.actual))
        }); use e.g. X-Service-Account-Token`
    })
  )

/**
 * The keys a struct Schema accepts at `path` (for "did you mean" hints), looking through optional, nullable and
 * transformed fields.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const keysAt = (ast: SchemaAST.AST, path: ReadonlyArray<string>): ReadonlyArray<string> => {
  const literals = (node: SchemaAST.AST): Array<SchemaAST.TypeLiteral> => {
    switch (node._tag) {
      case "TypeLiteral":
        return [node]
      case "Union":
        return node.types.flatMap(literals)
      case "Refinement":
        return literals(node.from)
      case "Transformation":
        return literals(node.from)
      case "Suspend":
        return literals(node.f())
      default:
        return []
    }
  }
  let nodes = literals(ast)
  for (const key of path) {
    nodes = nodes.flatMap((n) =>
      n.propertySignatures.filter((ps) => ps.name === key).flatMap((ps) => literals(ps.type))
    )
  }
  return nodes.flatMap((n) => n.propertySignatures.map((ps) => String(ps.name)))
}

/**
 * A `{ path, message }` pair before it becomes a {@link ConfigIssue}.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Problem {
  readonly path: string
  readonly message: string
}

/**
 * Effect's default messages end with `, actual <the input>`, which may be a secret (a flat `service_token: <token>`,
 * say): keep what was expected, never what was given.
 */
const withoutActual = (key: string, message: string): string => {
  const expected = /^Expected ([\s\S]*?), actual [\s\S]*$/.exec(message)?.[1]
  if (expected === undefined) return message
  return /^(Struct|\{)/.test(expected) ? `${key} must be a map of keys to values` : `${key} must be ${expected}`
}

/**
 * Every problem a Schema finds in `input` (errors: all, unknown keys rejected with a "did you mean"). A key listed in
 * `renamed` (by its dotted path) is reported with its replacement instead.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const problems = <A, I>(
  schema: Schema.Schema<A, I>,
  input: unknown,
  options?: { readonly renamed?: Readonly<Record<string, string>> | undefined }
): Array<Problem> => {
  const result = Schema.decodeUnknownEither(schema)(input, { errors: "all", onExcessProperty: "error" })
  if (Either.isRight(result)) return []
  const encodedAst = Schema.encodedSchema(schema).ast
  return ParseResult.ArrayFormatter.formatErrorSync(result.left)
    // an optional or nullable field fails on every union member; the "undefined"/"null" members add only noise
    .filter((issue) => !/^Expected (undefined|null), actual/.test(issue.message))
    .map((issue) => {
      const path = issue.path.map(String)
      const key = path.join(".")
      const renamed = options?.renamed
      if (issue._tag === "Unexpected" && renamed !== undefined && Object.hasOwn(renamed, key)) {
        return { path: key, message: `${key} has been renamed: use ${renamed[key]}` }
      }
      if (issue._tag === "Unexpected") {
        const parent = path.slice(0, -1)
        const name = path[path.length - 1] ?? ""
        const suggestion = closest(name, keysAt(encodedAst, parent))
        const where = parent.length > 0 ? ` in ${parent.join(".")}` : ""
        return {
          path: key,
          message: `unknown key ${JSON.stringify(name)}${where}` +
            (suggestion ? `: did you mean ${JSON.stringify(suggestion)}?` : ": remove it")
        }
      }
      if (issue._tag === "Missing" && issue.message === "is missing") {
        return { path: key, message: `${key} is required` }
      }
      return { path: key, message: withoutActual(key, issue.message) }
    })
}

/**
 * Turns problems into issues under a path prefix, without duplicates.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const toIssues = (items: ReadonlyArray<Problem>, prefix?: string): Array<ConfigIssue> => {
  const seen = new Set<string>()
  const out: Array<ConfigIssue> = []
  for (const item of items) {
    const path = prefix ? (item.path ? `${prefix}.${item.path}` : prefix) : item.path
    const key = `${path}\u0000${item.message}`
    if (!seen.has(key)) {
      seen.add(key)
      out.push(new ConfigIssue({ path, message: item.message }))
    }
  }
  return out
}

/**
 * A short type name for documentation (`str`, `int`, `float`, `bool`, `list`, `dict`, identifiers, unions).
 *
 * @since 0.1.0
 * @category Combinators
 */
export const typeName = (ast: SchemaAST.AST): string => {
  const identifier = SchemaAST.getIdentifierAnnotation(ast)
  if (Option.isSome(identifier) && ast._tag !== "Literal") return identifier.value
  switch (ast._tag) {
    case "StringKeyword":
      return "str"
    case "NumberKeyword":
      return "float"
    case "BooleanKeyword":
      return "bool"
    case "Literal":
      return ast.literal === null ? "None" : JSON.stringify(ast.literal)
    case "TupleType":
      return "list"
    case "TypeLiteral":
      return ast.indexSignatures.length > 0 ? "dict" : "object"
    case "UnknownKeyword":
      return "any"
    case "Declaration":
      return "object"
    case "Refinement":
    case "Transformation":
      return typeName(ast.from)
    case "Union":
      return [...new Set(ast.types.flatMap((t) => typeName(t).split(" | ")))].join(" | ")
    case "UndefinedKeyword":
      return "None"
    default:
      return ast._tag
  }
}

/**
 * Documentation of one field, read from the Schema.
 *
 * @since 0.1.0
 * @category Models
 */
export interface FieldDoc {
  readonly name: string
  readonly type: string
  readonly description: string
  readonly required: boolean
  readonly default?: unknown
}

const fieldInfo = (field: Schema.Struct.Fields[string]) => {
  if (!Schema.isPropertySignature(field)) {
    return { type: field.ast, annotations: field.ast.annotations, isOptional: false }
  }
  const ast = field.ast
  return ast._tag === "PropertySignatureDeclaration"
    ? { type: ast.type, annotations: ast.annotations, isOptional: ast.isOptional }
    : {
      // a field with a default is never undefined once decoded
      type: SchemaAST.Union.make(
        (ast.from.type._tag === "Union" ? ast.from.type.types : [ast.from.type]).filter((t) =>
          t._tag !== "UndefinedKeyword"
        )
      ),
      annotations: { ...ast.from.annotations, ...ast.to.annotations },
      isOptional: ast.from.isOptional
    }
}

/**
 * Every field of a struct's fields, in order, with the nested structs listed in `nested` expanded as `parent.child`.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const describeFields = (
  fields: Schema.Struct.Fields,
  nested: Readonly<Record<string, Schema.Struct.Fields>> = {},
  prefix = ""
): Array<FieldDoc> =>
  Object.entries(fields).flatMap(([key, field]) => {
    const { annotations, isOptional, type } = fieldInfo(field)
    const name = `${prefix}${key}`
    const doc: FieldDoc = {
      name,
      type: typeName(type),
      description: String(annotations[SchemaAST.DescriptionAnnotationId] ?? ""),
      required: !isOptional,
      ...(SchemaAST.DefaultAnnotationId in annotations ? { default: annotations[SchemaAST.DefaultAnnotationId] } : {})
    }
    const inner = nested[key]
    return inner ? [doc, ...describeFields(inner, {}, `${name}.`)] : [doc]
  })

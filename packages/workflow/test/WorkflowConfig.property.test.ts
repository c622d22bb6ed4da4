/**
 * Property: whatever YAML text (or file bytes) the workflow loader is given, the outcome is a workflow or a
 * `ConfigurationError`: never a thrown exception, a defect or another error. The documents mix workflows close to
 * valid ones (odd values, `${VAR}`s set and unset, keys that name `Object.prototype` members, anchors and aliases,
 * tags) with their mutations and with arbitrary text and bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import { isServiceAccountError } from "@mcp-auth/service-account/ServiceAccountError"
import { WorkflowConfig } from "@mcp-auth/workflow"
import { Cause, Effect, Either, Exit, FastCheck as fc } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const protoKeys = ["__proto__", "constructor", "hasOwnProperty", "toString", "valueOf", "__defineGetter__"]

const quoted = (s: string) => JSON.stringify(s)

/** Scalars as YAML text, valid and odd. */
const scalar: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "~",
    "null",
    "true",
    "no",
    "yes",
    "0",
    "-1",
    "1.5",
    "0x1F",
    "0o17",
    ".inf",
    "-.inf",
    ".nan",
    "1e400",
    "-0",
    "99999999999999999999999",
    "\"\"",
    "''",
    "\"\\0\\x1b[31m\\u202e\"",
    "\"${SET}\"",
    "${SET}",
    "${UNSET}",
    "${EMPTY}",
    "${UNSET:-fallback}",
    "\"prefix-${SET}-${UNSET}\"",
    "\"${\"",
    "!!binary aGVsbG8=",
    "!!binary \"***\"",
    "!!set {a, b}",
    "!!omap [{a: 1}, {b: 2}]",
    "!!pairs [{a: 1}, {a: 2}]",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    "!!timestamp soon",
    "!!int nope",
    "!!float 2.5",
    "!!str 42",
    "!!map {}",
    "!!seq []",
    "!!null ''",
    "!custom thing",
    "!<tag:yaml.org,2002:str> tagged",
    "https://mcp.example.com/mcp",
    "http://127.0.0.1:9/mcp",
    "https://alice:s3cret@mcp.example.com/mcp?api_key=k#frag",
    "ftp://mcp.example.com/",
    "\"https://[\"",
    "streamable-http",
    "sse",
    "stdio",
    "mcp_client",
    "mcp_service_account",
    "X-Service-Account-Token",
    "\"Authorization\"",
    "\"Mcp-Session-Id\"",
    "PT1M",
    "\"30s\""
  ),
  fc.string({ maxLength: 12 }).map(quoted),
  fc.string({ unit: "binary", maxLength: 12 }).map(quoted),
  fc.integer().map(String),
  fc.double().map((d) => (Number.isNaN(d) ? ".nan" : String(d)))
)

/** Keys: the schema's, prototype members, arbitrary. */
const key: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    ...protoKeys,
    "_type",
    "client_id",
    "client_secret",
    "token_url",
    "scopes",
    "service_token",
    "token",
    "header",
    "function",
    "kwargs",
    "server",
    "url",
    "transport",
    "auth_provider",
    "custom_headers",
    "include",
    "exclude",
    "tool_overrides",
    "tool_call_timeout",
    "max_response_bytes",
    "reconnect_max_backoff",
    "<<",
    "? [a]",
    "1",
    "\"1\"",
    "~"
  ),
  fc.string({ maxLength: 8 }).map(quoted)
)

/** Collections that contain an alias of themselves (a cycle once resolved). */
const cyclic = fc.constantFrom("&c [*c]", "&c {self: *c}", "&c {a: [1, {b: *c}]}", "&c [&d {x: *c}, *d]")

/** A flow-style value, with anchors (&aN) and aliases (*aN, possibly undefined or cyclic). */
const { value } = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 6, arbitrary: scalar },
    { weight: 2, arbitrary: fc.array(tie("value"), { maxLength: 4 }).map((items) => `[${items.join(", ")}]`) },
    {
      weight: 2,
      arbitrary: fc.array(fc.tuple(key, tie("value")), { maxLength: 4 }).map((pairs) =>
        `{${pairs.map(([k, v]) => `${k}: ${v}`).join(", ")}}`
      )
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), tie("value")).map(([n, v]) =>
        v.startsWith("*") || v.startsWith("&") ? v : `&a${n} ${v}`
      )
    },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }).map((n) => `*a${n}`) },
    { weight: 1, arbitrary: cyclic }
  )
}))

/** A value that is often right for the key: a workflow near validity succeeds now and then. */
const field = (good: ReadonlyArray<string>) => fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...good) }, value)

const extras = fc.oneof(fc.constant([]), fc.array(fc.tuple(key, value), { maxLength: 2 }))

const providerName = fc.oneof(fc.constantFrom("sa", "other", ...protoKeys), fc.string({ maxLength: 6 }).map(quoted))

const serviceAccount = fc.record({
  name: providerName,
  extra: extras,
  fields: fc.record({
    _type: field(["mcp_service_account", "mcp_oauth2"]),
    client_id: field(["id", "${SET}"]),
    client_secret: field(["secret", "${SECRET}", "${UNSET}"]),
    token_url: field(["https://idp.example.com/token", "${TOKEN_URL}"]),
    scopes: field(["\"a b\"", "[a, b]", "\"\""])
  }, { requiredKeys: ["_type", "client_id", "client_secret", "token_url"] })
})

const mcpClient = fc.record({
  name: providerName,
  extra: extras,
  fields: fc.record({
    _type: field(["mcp_client", "something_else"]),
    max_response_bytes: field(["1024", "8388608", "0", "\"${SET}\""]),
    tool_call_timeout: field(["30", "\"45s\"", "PT1M"]),
    include: field(["[a]", "[]"]),
    tool_overrides: field(["{__proto__: {alias: p}, a: {alias: b}}", "{}"])
  }, { requiredKeys: ["_type"] }),
  server: fc.record({
    url: field(["https://mcp.example.com/mcp", "${MCP_URL}", "http://127.0.0.1:9/mcp"]),
    transport: field(["streamable-http", "sse", "stdio"]),
    auth_provider: field(["sa", "other", ...protoKeys]),
    custom_headers: field(["{X-A: b}", "{__proto__: x}"])
  }, { requiredKeys: ["url"] })
})

const entry = (indent: string, fields: Record<string, string | undefined>, extra: ReadonlyArray<[string, string]>) =>
  [...Object.entries(fields).filter((kv): kv is [string, string] => kv[1] !== undefined), ...extra]
    .map(([k, v]) => `${indent}${k}: ${v}`).join("\n")

/** A workflow close to a real one, in block style with flow-style values. */
const workflow: fc.Arbitrary<string> = fc.record({
  anchors: fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), value), { maxLength: 2 }),
  providers: fc.array(serviceAccount, { maxLength: 3 }),
  groups: fc.array(mcpClient, { maxLength: 3 }),
  tail: fc.array(fc.tuple(key, value), { maxLength: 2 })
}).map(({ anchors, groups, providers, tail }) =>
  [
    ...anchors.map(([n, v], i) => `x-defaults-${i}: &a${n} ${v}`),
    "authentication:",
    ...providers.map((p) => `  ${p.name}:\n${entry("    ", p.fields, p.extra)}`),
    "function_groups:",
    ...groups.map((g) =>
      `  ${g.name}:\n${entry("    ", g.fields, g.extra)}\n    server:\n${entry("      ", g.server, [])}`
    ),
    ...tail.map(([k, v]) => `${k}: ${v}`)
  ].join("\n") + "\n"
)

/** A workflow damaged at one place: characters inserted, removed or the text cut. */
const mutated: fc.Arbitrary<string> = fc.tuple(
  workflow,
  fc.nat(),
  fc.constantFrom("cut", "insert", "delete"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 4 })
).map(([text, at, how, chars]) => {
  const i = at % (text.length + 1)
  return how === "cut" ? text.slice(0, i) : how === "insert" ?
    text.slice(0, i) + chars + text.slice(i) :
    text.slice(0, i) + text.slice(i + chars.length)
})

const bytesAsText = fc.uint8Array({ maxLength: 200 }).map((bytes) => new TextDecoder().decode(bytes))

const documents: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: workflow },
  { weight: 2, arbitrary: mutated },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(..."{}[]:,-&*!|>'\"#%@ \n\tab"), maxLength: 80 }) },
  { weight: 1, arbitrary: bytesAsText }
)

const envs = fc.record({
  SET: fc.oneof(scalar, fc.string({ maxLength: 10 })),
  EMPTY: fc.constant(""),
  SECRET: fc.string({ maxLength: 10 }),
  TOKEN_URL: fc.constantFrom("https://idp.example.com/token", "https://u:p@idp.example.com/t", "not a url"),
  MCP_URL: fc.constantFrom("https://mcp.example.com/mcp?k=v", "https://u:p@mcp.example.com/", "ftp://x/", "")
})

const isConfigurationError = (u: unknown) => isServiceAccountError(u) && u._tag === "ConfigurationError"

describe("WorkflowConfig (property)", () => {
  it("any YAML text: a workflow or a ConfigurationError, never anything else", () => {
    const outcomes = { ok: 0, configurationError: 0 }
    fc.assert(
      fc.property(documents, envs, (text, env) => {
        let result: Either.Either<WorkflowConfig.WorkflowConfig, unknown>
        try {
          result = WorkflowConfig.parse(text, { env, baseDir: "/nonexistent" })
        } catch (thrown) {
          throw new Error(`parse threw: ${String(thrown)}`)
        }
        if (Either.isRight(result)) {
          outcomes.ok++
          expect(result.right.providers).toBeInstanceOf(Map)
          expect(result.right.groups).toBeInstanceOf(Map)
          return
        }
        outcomes.configurationError++
        expect(isConfigurationError(result.left), String(result.left)).toBe(true)
        const error = result.left as { readonly issues: ReadonlyArray<unknown>; readonly message: string }
        expect(error.issues.length).toBeGreaterThan(0)
        expect(typeof error.message).toBe("string")
      }),
      { numRuns: 1500 }
    )
    // both branches were exercised (the generators make near-valid workflows often)
    expect(outcomes.ok).toBeGreaterThan(0)
    expect(outcomes.configurationError).toBeGreaterThan(0)
  })

  it("any file bytes (invalid UTF-8 included): load succeeds or fails with a ConfigurationError, never a defect", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-workflow-property-"))
    const file = Path.join(dir, "workflow.yml")
    try {
      const bytes = fc.oneof(
        workflow.map((text) => new TextEncoder().encode(text)),
        mutated.map((text) => new TextEncoder().encode(text)),
        fc.uint8Array({ maxLength: 200 })
      )
      fc.assert(
        fc.property(bytes, envs, (content, env) => {
          Fs.writeFileSync(file, content)
          const exit = Effect.runSyncExit(WorkflowConfig.load(file, { env }))
          if (Exit.isSuccess(exit)) return
          const failure = Cause.failureOption(exit.cause)
          expect(failure._tag === "Some" && isConfigurationError(failure.value), Cause.pretty(exit.cause)).toBe(true)
        }),
        { numRuns: 300 }
      )
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

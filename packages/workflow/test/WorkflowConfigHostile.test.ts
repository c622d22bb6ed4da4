/**
 * Issue 12, the workflow side: credentials in configured URLs, YAML that is hostile or broken (alias bombs, deep
 * nesting, huge files, duplicate keys), YAML keys that name `Object.prototype` members, and `max_response_bytes`.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as McpClient from "@mcp-auth/client/McpClient"
import * as McpClientDefaults from "@mcp-auth/client/McpClientDefaults"
import { isServiceAccountError } from "@mcp-auth/service-account/ServiceAccountError"
import { HostileServer } from "@mcp-auth/testing"
import { Workflow, WorkflowConfig } from "@mcp-auth/workflow"
import { Cause, Effect, Either, Exit, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const parse = (yaml: string, env: Record<string, string> = {}) => WorkflowConfig.parse(yaml, { env })

/** The issues of a ConfigurationError (failing the test for any other outcome but success). */
const issues = (result: Either.Either<unknown, unknown>): Array<string> => {
  if (Either.isRight(result)) return []
  const error = result.left
  expect(isServiceAccountError(error) && error._tag === "ConfigurationError").toBe(true)
  return (error as { issues: ReadonlyArray<{ toString(): string }> }).issues.map((i) => i.toString())
}

const provider = `
authentication:
  sa:
    _type: mcp_service_account
    client_id: id
    client_secret: secret
    token_url: https://idp.example.com/token
`
const group = (server: string, extra = "") =>
  `${provider}
function_groups:
  g:
    _type: mcp_client
    server:
${server}
${extra}`

describe("credentials in configured URLs (finding 4)", () => {
  it.each([
    "https://alice:s3cret@mcp.example.com/mcp",
    "https://alice@mcp.example.com/mcp",
    "https://:s3cret@mcp.example.com/mcp"
  ])("server.url %s is a ConfigurationError at its path, without the user info", (url) => {
    const found = issues(parse(group(`      url: ${url}\n      auth_provider: sa`)))
    expect(found).toEqual([
      "function_groups.g.server.url: server.url https://mcp.example.com/mcp carries user info (user:password@): remove it; credentials belong in an authentication: entry (auth_provider) or in custom_headers"
    ])
    expect(found.join("\n")).not.toMatch(/alice|s3cret/)
  })

  it("also when the URL comes from ${VAR}, and without an auth provider", () => {
    const found = issues(parse(group("      url: ${MCP_URL}"), { MCP_URL: "https://svc:hunter2@mcp.example.com/mcp" }))
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(/^function_groups\.g\.server\.url: .*carries user info/)
    expect(found[0]).not.toContain("hunter2")
    expect(found[0]).not.toContain("svc")
  })

  it("a query and a fragment are shown as ?<redacted> / #<redacted> in messages, never the key", () => {
    const withUser = issues(parse(group("      url: https://u:p@mcp.example.com/mcp?api_key=SEKRET#frag-SEKRET")))
    expect(withUser).toHaveLength(1)
    expect(withUser[0]).toContain("https://mcp.example.com/mcp?<redacted>#<redacted> carries user info")
    const wrongScheme = issues(parse(group("      url: ftp://mcp.example.com/mcp?api_key=SEKRET")))
    expect(wrongScheme).toEqual([
      "function_groups.g.server.url: server.url ftp://mcp.example.com/mcp?<redacted> is not an http(s) URL: use https://host/path"
    ])
    // not a URL at all: not echoed (it may be a credential pasted in the wrong place)
    const invalid = issues(parse(group("      url: \"https://SEKRET:[\"")))
    expect(invalid).toEqual(["function_groups.g.server.url: server.url is not a valid URL: use https://host/path"])
    for (const text of [...withUser, ...wrongScheme, ...invalid]) expect(text).not.toContain("SEKRET")
  })

  it("a query without user info is accepted; the function group's errors show it redacted", () => {
    const result = parse(group("      url: https://mcp.example.com/mcp?api_key=SEKRET", "    include: [allowed]"))
    expect(issues(result)).toEqual([])
    const config = Either.getOrThrow(result).groups.get("g")!
    expect(config.url.search).toBe("?api_key=SEKRET") // the client still gets the whole URL
    const unusedClient = {} as McpClient.McpClient // the include check fails before the client is used
    const exit = Effect.runSyncExit(Workflow.functionGroup(config, unusedClient).callTool("other"))
    const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
    expect(error).toMatchObject({ _tag: "McpRequestError", url: "https://mcp.example.com/mcp?<redacted>" })
    expect(error?.message).not.toContain("SEKRET")
  })
})

describe("YAML edge cases (finding 7)", () => {
  const configError = (result: Either.Either<unknown, unknown>) => {
    expect(Either.isLeft(result)).toBe(true)
    return issues(result)
  }

  it("an alias bomb (billion laughs) is a ConfigurationError with its location, found before expanding it", () => {
    const lines = ["lol: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for (let i = 1; i <= 9; i++) lines.push(`l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(", ")}]`)
    expect(configError(parse(lines.join("\n")))).toEqual([
      "line 7, column 9: this node expands to more than 1000000 values once aliases (*name) are resolved: aliases must not multiply the document; write the values out or use fewer aliases"
    ])
  })

  it("the yaml library's own alias limit (\"Excessive alias count\") is a ConfigurationError too", () => {
    const yaml = `a: &a x\nb: [${Array(101).fill("*a").join(", ")}]`
    const found = configError(parse(yaml))
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(/^YAML error while reading the workflow: Excessive alias count .*use fewer aliases$/)
  })

  it("more than 1000 aliases, an alias cycle, an alias without anchor: ConfigurationErrors with locations", () => {
    const many = Array.from({ length: 30 }, (_, i) => `a${i}: &a${i} x\nb${i}: [${Array(40).fill(`*a${i}`)}]`)
    expect(configError(parse(many.join("\n")))).toEqual([
      "line 52, column 7: more than 1000 aliases (*name) in the workflow: write the values out or use fewer aliases"
    ])
    expect(configError(parse("a: &a\n  b: *a"))).toEqual([
      "line 2, column 6: alias *a is inside the node it refers to (&a): a cycle; remove it"
    ])
    expect(configError(parse("a: [1, *nowhere]"))).toEqual([
      "line 1, column 8: alias *nowhere refers to no anchor &nowhere defined before it: define the anchor first"
    ])
  })

  it("deep nesting: beyond what the parser handles, and beyond 100 levels once aliases are resolved", () => {
    const deep = configError(parse(`a: ${"[".repeat(5000)}${"]".repeat(5000)}`))
    expect(deep[0]).toMatch(/^line 1, column \d+: YAML syntax error: .*: the YAML is nested too deeply: flatten it$/)
    const sixty = `${"[".repeat(60)}x${"]".repeat(60)}`
    expect(configError(parse(`a: &a ${sixty}\nb: ${"[".repeat(50)}*a${"]".repeat(50)}`))).toEqual([
      "line 2, column 14: values nested more than 100 levels deep (aliases resolved): flatten the structure"
    ])
    expect(issues(parse(`other: ${sixty}`))).toEqual([])
  })

  it("duplicate keys are ConfigurationErrors with both locations, at any level", () => {
    expect(configError(parse(`${provider}    client_id: again\nauthentication:\n  x: 1`))).toEqual([
      "line 8, column 5: duplicate key \"client_id\" (first at line 5, column 5): a key may appear once in a map; remove or rename one of them",
      "line 9, column 1: duplicate key \"authentication\" (first at line 2, column 1): a key may appear once in a map; remove or rename one of them"
    ])
    // keys that end up as the same JavaScript property name; alias keys resolved
    expect(configError(parse("1: a\n\"1\": b"))[0]).toMatch(/^line 2, column 1: duplicate key "1"/)
    expect(configError(parse("{&k key: 1, *k : 2}"))[0]).toMatch(
      /^line 1, column 13: duplicate key "key" \(first at line 1, column 5\)/
    )
    expect(issues(parse("{&k key: 1, other: *k, *k : 2}"))[0]).toMatch(/duplicate key "key"/)
    expect(issues(parse("a: &k key\nb: {*k : 1}"))).toEqual([])
  })

  it("other YAML failures carry line, column and a fix hint", () => {
    expect(configError(parse("a: 1\n---\nb: 2"))).toEqual([
      "line 2, column 1: YAML syntax error: Source contains multiple documents; please use YAML.parseAllDocuments(): a workflow is one YAML document: remove the second `---` and what follows, or merge the documents"
    ])
    expect(configError(parse("a:\n\t- b"))[0]).toMatch(/^line 2, column 1: YAML syntax error: .*indent with spaces/)
    expect(configError(parse("a: !!timestamp soon"))[0]).toMatch(
      /^line 1, column 4: YAML syntax error: .*: the value does not match its `!!tag`/
    )
    expect(configError(parse("? [a, b]\n: 1"))).toEqual([
      "line 1, column 3: a map key must be a plain value, not a map or a list: write the key as a string"
    ])
    // many errors: the first ten and a count
    const broken = configError(parse(Array.from({ length: 30 }, (_, i) => `k${i}: "unclosed\n`).join("")))
    expect(broken.length).toBeLessThanOrEqual(11)
  })

  it("an entry holding more than 10000 values is refused before it is decoded (a binary, a long list, aliases)", () => {
    const refused = (at: string) =>
      `${at}: the entry holds more than 10000 values (aliases resolved); entries are small: remove what does not belong to it`
    const binary = Buffer.alloc(20_000, 65).toString("base64")
    expect(
      configError(parse(group("      url: https://mcp.example.com/mcp", `    tool_overrides: !!binary ${binary}`)))
    )
      .toEqual([refused("function_groups.g")])
    const list = `[${Array(10_001).fill("a").join(", ")}]`
    expect(configError(parse(`${provider}    scopes: ${list}`))).toEqual([refused("authentication.sa")])
    const shared = `x: &l [${Array(2_000).fill("a").join(", ")}]\n${provider}    scopes: [${
      Array(6).fill("*l").join(", ")
    }]`
    expect(configError(parse(shared))).toEqual([refused("authentication.sa")])
    // up to 10000 values are fine (9990 list items and the entry's other values)
    expect(issues(parse(`${provider}    scopes: [${Array(9_990).fill("a").join(", ")}]`))).toEqual([])
  })

  describe("size limit", () => {
    const limit = WorkflowConfig.maxWorkflowBytes
    const padded = (bytes: number) => {
      const head = "function_groups: {}\n# "
      return head + "x".repeat(bytes - head.length)
    }
    const tooLarge = (size: number) =>
      `the workflow is ${size} bytes, over the 1 MiB (1048576 bytes) limit on workflow files: remove what mcp-auth does not need (sections other than authentication: and function_groups: are ignored) or split the workflow`

    it("is 1 MiB", () => expect(limit).toBe(1024 * 1024))

    it("inline text: exactly the limit loads, one byte more is refused before parsing; bytes are UTF-8 bytes", () => {
      expect(issues(parse(padded(limit)))).toEqual([])
      expect(issues(parse(padded(limit + 1)))).toEqual([tooLarge(limit + 1)])
      // fewer characters than the limit, more bytes (é is 2 bytes)
      const accented = `# ${"é".repeat(limit / 2)}`
      expect(accented.length).toBeLessThan(limit)
      expect(issues(parse(accented))).toEqual([tooLarge(limit + 2)])
    })

    it("files: over the limit, not UTF-8, or endless: a ConfigurationError naming the file", () => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "mcp-auth-workflow-"))
      try {
        const big = Path.join(dir, "big.yml")
        Fs.writeFileSync(big, padded(limit + 10))
        expect(issues(Effect.runSync(Effect.either(WorkflowConfig.load(big))))).toEqual([
          `${big}: ${tooLarge(limit + 10)}`
        ])
        const fits = Path.join(dir, "fits.yml")
        Fs.writeFileSync(fits, padded(limit))
        expect(issues(Effect.runSync(Effect.either(WorkflowConfig.load(fits))))).toEqual([])
        const latin1 = Path.join(dir, "latin1.yml")
        Fs.writeFileSync(latin1, Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a])) // "a: é" in ISO-8859-1
        expect(issues(Effect.runSync(Effect.either(WorkflowConfig.load(latin1))))).toEqual([
          `${latin1}: the workflow file is not valid UTF-8: save it as UTF-8`
        ])
      } finally {
        Fs.rmSync(dir, { recursive: true, force: true })
      }
      // a device that never ends is read up to the limit only
      if (Fs.existsSync("/dev/zero")) {
        expect(issues(Effect.runSync(Effect.either(WorkflowConfig.load("/dev/zero"))))[0]).toMatch(
          /^\/dev\/zero: the workflow is more than 1048576 bytes, over the 1 MiB/
        )
      }
    })
  })
})

describe("YAML keys naming Object.prototype members (finding 8)", () => {
  it.each(["hasOwnProperty", "__proto__", "constructor", "toString", "valueOf"])(
    "auth_provider: %s is \"not defined under authentication\", with the names defined",
    (name) => {
      expect(issues(parse(group(`      url: https://mcp.example.com/mcp\n      auth_provider: ${name}`)))).toEqual([
        `function_groups.g.server.auth_provider: auth_provider "${name}" is not defined under authentication: (defined: sa)`
      ])
    }
  )

  it("entries with those names work like any other", () => {
    const result = parse(`
authentication:
  constructor:
    _type: mcp_service_account
    client_id: id
    client_secret: secret
    token_url: https://idp.example.com/token
function_groups:
  __proto__:
    _type: mcp_client
    server:
      url: https://mcp.example.com/mcp
      auth_provider: constructor
      custom_headers:
        __proto__: kept
        X-Other: also
    tool_overrides:
      __proto__: { alias: proto_tool }
      toString: { description: a tool named toString }
`)
    expect(issues(result)).toEqual([])
    const config = Either.getOrThrow(result)
    expect([...config.providers.keys()]).toEqual(["constructor"])
    const g = config.groups.get("__proto__")!
    expect(g.authProvider).toBe("constructor")
    expect(Object.entries(g.customHeaders)).toEqual([["__proto__", "kept"], ["X-Other", "also"]])
    expect(Object.keys(g.toolOverrides)).toEqual(["__proto__", "toString"])
    expect(Object.getPrototypeOf(g.toolOverrides)).toBe(Object.prototype)
  })

  it("an auth_provider whose entry is not a map or has another _type says so", () => {
    expect(
      issues(parse(`authentication:\n  x: 3\n  y: { _type: mcp_oauth2 }
function_groups:
  g:
    _type: mcp_client
    server: { url: "https://mcp.example.com/mcp", auth_provider: x }
  h:
    _type: mcp_client
    server: { url: "https://mcp.example.com/mcp", auth_provider: y }`))
    ).toEqual([
      "function_groups.g.server.auth_provider: auth_provider \"x\" has _type missing (the entry is 3): mcp-auth runs only mcp_service_account (interactive mcp_oauth2 needs a browser)",
      "function_groups.h.server.auth_provider: auth_provider \"y\" has _type \"mcp_oauth2\": mcp-auth runs only mcp_service_account (interactive mcp_oauth2 needs a browser)"
    ])
  })
})

describe("max_response_bytes (per function group)", () => {
  const server = "      url: https://mcp.example.com/mcp"
  const decoded = (extra: string) => {
    const result = parse(group(server, extra))
    return Either.isRight(result) ? result.right.groups.get("g")!.maxResponseBytes : issues(result)
  }

  it("defaults to 8 MiB (McpClientDefaults), documented with a description", () => {
    expect(decoded("")).toBe(8 * 1024 * 1024)
    expect(McpClientDefaults.defaultMaxResponseBytes).toBe(8388608)
    const doc = WorkflowConfig.mcpClientFieldDocs.find((field) => field.name === "max_response_bytes")
    expect(doc).toMatchObject({ default: 8388608 })
    expect(doc?.description).toMatch(/bytes/)
  })

  it("takes a positive whole number of bytes (also from ${VAR})", () => {
    expect(decoded("    max_response_bytes: 1024")).toBe(1024)
    expect(decoded("    max_response_bytes: 1")).toBe(1)
    const fromEnv = parse(group(server, "    max_response_bytes: ${LIMIT}"), { LIMIT: "65536" })
    expect(Either.getOrThrow(fromEnv).groups.get("g")!.maxResponseBytes).toBe(65536)
  })

  it.each([
    ["0", "0"],
    ["-1", "-1"],
    ["1.5", "1.5"],
    ["8MiB", "\"8MiB\""],
    ["\"\"", "\"\""],
    ["true", "true"]
  ])("rejects %s", (value, shown) => {
    const found = decoded(`    max_response_bytes: ${value}`)
    expect(found).toHaveLength(1)
    expect((found as Array<string>)[0]).toMatch(/^function_groups\.g\.max_response_bytes: max_response_bytes must be /)
    expect((found as Array<string>)[0]).toContain(shown.replace(/^"(.*)"$/, "$1"))
  })

  it.scopedLive("reaches the MCP client: a response over it fails Workflow.make with too_large", () =>
    Effect.gen(function*() {
      // answers initialize with a valid result padded to ~4 KiB
      const server = yield* HostileServer.make((request, res) => {
        const message = JSON.parse(request.body || "{}") as { id?: number }
        if (message.id === undefined) {
          res.writeHead(202).end()
          return
        }
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({
          jsonrpc: "2.0",
          id: message.id,
          result: {
            protocolVersion: "2025-06-18",
            capabilities: { tools: {} },
            serverInfo: { name: "x".repeat(4000), version: "1" }
          }
        }))
      })
      const start = (extra: string) =>
        Effect.scoped(
          Effect.flatMap(
            parse(
              `function_groups:\n  g:\n    _type: mcp_client\n    server:\n      url: ${server.origin}/mcp\n${extra}`
            ),
            (config) => Workflow.make(config)
          )
        )
      const small = yield* Effect.flip(start("    max_response_bytes: 1024"))
      expect(small).toMatchObject({ _tag: "McpRequestError", reason: "too_large" })
      yield* start("    max_response_bytes: 65536")
    }))
})

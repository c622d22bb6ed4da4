import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"

const required = { client_id: "c", client_secret: "s", token_url: "https://auth.example.com/token" }

const camel = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())

/** The decoded value at a documented path, each segment in camelCase: `retry.max_attempts` → `retry.maxAttempts`. */
const decodedAt = (config: ServiceAccountConfig.ServiceAccountConfig, path: string): unknown =>
  path.split(".").reduce<unknown>(
    (value, key) =>
      typeof value === "object" && value !== null ? (value as Record<string, unknown>)[camel(key)] : value,
    config
  )

/** Inputs without the key: a nested key both without its block and with an empty block. */
const inputsWithout = (path: string): ReadonlyArray<Record<string, unknown>> => {
  const [parent, child] = path.split(".") as [string, string | undefined]
  if (child === undefined) return [required]
  // a service token needs token or function; a function one has every service_token field
  if (parent === "service_token") return [{ ...required, service_token: { function: "./tokens.ts#get" } }]
  // a client assertion needs file, token or function (and private_key_jwt); a function one has every field
  if (parent === "client_assertion") {
    const { client_secret: _, ...rest } = required
    return [{ ...rest, auth_method: "private_key_jwt", client_assertion: { function: "./oidc.ts#token" } }]
  }
  // shared_cache is off without its block: its defaults are those of an empty block
  if (parent === "shared_cache") return [{ ...required, shared_cache: {} }]
  return [required, { ...required, [parent]: {} }]
}

const documented = ServiceAccountConfig.fieldDocs.filter((field) => "default" in field)

describe("configuration defaults: each written once, and decoding a missing key yields the documented value", () => {
  it("documents the defaults of nested keys too", () => {
    expect(documented.map((field) => field.name)).toEqual(expect.arrayContaining([
      "scopes",
      "service_token.header",
      "service_token.timeout_seconds",
      "service_token.kwargs",
      "token_cache_buffer_seconds",
      "retry.max_attempts",
      "retry.initial_backoff_seconds",
      "retry.max_backoff_seconds",
      "retry.max_elapsed_seconds",
      "failure_cooldown.initial_seconds",
      "failure_cooldown.max_seconds",
      "preflight_auth"
    ]))
    for (const field of documented) expect(field.required, field.name).toBe(false)
  })

  it.each(documented.map((field) => [field.name, field.default] as const))(
    "%s defaults to %j",
    (name, value) => {
      for (const input of inputsWithout(name)) {
        expect(decodedAt(ServiceAccountConfig.decodeSync(input), name), JSON.stringify(input)).toStrictEqual(value)
      }
    }
  )

  it("a decoded default is a copy: changing one config's list or map changes no other", () => {
    const input = { ...required, service_token: { function: "./tokens.ts#get" } }
    const first = ServiceAccountConfig.decodeSync(input)
    ;(first.scopes as Array<string>).push("changed")
    if (first.serviceToken?._tag === "Function") (first.serviceToken.kwargs as Record<string, unknown>).x = 1
    const second = ServiceAccountConfig.decodeSync(input)
    expect(second.scopes).toEqual([])
    expect(second.serviceToken?._tag === "Function" && second.serviceToken.kwargs).toEqual({})
    expect(documented.find((field) => field.name === "scopes")?.default).toEqual([])
  })
})

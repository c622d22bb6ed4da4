import type * as HttpClient from "@effect/platform/HttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import * as TokenProvider from "@mcp-auth/service-account/TokenProvider"
import { FakeHttpClient as FakeTokenEndpoint } from "@mcp-auth/testing"
import {
  Cause,
  Effect,
  Exit,
  FastCheck as fc,
  HashMap,
  type Layer,
  List,
  Logger,
  Redacted,
  Schema,
  TestClock
} from "effect"
import * as util from "node:util"
import { keys } from "./utils/keys.js"

const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, " "))

/** Secrets worth searching for: long enough that a hit is a leak, not a coincidence. */
const secretArb = fc.string({ unit: "binary", minLength: 12, maxLength: 40 }).filter((s) => s.trim().length >= 12)
  .map((s) => `§${s}`)

describe("RFC 6749 §2.3.1 Basic credential (property)", () => {
  it.prop(
    "round-trips arbitrary ids and secrets (unicode, ':', '%', '+', spaces)",
    [
      fc.string({ unit: "binary", minLength: 1 }).filter((s) => s.trim().length > 0),
      fc.string({ unit: "binary", minLength: 1 }).filter((s) => s.trim().length > 0)
    ],
    ([id, secret]) => {
      const basic = Redacted.value(TokenEndpoint.basicCredential(id, Redacted.make(secret)))
      const decoded = new TextDecoder().decode(Uint8Array.from(atob(basic), (c) => c.charCodeAt(0)))
      const colon = decoded.indexOf(":")
      expect(decoded.indexOf(":", colon + 1)).toBe(-1) // the separator is the only ':' left
      expect(formDecode(decoded.slice(0, colon))).toBe(id)
      expect(formDecode(decoded.slice(colon + 1))).toBe(secret)
    },
    { fastCheck: { numRuns: 300 } }
  )
})

/**
 * Every way a token fetch can fail. Error responses echo the secret (some servers repeat request parameters) and
 * carry a token outside the §5.2 fields; malformed successes carry the token they issued.
 */
const errorPaths = (token: string, secret: string): ReadonlyArray<FakeTokenEndpoint.Reply> => [
  {
    status: 401,
    body: { error: "invalid_client", error_description: `secret ${secret} rejected`, access_token: token }
  },
  { status: 400, body: { error: "unauthorized_client", error_description: secret, token } },
  { status: 400, body: { error: "invalid_scope", error_description: `scope for / ${secret}`, access_token: token } },
  { status: 429, headers: { "retry-after": "1" }, body: { error: "slow_down", error_description: secret } },
  { status: 500, body: `<html>${token} ${secret}</html>` },
  { status: 502, body: `upstream said ${token}` },
  { status: 200, body: `not json ${token}` },
  { status: 200, body: [{ access_token: token }] },
  { status: 200, body: { access_token: token, token_type: "mac" } },
  { status: 200, body: { access_token: token, token_type: token } },
  { status: 200, body: { access_token: token, token_type: "Bearer", expires_in: token } },
  { status: 200, body: { access_token: token, token_type: "Bearer", scope: { token } } },
  { status: 200, body: { access_token: token, token_type: "Bearer", expires_in: 0 } },
  { status: 200, body: { access_token: token, token_type: "Bearer", expires_in: `-${secret}` } },
  { status: 200, body: { token_type: "Bearer", note: token } },
  { fail: "ECONNRESET", message: `socket hang up ${secret}` },
  { fail: "SELF_SIGNED_CERT_IN_CHAIN", message: `self-signed certificate in certificate chain ${secret}` }
]

/** One fetch by a fresh provider over `client`, with every log line it wrote (message, spans and annotations). */
const fetchWithLogs = (
  config: ServiceAccountConfig.ServiceAccountConfig,
  client: Layer.Layer<HttpClient.HttpClient>
) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.make((options) => {
      lines.push(Logger.logfmtLogger.log(options))
      lines.push(util.inspect(List.toArray(options.spans)) + util.inspect(HashMap.toValues(options.annotations)))
    })
    const exit = yield* Effect.scoped(
      Effect.flatMap(TokenProvider.make(config, { name: "leak-check" }), (p) => p.get)
    ).pipe(
      Effect.provide(client),
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel("All" as any),
      Effect.exit
    )
    return { exit, lines }
  })

describe("secrets never leak from errors or logs (property)", () => {
  it.effect.prop(
    "no rendering of any token error, nor any log line, holds the secret, the token or the Basic credential",
    [secretArb, secretArb, fc.nat({ max: errorPaths("", "").length - 1 })],
    ([secret, token, path]) =>
      Effect.gen(function*() {
        const config = ServiceAccountConfig.decodeSync({
          client_id: "svc-client",
          client_secret: secret,
          token_url: "https://idp.example.com/token",
          retry: { max_attempts: 1 }
        })
        const fake = yield* FakeTokenEndpoint.make(() => Effect.succeed(errorPaths(token, secret)[path]!))
        const { exit, lines } = yield* fetchWithLogs(config, fake.layer)
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isSuccess(exit)) return
        const error = Cause.squash(exit.cause)
        const basic = Redacted.value(TokenEndpoint.basicCredential("svc-client", Redacted.make(secret)))
        // the Schema-encoded form (what crosses a process boundary) round-trips and is as clean as the rest
        expect(ServiceAccountError.isServiceAccountError(error)).toBe(true)
        const encoded = JSON.stringify(
          Schema.encodeSync(ServiceAccountError.ServiceAccountError)(error as ServiceAccountError.ServiceAccountError)
        )
        const decoded = Schema.decodeUnknownSync(ServiceAccountError.ServiceAccountError)(JSON.parse(encoded))
        expect(decoded._tag).toBe((error as ServiceAccountError.ServiceAccountError)._tag)
        expect(decoded.message).toBe((error as Error).message)
        expect({ ...decoded }).toEqual({ ...(error as object) })
        const renderings = [
          String(error),
          JSON.stringify(error),
          encoded,
          util.inspect(error, { depth: Infinity, showHidden: true }),
          Cause.pretty(exit.cause),
          ...lines
        ]
        for (const text of renderings) {
          expect(text).not.toContain(secret)
          expect(text).not.toContain(token)
          expect(text).not.toContain(basic)
        }
        yield* TestClock.adjust("1 minute")
      }),
    // 150 runs of CPU-bound work: a liveness bound that holds on a loaded 2-core machine
    { fastCheck: { numRuns: 150 }, timeout: 120_000 }
  )
})

/**
 * The other credentials: a private key (PEM or JWK), the assertions signed with it or given as a token, a client
 * secret signed into an HS256 assertion, a TLS key passphrase and proxy credentials. The endpoint echoes everything
 * the request carried, and the passphrase and proxy URL as a transport error might.
 */
const credentialConfigs = (secret: string, assertion: string) => {
  const common = {
    client_id: "svc-client",
    token_url: "https://idp.example.com/token",
    retry: { max_attempts: 1 },
    tls_client_certificate_file: "/unused/cert.pem",
    tls_client_key_file: "/unused/key.pem",
    tls_client_key_passphrase: secret,
    proxy_url: `http://proxy-user:${encodeURIComponent(secret)}@127.0.0.1:3128`
  }
  return [
    { ...common, auth_method: "private_key_jwt", private_key: keys().ES256.privatePem },
    { ...common, auth_method: "private_key_jwt", private_key: JSON.stringify(keys().EdDSA.privateJwk) },
    { ...common, auth_method: "client_secret_jwt", client_secret: secret },
    { ...common, auth_method: "private_key_jwt", client_assertion: { token: assertion } },
    { ...common, grant_type: "jwt_bearer", client_assertion: { token: assertion } },
    { ...common, grant_type: "jwt_bearer", private_key: keys().RS256.privatePem },
    // a workload-identity function whose failure quotes what it had (an OIDC response, the proxy password)
    {
      ...common,
      grant_type: "jwt_bearer",
      client_assertion: {
        function: () => {
          throw new Error(`OIDC request failed: ${assertion} via ${common.proxy_url} (${secret})`)
        }
      }
    }
  ]
}

describe("keys, assertions, passphrases and proxy credentials never leak (property)", () => {
  it.effect.prop(
    "no rendering of any error, log line or the config holds key material, an assertion, the passphrase or proxy password",
    [
      secretArb,
      fc.tuple(fc.base64String({ minLength: 16, maxLength: 40 }), fc.base64String({ minLength: 16, maxLength: 40 }))
        .map(([a, b]) => `eyJ${a.replace(/[+/=]/g, "x")}.eyJ${b.replace(/[+/=]/g, "y")}.sig`),
      fc.nat({ max: 6 }),
      fc.nat({ max: errorPaths("", "").length - 1 })
    ],
    ([secret, assertion, variant, path]) =>
      Effect.gen(function*() {
        const config = ServiceAccountConfig.decodeSync(credentialConfigs(secret, assertion)[variant])
        const sent: Array<string> = []
        const fake = yield* FakeTokenEndpoint.make((_, request) => {
          const carried = request.form.get("client_assertion") ?? request.form.get("assertion") ?? ""
          sent.push(carried)
          const echo = `${carried} ${secret} ${Redacted.value(config.proxyUrl!)}`
          return Effect.succeed(errorPaths(echo, echo)[path]!)
        })
        const { exit, lines } = yield* fetchWithLogs(config, fake.layer)
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isSuccess(exit)) return
        const error = Cause.squash(exit.cause)
        const renderings = [
          String(error),
          JSON.stringify(error),
          JSON.stringify(Schema.encodeSync(ServiceAccountError.ServiceAccountError)(error as any)),
          util.inspect(error, { depth: Infinity, showHidden: true }),
          Cause.pretty(exit.cause),
          JSON.stringify(config),
          util.inspect(config, { depth: Infinity }),
          ...lines
        ]
        const keyLines = [keys().ES256, keys().EdDSA, keys().RS256].flatMap((k) => [
          k.privatePem.split("\n")[1]!,
          String(k.privateJwk.d)
        ])
        const forbidden = [
          secret,
          encodeURIComponent(secret),
          assertion,
          ...sent.filter((s) => s.length > 0),
          ...keyLines
        ]
        for (const text of renderings) {
          for (const value of forbidden) expect(text).not.toContain(value)
        }
        yield* TestClock.adjust("1 minute")
      }),
    { fastCheck: { numRuns: 120 }, timeout: 120_000 }
  )
})

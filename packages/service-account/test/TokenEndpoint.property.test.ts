import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Scrub from "@mcp-auth/service-account/Scrub"
import * as ServiceAccountConfig from "@mcp-auth/service-account/ServiceAccountConfig"
import * as ServiceAccountError from "@mcp-auth/service-account/ServiceAccountError"
import * as TokenEndpoint from "@mcp-auth/service-account/TokenEndpoint"
import { Cause, Effect, Exit, FastCheck as fc, ManagedRuntime, Option, Redacted, Schema, TestContext } from "effect"

/**
 * Arbitrary token endpoint responses at the HttpClient boundary: statuses, odd headers (Retry-After included), bodies
 * of raw bytes with control characters, huge and odd numbers, random JSON shapes, transport and mid-body failures,
 * with the client secret, the Basic credential and the known tokens echoed in every form they travel in.
 */

const CLIENT_ID = "svc:client id"

/** Secrets and tokens long and distinctive enough that finding one in an error is a leak, not a coincidence. */
const secretChar = fc.constantFrom(..."abcXYZ019:%+/= &?#\"\\'ü€😀~-_.".split(/(?:)/u))
const secretArb: fc.Arbitrary<string> = fc.string({ unit: secretChar, minLength: 10, maxLength: 24 }).map((s) =>
  `S§${s}`
)
const visibleAscii = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c))
const tokenArb = fc.string({ unit: visibleAscii, minLength: 12, maxLength: 40 }).map((s) => `tok-${s}`)

const formEncode = (value: string) => new URLSearchParams([["", value]]).toString().slice(1)
const base64 = (value: string) => Buffer.from(value, "utf8").toString("base64")

/** Every way a value can be echoed: each of `Scrub.forms`, plus a client_secret_post body and a Basic header. */
const echoOf = (value: string, basic: string, how: number): string => {
  switch (how % 9) {
    case 0:
      return value
    case 1:
      return formEncode(value)
    case 2:
      return encodeURIComponent(value)
    case 3:
      return base64(value)
    case 4:
      return base64(value).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")
    case 5:
      return `grant_type=client_credentials&client_id=${formEncode(CLIENT_ID)}&client_secret=${formEncode(value)}`
    case 6:
      return `Basic ${basic}`
    case 7:
      return JSON.stringify(value).slice(1, -1)
    default:
      return `${value}\u0000${value}\r\n`
  }
}

interface World {
  readonly secret: string
  readonly basic: string
  readonly known: ReadonlyArray<string>
}

/** Text a server might say, with control characters and echoes of what it knows. */
const serverText = (world: World) =>
  fc.array(
    fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.string({ unit: "binary", maxLength: 20 }),
      fc.constantFrom("\u001b[2J", "\u001b]0;pwned\u0007", "\u202e", "\r\n", "\u0000", "\u009b31m", "\ufeff"),
      fc.tuple(fc.constantFrom(world.secret, world.basic, ...world.known), fc.nat()).map(([value, how]) =>
        echoOf(value, world.basic, how)
      )
    ),
    { maxLength: 5 }
  ).map((parts) => parts.join(""))

const oddNumber = fc.oneof(
  fc.constantFrom(1e20, 2 ** 53, 2 ** 53 + 2, 1e308, Number.MAX_VALUE, Number.MIN_VALUE, -1, 0, -0, 0.0001, 1e-300),
  fc.double(),
  fc.integer(),
  fc.constantFrom("1e400", "-1e400", "3600", " 3600 ", "1E+999", "0x10", "NaN", "Infinity", "", "1e20", "-5")
)

/** Raw literals JSON.parse reads as numbers outside double range, or not at all. */
const rawLiteral = fc.constantFrom("1e400", "-1e400", "1E+999", "123456789012345678901234567890", "-0", "1e-400")

const jsonValue = (world: World) =>
  fc.oneof(
    { depthSize: "small" },
    serverText(world),
    oddNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(serverText(world), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), serverText(world), { maxKeys: 3 })
  )

const accessTokenArb = (world: World) =>
  fc.oneof(
    tokenArb,
    tokenArb,
    // hostile tokens: control characters, non-ASCII, spaces, too long, echoes of the secret
    fc.tuple(tokenArb, fc.constantFrom("\u0000", "\r\n", " ", "é", "\u001b", "😀", "\u007f"), fc.nat()).map(
      ([t, bad, at]) => t.slice(0, at % t.length) + bad + t.slice(at % t.length)
    ),
    tokenArb.map((t) => t + "x".repeat(16 * 1024)),
    fc.constant(world.secret),
    fc.constant(world.known[0]!),
    fc.constantFrom("", 42, null, ["t"], { t: 1 })
  )

interface Body {
  readonly text: string | Uint8Array
  /** The response's access_token when it is a string worth checking for. */
  readonly token?: string | undefined
}

const jsonBody = (world: World): fc.Arbitrary<Body> =>
  fc.record({
    access_token: fc.option(accessTokenArb(world), { nil: undefined }),
    token_type: fc.option(fc.oneof(fc.constantFrom("Bearer", "bearer", "BEARER", "mac"), jsonValue(world)), {
      nil: undefined
    }),
    expires_in: fc.option(fc.oneof(oddNumber, jsonValue(world)), { nil: undefined }),
    refresh_in: fc.option(oddNumber, { nil: undefined }),
    scope: fc.option(fc.oneof(fc.constantFrom("mcp:tools", "a b\tc", ""), jsonValue(world)), { nil: undefined }),
    error: fc.option(fc.oneof(fc.constantFrom("invalid_client", "invalid_scope", "slow_down"), serverText(world)), {
      nil: undefined
    }),
    error_description: fc.option(serverText(world), { nil: undefined }),
    extra: fc.option(jsonValue(world), { nil: undefined }),
    raw: fc.option(fc.tuple(fc.constantFrom("expires_in", "refresh_in"), rawLiteral), { nil: undefined })
  }).map(({ raw, ...fields }) => {
    const object: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(fields)) if (value !== undefined) object[key] = value
    let text = JSON.stringify(object)
    if (raw !== undefined) {
      const [key, literal] = raw
      delete object[key]
      text = JSON.stringify({ ...object, [key]: "__RAW__" }).replace("\"__RAW__\"", literal)
    }
    return { text, token: typeof fields.access_token === "string" ? fields.access_token : undefined }
  })

/** A well-formed success, except for odd lifetimes (huge, exponent, raw overflowing literals) and scopes. */
const successBody: fc.Arbitrary<Body> = fc.record({
  access_token: tokenArb,
  token_type: fc.constantFrom("Bearer", "bearer"),
  expires_in: fc.option(oddNumber, { nil: undefined }),
  refresh_in: fc.option(oddNumber, { nil: undefined }),
  scope: fc.option(fc.constantFrom("mcp:tools", "a b  c", "", "https://api.example.com/.default"), { nil: undefined }),
  raw: fc.option(rawLiteral, { nil: undefined })
}).map(({ raw, ...fields }) => {
  const object: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) object[key] = value
  const text = raw === undefined
    ? JSON.stringify(object)
    : JSON.stringify({ ...object, expires_in: "__RAW__" }).replace("\"__RAW__\"", raw)
  return { text, token: fields.access_token }
})

const bodyArb = (world: World): fc.Arbitrary<Body> =>
  fc.oneof(
    { weight: 4, arbitrary: successBody },
    { weight: 6, arbitrary: jsonBody(world) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((text) => ({ text })) },
    { weight: 1, arbitrary: serverText(world).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.json().map((text) => ({ text })) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom("[", "{\"access_token\":\"", "<html>"), serverText(world)).map((
        [head, tail]
      ) => ({ text: head + tail }))
    }
  )

const headerValue = (value: string): string =>
  /^[\t\x20-\x7e\x80-\xff]*$/.test(value) ? value : encodeURIComponent(value)

const headersArb = (world: World) =>
  fc.record({
    "content-type": fc.option(
      fc.oneof(fc.constantFrom("application/json", "text/html", "application/json; charset=utf-8"), serverText(world)),
      { nil: undefined }
    ),
    "retry-after": fc.option(
      fc.oneof(
        fc.constantFrom(
          "5",
          "-1",
          "1e9",
          "99999999999999999999",
          "Infinity",
          "NaN",
          " 7 ",
          "Wed, 21 Oct 2015 07:28:00 GMT"
        ),
        fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()),
        serverText(world)
      ),
      { nil: undefined }
    ),
    "retry-after-ms": fc.option(fc.constantFrom("250", "1e400", "0.5", "-3", "99999999999999999999999"), {
      nil: undefined
    }),
    "x-echo": fc.option(serverText(world), { nil: undefined })
  }).map((headers) => {
    const out: Record<string, string> = {}
    for (const [key, value] of Object.entries(headers)) if (value !== undefined) out[key] = headerValue(value)
    return out
  })

type Reply =
  | {
    readonly _tag: "Response"
    readonly status: number
    readonly headers: Record<string, string>
    readonly body: Body
  }
  | { readonly _tag: "Transport"; readonly code: string; readonly message: string }
  | { readonly _tag: "BrokenBody"; readonly status: number; readonly prefix: string; readonly message: string }

const replyArb = (world: World): fc.Arbitrary<Reply> =>
  fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        _tag: fc.constant("Response" as const),
        status: fc.oneof(
          { weight: 3, arbitrary: fc.constant(200) },
          { weight: 1, arbitrary: fc.constantFrom(400, 401, 429, 500, 503, 201, 204) },
          { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) }
        ),
        headers: headersArb(world),
        body: bodyArb(world)
      })
    },
    {
      weight: 1,
      arbitrary: fc.record({
        _tag: fc.constant("Transport" as const),
        code: fc.constantFrom("ECONNRESET", "ECONNREFUSED", "SELF_SIGNED_CERT_IN_CHAIN", "ENOTFOUND", "ERR_TLS_X"),
        message: serverText(world)
      })
    },
    {
      weight: 1,
      arbitrary: fc.record({
        _tag: fc.constant("BrokenBody" as const),
        status: fc.constantFrom(200, 500),
        prefix: serverText(world),
        message: serverText(world)
      })
    }
  )

const worldArb: fc.Arbitrary<World & { readonly reply: Reply }> = fc.tuple(secretArb, tokenArb, tokenArb).chain((
  [secret, current, previous]
) => {
  const basic = Redacted.value(TokenEndpoint.basicCredential(CLIENT_ID, Redacted.make(secret)))
  const world = { secret, basic, known: [current, previous] }
  return replyArb(world).map((reply) => ({ ...world, reply }))
})

const nullBody = new Set([204, 205, 304])

const clientFor = (reply: Reply): HttpClient.HttpClient =>
  HttpClient.make((request) => {
    switch (reply._tag) {
      case "Transport":
        return Effect.fail(
          new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: new TypeError("fetch failed", {
              cause: Object.assign(new Error(reply.message), { code: reply.code })
            })
          })
        )
      case "BrokenBody": {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(reply.prefix))
            controller.error(new Error(reply.message))
          }
        })
        return Effect.succeed(HttpClientResponse.fromWeb(request, new Response(body, { status: reply.status })))
      }
      case "Response": {
        const text = reply.body.text
        const body = nullBody.has(reply.status) ? null : typeof text === "string" ? text : Uint8Array.from(text)
        return Effect.succeed(
          HttpClientResponse.fromWeb(request, new Response(body, { status: reply.status, headers: reply.headers }))
        )
      }
    }
  })

const VISIBLE_ASCII = /^[\x21-\x7e]+$/

describe("TokenEndpoint against arbitrary responses (property)", () => {
  it(
    "every outcome is a valid token or a typed TokenError, and no error shows a secret or a token in any form",
    async () => {
      let tokens = 0
      let failures = 0
      // one TestClock for every run (built once: a layer per run would cost more than the request), so `issuedAt` and
      // `now` never depend on scheduling
      const runtime = ManagedRuntime.make(TestContext.TestContext)
      await fc.assert(
        fc.asyncProperty(
          worldArb,
          fc.constantFrom("client_secret_basic", "client_secret_post"),
          async (world, auth) => {
            const config = ServiceAccountConfig.decodeSync({
              client_id: CLIENT_ID,
              client_secret: world.secret,
              token_url: "https://idp.example.com/token?tenant=t",
              auth_method: auth
            })
            const exit = await runtime.runPromiseExit(
              TokenEndpoint.request(config, { knownTokens: world.known.map((t) => Redacted.make(t)) }).pipe(
                Effect.provideService(HttpClient.HttpClient, clientFor(world.reply))
              )
            )
            if (Exit.isSuccess(exit)) {
              tokens++
              const token = exit.value
              const value = Redacted.value(token.token)
              expect(value).toMatch(VISIBLE_ASCII)
              expect(value.length).toBeLessThanOrEqual(16 * 1024)
              expect(Number.isSafeInteger(token.expiresAt)).toBe(true)
              expect(token.expiresAt).toBeGreaterThan(token.issuedAt)
              expect(token.expiresAt - token.issuedAt).toBeLessThanOrEqual(config.maxTokenLifetimeSeconds * 1000)
              expect(Number.isNaN(new Date(token.expiresAt).getTime())).toBe(false)
              if (token.refreshIn !== undefined) {
                expect(token.refreshIn).toBeGreaterThanOrEqual(0)
                expect(token.refreshIn * 1000).toBeLessThanOrEqual(token.expiresAt - token.issuedAt)
              }
              for (const scope of token.scopes) expect(scope).toMatch(/^[\x21\x23-\x5b\x5d-\x7e]+$/)
              return
            }
            failures++
            // a typed failure: never a defect, never an interrupt
            expect(Cause.isInterruptedOnly(exit.cause)).toBe(false)
            expect(Cause.isDie(exit.cause)).toBe(false)
            const error = Option.getOrThrow(Cause.failureOption(exit.cause))
            expect(ServiceAccountError.isTokenError(error)).toBe(true)
            const encoded = JSON.stringify(Schema.encodeSync(ServiceAccountError.TokenError)(error))
            const renderings = [error.message, String(error), JSON.stringify(error), encoded]
            const body = world.reply._tag === "Response" ? world.reply.body.token : undefined
            const hidden = [
              world.secret,
              world.basic,
              ...world.known,
              ...(body !== undefined && body.length >= 12 ? [body] : [])
            ]
            const forms = hidden.flatMap(Scrub.forms)
            for (const text of renderings) {
              // eslint-disable-next-line no-control-regex
              if (/[\u0000-\u001f\u007f-\u009f\u202e]/.test(text)) expect.fail(`a control character in ${text}`)
              const leaked = forms.find((form) => text.includes(form))
              if (leaked !== undefined) expect.fail(`${JSON.stringify(leaked)} in ${text}`)
            }
          }
        ),
        { numRuns: 1000, seed: 12, endOnFailure: true }
      ).finally(() => runtime.dispose())
      // the generator reaches both outcomes
      expect(tokens).toBeGreaterThan(20)
      expect(failures).toBeGreaterThan(200)
    },
    // 1000 runs of CPU-bound work: a liveness bound that holds on a loaded 2-core machine, not a speed assertion
    180_000
  )
})

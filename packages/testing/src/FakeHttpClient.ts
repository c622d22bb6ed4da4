/**
 * A token endpoint at the `HttpClient` boundary, in-process: for unit tests of parsing and timing (with `TestClock`),
 * never instead of the real servers. Counts calls and records every request.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

/**
 * A request as the fake endpoint saw it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Captured {
  readonly url: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly form: URLSearchParams
}

/**
 * What the fake answers: a response, or a transport failure carrying a Node error code.
 *
 * @since 0.1.0
 * @category Models
 */
export type Reply =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body?: unknown }
  | { readonly fail: string; readonly message?: string }

/**
 * @since 0.1.0
 * @category Models
 */
export type Handler = (call: number, request: Captured) => Effect.Effect<Reply>

/**
 * @since 0.1.0
 * @category Models
 */
export interface FakeHttpClient {
  readonly layer: Layer.Layer<HttpClient.HttpClient>
  readonly calls: Effect.Effect<number>
  readonly requests: Effect.Effect<ReadonlyArray<Captured>>
}

/**
 * A successful token response for `tok-<n>`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const token = (n: number, expiresIn: unknown = 3600, extra: Record<string, unknown> = {}): Reply => ({
  status: 200,
  body: { access_token: `tok-${n}`, token_type: "Bearer", expires_in: expiresIn, ...extra }
})

/**
 * @since 0.1.0
 * @category Constructors
 */
export const make = (handler: Handler): Effect.Effect<FakeHttpClient> =>
  Effect.gen(function*() {
    const log = yield* Ref.make<ReadonlyArray<Captured>>([])
    const client = HttpClient.make((request, url) =>
      Effect.gen(function*() {
        const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
        const captured: Captured = {
          url: url.href,
          method: request.method,
          headers: { ...request.headers },
          form: new URLSearchParams(body)
        }
        const n = (yield* Ref.updateAndGet(log, (all) => [...all, captured])).length
        const reply = yield* handler(n, captured)
        if ("fail" in reply) {
          const cause = Object.assign(new Error(reply.message ?? `${reply.fail} (fake)`), { code: reply.fail })
          return yield* new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: new TypeError("fetch failed", { cause })
          })
        }
        const text = typeof reply.body === "string"
          ? reply.body
          : reply.body === undefined
          ? ""
          : JSON.stringify(reply.body)
        return HttpClientResponse.fromWeb(
          request,
          new Response(text, {
            status: reply.status,
            headers: {
              "content-type": typeof reply.body === "string" ? "text/html" : "application/json",
              ...reply.headers
            }
          })
        )
      })
    )
    return {
      layer: Layer.succeed(HttpClient.HttpClient, client),
      calls: Effect.map(Ref.get(log), (all) => all.length),
      requests: Ref.get(log)
    }
  })

/**
 * Fresh `tok-1`, `tok-2`, … tokens with the given lifetime.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const tokens = (expiresIn: unknown = 3600) => make((n) => Effect.succeed(token(n, expiresIn)))

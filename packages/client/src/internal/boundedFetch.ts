/**
 * Bounded reads of MCP responses. Every response body the SDK reads goes through a counting stream: a JSON (any
 * non-SSE) body is cut when its total exceeds the limit, an SSE body when one event (the bytes between blank-line
 * separators) does. A cut cancels the underlying body (the connection closes, so the server stops writing) and
 * errors the stream with the error `tooLarge` builds. The stream pulls one chunk per read (no read-ahead), so what
 * is buffered stays near the limit whatever the server sends.
 *
 * The SDK reads SSE streams in the background, where an error only reaches `onerror`, and it drops the read error of
 * an error-status body: {@link Options.onStreamEnd} tells the client when a body was cut, or an SSE stream broke
 * before its end, with the JSON-RPC ids of the POST it answers, so it can fail those calls at once (with the right
 * error) instead of letting them wait for the timeout.
 *
 * @internal
 */
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js"

/** @internal */
export type RequestId = string | number

/** @internal */
export interface Options {
  readonly limit: number
  /** The error a cut stream fails with (`sse`: one event was over the limit, else the whole body). */
  readonly tooLarge: (
    info: { readonly sse: boolean; readonly method: string; readonly rpcMethod: string | undefined }
  ) => Error
  /**
   * A body was cut (`error` is the `tooLarge` error) or an SSE stream broke (`error` is the read error) before its end.
   * `ids` holds the JSON-RPC request ids of the POST it answers (empty for the GET stream).
   */
  readonly onStreamEnd: (event: {
    readonly ids: ReadonlyArray<RequestId>
    /** The JSON-RPC method of the (first) request the POST carried. */
    readonly rpcMethod: string | undefined
    readonly error: unknown
    readonly cut: boolean
  }) => void
}

const nullBodyStatus = new Set([101, 103, 204, 205, 304])

interface Requests {
  readonly ids: ReadonlyArray<RequestId>
  readonly rpcMethod: string | undefined
}

const none: Requests = { ids: [], rpcMethod: undefined }

/**
 * The JSON-RPC requests in a POST body (a message or a batch). A large body is not parsed: the SDK writes `method`
 * first and `"id"` last.
 */
export const requestsOf = (body: unknown): Requests => {
  if (typeof body !== "string") return none
  if (body.length > 1_000_000) {
    const id = /"id":(-?\d+|"(?:[^"\\]|\\.)*")\}\s*$/.exec(body.slice(-200))?.[1]
    const rpcMethod = /^\{"method":"([\w/.-]{1,100})"/.exec(body)?.[1]
    return id === undefined ? none : { ids: [JSON.parse(id) as RequestId], rpcMethod }
  }
  try {
    const parsed: unknown = JSON.parse(body)
    const messages: Array<unknown> = Array.isArray(parsed) ? parsed : [parsed]
    const ids: Array<RequestId> = []
    let rpcMethod: string | undefined
    for (const message of messages) {
      if (typeof message !== "object" || message === null) continue
      const { id, method } = message as { id?: unknown; method?: unknown }
      if (typeof method === "string" && (typeof id === "string" || typeof id === "number")) {
        ids.push(id)
        rpcMethod ??= method
      }
    }
    return { ids, rpcMethod }
  } catch {
    return none
  }
}

/** Total bytes of a body. */
const totalCounter = () => {
  let total = 0
  return (chunk: Uint8Array): number => (total += chunk.length)
}

const CR = 13
const LF = 10

/**
 * Bytes of the SSE event in progress: counting restarts after each blank line (an empty line ends an event; lines
 * end with CRLF, LF or CR). Returns the largest event size seen in this chunk.
 */
const eventCounter = () => {
  let event = 0
  let line = 0
  let afterCR = false
  return (chunk: Uint8Array): number => {
    let largest = event
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!
      if (byte === LF && afterCR) {
        afterCR = false
        continue
      }
      afterCR = byte === CR
      if (byte === LF || byte === CR) {
        if (line === 0) {
          if (event > largest) largest = event
          event = 0
        } else {
          line = 0
          event++
        }
        continue
      }
      line++
      event++
    }
    return event > largest ? event : largest
  }
}

const mediaType = (contentType: string | null): string => (contentType ?? "").split(";")[0]!.trim().toLowerCase()

/** @internal */
export const make = (fetch: FetchLike, options: Options): FetchLike => async (input, init) => {
  const response = await fetch(input, init)
  const body = response.body
  if (body === null || nullBodyStatus.has(response.status) || response.status < 200) return response
  const sse = mediaType(response.headers.get("content-type")) === "text/event-stream"
  const method = init?.method ?? "GET"
  const { ids, rpcMethod } = method === "POST" ? requestsOf(init?.body) : none
  const count = sse ? eventCounter() : totalCounter()
  const reader = body.getReader()
  let ended = false
  const end = (error: unknown, cut: boolean) => {
    if (ended) return
    ended = true
    if (sse || cut) options.onStreamEnd({ ids, rpcMethod, error, cut })
  }
  const bounded = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>
      try {
        chunk = await reader.read()
      } catch (error) {
        end(error, false)
        controller.error(error)
        return
      }
      if (chunk.done) {
        ended = true
        controller.close()
        return
      }
      if (count(chunk.value) > options.limit) {
        const error = options.tooLarge({ sse, method, rpcMethod })
        reader.cancel(error).catch(() => undefined)
        controller.error(error)
        end(error, true)
        return
      }
      controller.enqueue(chunk.value)
    },
    cancel(reason) {
      ended = true
      return reader.cancel(reason)
    }
  }, { highWaterMark: 0 })
  return new Response(bounded, { status: response.status, statusText: response.statusText, headers: response.headers })
}

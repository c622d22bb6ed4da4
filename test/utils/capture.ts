import { Cause, Effect, Exit, HashMap, List, Logger, Metric, Tracer } from "effect"
import * as util from "node:util"
import { expect } from "vitest"

/** What a run left behind that a secret could leak into. */
export interface Captured<A, E> {
  readonly exit: Exit.Exit<A, E>
  readonly logs: Array<string>
  readonly spans: Array<Tracer.Span>
}

/** Runs an effect recording every log line (all levels) and every span it opens. */
export const capture = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Captured<A, E>, never, R> =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const spans: Array<Tracer.Span> = []
    const base = yield* Effect.tracer
    const recording = Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        const span = base.span(name, parent, context, links, startTime, kind, options)
        spans.push(span)
        return span
      },
      context: base.context
    })
    const logger = Logger.make((options) => {
      logs.push(Logger.logfmtLogger.log(options))
      logs.push(
        util.inspect(HashMap.toValues(options.annotations), { depth: 5 }) + util.inspect(List.toArray(options.spans))
      )
    })
    const exit = yield* effect.pipe(
      Effect.withTracer(recording),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel("All" as any),
      Effect.exit
    )
    return { exit, logs, spans }
  })

/** Every rendering of an error a user might print. */
export const renderings = (exit: Exit.Exit<unknown, unknown>): Array<string> => {
  if (Exit.isSuccess(exit)) return []
  const error = Cause.squash(exit.cause)
  return [
    String(error),
    JSON.stringify(error) ?? "",
    util.inspect(error, { depth: Infinity, showHidden: true }),
    Cause.pretty(exit.cause)
  ]
}

/** Span names and attributes, as text. */
export const spanText = (spans: ReadonlyArray<Tracer.Span>): Array<string> =>
  spans.map((span) => `${span.name} ${util.inspect(span.attributes, { depth: 5 })}`)

/** Every metric key and label currently registered, as text. */
export const metricLabels = (): Effect.Effect<string> =>
  Effect.map(
    Metric.snapshot,
    (pairs) =>
      pairs.map((pair) => `${pair.metricKey.name} ${pair.metricKey.tags.map((t) => `${t.key}=${t.value}`).join(",")}`)
        .join("\n")
  )

/** Asserts none of `texts` contains any of `secrets` (ignoring empty or very short ones). */
export const expectNoLeak = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>) => {
  const needles = secrets.filter((s) => s.length >= 8)
  for (const text of texts) {
    for (const needle of needles) {
      if (text.includes(needle)) {
        expect.fail(`leaked ${needle.slice(0, 4)}… in: ${text.slice(0, 200)}`)
      }
    }
  }
}

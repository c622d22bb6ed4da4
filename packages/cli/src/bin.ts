#!/usr/bin/env node
/**
 * The `mcp-auth` executable: runtime wiring only.
 *
 * @since 0.1.0
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Cli from "./Cli.js"
import { ExitCode, report } from "./Errors.js"

const verbose = process.argv.includes("--verbose")
let exitCode: number = ExitCode.ok

const program = Cli.run(process.argv).pipe(
  Effect.scoped,
  Effect.catchAllCause((cause) =>
    Effect.gen(function*() {
      if (Cause.isInterruptedOnly(cause)) {
        exitCode = 130
        return
      }
      const error = Cause.squash(cause)
      if (ValidationError.isValidationError(error)) {
        // @effect/cli has printed the usage problem already
        exitCode = ExitCode.usage
        return
      }
      const { code, hint, message } = report(error)
      exitCode = code
      yield* Console.error(`Error: ${message}`)
      if (hint !== undefined) yield* Console.error(`Hint: ${hint}`)
      if (verbose) yield* Console.error(Cause.pretty(cause))
    })
  ),
  Logger.withMinimumLogLevel(verbose ? LogLevel.Debug : LogLevel.Warning),
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // Ctrl-C interrupts the program before it can set a code: 130, as shells report SIGINT
  teardown: (exit, onExit) => onExit(Exit.isFailure(exit) ? Cause.isInterruptedOnly(exit.cause) ? 130 : 1 : exitCode)
})

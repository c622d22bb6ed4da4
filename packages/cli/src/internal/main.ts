/**
 * Runtime wiring of the `mcp-auth` executable: logging, error reports and exit codes. Nothing a command does not need
 * is loaded here; the reporting of failures is loaded when one happens.
 *
 * @internal
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Cli from "../Cli.js"

const verbose = process.argv.includes("--verbose")
let exitCode = 0

const program = Cli.run(process.argv).pipe(
  Effect.scoped,
  Effect.catchAllCause((cause) =>
    Effect.gen(function*() {
      if (Cause.isInterruptedOnly(cause)) {
        exitCode = 130
        return
      }
      const [{ ExitCode, report }, Secrets] = yield* Effect.promise(() =>
        Promise.all([import("../Errors.js"), import("./secrets.js")])
      )
      const error = Cause.squash(cause)
      if (ValidationError.isValidationError(error)) {
        // @effect/cli has printed the usage problem already
        exitCode = ExitCode.usage
        return
      }
      const { code, hint, message } = report(error, Secrets.all())
      exitCode = code
      yield* Console.error(`Error: ${message}`)
      if (hint !== undefined) yield* Console.error(`Hint: ${hint}`)
      if (verbose) yield* Console.error(Secrets.lines(Cause.pretty(cause), 200_000))
    })
  ),
  Logger.withMinimumLogLevel(verbose ? LogLevel.Debug : LogLevel.Warning),
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  // what @effect/cli needs, not all of NodeContext (no child processes, no workers)
  Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer))
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // Ctrl-C interrupts the program before it can set a code: 130, as shells report SIGINT
  teardown: (exit, onExit) => onExit(Exit.isFailure(exit) ? Cause.isInterruptedOnly(exit.cause) ? 130 : 1 : exitCode)
})

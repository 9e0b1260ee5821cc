/**
 * The `effect-amp` command: `serve` (the demo server, what `npm start` runs,
 * or a module's responders), `call` (commands, like curl for AMP), `tap` (a
 * proxy that shows the boxes), `decode` and `encode` (raw AMP bytes to JSON
 * lines and back).
 *
 * Exit codes: 0 success; 1 an error answer (`call`) or bad input
 * (`decode`, `encode`); 2 a connection or usage failure.
 *
 * @since 0.1.0
 */
import * as CliCommand from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stdio from "../node/Stdio.js"
import * as Call from "./Call.js"
import * as Codec from "./Codec.js"
import { CliExit } from "./Exit.js"
import * as Log from "./Log.js"
import * as Serve from "./Serve.js"
import * as Tap from "./Tap.js"

const root = CliCommand.make("effect-amp").pipe(
  CliCommand.withDescription("AMP (Twisted's Asynchronous Messaging Protocol) from the shell"),
  CliCommand.withSubcommands([Serve.command, Call.command, Tap.command, Codec.decode, Codec.encode])
)

const cli = CliCommand.run(root, { name: "effect-amp", version: "0.1.0" })

/**
 * @effect/cli takes `--log-level` only before the subcommand; users put it
 * anywhere (`effect-amp serve --log-level debug`), so it is moved to the front.
 */
const logLevelFirst = (argv: ReadonlyArray<string>): Array<string> => {
  const [runtime, script, ...rest] = argv
  const level: Array<string> = []
  const others: Array<string> = []
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    if (a === "--") {
      others.push(...rest.slice(i))
      break
    }
    if (a.startsWith("--log-level=")) level.push(a)
    else if (a === "--log-level" && i + 1 < rest.length) level.push(a, rest[++i]!)
    else others.push(a)
  }
  return [runtime!, script!, ...level, ...others]
}

// Help and error messages are plain text when the stream is not a terminal.
Log.installPlainConsole()

// A reader that went away (`| head`) ends the command quietly, as it does any Unix tool.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0)
  throw e
})

// stdout is for what the command prints (answers, boxes, the `listening on` line); logs go to stderr.
cli(logLevelFirst(process.argv)).pipe(
  Effect.provide(Stdio.layerDefaultLoggerToStderr),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && failure.value instanceof CliExit) return onExit(failure.value.code)
      // Validation errors were printed by @effect/cli; anything else is a bug worth showing.
      if (Option.isNone(failure)) console.error(Cause.pretty(exit.cause))
      onExit(2)
    }
  })
)

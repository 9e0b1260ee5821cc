/**
 * How the command logs: one format for every line, chosen with
 * `--log-format` (`pretty`, the default, coloured only when stderr is a
 * terminal and `NO_COLOR` is unset; `logfmt`; `json`), always on stderr
 * (stdout carries what the command prints), every line filtered by
 * `--log-level` (Effect's minimum log level, which @effect/cli sets).
 *
 * Also: the console the command prints with drops ANSI escape codes on a
 * stream that is not a terminal, so `--help | less` and error messages in a
 * log file are plain text (@effect/cli always renders them in colour).
 *
 * @since 0.1.0
 */
import { Console as NodeConsole } from "node:console"
import { Writable } from "node:stream"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"

/** The formats `--log-format` takes. */
export type Format = "pretty" | "logfmt" | "json"

/** `--log-format`, for every subcommand that logs. */
export const formatOption: Options.Options<Format> = Options.choice("log-format", ["pretty", "logfmt", "json"]).pipe(
  Options.withDefault("pretty" as const),
  Options.withDescription("format of the log lines on stderr: pretty (coloured on a terminal), logfmt or json")
)

/** Whether colour may be used on `stream`. */
export const colours = (stream: NodeJS.WriteStream): boolean => stream.isTTY === true && !process.env.NO_COLOR

const toStderr = (logger: Logger.Logger<unknown, string>): Logger.Logger<unknown, void> =>
  Logger.map(logger, (line) => void process.stderr.write(`${line}\n`))

/** The one logger of a format, writing to stderr. */
export const logger = (format: Format): Logger.Logger<unknown, void> =>
  format === "json"
    ? toStderr(Logger.jsonLogger)
    : format === "logfmt"
    ? toStderr(Logger.logfmtLogger)
    : Logger.prettyLogger({ stderr: true, colors: colours(process.stderr), mode: "tty" })

/** Runs `effect` (and every fiber it forks) with exactly one logger, of `format`. */
export const withFormat = (format: Format) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, FiberRef.currentLoggers, HashSet.make(logger(format)))

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]/g

/** `text` without ANSI escape codes. */
export const stripAnsi = (text: string): string => text.replace(ANSI, "")

// Writes go straight through (the callback is synchronous), so they keep their order with direct writes.
const plain = (stream: NodeJS.WriteStream) =>
  new Writable({
    decodeStrings: false,
    write: (chunk: string | Uint8Array, _encoding, callback) => {
      stream.write(typeof chunk === "string" && !colours(stream) ? stripAnsi(chunk) : chunk)
      callback()
    }
  })

/**
 * Makes `console` (which @effect/cli's help and error messages go through)
 * drop ANSI codes on a stream that is not a terminal. For the command's own
 * process only: the library never does this.
 */
export const installPlainConsole = (): void => {
  globalThis.console = new NodeConsole({
    stdout: plain(process.stdout),
    stderr: plain(process.stderr),
    colorMode: false
  })
}

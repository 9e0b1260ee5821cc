/**
 * AMP over a process's standard streams: serve a parent that drives us over
 * stdin/stdout, or drive a child over its stdin/stdout. (On POSIX, ampoule
 * and Twisted's tools use fds 3 and 4 instead: see `Child`.)
 *
 * Pipes cannot carry StartTLS here (it fails with `TransportUnsupported`);
 * a protocol switch works (`detach`).
 *
 * @since 0.1.0
 */
import type * as childProcess from "node:child_process"
import type { Readable, Writable } from "node:stream"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as Scope from "effect/Scope"
import type { ConnectError } from "../AmpError.js"
import type { WithDetach } from "../Transport.js"
import * as ChildProcesses from "./Child.js"
import * as NodeTransport from "./NodeTransport.js"

/**
 * Options of {@link transport}.
 *
 * @since 0.1.0
 */
export type TransportOptions = Omit<NodeTransport.StreamOptions, "role" | "kind"> & {
  /** Default `server`: the process on the other end started us. */
  readonly role?: "client" | "server"
}

/**
 * A transport reading `input` and writing `output` (by default this
 * process's stdin and stdout), kind `stdio`. Closing it ends `output` and
 * stops reading `input` (without destroying either, unless `destroyOnClose`).
 *
 * Nothing else may write to `output` meanwhile: a `console.log` to stdout
 * would land in the middle of the byte stream. So when `output` is this
 * process's stdout, the acquiring fiber (and every fiber it forks afterwards,
 * such as the responders) logs to stderr until the scope closes: Effect's
 * default logger, and the pretty one `NodeRuntime.runMain` installs, are
 * swapped for the same format on stderr ({@link loggersToStderr}). A logger
 * you installed yourself is left alone: point it at stderr yourself. To log
 * before the transport exists, provide {@link layerDefaultLoggerToStderr}.
 *
 * @since 0.1.0
 */
export const transport = (
  input: Readable = process.stdin,
  output: Writable = process.stdout,
  options?: TransportOptions
): Effect.Effect<WithDetach, never, Scope.Scope> =>
  Effect.zipRight(
    isStdout(output) ? defaultLoggerToStderr : Effect.void,
    NodeTransport.fromStreams(input, output, { ...options, role: options?.role ?? "server", kind: "stdio" })
  )

/** Whether `output` writes to file descriptor 1 (`process.stdout`, or a stream opened on fd 1). */
const isStdout = (output: Writable): boolean =>
  output === process.stdout || (output as Writable & { readonly fd?: unknown }).fd === 1

/** Effect's default logger, writing the same lines to stderr. */
const stringLoggerToStderr = Logger.withConsoleError(Logger.stringLogger)

/** The pretty logger `NodeRuntime.runMain` installs, writing to stderr (coloured when stderr is a terminal). */
const prettyLoggerToStderr = Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true })

/**
 * `loggers` with Effect's own stdout loggers (`Logger.defaultLogger`, and
 * `Logger.prettyLoggerDefault` that `NodeRuntime.runMain` puts in its place)
 * replaced by the same format written to stderr. Every other logger is kept
 * as it is.
 *
 * @since 0.1.0
 */
export const loggersToStderr = (
  loggers: HashSet.HashSet<Logger.Logger<unknown, unknown>>
): HashSet.HashSet<Logger.Logger<unknown, unknown>> => {
  let out = loggers
  if (HashSet.has(out, Logger.defaultLogger)) {
    out = HashSet.add(HashSet.remove(out, Logger.defaultLogger), stringLoggerToStderr)
  }
  if (HashSet.has(out, Logger.prettyLoggerDefault)) {
    out = HashSet.add(HashSet.remove(out, Logger.prettyLoggerDefault), prettyLoggerToStderr)
  }
  return out
}

/** Applies {@link loggersToStderr} to the current fiber until the scope closes. */
const defaultLoggerToStderr: Effect.Effect<void, never, Scope.Scope> = Effect.locallyScopedWith(
  FiberRef.currentLoggers,
  loggersToStderr
)

/**
 * Moves Effect's default logger to stderr ({@link loggersToStderr}) for
 * whatever this layer is provided to: for a program served over its own
 * stdio that logs before it acquires {@link transport} (which does the same
 * from then on). Loggers you installed yourself are left alone.
 *
 * @example
 * ```ts
 * program.pipe(Effect.provide(Stdio.layerDefaultLoggerToStderr), NodeRuntime.runMain)
 * ```
 *
 * @since 0.1.0
 */
export const layerDefaultLoggerToStderr: Layer.Layer<never> = Layer.scopedDiscard(defaultLoggerToStderr)

/**
 * A child process driven over its stdin and stdout.
 *
 * @since 0.1.0
 */
export interface Child {
  readonly transport: WithDetach
  readonly process: childProcess.ChildProcess
}

/**
 * Options of {@link spawn}: those of `Child.spawn`, whose channel here is
 * always stdin/stdout.
 *
 * @since 0.1.0
 */
export type SpawnOptions = Omit<ChildProcesses.SpawnOptions, "channel" | "stdout">

/**
 * Spawns `command` and speaks over its pipes (kind `child`, peer address
 * `child:PID`). Fails with `ConnectError` (address `child:COMMAND`, reason
 * `not found` when there is no such program) when the child cannot start.
 *
 * Closing the scope ends the child's stdin, waits `exitTimeoutMillis` for
 * it to exit, then sends SIGTERM, and SIGKILL after `killTimeoutMillis`.
 * `Child.spawn` does the same over fds 3/4 (ampoule's way) and reports the exit.
 *
 * @since 0.1.0
 */
export const spawn = (
  command: string,
  args: ReadonlyArray<string>,
  options?: SpawnOptions
): Effect.Effect<Child, ConnectError, Scope.Scope> =>
  Effect.map(
    ChildProcesses.spawn(command, args, { ...options, channel: { _tag: "stdio" } }),
    ({ process, transport }): Child => ({ transport, process })
  )

/**
 * AMP child processes, both sides: spawn a child and speak AMP with it, or,
 * in the child, speak AMP with the parent.
 *
 * Twisted's process pools (ampoule) and Twisted's own tools give a child two
 * extra pipes: the child reads **fd 3** and writes **fd 4**; its stdin,
 * stdout and stderr stay free for the program (stdin/stdout carry AMP only
 * on Windows). That is the default here; `channel: "stdio"` speaks over the
 * child's stdin/stdout instead.
 *
 * @since 0.1.0
 */
import * as childProcess from "node:child_process"
import * as net from "node:net"
import type { Readable, Writable } from "node:stream"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { Amp } from "../Amp.js"
import { ConnectError } from "../AmpError.js"
import * as AmpConnection from "../AmpConnection.js"
import type { WithDetach } from "../Transport.js"
import * as NodeTransport from "./NodeTransport.js"
import * as Stdio from "./Stdio.js"

/**
 * Which of the child's file descriptors carry AMP. `fds` (the default): the
 * child reads `read` (default 3) and writes `write` (default 4), as ampoule
 * does. `stdio`: its stdin and stdout.
 *
 * @since 0.1.0
 */
export type Channel =
  | { readonly _tag: "fds"; readonly read?: number; readonly write?: number }
  | { readonly _tag: "stdio" }

/**
 * How a child ended: its exit code, or the signal that ended it.
 *
 * @since 0.1.0
 */
export class ChildExit extends Data.Class<{
  readonly pid: number
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}> {
  /** Whether it exited by itself with code 0. */
  get ok(): boolean {
    return this.code === 0
  }
  /** `exit code N` or `signal SIGX`. */
  get description(): string {
    return this.signal !== null ? `signal ${this.signal}` : `exit code ${this.code}`
  }
}

/**
 * A child with an AMP connection to it.
 *
 * @since 0.1.0
 */
export interface Child {
  readonly transport: WithDetach
  readonly process: childProcess.ChildProcess
  /** Completes when the child has exited, with how. */
  readonly exit: Effect.Effect<ChildExit>
}

/** Where a standard stream of the child goes. */
export type Output = "inherit" | "pipe" | "ignore"

/**
 * Options of {@link spawn}.
 *
 * @since 0.1.0
 */
export interface SpawnOptions {
  /** Default `{ _tag: "fds", read: 3, write: 4 }`. */
  readonly channel?: Channel
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /** The child's stdout, when it does not carry AMP: passed through (default), piped to `process.stdout` of `Child`, or dropped. */
  readonly stdout?: Output
  /** The child's stderr. Default `inherit`. */
  readonly stderr?: Output
  /** How long the child may take to exit once its AMP input is closed, before SIGTERM. Default 2000 ms. */
  readonly exitTimeoutMillis?: number
  /** How long after SIGTERM before SIGKILL. Default 1000 ms. */
  readonly killTimeoutMillis?: number
  /** Passed to the transport: buffers, close timeout. */
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
}

/**
 * Waits for `child` to exit, at most `millis` (then `false`). A timer of its own, not
 * `Effect.timeout`: it runs in a release, where nothing can be interrupted.
 */
const exitedWithin = (child: childProcess.ChildProcess, millis: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(true))
    const onExit = () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    }
    const timer = setTimeout(() => {
      child.off("exit", onExit)
      resume(Effect.succeed(false))
    }, millis)
    child.once("exit", onExit)
    return Effect.sync(() => {
      clearTimeout(timer)
      child.off("exit", onExit)
    })
  })

/** The child's stdio array: AMP on `channel`, the rest as asked. */
const stdioFor = (channel: Channel, options: SpawnOptions | undefined): { stdio: Array<Output>; read: number; write: number } => {
  const stderr = options?.stderr ?? "inherit"
  if (channel._tag === "stdio") return { stdio: ["pipe", "pipe", stderr], read: 0, write: 1 }
  const read = channel.read ?? 3
  const write = channel.write ?? 4
  if (read < 3 || write < 3 || read === write) {
    throw new RangeError(`Child.spawn: AMP needs two distinct descriptors above 2 (got read ${read}, write ${write})`)
  }
  const stdio: Array<Output> = ["ignore", options?.stdout ?? "inherit", stderr]
  for (let fd = 3; fd <= Math.max(read, write); fd++) stdio[fd] = fd === read || fd === write ? "pipe" : "ignore"
  return { stdio, read, write }
}

/**
 * Spawns `command` and speaks AMP with it over `channel` (kind `child`, peer
 * address `child:PID`). Fails with `ConnectError` (address `child:COMMAND`,
 * reason `not found` when there is no such program) when it cannot start.
 *
 * Closing the scope closes the connection (the child reads an end), waits
 * `exitTimeoutMillis` for it to exit, then sends SIGTERM, and SIGKILL after
 * `killTimeoutMillis`; the scope closes once the child is gone.
 *
 * @example
 * const child = yield* Child.spawn("/usr/bin/python3", ["worker.py"])
 * const amp = yield* NodeAmp.over(child.transport)
 *
 * @since 0.1.0
 */
export const spawn: (
  command: string,
  args: ReadonlyArray<string>,
  options?: SpawnOptions
) => Effect.Effect<Child, ConnectError, Scope.Scope> = Effect.fn("Child.spawn")(
  function*(command: string, args: ReadonlyArray<string>, options?: SpawnOptions) {
    const channel = options?.channel ?? { _tag: "fds" }
    const { read, stdio, write } = stdioFor(channel, options)
    const exit = yield* Deferred.make<ChildExit>()
    const child = yield* Effect.acquireRelease(
      Effect.async<childProcess.ChildProcess, ConnectError>((resume) => {
        const child = childProcess.spawn(command, [...args], {
          stdio,
          ...(options?.cwd !== undefined ? { cwd: options.cwd } : {}),
          ...(options?.env !== undefined ? { env: options.env } : {})
        })
        const onSpawn = () => {
          child.off("error", onError)
          // Later errors (a failed kill) are not worth a crash; the pipes report the connection's end.
          child.on("error", () => undefined)
          child.once("exit", (code, signal) => Deferred.unsafeDone(exit, Exit.succeed(new ChildExit({ pid: child.pid!, code, signal }))))
          resume(Effect.succeed(child))
        }
        const onError = (error: NodeJS.ErrnoException) => {
          child.off("spawn", onSpawn)
          resume(Effect.fail(
            new ConnectError({ address: `child:${command}`, reason: error.code === "ENOENT" ? "not found" : "other", cause: error })
          ))
        }
        child.once("spawn", onSpawn)
        child.once("error", onError)
      }),
      (child) =>
        Effect.gen(function*() {
          const input = child.stdio[read] as Writable
          const output = child.stdio[write] as Readable
          input.end()
          // Whatever the child still says is dropped, so that it is never stuck writing to a full pipe.
          output.resume()
          if (!(yield* exitedWithin(child, options?.exitTimeoutMillis ?? 2000))) {
            child.kill("SIGTERM")
            if (!(yield* exitedWithin(child, options?.killTimeoutMillis ?? 1000))) {
              child.kill("SIGKILL")
              yield* exitedWithin(child, 5000)
            }
          }
          for (const s of child.stdio) s?.destroy()
        })
    )
    const transport = yield* NodeTransport.fromStreams(child.stdio[write] as Readable, child.stdio[read] as Writable, {
      ...options?.transport,
      role: "client",
      kind: "child",
      peerAddress: `child:${child.pid}`
    })
    return { transport, process: child, exit: Deferred.await(exit) } satisfies Child
  }
)

/**
 * Options of {@link parentTransport} and {@link serveParent}.
 *
 * @since 0.1.0
 */
export interface ParentOptions {
  /** Default `{ _tag: "fds", read: 3, write: 4 }`, as ampoule and Twisted's tools start children. */
  readonly channel?: Channel
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
}

/**
 * In a child: the AMP connection to the parent that started it, over fds
 * 3 (read) and 4 (write) by default, or over stdin/stdout (then the
 * library's logs go to stderr: see `Stdio.transport`). Closing it ends our
 * side; the parent's end of the connection ends it too.
 *
 * @since 0.1.0
 */
export const parentTransport = (options?: ParentOptions): Effect.Effect<WithDetach, never, Scope.Scope> => {
  const channel = options?.channel ?? { _tag: "fds" }
  if (channel._tag === "stdio") return Stdio.transport(process.stdin, process.stdout, { ...options?.transport, role: "server" })
  return Effect.suspend(() => {
    const input = new net.Socket({ fd: channel.read ?? 3, readable: true, writable: false })
    const output = new net.Socket({ fd: channel.write ?? 4, readable: false, writable: true })
    return NodeTransport.fromStreams(input, output, {
      ...options?.transport,
      role: "server",
      kind: "child",
      peerAddress: `parent:${process.ppid}`,
      destroyOnClose: true
    })
  })
}

/**
 * In a child: serves the `Responders` in context to the parent until the
 * parent closes the connection (or a responder answers with
 * `Responders.answerThenClose`). The parent's calls can call back through
 * `Amp`.
 *
 * @example
 * Child.serveParent().pipe(Effect.provide(Responders.layer(...)), Effect.scoped, NodeRuntime.runMain)
 *
 * @since 0.1.0
 */
export const serveParent = (options?: ParentOptions & AmpConnection.Options): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(parentTransport(options), (transport) =>
    Effect.flatMap(AmpConnection.over(transport, options), (amp) => Effect.asVoid(amp.ended)))

/**
 * In a child: the connection to the parent, to call it (and answer it with
 * the `Responders` in context, if any). Lives as long as the scope.
 *
 * @since 0.1.0
 */
export const connectParent = (options?: ParentOptions & AmpConnection.Options): Effect.Effect<Amp, never, Scope.Scope> =>
  Effect.flatMap(parentTransport(options), (transport) => AmpConnection.over(transport, options))

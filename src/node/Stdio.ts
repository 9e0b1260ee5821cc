/**
 * AMP over a process's standard streams: serve a parent (as Twisted process
 * pools such as ampoule drive their workers), or drive a child.
 *
 * Pipes cannot carry TLS or be handed to another protocol here: StartTLS and
 * protocol switches fail with `TransportUnsupported`.
 *
 * @since 0.1.0
 */
import * as childProcess from "node:child_process"
import { Duplex, type Readable, type Writable } from "node:stream"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Transport } from "../Transport.js"
import * as NodeTransport from "./NodeTransport.js"

/**
 * A transport reading `input` and writing `output` (by default this
 * process's stdin and stdout). Closing it ends `output`.
 *
 * @since 0.1.0
 */
export const transport = (
  input: Readable = process.stdin,
  output: Writable = process.stdout
): Effect.Effect<Transport, never, Scope.Scope> =>
  NodeTransport.fromSocket(Duplex.from({ readable: input, writable: output }), {
    role: "server",
    kind: "stdio",
    upgradable: false
  })

/** A child process driven over its stdin and stdout. */
export interface Child {
  readonly transport: Transport
  readonly process: childProcess.ChildProcess
}

/** Options of {@link spawn}. */
export interface SpawnOptions {
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /** How long the child may take to exit once its stdin is closed, before it is killed. Default 2000 ms. */
  readonly exitTimeoutMillis?: number
}

/**
 * Spawns `command` and speaks AMP over its pipes (its stderr is passed
 * through). Closing the scope closes the child's stdin and kills it if it
 * has not exited after `exitTimeoutMillis`.
 *
 * @since 0.1.0
 */
export const spawn = (
  command: string,
  args: ReadonlyArray<string>,
  options?: SpawnOptions
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        childProcess.spawn(command, [...args], {
          stdio: ["pipe", "pipe", "inherit"],
          ...(options?.cwd ? { cwd: options.cwd } : {}),
          ...(options?.env ? { env: options.env } : {})
        })
      ),
      (child) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          const timer = setTimeout(() => child.kill("SIGKILL"), options?.exitTimeoutMillis ?? 2000)
          child.once("exit", () => {
            clearTimeout(timer)
            resume(Effect.void)
          })
          child.stdin?.end()
        })
    )
    const t = yield* NodeTransport.fromSocket(Duplex.from({ readable: child.stdout!, writable: child.stdin! }), {
      role: "client",
      kind: "child",
      upgradable: false
    })
    return { transport: t, process: child }
  })

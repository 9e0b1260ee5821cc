/**
 * A pool of AMP child processes, ampoule's `ProcessPool` on Effect: each
 * worker is a `Child.spawn` (fds 3/4 by default, as ampoule starts its
 * children), and the pool is an `AmpPool` (min/max, idle shrink, timeout
 * kills, recycling, bounded queue, graceful shutdown).
 *
 * Workers call back into the parent through the `Responders` in context
 * when the pool is made. A timed-out worker is killed with SIGKILL, as
 * ampoule does; any other stop closes its AMP input, then SIGTERM, then
 * SIGKILL (`Child.spawn`).
 *
 * @example
 * const pool = yield* ProcessPool.make("/usr/bin/python3", ["worker.py"], {
 *   max: 4, timeout: "30 seconds", recycleAfter: 500,
 *   shutdown: (amp) => amp.callRemote(Shutdown, {})
 * })
 * const { total } = yield* pool.callRemote(Sum, { a: 1n, b: 2n })
 *
 * @since 0.1.0
 */
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ConnectError } from "../AmpError.js"
import * as AmpConnection from "../AmpConnection.js"
import * as AmpPool from "../AmpPool.js"
import * as Child from "./Child.js"

/**
 * Options of {@link make}: the pool's, how each child is spawned, and the
 * options of its AMP connection.
 *
 * @since 0.1.0
 */
export interface Options<R = never> extends Omit<AmpPool.Options<ConnectError, R>, "start"> {
  readonly spawn?: Child.SpawnOptions
  readonly connection?: AmpConnection.Options
}

/**
 * One worker: `command args` spawned as an AMP child, named by its pid.
 *
 * @since 0.1.0
 */
export const worker = (
  command: string,
  args: ReadonlyArray<string>,
  options?: Pick<Options, "spawn" | "connection">
): Effect.Effect<AmpPool.Worker, ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Child.spawn(command, args, options?.spawn)
    const amp = yield* AmpConnection.over(child.transport, options?.connection)
    return {
      amp,
      name: String(child.process.pid),
      kill: Effect.sync(() => {
        child.process.kill("SIGKILL")
      })
    } satisfies AmpPool.Worker
  })

/**
 * A pool of `command args` children; it lives as long as the scope. Fails
 * with `ConnectError` when one of the first `min` children cannot start.
 *
 * @since 0.1.0
 */
export const make = <R = never>(
  command: string,
  args: ReadonlyArray<string>,
  options?: Options<R>
): Effect.Effect<AmpPool.AmpPool, ConnectError, R | Scope.Scope> =>
  AmpPool.make<ConnectError, R>({
    name: path.basename(args[args.length - 1] ?? command),
    ...options,
    start: worker(command, args, options)
  })

/**
 * {@link make} as a layer providing `AmpPool.AmpPool`.
 *
 * @since 0.1.0
 */
export const layer = <R = never>(
  command: string,
  args: ReadonlyArray<string>,
  options?: Options<R>
): Layer.Layer<AmpPool.AmpPool, ConnectError, Exclude<R, Scope.Scope>> =>
  Layer.scoped(AmpPool.AmpPool, make(command, args, options))

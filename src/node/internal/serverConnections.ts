/**
 * A server's live connections: each handler's fiber, its part in the drain,
 * and how it ends. `NodeServer.listen` owns the listener and hands every
 * accepted socket to {@link Connections.start}.
 */
import type * as net from "node:net"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { Once } from "../../internal/once.js"
import type { WithTlsAndDetach } from "../../Transport.js"
import type { Connection } from "../NodeServer.js"

/** What {@link Connections} needs from its server. */
export interface Config<E, R> {
  readonly handler: (transport: WithTlsAndDetach, connection: Connection) => Effect.Effect<void, E, R | Scope.Scope>
  readonly transportOf: (socket: net.Socket) => Effect.Effect<WithTlsAndDetach, never, Scope.Scope>
  readonly drainTimeout: Duration.Duration
  /** Runs the server's own bookkeeping fibers (logs, ends), interrupted when the server closes. */
  readonly run: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, never>
  /** The peer, for log lines. */
  readonly peerOf: (socket: net.Socket) => string
}

/** What `onDrain` asked to run when the drain starts, with the handler's scope to run it in. */
interface DrainWork {
  readonly effect: Effect.Effect<void>
  readonly scope: Scope.Scope
}

/**
 * One accepted connection whose handler runs; it is also the handler's
 * {@link Connection}. Its drain work is kept here rather than in a fiber
 * waiting per connection: an idle connection's fiber costs kilobytes, and
 * the drain walks the live connections anyway.
 */
class Live implements Connection {
  fiber: Fiber.RuntimeFiber<unknown> | undefined = undefined
  /** The handler registered for the drain (see `Connection`). */
  drains = false
  work: Array<DrainWork> | undefined = undefined

  constructor(private readonly owner: Connections<unknown, unknown>) {}

  get drainTimeout(): Duration.Duration {
    return this.owner.drainTimeout
  }

  get draining(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.drains = true
      return this.owner.drainStarted.await
    })
  }

  /** A field, not a method: a handler may take it out of its `Connection`. */
  readonly onDrain = (effect: Effect.Effect<void>): Effect.Effect<void, never, Scope.Scope> =>
    Effect.suspend(() => {
      this.drains = true
      // Registered in the handler's fiber: a drain that starts afterwards finds it among the live ones.
      if (this.owner.drainBegun) return Effect.asVoid(Effect.forkScoped(effect))
      return Effect.map(Effect.scope, (scope) => {
        // A literal for the first: a push onto [] reserves room for 17.
        if (this.work === undefined) this.work = [{ effect, scope }]
        else this.work.push({ effect, scope })
      })
    })
}

/** The live connections of one server. */
export class Connections<E, R> {
  private readonly live = new Set<Live>()
  readonly drainStarted = new Once<void>()
  /** Set in the same step as the drain's snapshot of the live ones: later `onDrain`s run at once. */
  drainBegun = false
  /** The connections' runtime; `annotated` once the bound address is known. */
  private runtime: Runtime.Runtime<R>
  private annotated = false

  constructor(private readonly config: Config<E, R>, runtime: Runtime.Runtime<R>, private where: string) {
    this.runtime = runtime
  }

  get drainTimeout(): Duration.Duration {
    return this.config.drainTimeout
  }

  /** Connections whose handler is running. */
  get size(): number {
    return this.live.size
  }

  /** From now on, connections run in `runtime` (the server's, with its bound address in the log annotations). */
  bound(runtime: Runtime.Runtime<R>, where: string): void {
    this.runtime = runtime
    this.where = where
    this.annotated = true
  }

  /**
   * Runs the socket's handler in a fiber whose runtime already holds the connection's scope, and
   * ends it from the fiber's observer: `Scope.extend`, `onExit` and `catchAllCause` around the
   * handler would each keep frames, closures and an uninterruptible region alive in the fiber for
   * as long as the connection lives.
   */
  start(socket: net.Socket): void {
    const entry = new Live(this as Connections<unknown, unknown>)
    this.live.add(entry)
    const scope = Effect.runSync(Scope.make())
    const inScope: Runtime.Runtime<R | Scope.Scope> = Runtime.make({
      context: Context.add(this.runtime.context, Scope.Scope, scope),
      fiberRefs: this.runtime.fiberRefs,
      runtimeFlags: this.runtime.runtimeFlags
    })
    const body = Effect.flatMap(this.config.transportOf(socket), (transport) => this.config.handler(transport, entry))
    const fiber = Runtime.runFork(inScope)(Effect.exit(this.annotated ? body : Effect.annotateLogs(body, { server: this.where })))
    entry.fiber = fiber
    fiber.addObserver((exit) => void this.config.run(this.ended(socket, entry, scope, Exit.flatten(exit))))
  }

  /** Logs a failure, then closes the connection's scope: uninterruptible, as an `onExit` in the handler's fiber was. */
  private ended(socket: net.Socket, entry: Live, scope: Scope.CloseableScope, exit: Exit.Exit<void, E>): Effect.Effect<void> {
    const logged = Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
      ? Effect.logWarning(`connection handler failed ${this.config.peerOf(socket)}`, exit.cause)
      : Effect.void
    const closed = Effect.zipRight(
      Scope.close(scope, exit),
      Effect.sync(() => {
        this.live.delete(entry)
        if (!socket.destroyed) socket.destroy()
      })
    )
    return Effect.uninterruptible(Effect.zipRight(logged, closed)).pipe(Effect.annotateLogs({ server: this.where }))
  }

  /**
   * Tells the registered handlers and runs their drain work, interrupts the others, and waits for the
   * registered ones, at most `wait`.
   */
  drain(wait: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      const entries = Array.from(this.live)
      const fibersOf = (drains: boolean) => entries.flatMap((e) => (e.drains === drains && e.fiber !== undefined ? [e.fiber] : []))
      const draining = fibersOf(true)
      this.drainBegun = true
      this.drainStarted.done(Exit.void)
      // Each in its handler's scope, interruptible as a fiber the handler forked would be (this one is a release).
      const work = Effect.forEach(entries, (e) => {
        const todo = e.work ?? []
        e.work = undefined
        return Effect.forEach(todo, (d) => Effect.forkIn(Effect.interruptible(d.effect), d.scope), { discard: true })
      }, { discard: true })
      return Effect.zipRight(
        work,
        Effect.all([
          Fiber.interruptAll(fibersOf(false)),
          // Interruptible: a release runs uninterruptibly, and the timeout must be able to stop the wait.
          Effect.timeoutOption(Effect.interruptible(Fiber.awaitAll(draining)), wait)
        ], { concurrency: "unbounded", discard: true })
      )
    })
  }

  /** Interrupts every handler still running and waits for them. */
  get interruptAll(): Effect.Effect<void> {
    return Effect.suspend(() => Fiber.interruptAll(Array.from(this.live, (e) => e.fiber).filter((f) => f !== undefined)))
  }
}

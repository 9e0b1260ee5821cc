/**
 * A connected in-memory AMP client and server for testing your own
 * commands and responders: no sockets, no ports, and nothing that sleeps, so
 * it runs anywhere and under `TestClock` (a call's `timeout` fires when the
 * test clock is adjusted past it).
 *
 * The bytes go through the real codec, `BinaryBoxProtocol` and
 * `BoxDispatcher`, over `MemoryTransport`: what passes here passes the same
 * code a socket would use. Chunking options cut the byte stream as a slow
 * network would.
 *
 * @example
 * import { it, expect } from "@effect/vitest"
 * import { Effect } from "effect"
 * import { Amp, Argument, Command, Responders } from "effect-amp"
 * import { AmpTest } from "effect-amp/test"
 *
 * const Sum = Command.make("Sum", {
 *   arguments: { a: Argument.Integer, b: Argument.Integer },
 *   response: { total: Argument.Integer }
 * })
 * const SumResponders = Responders.layer(
 *   Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))
 * )
 *
 * it.effect("adds", () =>
 *   Effect.gen(function*() {
 *     const amp = yield* Amp
 *     expect(yield* amp.callRemote(Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
 *   }).pipe(Effect.provide(AmpTest.layerClient(SumResponders))))
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Amp } from "../Amp.js"
import * as BinaryBoxProtocol from "../BinaryBoxProtocol.js"
import * as BoxDispatcher from "../BoxDispatcher.js"
import * as MemoryTransport from "../MemoryTransport.js"
import * as Responders from "../Responders.js"

/**
 * The responders of one side: a layer (as made by `Responders.layer`, whose
 * requirements and errors carry over), or a registry from `Responders.make`.
 *
 * @since 0.1.0
 */
export type RespondersInput<E = never, R = never> = Layer.Layer<Responders.Responders, E, R> | Responders.Registry

/**
 * How one side's protocol and dispatcher are set up (as in `NodeAmp.AmpOptions`).
 *
 * @since 0.1.0
 */
export interface SideOptions {
  readonly protocol?: BinaryBoxProtocol.Options
  readonly dispatcher?: BoxDispatcher.Options
}

/**
 * Options of {@link pair}, {@link layer} and {@link layerClient}.
 *
 * @since 0.1.0
 */
export interface Options<E = never, R = never> {
  /** What the client answers when the server calls it. Default: nothing (`UNHANDLED`). */
  readonly clientResponders?: RespondersInput<E, R>
  /**
   * How the bytes each side writes are cut on the way to the other: as
   * written (the default), `{ _tag: "Fixed", size: 1 }` for every byte on
   * its own, or `{ _tag: "Random", seed, maxSize }`, reproducibly.
   */
  readonly chunking?: MemoryTransport.Chunking
  /** Bytes in flight towards a side before its peer's writes wait. Default 1 MiB. */
  readonly highWaterMark?: number
  /** The client side's protocol and dispatcher options. */
  readonly client?: SideOptions
  /** The server side's protocol and dispatcher options. */
  readonly server?: SideOptions
}

/**
 * Both ends of an in-memory connection, and a hand on the wire of each.
 *
 * @since 0.1.0
 */
export interface Pair {
  /** The client: call the server's responders with `client.callRemote`. */
  readonly client: Amp
  /** The server: call the client's responders with `server.callRemote`. */
  readonly server: Amp
  /** The client's end of the wire: close or break it, read what the client wrote. */
  readonly clientEnd: MemoryTransport.Control
  /** The server's end of the wire: close or break it, read what the server wrote. */
  readonly serverEnd: MemoryTransport.Control
}

/**
 * The pair in context, from {@link layer}.
 *
 * @since 0.1.0
 */
export const Pair: Context.Tag<Pair, Pair> = Context.GenericTag<Pair>("effect-amp/test/AmpTest/Pair")

/** The registry of `input`, its layer built in the current scope. */
const registryOf = <E, R>(input: RespondersInput<E, R>): Effect.Effect<Responders.Registry, E, R | Scope.Scope> =>
  Layer.isLayer(input)
    ? Effect.map(
      Layer.build(input as Layer.Layer<Responders.Responders, E, R>),
      (context) => Context.get(context, Responders.Responders)
    )
    : Effect.succeed(input as Responders.Registry)

/**
 * A client and a server connected in memory, living as long as the scope:
 * the server answers with `serverResponders`, the client with
 * `options.clientResponders`.
 *
 * @example
 * it.scoped("a broken connection fails the call", () =>
 *   Effect.gen(function*() {
 *     const { client, serverEnd } = yield* AmpTest.pair(SumResponders, { chunking: { _tag: "Fixed", size: 1 } })
 *     yield* serverEnd.fail("cable cut")
 *     const error = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 2n }))
 *     expect(error._tag).toBe("ConnectionLost")
 *   }))
 *
 * @since 0.1.0
 */
export const pair = <SE = never, SR = never, CE = never, CR = never>(
  serverResponders: RespondersInput<SE, SR>,
  options?: Options<CE, CR>
): Effect.Effect<Pair, SE | CE, SR | CR | Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* registryOf(serverResponders)
    const client = yield* registryOf(options?.clientResponders ?? Responders.make())
    const [clientSide, serverSide] = yield* MemoryTransport.makePair({
      ...(options?.chunking !== undefined ? { chunking: options.chunking } : {}),
      ...(options?.highWaterMark !== undefined ? { highWaterMark: options.highWaterMark } : {})
    })
    const connect = (end: MemoryTransport.End, responders: Responders.Registry, side: SideOptions | undefined) =>
      Effect.flatMap(
        BinaryBoxProtocol.make(end.transport, side?.protocol),
        (protocol) => BoxDispatcher.make(protocol, responders, side?.dispatcher)
      )
    return {
      client: yield* connect(clientSide, client, options?.client),
      server: yield* connect(serverSide, server, options?.server),
      clientEnd: clientSide.control,
      serverEnd: serverSide.control
    }
  })

/**
 * The client end of a {@link pair} as the `Amp` in context, and the whole
 * pair as {@link Pair} (to reach the server or the wire).
 *
 * @example
 * const TestAmp = AmpTest.layer(SumResponders)
 * // in a test: const { serverEnd } = yield* AmpTest.Pair; const amp = yield* Amp
 *
 * @since 0.1.0
 */
export const layer = <SE = never, SR = never, CE = never, CR = never>(
  serverResponders: RespondersInput<SE, SR>,
  options?: Options<CE, CR>
): Layer.Layer<Amp | Pair, SE | CE, SR | CR> =>
  Layer.scopedContext(
    Effect.map(pair(serverResponders, options), (p) => Context.make(Pair, p).pipe(Context.add(Amp, p.client)))
  )

/**
 * The client end of a {@link pair} as the `Amp` in context: code under test
 * that does `yield* Amp` talks to `serverResponders` in memory.
 *
 * @example
 * const program = Effect.flatMap(Amp, (amp) => amp.callRemote(Sum, { a: 1n, b: 2n }))
 * const result = yield* program.pipe(Effect.provide(AmpTest.layerClient(SumResponders)))
 *
 * @since 0.1.0
 */
export const layerClient = <SE = never, SR = never, CE = never, CR = never>(
  serverResponders: RespondersInput<SE, SR>,
  options?: Options<CE, CR>
): Layer.Layer<Amp, SE | CE, SR | CR> => Layer.scoped(Amp, Effect.map(pair(serverResponders, options), (p) => p.client))

/**
 * Two AMP connections wired through the in-memory transport, for tests.
 */
import * as Effect from "effect/Effect"
import type { Amp } from "../../src/Amp.js"
import * as BinaryBoxProtocol from "../../src/BinaryBoxProtocol.js"
import * as BoxDispatcher from "../../src/BoxDispatcher.js"
import * as MemoryTransport from "../../src/MemoryTransport.js"
import * as Responders from "../../src/Responders.js"

export interface PairSetup {
  readonly client?: Responders.Registry
  readonly server?: Responders.Registry
  readonly pair?: MemoryTransport.PairOptions
  readonly dispatcher?: BoxDispatcher.Options
}

export interface AmpPair {
  readonly client: Amp
  readonly server: Amp
  /** The client's end of the wire. */
  readonly clientEnd: MemoryTransport.End
  /** The server's end of the wire. */
  readonly serverEnd: MemoryTransport.End
}

export const ampPair = (setup: PairSetup = {}) =>
  Effect.gen(function*() {
    const [clientEnd, serverEnd] = yield* MemoryTransport.makePair(setup.pair)
    const clientProtocol = yield* BinaryBoxProtocol.make(clientEnd.transport)
    const serverProtocol = yield* BinaryBoxProtocol.make(serverEnd.transport)
    const client = yield* BoxDispatcher.make(clientProtocol, setup.client ?? Responders.make(), setup.dispatcher)
    const server = yield* BoxDispatcher.make(serverProtocol, setup.server ?? Responders.make(), setup.dispatcher)
    return { client, server, clientEnd, serverEnd } satisfies AmpPair
  })

/**
 * What a NodeTransport holds inside, for tests and diagnostics only.
 *
 * Internal: not exported by the package. (Not tagged internal for tsc:
 * `stripInternal` would drop this file's first import from its .d.ts.)
 */
import type { Duplex } from "node:stream"
import type { Transport } from "../../Transport.js"
import { connectionOf } from "./ConnectionTransport.js"
import type { ReadState } from "./NodeConnection.js"

/**
 * The read side as the transport sees it: chunks and bytes waiting for the
 * consumer, and whether the socket is paused because of them; `undefined`
 * for a transport not made by NodeTransport.
 */
export const readState = (transport: Transport): ReadState | undefined => connectionOf(transport)?.readState()

/**
 * The Node socket under the transport right now (the `TLSSocket` after
 * StartTLS); `undefined` for a pair of streams or a foreign transport.
 * Reading from it or writing to it behind the transport's back breaks the transport.
 */
export const socketOf = (transport: Transport): Duplex | undefined => connectionOf(transport)?.currentSocket()

/**
 * effect-amp: AMP (Twisted's Asynchronous Messaging Protocol) on Effect.
 *
 * Layers, bottom to top: `AmpBox` (the value), `BoxCodec` (bytes), `Transport`
 * (the pipe), `BinaryBoxProtocol` (boxes over the pipe), `BoxDispatcher` /
 * `Amp` (calls and responders), `Argument` / `Command` (types), `StartTls`
 * and `ProtocolSwitch` (the commands that change the connection). Node
 * sockets live in `effect-amp/node`.
 *
 * @since 0.1.0
 */
export * from "./Amp.js"
export * as AmpBox from "./AmpBox.js"
export * as AmpConnection from "./AmpConnection.js"
export * as AmpError from "./AmpError.js"
export * as AmpMetrics from "./AmpMetrics.js"
export * as AmpPool from "./AmpPool.js"
export * as Argument from "./Argument.js"
export * as BinaryBoxProtocol from "./BinaryBoxProtocol.js"
export * as BoxBuilder from "./BoxBuilder.js"
export * as BoxCodec from "./BoxCodec.js"
export * as BoxDispatcher from "./BoxDispatcher.js"
export * as Command from "./Command.js"
export * as MemoryTransport from "./MemoryTransport.js"
export * as ProtocolSwitch from "./ProtocolSwitch.js"
export * as Reconnecting from "./Reconnecting.js"
export * as RemotePool from "./RemotePool.js"
export * as Responders from "./Responders.js"
export * as StartTls from "./StartTls.js"
export * as Transport from "./Transport.js"

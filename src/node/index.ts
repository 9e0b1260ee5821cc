/**
 * effect-amp on Node: sockets, servers and stdio.
 *
 * @since 0.1.0
 */
export * as Child from "./Child.js"
export * as NodeAmp from "./NodeAmp.js"
export * as NodeConnect from "./NodeConnect.js"
export * as NodeServer from "./NodeServer.js"
export * as NodeTransport from "./NodeTransport.js"
export * as ProcessPool from "./ProcessPool.js"
export * as RawDuplex from "./RawDuplex.js"
export * as Stdio from "./Stdio.js"
export * as UnixDescriptorTransport from "./UnixDescriptorTransport.js"

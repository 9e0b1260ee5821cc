/**
 * effect-amp/platform: AMP over `@effect/platform` sockets (a WebSocket, a
 * `NodeSocket`, a `SocketServer`'s connections), in the browser too.
 *
 * An entry point of its own: `@effect/platform/Socket` costs about 4 MiB of
 * heap and 11 MiB of RSS once loaded, which a program on Node's own sockets
 * (`effect-amp/node`) never needs.
 *
 * @since 0.1.0
 */
export * as PlatformSocket from "../PlatformSocket.js"

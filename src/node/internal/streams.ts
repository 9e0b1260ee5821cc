/**
 * Small facts about Node streams and sockets that NodeTransport needs:
 * addresses, the kind of a socket, whether its end of input has come, and
 * a duplex to carry bytes read past an end that has been.
 *
 * Internal: not exported by the package. (Not tagged internal for tsc:
 * `stripInternal` would drop this file's first import from its .d.ts.)
 */
import * as net from "node:net"
import { Duplex, type Readable, type Writable } from "node:stream"
import * as tls from "node:tls"
import { ConnectionLost } from "../../AmpError.js"

/**
 * `host:port` as an address string, IPv6 hosts in brackets: `tcp:127.0.0.1:7710`, `tcp:[::1]:7710`.
 *
 * @since 0.1.0
 */
export const hostPort = (scheme: string, host: string, port: number): string =>
  `${scheme}:${host.includes(":") ? `[${host}]` : host}:${port}`

/** A socket's own or peer address as `tcp:host:port` (`tls:` for TLS); `undefined` where it has none (UNIX, streams). */
export const addressOf = (socket: Duplex, which: "local" | "remote", kind: string): string | undefined => {
  if (!(socket instanceof net.Socket)) return undefined
  const host = which === "local" ? socket.localAddress : socket.remoteAddress
  const port = which === "local" ? socket.localPort : socket.remotePort
  return host !== undefined && port !== undefined ? hostPort(kind === "tls" ? "tls" : "tcp", host, port) : undefined
}

/** `tls`, `tcp`, `unix` or `stream`, from what the socket is. */
export const guessKind = (socket: Duplex): string =>
  socket instanceof tls.TLSSocket
    ? "tls"
    : socket instanceof net.Socket
    ? socket.remotePort !== undefined || socket.localPort !== undefined ? "tcp" : "unix"
    : "stream"

/** The same bytes as a `Buffer`, uncopied. */
export const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * Whether `stream` has seen its end of input, emitted or not: a paused
 * socket can hold the peer's FIN behind unread bytes. The only window on it
 * is the stream's internal state.
 */
export const sawEof = (stream: Readable): boolean =>
  stream.readableEnded || (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true

/**
 * A duplex that yields `prefix`, then whatever `input` still holds, then the
 * end; writes go to `output`. For a stream whose end of input has already
 * arrived: TLS must see the bytes and the end, which it would not if it took
 * the socket's handle over (the handle has no more to say); and a stream
 * that has emitted its end takes no `unshift`.
 */
export const endedWithPrefix = (input: Readable, output: Writable, prefix: Uint8Array): Duplex => {
  const wrapper = new Duplex({
    read() {},
    write(chunk, _encoding, callback) {
      if (output.destroyed || output.writableEnded) return callback(new ConnectionLost({ reason: "closed" }))
      output.write(chunk, callback)
    },
    final(callback) {
      output.end(callback)
    },
    destroy(error, callback) {
      input.destroy(error ?? undefined)
      if (output !== (input as unknown)) output.destroy(error ?? undefined)
      callback(error)
    }
  })
  if (prefix.length > 0) wrapper.push(asBuffer(prefix))
  let chunk: unknown
  while ((chunk = input.read()) !== null) wrapper.push(chunk)
  wrapper.push(null)
  input.on("error", (e) => wrapper.destroy(e))
  return wrapper
}

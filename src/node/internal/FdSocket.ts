/**
 * A Node `Duplex` over a UNIX stream socket owned by the native addon, that
 * carries descriptors beside the bytes: received ones go to `onDescriptors`
 * before the bytes they came with are pushed (so a box is never parsed
 * before its descriptors are known), and each write takes the descriptors
 * staged so far (`takeStaged`) along with its first bytes, so a descriptor
 * always arrives on or before the first byte of the box that names it.
 */
import { Duplex } from "node:stream"
import { EAGAIN, errnoError, type FdPass } from "./fdpass.js"

/** The most descriptors one message carries on Linux (SCM_MAX_FD). */
export const MAX_FDS_PER_MESSAGE = 253
const READ_SIZE = 64 * 1024
const EMSGSIZE = -90

interface Queued {
  chunks: Array<Buffer>
  offset: number
  readonly callback: (error?: Error | null) => void
}

/** Where a socket's descriptors come from and go to. */
export interface DescriptorPort {
  /** Descriptors received, in order; they belong to the port now. May destroy the socket (a cap). */
  readonly onDescriptors: (fds: ReadonlyArray<number>) => void
  /** Up to `max` staged descriptors to send with the next bytes (ours to close once sent). */
  readonly takeStaged: (max: number) => Array<number>
  /** How many are staged and not yet taken. */
  readonly stagedCount: () => number
}

export class FdSocket extends Duplex {
  private readonly handle: unknown
  private readonly fdsOut = new Int32Array(MAX_FDS_PER_MESSAGE + 1)
  private readonly queue: Array<Queued> = []
  /** Descriptors taken for the next send, kept across EAGAIN. */
  private sending: Array<number> = []
  private watching = 0
  private wantRead = false
  private readEnded = false
  private shut = false
  private finalCallback: ((error?: Error | null) => void) | undefined

  constructor(private readonly addon: FdPass, fd: number, private readonly port: DescriptorPort) {
    super({ allowHalfOpen: false })
    this.handle = addon.open(fd, (events) => this.onEvent(events))
  }

  private update(): void {
    if (this.shut) return
    const bits = (this.wantRead && !this.readEnded ? 1 : 0) | (this.queue.length > 0 ? 2 : 0)
    if (bits !== this.watching) {
      this.watching = bits
      this.addon.poll(this.handle, bits)
    }
  }

  private onEvent(events: number): void {
    if (this.shut) return
    if (events < 0) {
      // libuv says EBADF for any POLLERR; the socket's own error (a reset, say) comes out of a read.
      const n = this.addon.recv(this.handle, Buffer.allocUnsafe(1), this.fdsOut)
      for (let i = 1; i <= this.fdsOut[0]!; i++) this.addon.closeFd(this.fdsOut[i]!)
      return void this.destroy(errnoError(n < 0 && n !== EAGAIN ? n : events, n < 0 ? "recvmsg" : "poll"))
    }
    if (events & 1) this.readSome()
    if (events & 2 && !this.shut) this.flush()
  }

  override _read(): void {
    this.wantRead = true
    this.readSome()
  }

  private readSome(): void {
    while (this.wantRead && !this.readEnded && !this.shut) {
      const buf = Buffer.allocUnsafe(READ_SIZE)
      const n = this.addon.recv(this.handle, buf, this.fdsOut)
      const count = this.fdsOut[0]!
      if (count > 0) {
        const fds = Array.from(this.fdsOut.subarray(1, 1 + count))
        if (n === EMSGSIZE) {
          for (const fd of fds) this.addon.closeFd(fd)
        } else {
          this.port.onDescriptors(fds)
          if (this.shut || this.destroyed) return
        }
      }
      if (n === EAGAIN) break
      if (n < 0) {
        const e = errnoError(n, "recvmsg")
        if (n === EMSGSIZE) e.message = "recvmsg: the peer sent more descriptors in one message than fit (MSG_CTRUNC); some were lost"
        return void this.destroy(e)
      }
      if (n === 0) {
        this.readEnded = true
        this.push(null)
        break
      }
      // A view into the chunk would keep 64 KiB alive per small read: copy short reads.
      const chunk = n < READ_SIZE / 4 ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n)
      if (!this.push(chunk)) this.wantRead = false
      // A short read has most likely emptied the socket: the (level-triggered) poll says when there is more,
      // which saves the read that would only say EAGAIN (libuv reads so too).
      if (n < READ_SIZE) break
    }
    this.update()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.queue.push({ chunks: [chunk], offset: 0, callback })
    this.flush()
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.queue.push({ chunks: chunks.map((c) => c.chunk), offset: 0, callback })
    this.flush()
  }

  private flush(): void {
    while (this.queue.length > 0 && !this.shut) {
      const item = this.queue[0]!
      if (this.sending.length === 0 && this.port.stagedCount() > 0) this.sending = this.port.takeStaged(MAX_FDS_PER_MESSAGE)
      const fds = this.sending.length > 0 ? Int32Array.from(this.sending) : null
      // More descriptors waiting than one message holds: this one rides on a single byte, the rest on the next.
      const limit = fds !== null && this.port.stagedCount() > 0 ? 1 : -1
      const n = this.addon.send(this.handle, item.chunks, item.offset, limit, fds)
      if (n === EAGAIN) break
      if (n < 0) {
        const e = errnoError(n, "sendmsg")
        this.queue.shift()
        item.callback(e)
        return void this.destroy(e)
      }
      if (fds !== null) {
        // The kernel holds its own references now: our copies can go.
        for (const fd of this.sending) this.addon.closeFd(fd)
        this.sending = []
      }
      let left = n
      while (left > 0 && item.chunks.length > 0) {
        const first = item.chunks[0]!.length - item.offset
        if (left >= first) {
          left -= first
          item.chunks.shift()
          item.offset = 0
        } else {
          item.offset += left
          left = 0
        }
      }
      while (item.chunks.length > 0 && item.chunks[0]!.length === item.offset) {
        item.chunks.shift()
        item.offset = 0
      }
      if (item.chunks.length === 0) {
        this.queue.shift()
        item.callback()
      }
    }
    if (this.queue.length === 0 && this.finalCallback !== undefined) this.finish()
    this.update()
  }

  private finish(): void {
    const callback = this.finalCallback!
    this.finalCallback = undefined
    const rc = this.shut ? 0 : this.addon.shutdown(this.handle)
    callback(rc < 0 && rc !== -107 ? errnoError(rc, "shutdown") : null)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finalCallback = callback
    if (this.queue.length === 0) this.finish()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.shut) {
      this.shut = true
      this.addon.close(this.handle)
      for (const fd of this.sending) this.addon.closeFd(fd)
      this.sending = []
    }
    const gone = error ?? new Error("socket closed")
    for (const q of this.queue.splice(0)) q.callback(gone)
    callback(error)
  }
}

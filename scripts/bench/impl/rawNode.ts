/**
 * The raw-Node baseline: AMP by hand on `node:net`. Hand-rolled framing, an
 * incremental parser, `_ask` correlation in a Map of callbacks, and the
 * writes of one event-loop turn coalesced into one `socket.write` (queued,
 * flushed by `setImmediate`). No Effect, no validation: the ceiling
 * effect-amp is measured against.
 */
import * as net from "node:net"
import { budget, type CodecAdapter, type Drive, type Fields, type NodeAdapter, type Server, type SumClient } from "./types.js"

type Box = Record<string, string>

/** Encodes one box; string values are taken as latin1 (one byte per char). */
export const encode = (fields: Fields): Buffer => {
  let size = 2
  for (const k in fields) size += 4 + k.length + fields[k]!.length
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (const k in fields) {
    const v = fields[k]!
    out[at] = 0
    out[at + 1] = k.length
    at += 2 + out.write(k, at + 2, "latin1")
    out[at] = v.length >> 8
    out[at + 1] = v.length & 0xff
    at += 2
    if (typeof v === "string") at += out.write(v, at, "latin1")
    else (out.set(v, at), (at += v.length))
  }
  out[at] = 0
  out[at + 1] = 0
  return out
}

/**
 * An incremental parser: push chunks, `onBox` gets each box as an object of
 * latin1 strings. Only the bytes of an unfinished box are kept between chunks.
 */
export const parser = (onBox: (box: Box) => void) => {
  let pending: Buffer | undefined
  return (chunk: Buffer): void => {
    const buf = pending === undefined ? chunk : Buffer.concat([pending, chunk])
    const end = buf.length
    let at = 0
    let start = 0
    let box: Box = {}
    while (at + 2 <= end) {
      const kl = (buf[at]! << 8) | buf[at + 1]!
      if (kl === 0) {
        at += 2
        start = at
        onBox(box)
        box = {}
        continue
      }
      if (at + 4 + kl > end) break
      const vl = (buf[at + 2 + kl]! << 8) | buf[at + 3 + kl]!
      if (at + 4 + kl + vl > end) break
      box[buf.toString("latin1", at + 2, at + 2 + kl)] = buf.toString("latin1", at + 4 + kl, at + 4 + kl + vl)
      at += 4 + kl + vl
    }
    pending = start < end ? buf.subarray(start) : undefined
  }
}

/** A writer that sends everything written in one event-loop turn as one `socket.write`. */
const coalescing = (socket: net.Socket) => {
  let queue: Array<Buffer> = []
  const flush = () => {
    const q = queue
    queue = []
    socket.write(q.length === 1 ? q[0]! : Buffer.concat(q))
  }
  return (b: Buffer): void => {
    if (queue.push(b) === 1) setImmediate(flush)
  }
}

const listen = (port: number, onSocket: (socket: net.Socket) => void): Promise<Server> =>
  new Promise((resolve, reject) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => undefined)
      socket.setNoDelay(true)
      onSocket(socket)
    })
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          })
      }))
  })

const codec: CodecAdapter = {
  encoder: (fields) => () => encode(fields),
  decoder: () => {
    let count = 0
    const push = parser(() => count++)
    return (chunk) => {
      count = 0
      push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      return count
    }
  }
}

/** Serves Sum: `total = a + b`. */
const serveSum = (port: number): Promise<Server> =>
  listen(port, (socket) => {
    const write = coalescing(socket)
    socket.on("data", parser((box) => {
      write(encode({ _answer: box._ask!, total: String(Number(box.a) + Number(box.b)) }))
    }))
  })

/**
 * Serves Echo (and Sum). Reading pauses while more than 1 MiB of answers
 * waits to be written and resumes on `drain`: the least a server must do
 * for a peer that does not read, with nothing else.
 */
const serveEcho = (port: number): Promise<Server> =>
  listen(port, (socket) => {
    const write = coalescing(socket)
    socket.on("drain", () => socket.resume())
    socket.on("data", parser((box) => {
      write(
        box._command === "Sum"
          ? encode({ _answer: box._ask!, total: String(Number(box.a) + Number(box.b)) })
          : encode({ _answer: box._ask!, text: box.text ?? "" })
      )
      if (socket.writableLength > 1024 * 1024) socket.pause()
    }))
  })

/**
 * Serves Slow: boxes queue up and are handled one per millisecond. The
 * socket is paused while 16 boxes wait, so a flood stays in the kernel's
 * buffers and the peer's, not in this process.
 */
const serveSlow = (port: number, onHandled: () => void): Promise<Server> => {
  let sink = 0
  return listen(port, (socket) => {
    const queue: Array<Box> = []
    let busy = false
    const next = (): void => {
      const box = queue.shift()
      if (box === undefined) return void (busy = false)
      busy = true
      if (queue.length < 4 && socket.isPaused()) socket.resume()
      setTimeout(() => {
        sink += box.blob?.length ?? 0
        onHandled()
        next()
      }, 1)
    }
    socket.on("data", parser((box) => {
      queue.push(box)
      if (queue.length >= 16) socket.pause()
      if (!busy) next()
    }))
  })
}

/** A Sum client: callbacks keyed by `_ask` in a Map. */
const connectSum = (port: number): Promise<SumClient> =>
  new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: "127.0.0.1", port })
    socket.once("error", reject)
    socket.once("connect", () => {
      socket.setNoDelay(true)
      const write = coalescing(socket)
      const waiting = new Map<string, (total: string) => void>()
      let tag = 0
      socket.on("data", parser((box) => {
        const ask = box._answer!
        const k = waiting.get(ask)
        waiting.delete(ask)
        k?.(box.total!)
      }))
      const call = (k: (total: string) => void) => {
        const ask = (++tag).toString(16)
        waiting.set(ask, k)
        write(encode({ _command: "Sum", _ask: ask, a: "13", b: "81" }))
      }
      const run = (drive: Drive) =>
        new Promise<number>((done, fail) => {
          const more = budget(drive)
          const lat = drive.latencies
          let completed = 0
          let live = drive.inflight
          const worker = (): void => {
            if (!more()) {
              if (--live === 0) done(completed)
              return
            }
            const t0 = lat ? performance.now() : 0
            call((total) => {
              if (total !== "94") return fail(new Error(`Sum answered ${total}`))
              if (lat) lat.push(performance.now() - t0)
              completed++
              worker()
            })
          }
          for (let i = 0; i < drive.inflight; i++) worker()
        })
      resolve({ run, close: async () => void socket.destroy() })
    })
  })

export const adapter: NodeAdapter = { name: "raw node", codec, serveSum, serveSlow, serveEcho, connectSum }

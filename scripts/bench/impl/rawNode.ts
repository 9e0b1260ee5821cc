/**
 * The raw-Node baseline: AMP by hand on `node:net`. Hand-rolled framing, an
 * incremental parser, `_ask` correlation in a Map of callbacks, and the
 * writes of one event-loop turn coalesced into one `socket.write` (queued,
 * flushed by `setImmediate`). No Effect, no validation: the ceiling
 * effect-amp is measured against.
 */
import { createHash } from "node:crypto"
import * as net from "node:net"
import {
  budget,
  type CodecAdapter,
  type Drive,
  type Fields,
  type LargeClient,
  type NodeAdapter,
  type Server,
  type SumClient
} from "./types.js"

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

/** A connected socket, Nagle off. */
const connectTo = (port: number): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: "127.0.0.1", port })
    socket.once("error", reject)
    socket.once("connect", () => {
      socket.setNoDelay(true)
      resolve(socket)
    })
  })

/**
 * `drive.inflight` workers, each making one call after another (`call` reports its answer's
 * fault, or undefined) until the budget is spent; resolves with the calls completed.
 */
const workers = (drive: Drive, call: (answered: (wrong: string | undefined) => void) => void): Promise<number> =>
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
      call((wrong) => {
        if (wrong !== undefined) return fail(new Error(wrong))
        if (lat) lat.push(performance.now() - t0)
        completed++
        worker()
      })
    }
    for (let i = 0; i < drive.inflight; i++) worker()
  })

/** A Sum client: callbacks keyed by `_ask` in a Map. */
const connectSum = async (port: number): Promise<SumClient> => {
  const socket = await connectTo(port)
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
  const run = (drive: Drive) => workers(drive, (answered) => call((total) => answered(total === "94" ? undefined : `Sum answered ${total}`)))
  return { run, close: async () => void socket.destroy() }
}

// ---------------------------------------------------------------------------
// large values
// ---------------------------------------------------------------------------

type BytesBox = Map<string, Buffer>

/** A field's header at `buf[at..]`: key, value length, header size (2: the box's end); undefined when cut short. */
const fieldHeader = (buf: Buffer, at: number) => {
  if (at + 2 > buf.length) return undefined
  const kl = buf.readUInt16BE(at)
  if (kl === 0) return { key: "", length: 0, size: 2 }
  if (at + 4 + kl > buf.length) return undefined
  return { key: buf.toString("latin1", at + 2, at + 2 + kl), length: buf.readUInt16BE(at + 2 + kl), size: 4 + kl }
}

/**
 * An incremental parser for boxes of large values, each value as bytes: a
 * view of the read when the read holds all of it, else a buffer of its own
 * that the next reads fill. Every byte is copied at most once (`parser`'s
 * concatenation of what is left with each read copies a 1 MiB box many times).
 */
export const bytesParser = (onBox: (box: BytesBox) => void) => {
  let box: BytesBox = new Map()
  /** A header cut by the end of a read (under 260 bytes). */
  let cut: Buffer | undefined
  /** A value cut by the end of a read, under `key`, `filled` bytes of it so far. */
  let value: Buffer | undefined
  let key = ""
  let filled = 0
  return (chunk: Buffer): void => {
    let at = 0
    for (;;) {
      if (value !== undefined) {
        const n = Math.min(value.length - filled, chunk.length - at)
        chunk.copy(value, filled, at, at + n)
        filled += n
        at += n
        if (filled < value.length) return
        box.set(key, value)
        value = undefined
      }
      if (at === chunk.length) return
      let h: ReturnType<typeof fieldHeader>
      if (cut === undefined) {
        h = fieldHeader(chunk, at)
        if (h === undefined) return void (cut = Buffer.from(chunk.subarray(at)))
        at += h.size
      } else {
        // A header is at most 259 bytes: 260 more than were cut are enough.
        h = fieldHeader(Buffer.concat([cut, chunk.subarray(at, at + 260)]), 0)
        if (h === undefined) return void (cut = Buffer.concat([cut, chunk.subarray(at)]))
        at += h.size - cut.length
        cut = undefined
      }
      if (h.size === 2) {
        onBox(box)
        box = new Map()
      } else if (at + h.length <= chunk.length) {
        box.set(h.key, chunk.subarray(at, at + h.length))
        at += h.length
      } else {
        key = h.key
        value = Buffer.allocUnsafe(h.length)
        filled = 0
      }
    }
  }
}

const PIECE = 65535

/** `bytes` as BigString fields: `key`, `key.2`, `key.3`... of at most 65535 bytes each (views, not copies). */
export const bigFields = (key: string, bytes: Uint8Array, out: Record<string, string | Uint8Array> = {}) => {
  out[key] = bytes.subarray(0, PIECE)
  for (let at = PIECE, i = 2; at < bytes.length; at += PIECE, i++) out[`${key}.${i}`] = bytes.subarray(at, at + PIECE)
  return out
}

/** The BigString under `key`: its pieces joined (one copy); undefined when absent. */
export const joinBig = (box: BytesBox, key: string): Buffer | undefined => {
  const first = box.get(key)
  if (first === undefined) return undefined
  const parts = [first]
  for (let i = 2;; i++) {
    const part = box.get(`${key}.${i}`)
    if (part === undefined) break
    parts.push(part)
  }
  return parts.length === 1 ? first : Buffer.concat(parts)
}

/**
 * A writer that sends everything written in one event-loop turn at once,
 * as `coalescing` does, but corked (one writev) rather than concatenated:
 * no copy of megabytes of answers into one more buffer.
 */
const corking = (socket: net.Socket) => {
  let corked = false
  const uncork = () => {
    corked = false
    socket.uncork()
  }
  return (b: Buffer): void => {
    if (!corked) {
      corked = true
      socket.cork()
      setImmediate(uncork)
    }
    socket.write(b)
  }
}

/** Serves Echo (the text's bytes back as they came), BigEcho and BigCheck. */
const serveLarge = (port: number): Promise<Server> =>
  listen(port, (socket) => {
    const write = corking(socket)
    socket.on("data", bytesParser((box) => {
      const answer: Record<string, string | Uint8Array> = { _answer: box.get("_ask")!.toString("latin1") }
      const command = box.get("_command")?.toString("latin1")
      if (command === "Echo") answer.text = box.get("text") ?? Buffer.alloc(0)
      else {
        const data = joinBig(box, "data") ?? Buffer.alloc(0)
        bigFields("data", data, answer)
        if (command === "BigCheck") answer.digest = createHash("sha256").update(data).digest("hex")
      }
      write(encode(answer))
    }))
  })

/** A client of the large commands: callbacks keyed by `_ask` in a Map, as the Sum client's. */
const connectLarge = async (port: number): Promise<LargeClient> => {
  const socket = await connectTo(port)
  const write = corking(socket)
  const waiting = new Map<string, (box: BytesBox) => void>()
  let tag = 0
  socket.on("data", bytesParser((box) => {
    const ask = box.get("_answer")!.toString("latin1")
    const k = waiting.get(ask)
    waiting.delete(ask)
    k?.(box)
  }))
  const call = (fields: Record<string, string | Uint8Array>, k: (box: BytesBox) => void) => {
    const ask = (++tag).toString(16)
    waiting.set(ask, k)
    write(encode({ _ask: ask, ...fields }))
  }
  /** Workers calling with `fields` and checking each answer (an error message, or undefined). */
  const run = (drive: Drive, fields: Record<string, string | Uint8Array>, check: (box: BytesBox) => string | undefined) =>
    workers(drive, (answered) => call(fields, (box) => answered(check(box))))
  const echo = (drive: Drive, text: string) => {
    const bytes = Buffer.from(text, "utf8")
    return run(drive, { _command: "Echo", text: bytes }, (box) => {
      const n = box.get("text")?.length
      return n === bytes.length ? undefined : `Echo answered ${n} bytes`
    })
  }
  const bigEcho = (drive: Drive, data: Uint8Array) =>
    run(drive, bigFields("data", data, { _command: "BigEcho" }), (box) => {
      const n = joinBig(box, "data")?.length
      return n === data.length ? undefined : `BigEcho answered ${n} bytes`
    })
  const bigCheck = (data: Uint8Array) =>
    new Promise<{ readonly data: Uint8Array; readonly digest: string }>((ok) =>
      call(bigFields("data", data, { _command: "BigCheck" }), (box) =>
        ok({ data: joinBig(box, "data") ?? Buffer.alloc(0), digest: box.get("digest")?.toString("latin1") ?? "" }))
    )
  return { echo, bigEcho, bigCheck, close: async () => void socket.destroy() }
}

export const adapter: NodeAdapter = { name: "raw node", codec, serveSum, serveSlow, serveEcho, connectSum, serveLarge, connectLarge }

/**
 * The raw-Node baseline: AMP by hand on `node:net`, no Effect, no
 * validation: Sum boxes framed by hand, `_ask` correlation in a Map, writes
 * coalesced per event-loop turn. The ceiling effect-amp is measured against.
 */
import * as net from "node:net"

const enc = (s: string) => Buffer.from(s, "latin1")

/** Encodes a box of ASCII key/values. */
export const encode = (pairs: ReadonlyArray<readonly [string, string]>): Buffer => {
  let n = 2
  for (const [k, v] of pairs) n += 4 + k.length + v.length
  const out = Buffer.allocUnsafe(n)
  let at = 0
  for (const [k, v] of pairs) {
    out.writeUInt16BE(k.length, at)
    at += 2 + out.write(k, at + 2, "latin1")
    out.writeUInt16BE(v.length, at)
    at += 2 + out.write(v, at + 2, "latin1")
  }
  out.writeUInt16BE(0, at)
  return out
}

/** An incremental parser calling `onBox` with each box as a plain object of latin1 strings. */
export const parser = (onBox: (box: Record<string, string>) => void) => {
  let pending: Buffer | undefined
  return (chunk: Buffer) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk
    let at = 0
    let start = 0
    let box: Record<string, string> = {}
    while (at + 2 <= buf.length) {
      const kl = buf.readUInt16BE(at)
      if (kl === 0) {
        at += 2
        onBox(box)
        box = {}
        start = at
        continue
      }
      if (at + 2 + kl + 2 > buf.length) break
      const key = buf.toString("latin1", at + 2, at + 2 + kl)
      const vl = buf.readUInt16BE(at + 2 + kl)
      if (at + 4 + kl + vl > buf.length) break
      box[key] = buf.toString("latin1", at + 4 + kl, at + 4 + kl + vl)
      at += 4 + kl + vl
    }
    pending = start < buf.length ? buf.subarray(start) : undefined
    buf = undefined as never
  }
}

/** A socket writer that sends everything written in one turn as one write. */
const coalescing = (socket: net.Socket) => {
  let queue: Array<Buffer> = []
  const flush = () => {
    const q = queue
    queue = []
    socket.write(q.length === 1 ? q[0]! : Buffer.concat(q))
  }
  return (b: Buffer) => {
    if (queue.push(b) === 1) setImmediate(flush)
  }
}

/** Serves Sum on `port` (0: a free one). */
export const serve = (port: number): Promise<net.Server> =>
  new Promise((resolve) => {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true)
      const write = coalescing(socket)
      socket.on("data", parser((box) => {
        const total = (BigInt(box.a!) + BigInt(box.b!)).toString()
        write(encode([["_answer", box._ask!], ["total", total]]))
      }))
      socket.on("error", () => undefined)
    })
    server.listen(port, "127.0.0.1", () => resolve(server))
  })

/** A client: `call()` sends Sum(13, 81) and resolves with the total. */
export const connect = (port: number) =>
  new Promise<{ call: () => Promise<string>; close: () => void }>((resolve) => {
    const socket = net.createConnection({ host: "127.0.0.1", port }, () => {
      socket.setNoDelay(true)
      const write = coalescing(socket)
      const waiting = new Map<string, (total: string) => void>()
      let tag = 0
      socket.on("data", parser((box) => {
        const w = waiting.get(box._answer!)
        waiting.delete(box._answer!)
        w?.(box.total!)
      }))
      resolve({
        call: () =>
          new Promise((r) => {
            const ask = (++tag).toString(16)
            waiting.set(ask, r)
            write(encode([["_command", "Sum"], ["_ask", ask], ["a", "13"], ["b", "81"]]))
          }),
        close: () => socket.destroy()
      })
    })
  })

export { enc }

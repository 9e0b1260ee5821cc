/**
 * What a `BoxDecoder` keeps alive between reads: not the read a small
 * unfinished box came in, not the read it has finished with, and not the
 * room a peer's length prefix announces. Boxes it returns still come out
 * whole and right.
 *
 * Memory is observed with a `WeakRef` on a read's `ArrayBuffer` and with
 * `process.memoryUsage().arrayBuffers`, after full collections (`gc` is
 * switched on for this worker through `v8.setFlagsFromString`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as Equal from "effect/Equal"
import * as AmpBox from "../src/AmpBox.js"
import * as BoxCodec from "../src/BoxCodec.js"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

/** A macrotask, then full collections: a `WeakRef` keeps its target until the end of the task it was made in. */
const collect = async () => {
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  gc()
}

const sum = (i: number) => AmpBox.make({ _command: "Sum", _ask: i.toString(16), a: "13", b: "81" })
const echo = AmpBox.make({ _command: "Echo", _ask: "ff", text: "x".repeat(900) })
const echoBytes = BoxCodec.encodeBox(echo)

/**
 * Pushes `chunk` (made by `make`, in a function of its own so that no
 * suspended async frame holds it), drains the boxes and drops them; returns
 * how many there were and a weak reference to the chunk's memory.
 */
const pushAndForget = (d: BoxCodec.BoxDecoder, make: () => Uint8Array) => {
  const chunk = make()
  d.push(chunk)
  return { boxes: drain(d).length, ref: new WeakRef(chunk.buffer) }
}

/** `bytes` in an `ArrayBuffer` of its own, as a socket read is. */
const read = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes)

const drain = (d: BoxCodec.BoxDecoder): Array<AmpBox.AmpBox> => {
  const out: Array<AmpBox.AmpBox> = []
  for (let b = d.next(); b !== undefined; b = d.next()) out.push(b)
  return out
}

describe("BoxDecoder retention", () => {
  it("a small unfinished box does not keep the large read it came in", async () => {
    const d = new BoxCodec.BoxDecoder()
    const half = echoBytes.length >> 1
    const whole = BoxCodec.encodeBoxes(Array.from({ length: 2000 }, (_, i) => sum(i)))
    // ~60 KB of whole boxes, then half of the Echo: one read, as a pipelining peer's.
    const { boxes, ref } = pushAndForget(d, () => {
      const chunk = new Uint8Array(whole.length + half)
      chunk.set(whole)
      chunk.set(echoBytes.subarray(0, half), whole.length)
      return chunk
    })
    expect(boxes).toBe(2000)
    await collect()
    expect(d.midBox).toBe(true)
    expect(d.buffered).toBe(half)
    expect(ref.deref(), "the read's ArrayBuffer is still alive").toBeUndefined()
    d.push(read(echoBytes.subarray(half)))
    const [box] = drain(d)
    expect(box !== undefined && Equal.equals(box, echo)).toBe(true)
    expect(d.offset).toBe(whole.length + echoBytes.length)
  })

  it("a read that ended on a box boundary is let go once its boxes are", async () => {
    const d = new BoxCodec.BoxDecoder()
    const { boxes, ref } = pushAndForget(d, () => read(BoxCodec.encodeBoxes(Array.from({ length: 100 }, (_, i) => sum(i)))))
    expect(boxes).toBe(100)
    await collect()
    expect(d.midBox).toBe(false)
    expect(ref.deref(), "the read's ArrayBuffer is still alive").toBeUndefined()
    d.push(read(BoxCodec.encodeBox(sum(7))))
    expect(drain(d).map((b) => b.getText("_ask"))).toEqual(["7"])
  })

  it("a value announced at 60,000 bytes, of which 800 came in two reads, holds about those bytes", async () => {
    // 300 decoders: the room each reserves shows in arrayBuffers (it is carved from shared 1 MiB pieces).
    const header = BoxCodec.encodeBox(AmpBox.make({ _command: "Echo", _ask: "1" })).subarray(0, -2)
    const field = new Uint8Array([0, 4, 0x74, 0x65, 0x78, 0x74, 60_000 >> 8, 60_000 & 0xff])
    const first = new Uint8Array(header.length + field.length + 400).fill(0x79)
    first.set(header)
    first.set(field, header.length)
    const decoders = Array.from({ length: 300 }, () => new BoxCodec.BoxDecoder())
    await collect()
    const before = process.memoryUsage().arrayBuffers
    for (const d of decoders) {
      d.push(read(first))
      expect(d.next()).toBeUndefined()
      d.push(new Uint8Array(400).fill(0x79))
      expect(d.next()).toBeUndefined()
    }
    await collect()
    const perDecoder = (process.memoryUsage().arrayBuffers - before) / decoders.length
    // The bytes in hand are ~830; the announced value 60,000.
    expect(perDecoder).toBeLessThanOrEqual(8 * 1024)
    // And the value still comes out whole.
    const rest = new Uint8Array(60_000 - 800 + 2).fill(0x79)
    rest[rest.length - 2] = 0
    rest[rest.length - 1] = 0
    for (const d of decoders) {
      d.push(read(rest))
      const box = d.next()
      expect(box?.getText("text")).toBe("y".repeat(60_000))
      expect(d.midBox).toBe(false)
    }
  })
})

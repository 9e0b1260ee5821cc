import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as AmpBox from "../src/AmpBox.js"
import { ConnectionLost } from "../src/AmpError.js"
import * as BinaryBoxProtocol from "../src/BinaryBoxProtocol.js"
import * as BoxCodec from "../src/BoxCodec.js"
import * as MemoryTransport from "../src/MemoryTransport.js"
import { internalsOf } from "../src/internal/protocolInternals.js"

/** A few turns of the event loop, in real time (the tests run on a TestClock). */
const turns = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))

const sum = (ask: string) => AmpBox.make({ _command: "Sum", _ask: ask, a: "13", b: "81" })

describe("BinaryBoxProtocol", () => {
  it.scoped("delivers boxes in order at 1-byte chunking", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair({ chunking: { _tag: "Fixed", size: 1 } })
      const pa = yield* BinaryBoxProtocol.make(a.transport)
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      for (let i = 0; i < 10; i++) yield* pa.sendBox(sum(i.toString(16)))
      const got = yield* pb.boxes.pipe(Stream.take(10), Stream.runCollect)
      expect(Chunk.toArray(got).map((x) => x.getText("_ask"))).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
    }))

  it.scoped("its functions work taken out of it (Effect.forEach(boxes, protocol.sendBox), a destructured closeWith)", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const { closeWith, info, sendBox } = yield* BinaryBoxProtocol.make(a.transport)
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      yield* Effect.forEach([sum("1"), sum("2")], sendBox)
      const got = yield* pb.boxes.pipe(Stream.take(2), Stream.runCollect)
      expect(Chunk.toArray(got).map((x) => x.getText("_ask"))).toEqual(["1", "2"])
      expect(info().kind).toBe("memory")
      yield* closeWith(new ConnectionLost({ reason: "closed by us", detail: "done" }))
      expect(yield* pb.ended).toMatchObject({ _tag: "ConnectionLost" })
    }))

  it.scoped("coalesces the boxes of one turn into one write", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const pa = yield* BinaryBoxProtocol.make(a.transport)
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      for (let i = 0; i < 100; i++) yield* pa.sendBox(sum(i.toString(16)))
      yield* pb.boxes.pipe(Stream.take(100), Stream.runDrain)
      const expected = BoxCodec.encodeBoxes(Array.from({ length: 100 }, (_, i) => sum(i.toString(16))))
      expect(a.control.written()).toEqual(new Uint8Array(expected))
      expect(a.control.writes()).toBe(1)
    }))

  it.scoped("ends with ConnectionLost and refuses sendBox after the peer closes", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const pa = yield* BinaryBoxProtocol.make(a.transport)
      yield* pa.startReceivingBoxes({ ampBoxReceived: () => undefined, stopReceivingBoxes: () => undefined })
      yield* b.control.close
      const reason = yield* pa.ended
      expect(reason._tag).toBe("ConnectionLost")
      const err = yield* Effect.flip(pa.sendBox(sum("1")))
      expect(err._tag).toBe("ConnectionLost")
    }))

  it.scoped("a key length over 255 ends the connection with LengthLimitExceeded after earlier boxes", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      const good = BoxCodec.encodeBox(sum("1"))
      const bad = new Uint8Array([...good, 0x01, 0x00, 0x41])
      yield* a.transport.write(bad)
      const result = yield* Effect.either(pb.boxes.pipe(Stream.runCollect))
      const ended = yield* pb.ended
      expect(ended).toMatchObject({ _tag: "LengthLimitExceeded", length: 256, offset: good.length })
      expect(result._tag).toBe("Left")
    }))

  it.scoped("boxes sent while our StartTLS is pending are held, go out in plaintext when it is cancelled, and StartTLS may be asked again", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const pa = yield* BinaryBoxProtocol.make(a.transport)
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      const boundary = internalsOf(pa).boundary
      boundary.prepareTls()
      expect(boundary.isTlsActive()).toBe(true)
      expect(() => boundary.prepareTls()).toThrow(/TLS/)
      for (let i = 0; i < 3; i++) yield* pa.sendBox(sum(i.toString()))
      yield* turns
      expect(a.control.written().length).toBe(0)
      boundary.cancelTls()
      expect(boundary.isTlsActive()).toBe(false)
      const got = yield* pb.boxes.pipe(Stream.take(3), Stream.runCollect)
      expect(Chunk.toArray(got).map((x) => x.getText("_ask"))).toEqual(["0", "1", "2"])
      boundary.prepareTls()
      boundary.cancelTls()
    }))

  it.scoped("close writes what was sent before it; sending after it fails with ConnectionLost", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const pa = yield* BinaryBoxProtocol.make(a.transport)
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      for (let i = 0; i < 3; i++) yield* pa.sendBox(sum(i.toString()))
      yield* pa.close
      const got = yield* pb.boxes.pipe(Stream.runCollect)
      expect(Chunk.toArray(got).map((x) => x.getText("_ask"))).toEqual(["0", "1", "2"])
      expect((yield* pa.ended)._tag).toBe("ConnectionLost")
      expect((yield* Effect.flip(pa.sendBox(sum("3"))))._tag).toBe("ConnectionLost")
    }))

  it.scoped("a broken transport ends the connection with its error; a receiver that throws ends it with a ConnectionLost naming the defect", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const pa = yield* BinaryBoxProtocol.make(a.transport)
      const stops: Array<string> = []
      yield* pa.startReceivingBoxes({ ampBoxReceived: () => undefined, stopReceivingBoxes: (r) => void stops.push(r._tag) })
      yield* b.control.fail("cable cut")
      expect(yield* pa.ended).toMatchObject({ _tag: "ConnectionLost", reason: "reset" })

      const [c, d] = yield* MemoryTransport.makePair()
      const pc = yield* BinaryBoxProtocol.make(c.transport)
      yield* pc.startReceivingBoxes({
        ampBoxReceived: () => {
          throw new Error("receiver bug")
        },
        stopReceivingBoxes: (r) => void stops.push(r._tag)
      })
      yield* d.transport.write(BoxCodec.encodeBox(sum("1")))
      const ended = yield* pc.ended
      expect(ended).toMatchObject({ _tag: "ConnectionLost", reason: "error" })
      expect(ended.message).toContain("receiver bug")
      expect(stops).toEqual(["ConnectionLost", "ConnectionLost"])
    }))

  it.scoped("trace sees each box sent and received; a receiver's hold keeps the next box back", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const seen: Array<string> = []
      const trace = (direction: "received" | "sent", box: AmpBox.AmpBox) => void seen.push(`${direction} ${box.getText("_ask")}`)
      const pa = yield* BinaryBoxProtocol.make(a.transport, { trace })
      const pb = yield* BinaryBoxProtocol.make(b.transport, { trace })
      const gate = yield* Effect.makeLatch(false)
      const got: Array<string> = []
      yield* pb.startReceivingBoxes({
        ampBoxReceived: (box) => {
          got.push(box.getText("_ask")!)
          return got.length === 1 ? gate.await : undefined
        },
        stopReceivingBoxes: () => undefined
      })
      yield* pa.sendBox(sum("1"))
      yield* pa.sendBox(sum("2"))
      yield* turns
      expect(got).toEqual(["1"])
      yield* gate.open
      yield* turns
      expect(got).toEqual(["1", "2"])
      expect(seen).toEqual(["sent 1", "sent 2", "received 1", "received 2"])
    }))
})

import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as AmpBox from "../src/AmpBox.js"
import * as BinaryBoxProtocol from "../src/BinaryBoxProtocol.js"
import * as BoxCodec from "../src/BoxCodec.js"
import * as MemoryTransport from "../src/MemoryTransport.js"

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
})

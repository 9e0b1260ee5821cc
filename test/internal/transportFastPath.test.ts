/**
 * A transport of the user's has only the public contract (an Effect `write`);
 * the box protocol queues its boxes in front of it. Backpressure, order and
 * "a close writes what was sent first" must hold there as over our own.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as AmpBox from "../../src/AmpBox.js"
import * as BinaryBoxProtocol from "../../src/BinaryBoxProtocol.js"
import { fastPathOf } from "../../src/internal/transportFastPath.js"
import * as MemoryTransport from "../../src/MemoryTransport.js"
import type { Transport } from "../../src/Transport.js"

/** Over one end of an in-memory pair, a transport with the public members only, whose writes wait while `gate` is shut. */
const userTransport = (inner: Transport, gate: Effect.Latch): Transport => ({
  incoming: inner.incoming,
  write: (bytes) => Effect.zipRight(gate.await, inner.write(bytes)),
  close: inner.close,
  info: () => ({ kind: "mine" })
})

const box = (i: number, size = 10) => AmpBox.make({ _command: "Echo", _ask: i.toString(16), text: "x".repeat(size) })
const asks = (boxes: Iterable<AmpBox.AmpBox>) => Array.from(boxes, (b) => b.getText("_ask"))

describe("a transport with only the public contract", () => {
  it.scoped("has no fast path of its own, and gets every box, in order, through its write", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair({ chunking: { _tag: "Fixed", size: 7 } })
      const gate = yield* Effect.makeLatch(true)
      const mine = userTransport(a.transport, gate)
      expect(fastPathOf(mine)).toBeUndefined()
      const pa = yield* BinaryBoxProtocol.make(mine)
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      for (let i = 0; i < 500; i++) yield* pa.sendBox(box(i))
      const got = yield* pb.boxes.pipe(Stream.take(500), Stream.runCollect)
      expect(asks(Chunk.toArray(got))).toEqual(Array.from({ length: 500 }, (_, i) => i.toString(16)))
    }))

  it.scopedLive("sendBox waits once a megabyte is queued behind a write that does not return; then all of it arrives", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const gate = yield* Effect.makeLatch(false)
      const pa = yield* BinaryBoxProtocol.make(userTransport(a.transport, gate))
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      let sent = 0
      const sender = yield* Effect.fork(Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) =>
        Effect.tap(pa.sendBox(box(i, 60_000)), () => Effect.sync(() => sent++))))
      yield* Effect.sleep("50 millis")
      // 1 MiB of 60 KB boxes, and the batch that crossed the mark: no more (without the queue's mark, all 40).
      expect(Option.isNone(yield* Fiber.poll(sender))).toBe(true)
      expect(sent).toBeGreaterThanOrEqual(17)
      expect(sent).toBeLessThan(26)
      const reading = yield* Effect.fork(pb.boxes.pipe(Stream.take(40), Stream.runCollect))
      yield* gate.open
      yield* Fiber.join(sender)
      const got = yield* Fiber.join(reading)
      expect(asks(Chunk.toArray(got))).toEqual(Array.from({ length: 40 }, (_, i) => i.toString(16)))
    }))

  it.scopedLive("a close writes the queued boxes first, then ends", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemoryTransport.makePair()
      const gate = yield* Effect.makeLatch(false)
      const pa = yield* BinaryBoxProtocol.make(userTransport(a.transport, gate))
      const pb = yield* BinaryBoxProtocol.make(b.transport)
      for (let i = 0; i < 3; i++) yield* pa.sendBox(box(i))
      const closing = yield* Effect.fork(pa.close)
      yield* Effect.sleep("20 millis")
      yield* gate.open
      yield* Fiber.join(closing)
      // The boxes, then the end (the stream fails with it).
      const got = yield* pb.boxes.pipe(Stream.catchAll(() => Stream.empty), Stream.runCollect)
      expect(asks(Chunk.toArray(got))).toEqual(["0", "1", "2"])
      expect((yield* pb.ended)._tag).toBe("ConnectionLost")
    }))
})

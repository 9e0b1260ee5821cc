/**
 * The promises of issue 11 at the protocol and dispatcher level, over the
 * in-memory transport with a peer that speaks raw bytes: write backpressure
 * holds the reader, a close writes what was sent, nothing is dropped
 * silently, a partial box times out, and a drain lets work finish.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as AmpBox from "../src/AmpBox.js"
import * as Argument from "../src/Argument.js"
import * as BinaryBoxProtocol from "../src/BinaryBoxProtocol.js"
import * as BoxCodec from "../src/BoxCodec.js"
import * as BoxDispatcher from "../src/BoxDispatcher.js"
import * as Command from "../src/Command.js"
import * as Demo from "../src/cli/Demo.js"
import * as MemoryTransport from "../src/MemoryTransport.js"
import * as Responders from "../src/Responders.js"
import { internalsOf } from "../src/internal/protocolInternals.js"
import { fastPathOf } from "../src/internal/transportFastPath.js"

const Slow = Command.make("Slow", { arguments: { millis: Argument.IntegerNumber }, response: { millis: Argument.IntegerNumber } })
const Throws = Command.make("Throws", {})
class Wordy extends Data.TaggedError("Wordy")<{ readonly description: string }> {}
const Verbose = Command.make("Verbose", { errors: { WORDY: Wordy } })

const registry = Responders.make(
  ...Demo.responders,
  Responders.respond(Slow, ({ millis }) => Effect.as(Effect.sleep(millis), { millis })),
  Responders.respond(Throws, (): Effect.Effect<{}> => {
    throw new Error("a responder that throws instead of failing")
  }),
  Responders.respond(Verbose, () => Effect.fail(new Wordy({ description: "é".repeat(40_000) })))
)

/** A server (protocol and dispatcher) on one end of a pair; the test holds the other end and speaks raw bytes. */
const serverWithRawPeer = (pair?: MemoryTransport.PairOptions, options?: BinaryBoxProtocol.Options) =>
  Effect.gen(function*() {
    const [peer, serverEnd] = yield* MemoryTransport.makePair(pair)
    const protocol = yield* BinaryBoxProtocol.make(serverEnd.transport, options)
    const amp = yield* BoxDispatcher.make(protocol, registry)
    /** Every box the server has written so far (its end's write log, not what the peer pulled). */
    const written = (): Array<AmpBox.AmpBox> => decodeAll(serverEnd.control.written())
    return { peer, serverEnd, protocol, amp, written }
  })

const decodeAll = (bytes: Uint8Array): Array<AmpBox.AmpBox> => {
  const d = new BoxCodec.BoxDecoder()
  d.push(bytes)
  const out: Array<AmpBox.AmpBox> = []
  for (let b = d.next(); b !== undefined; b = d.next()) out.push(b)
  return out
}

const ask = (command: string, tag: number, fields: Record<string, string> = {}) =>
  BoxCodec.encodeBox(AmpBox.fromEntries([["_command", command], ["_ask", tag.toString(16)], ...Object.entries(fields)]))

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Lets the server's scheduled writes (one per event-loop turn) happen. */
const turns = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))

describe("a close writes what was sent first", () => {
  it.scoped("100 asks then a key length of 256 in one write: 100 answers, then the end", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      const asks = Array.from({ length: 100 }, (_, i) => ask("Sum", i + 1, { a: String(i), b: "1" }))
      yield* s.peer.transport.write(concat([...asks, new Uint8Array([0x01, 0x00, 0x61])]))
      expect((yield* s.protocol.ended)._tag).toBe("LengthLimitExceeded")
      yield* turns
      const answers = s.written()
      expect(answers.map((b) => b.getText("_answer"))).toEqual(Array.from({ length: 100 }, (_, i) => (i + 1).toString(16)))
      expect(answers.map((b) => b.getText("total"))).toEqual(Array.from({ length: 100 }, (_, i) => String(i + 1)))
    }))

  it.scoped("an UNHANDLED answer before garbage is written before the close", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(concat([ask("StartTLS", 1), new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00])]))
      yield* s.protocol.ended
      yield* turns
      const [answer] = s.written()
      expect(answer?.getText("_error_code")).toBe("UNHANDLED")
    }))

  it.scoped("an ask, then a box that is neither command nor answer: the answer goes out before the close", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(concat([ask("Sum", 1, { a: "1", b: "2" }), BoxCodec.encodeBox(AmpBox.fromEntries([["x", "y"]]))]))
      expect((yield* s.protocol.ended)._tag).toBe("NoEmptyBoxes")
      yield* turns
      expect(s.written().map((b) => b.getText("total"))).toEqual(["3"])
    }))
})

describe("no silent drops", () => {
  it.scoped("an answer over the value limit reaches the caller as UNKNOWN naming the field and the limit; the connection ends", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(ask("Sum", 1, { a: "9".repeat(65535), b: "1" }))
      expect((yield* s.protocol.ended.pipe(Effect.timeout("2 seconds")))._tag).toBe("ConnectionLost")
      yield* turns
      const [error] = s.written()
      expect(error?.getText("_error")).toBe("1")
      expect(error?.getText("_error_code")).toBe("UNKNOWN")
      const description = error?.getText("_error_description") ?? ""
      expect(description).toContain(`"total"`)
      expect(description).toContain("65536 bytes, the limit is 65535")
    }))

  it.scoped("a responder that throws is answered UNKNOWN, and the connection ends", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(ask("Throws", 1))
      yield* s.protocol.ended.pipe(Effect.timeout("2 seconds"))
      yield* turns
      expect(s.written().map((b) => b.getText("_error_code"))).toEqual(["UNKNOWN"])
    }))

  it.scoped("a mapped error whose description is over the value limit goes out cut at a character boundary", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(ask("Verbose", 1))
      yield* turns
      const [error] = s.written()
      expect(error?.getText("_error_code")).toBe("WORDY")
      expect(error?.getText("_error_description")).toBe("é".repeat(32767))
    }))
})

describe("write backpressure reaches the reader", () => {
  it.scoped("a peer that never reads holds the server at its high-water mark; once it reads, every answer arrives once, in order", () =>
    Effect.gen(function*() {
      const highWaterMark = 64 * 1024
      const maxBatchBytes = 16 * 1024
      const s = yield* serverWithRawPeer({ highWaterMark }, { maxBatchBytes })
      const text = "x".repeat(4000)
      const n = 2000
      // Offered without waiting: the peer's own write would (rightly) wait for the server to read.
      const peer = fastPathOf(s.peer.transport)!
      for (let i = 1; i <= n; i++) peer.offer(ask("Echo", i, { text }))
      yield* turns
      // Unread answers: the mark, one batch and one answer at most (today's main: all 2000, 8 MB).
      expect(s.peer.control.backlog()).toBeLessThanOrEqual(highWaterMark + maxBatchBytes + 4100)
      // The asks not dispatched wait on the server's side, unread.
      expect(s.serverEnd.control.backlog()).toBeGreaterThan(n * 4000 / 2)
      const decoder = new BoxCodec.BoxDecoder()
      const tags: Array<string> = []
      yield* s.peer.transport.incoming.pipe(
        Stream.mapConcat((chunk) => {
          decoder.push(chunk)
          const out: Array<AmpBox.AmpBox> = []
          for (let b = decoder.next(); b !== undefined; b = decoder.next()) out.push(b)
          return out
        }),
        Stream.take(n),
        Stream.runForEach((b) =>
          Effect.sync(() => {
            expect(b.getText("text")).toBe(text)
            tags.push(b.getText("_answer")!)
          })
        )
      )
      expect(tags).toEqual(Array.from({ length: n }, (_, i) => (i + 1).toString(16)))
    }))

  it.scoped("boxes sent while a StartTLS is pending count toward the mark", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer(undefined, { maxBatchBytes: 1024 })
      internalsOf(s.protocol).boundary.prepareTls()
      expect(internalsOf(s.protocol).isBlocked()).toBe(false)
      yield* s.protocol.sendBox(AmpBox.fromEntries([["x", "y".repeat(2000)]]))
      expect(internalsOf(s.protocol).isBlocked()).toBe(true)
      const waiting = yield* Effect.fork(s.protocol.sendBox(AmpBox.fromEntries([["x", "z"]])))
      yield* turns
      expect(waiting.unsafePoll()).toBeNull()
      internalsOf(s.protocol).boundary.cancelTls()
      yield* Fiber.join(waiting)
      yield* turns
      expect(s.written().map((b) => b.getText("x")?.[0])).toEqual(["y", "z"])
    }))
})

describe("partial boxes time out", () => {
  it.scoped("half a box held past partialBoxTimeout ends the connection with PartialBoxTimeout; trickling does not extend it", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer(undefined, { partialBoxTimeout: "10 seconds" })
      const box = ask("Sum", 1, { a: "1", b: "2" })
      const ended = yield* Effect.fork(s.protocol.ended)
      yield* s.peer.transport.write(box.subarray(0, 5))
      yield* turns
      yield* TestClock.adjust("6 seconds")
      yield* s.peer.transport.write(box.subarray(5, 7))
      yield* turns
      yield* TestClock.adjust("3 seconds")
      yield* turns
      expect(ended.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      const reason = yield* Fiber.join(ended)
      expect(reason._tag).toBe("PartialBoxTimeout")
      expect(reason.message).toContain("7 bytes from byte 0")
    }))

  it.scoped("a box that completes restarts the clock, also when the next one begins in the same read", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer(undefined, { partialBoxTimeout: "10 seconds" })
      const box = ask("Sum", 1, { a: "1", b: "2" })
      yield* s.peer.transport.write(box.subarray(0, 5))
      for (let i = 0; i < 5; i++) {
        yield* turns
        yield* TestClock.adjust("8 seconds")
        // The rest of this box and the start of the next, in one read.
        yield* s.peer.transport.write(concat([box.subarray(5), box.subarray(0, 5)]))
      }
      yield* turns
      yield* s.peer.transport.write(box.subarray(5))
      yield* turns
      expect(s.written().length).toBe(6)
      yield* TestClock.adjust("60 seconds")
      yield* s.peer.transport.write(box)
      yield* turns
      expect(s.written().length).toBe(7)
    }))
})

describe("drain", () => {
  it.scoped("running responders finish and answer; a command arriving after the drain starts is not dispatched", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(concat([ask("Slow", 1, { millis: "1000" }), ask("Slow", 2, { millis: "500" })]))
      yield* turns
      const draining = yield* Effect.fork(s.amp.drain("5 seconds"))
      yield* turns
      yield* s.peer.transport.write(ask("Sum", 3, { a: "1", b: "2" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(draining)
      yield* turns
      expect(s.written().map((b) => [b.getText("_answer"), b.getText("millis")])).toEqual([["2", "500"], ["1", "1000"]])
      expect((yield* s.protocol.ended)._tag).toBe("ConnectionLost")
    }))

  it.scoped("at the deadline, what still runs is answered UNKNOWN saying the server shut down, and interrupted", () =>
    Effect.gen(function*() {
      const s = yield* serverWithRawPeer()
      yield* s.peer.transport.write(concat([ask("Slow", 1, { millis: "100" }), ask("Slow", 2, { millis: "60000" })]))
      yield* turns
      const draining = yield* Effect.fork(s.amp.drain("2 seconds"))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(draining)
      yield* TestClock.adjust("60 seconds")
      yield* turns
      const [first, second, ...rest] = s.written()
      expect(first?.getText("_answer")).toBe("1")
      expect(second?.getText("_error")).toBe("2")
      expect(second?.getText("_error_code")).toBe("UNKNOWN")
      expect(second?.getText("_error_description")).toContain("shut down before answering")
      expect(rest).toEqual([])
    }))
})

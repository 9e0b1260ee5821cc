/**
 * The request/response layer, over the in-memory transport: the behaviours
 * Twisted's test_amp.py checks for BoxDispatcher and Command, written anew.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as Stream from "effect/Stream"
import * as Chunk from "effect/Chunk"
import { Amp } from "../src/Amp.js"
import * as AmpBox from "../src/AmpBox.js"
import * as Argument from "../src/Argument.js"
import * as BoxCodec from "../src/BoxCodec.js"
import * as Command from "../src/Command.js"
import * as BinaryBoxProtocol from "../src/BinaryBoxProtocol.js"
import * as BoxDispatcher from "../src/BoxDispatcher.js"
import * as MemoryTransport from "../src/MemoryTransport.js"
import * as ProtocolSwitch from "../src/ProtocolSwitch.js"
import * as StartTls from "../src/StartTls.js"
import type { Transport } from "../src/Transport.js"
import * as Responders from "../src/Responders.js"
import { ampPair } from "./support/ampPair.js"

class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}
class Fatal extends Data.TaggedError("Fatal")<{ readonly description: string }> {}
class Mapped extends Data.TaggedError("Mapped")<{ readonly description: string }> {}

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})
const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})
const Fail = Command.make("Fail", {
  arguments: { kind: Argument.Unicode },
  errors: { MAPPED: Mapped },
  fatalErrors: { FATAL: Fatal }
})
const Child = Command.extendErrors(Fail, "Child", { arguments: { kind: Argument.Unicode } })
const Broken = Command.make("Broken", { response: { n: Argument.Integer } })
const Note = Command.make("Note", { arguments: { text: Argument.Unicode }, requiresAnswer: false })
const Dashed = Command.make("Dashed", {
  arguments: { "foo-bar": Argument.Unicode, maybe: Argument.optional(Argument.Integer) },
  response: { "foo-bar": Argument.Unicode, maybe: Argument.optional(Argument.Integer) }
})
const CallBack = Command.make("CallBack", { arguments: { n: Argument.Integer }, response: { total: Argument.Integer } })
const Slow = Command.make("Slow", { arguments: { id: Argument.Integer }, response: { id: Argument.Integer } })

const failWith = (kind: string): Effect.Effect<{}, Mapped | Fatal> =>
  kind === "mapped"
    ? Effect.fail(new Mapped({ description: "as mapped" }))
    : kind === "fatal"
    ? Effect.fail(new Fatal({ description: "as fatal" }))
    : Effect.die(new Error("boom"))

const server = Responders.make(
  Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.respond(Divide, ({ numerator, denominator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ description: "division by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) })),
  Responders.respond(Fail, ({ kind }) => failWith(kind)),
  Responders.respond(Child, ({ kind }) => failWith(kind)),
  Responders.respond(Broken, () => Effect.succeed({ n: "not a bigint" } as unknown as { n: bigint })),
  Responders.respond(Dashed, (args) => Effect.succeed(args)),
  Responders.respond(CallBack, ({ n }) =>
    Effect.flatMap(Amp, (amp) => amp.callRemote(Sum, { a: n, b: 1n })).pipe(Effect.orDie)),
  Responders.respond(Slow, ({ id }) => Effect.as(Effect.sleep(`${Number(id)} millis`), { id }))
)

/** A tracer that records the names of the spans it is asked to start. */
const recordingTracer = (names: Array<string>) => {
  const native = Effect.runSync(Effect.tracer)
  return Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      names.push(`${kind} ${name}`)
      return native.span(name, parent, context, links, startTime, kind, options)
    },
    context: (f) => f()
  })
}

describe("BoxDispatcher", () => {
  it.scoped("with a tracer installed, each call and each responder runs in a span named after the command", () =>
    Effect.gen(function*() {
      const names: Array<string> = []
      yield* Effect.gen(function*() {
        const { client } = yield* ampPair({ server })
        yield* client.callRemote(Sum, { a: 1n, b: 2n })
      }).pipe(Effect.withTracer(recordingTracer(names)))
      expect(names).toContain("client AMP Sum")
      expect(names).toContain("server AMP Sum")
    }))

  it.scoped("answers a call (hello world) at every chunking", () =>
    Effect.gen(function*() {
      for (const size of [1, 3, 1000]) {
        const { client } = yield* ampPair({ server, pair: { chunking: { _tag: "Fixed", size } } })
        expect(yield* client.callRemote(Sum, { a: 13n, b: 81n })).toEqual({ total: 94n })
      }
    }))

  it.scoped("Amp's functions work destructured, from a responder's Amp too", () =>
    Effect.gen(function*() {
      const { client, server: serverAmp } = yield* ampPair({ server, client: server })
      const { callRemote, callRemoteString, info, drain } = client
      expect(yield* callRemote(Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      const raw = yield* callRemoteString("Sum", { a: "2", b: "3" })
      expect(raw.toTextRecord()).toMatchObject({ total: "5" })
      expect(info()).toEqual(client.info())
      const { callRemote: back } = serverAmp
      expect(yield* back(Sum, { a: 4n, b: 5n })).toEqual({ total: 9n })
      yield* drain("1 second")
      expect((yield* client.ended)._tag).toBe("ConnectionLost")
    }))

  it.scoped("sends exactly Twisted's request box", () =>
    Effect.gen(function*() {
      const { client, clientEnd } = yield* ampPair({ server })
      yield* client.callRemote(Sum, { a: 13n, b: 81n })
      const [box] = BoxCodec.parse(clientEnd.control.written())
      expect(box!.toTextRecord()).toEqual({ _command: "Sum", a: "13", b: "81", _ask: "1" })
    }))

  it.scoped("pipelines many calls and routes every answer to its caller", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server, pair: { chunking: { _tag: "Random", seed: 7, maxSize: 50 } } })
      const results = yield* Effect.forEach(
        Array.from({ length: 2000 }, (_, i) => BigInt(i)),
        (i) => client.callRemote(Sum, { a: i, b: i }),
        { concurrency: "unbounded" }
      )
      expect(results.map((r) => r.total)).toEqual(Array.from({ length: 2000 }, (_, i) => BigInt(2 * i)))
    }))

  it.scoped("a mapped error arrives as its class; the connection stays up", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const error = yield* Effect.flip(client.callRemote(Divide, { numerator: 1n, denominator: 0n }))
      expect(error).toBeInstanceOf(ZeroDivision)
      expect((error as ZeroDivision).description).toBe("division by zero")
      expect(yield* client.callRemote(Divide, { numerator: 1n, denominator: 2n })).toEqual({ result: 0.5 })
    }))

  it.scoped("inherited errors map like the parent's", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const error = yield* Effect.flip(client.callRemote(Child, { kind: "mapped" }))
      expect(error).toBeInstanceOf(Mapped)
    }))

  it.scoped("a fatal error is sent, then the connection closes", () =>
    Effect.gen(function*() {
      const { client, server: s } = yield* ampPair({ server })
      const error = yield* Effect.flip(client.callRemote(Fail, { kind: "fatal" }))
      expect(error).toBeInstanceOf(Fatal)
      expect((yield* client.ended)._tag).toBe("ConnectionLost")
      expect((yield* s.ended)._tag).toBe("ConnectionLost")
      const later = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 1n }))
      expect(later._tag).toBe("ConnectionLost")
    }))

  it.scoped("an unmapped failure answers UNKNOWN and closes the connection", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const error = yield* Effect.flip(client.callRemote(Fail, { kind: "defect" }))
      expect(error).toMatchObject({ _tag: "UnknownRemoteError", description: "Unknown Error" })
      yield* client.ended
    }))

  it.scoped("an unknown command answers UNHANDLED (high and low level)", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server: Responders.make() })
      const high = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 2n }))
      expect(high).toMatchObject({ _tag: "UnhandledCommand", command: "Sum" })
      const low = yield* Effect.flip(client.callRemoteString("Nope", { x: "1" }))
      expect(low).toMatchObject({ _tag: "UnhandledCommand" })
    }))

  it.scoped("callRemoteString returns the raw answer box", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const box = yield* client.callRemoteString("Sum", { a: "1", b: "2" })
      expect(box.getText("total")).toBe("3")
      expect(box.getText("_answer")).toBe("1")
    }))

  it.scoped("a responder returning what cannot be encoded: BadLocalReturn locally, UNKNOWN remotely", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const error = yield* Effect.flip(client.callRemote(Broken, {}))
      expect(error._tag).toBe("UnknownRemoteError")
      yield* client.ended
    }))

  it.scopedLive("missing and extra arguments fail with InvalidSignature before anything is sent", () =>
    Effect.gen(function*() {
      const { client, clientEnd } = yield* ampPair({ server })
      const extra = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 2n, c: 3n } as never))
      expect(extra).toMatchObject({ _tag: "InvalidSignature", command: "Sum" })
      const missing = yield* Effect.flip(client.callRemote(Sum, { a: 1n } as never))
      expect(missing).toMatchObject({ _tag: "InvalidSignature" })
      yield* Effect.sleep("5 millis")
      expect(clientEnd.control.written().length).toBe(0)
    }))

  it.scoped("key and value too long fail locally with TooLong", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const key = yield* Effect.flip(client.callRemoteString("Sum", { ["k".repeat(256)]: "1" }))
      expect(key).toMatchObject({ _tag: "TooLong", isKey: true, isLocal: true, length: 256 })
      const value = yield* Effect.flip(client.callRemoteString("Sum", { a: new Uint8Array(65536) }))
      expect(value).toMatchObject({ _tag: "TooLong", isKey: false, key: "a", length: 65536 })
      expect(yield* client.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
    }))

  it.scoped("wire names with dashes map to underscored fields; optional fields come and go", () =>
    Effect.gen(function*() {
      const { client, clientEnd } = yield* ampPair({ server })
      expect(yield* client.callRemote(Dashed, { foo_bar: "x" })).toEqual({ foo_bar: "x" })
      expect(yield* client.callRemote(Dashed, { foo_bar: "y", maybe: 5n })).toEqual({ foo_bar: "y", maybe: 5n })
      const boxes = BoxCodec.parse(clientEnd.control.written())
      expect([...boxes[0]!.keys()].sort()).toEqual(["_ask", "_command", "foo-bar"])
    }))

  it.scopedLive("requiresAnswer false sends no _ask and waits for nothing", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const { client, clientEnd } = yield* ampPair({
        server: Responders.make(Responders.respond(Note, ({ text }) => Effect.sync(() => void seen.push(text)).pipe(Effect.as({}))))
      })
      yield* client.callRemote(Note, { text: "hi" })
      // Nothing to wait for but the responder itself (polled: a fixed sleep flakes on a loaded machine).
      for (let i = 0; i < 400 && seen.length === 0; i++) yield* Effect.sleep("5 millis")
      expect(seen).toEqual(["hi"])
      expect(BoxCodec.parse(clientEnd.control.written())[0]!.has("_ask")).toBe(false)
    }))

  it.scoped("a failing responder for a requiresAnswer=false command drops the connection", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({
        server: Responders.make(Responders.respond(Note, () => Effect.die("no")))
      })
      yield* client.callRemote(Note, { text: "hi" })
      expect((yield* client.ended)._tag).toBe("ConnectionLost")
    }))

  it.scoped("responders can call back the peer on the same connection", () =>
    Effect.gen(function*() {
      const clientResponders = Responders.make(Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b + 100n })))
      const { client } = yield* ampPair({ server, client: clientResponders })
      expect(yield* client.callRemote(CallBack, { n: 1n })).toEqual({ total: 102n })
    }))

  it.effect("a timeout forgets the tag; the late answer is dropped quietly", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const slow = yield* Effect.fork(client.callRemote(Slow, { id: 1000n }, { timeout: "100 millis" }))
      yield* TestClock.adjust("100 millis")
      const error = yield* Effect.flip(Fiber.join(slow))
      expect(error).toMatchObject({ _tag: "CallTimeout", command: "Slow" })
      yield* TestClock.adjust("1 second")
      expect(yield* client.callRemote(Sum, { a: 2n, b: 2n })).toEqual({ total: 4n })
    }).pipe(Effect.scoped))

  it.effect("interrupting a call forgets its tag", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const fiber = yield* Effect.fork(client.callRemote(Slow, { id: 50n }))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("100 millis")
      expect(yield* client.callRemote(Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
    }).pipe(Effect.scoped))

  it.effect("past maxOutstandingCalls a call fails with TooManyOutstandingCalls, and succeeds again once answers come", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server, dispatcher: { maxOutstandingCalls: 3 } })
      const slow = yield* Effect.forEach([10n, 10n, 10n], (id) => Effect.fork(client.callRemote(Slow, { id })))
      yield* Effect.yieldNow()
      const refused = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 1n }))
      expect(refused).toMatchObject({ _tag: "TooManyOutstandingCalls", limit: 3 })
      yield* TestClock.adjust("10 millis")
      yield* Fiber.joinAll(slow)
      expect(yield* client.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
    }).pipe(Effect.scoped))

  it.effect("interrupted calls whose answers never come do not count against maxOutstandingCalls", () =>
    Effect.gen(function*() {
      const silent = Responders.make(Responders.respond(Slow, () => Effect.never), Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })))
      const { client } = yield* ampPair({ server: silent, dispatcher: { maxOutstandingCalls: 50 } })
      for (let round = 0; round < 5; round++) {
        const calls = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => BigInt(i)), (id) => Effect.fork(client.callRemote(Slow, { id })))
        yield* Effect.yieldNow()
        yield* Fiber.interruptAll(calls)
      }
      // 250 calls were made and forgotten; without the sweep the 51st would have been refused.
      expect(yield* client.callRemote(Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
    }).pipe(Effect.scoped))

  it.effect("a fiber that outlives its interrupted call and calls again frees the old call's slot", () =>
    Effect.gen(function*() {
      const silent = Responders.make(
        Responders.respond(Slow, ({ id }) => id === 0n ? Effect.never : Effect.as(Effect.sleep("5 millis"), { id })),
        Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))
      )
      const { client } = yield* ampPair({ server: silent, dispatcher: { maxOutstandingCalls: 2 } })
      // The first call is interrupted; the fiber goes on (uninterruptibly) to a second call.
      let firstEnded = false
      const survivor = yield* Effect.fork(Effect.uninterruptibleMask((restore) =>
        Effect.exit(restore(client.callRemote(Slow, { id: 0n }))).pipe(
          Effect.tap(() => Effect.sync(() => (firstEnded = true))),
          Effect.zipRight(client.callRemote(Slow, { id: 5n }))
        )
      ))
      yield* Effect.yieldNow()
      const interrupting = yield* Effect.fork(Fiber.interrupt(survivor))
      while (!firstEnded) yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      // Two entries belong to the survivor; only its newer call is real, so there is room for this one.
      expect(yield* client.callRemote(Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      yield* TestClock.adjust("5 millis")
      yield* Fiber.join(interrupting)
    }).pipe(Effect.scoped))

  it.effect("answers come back out of order", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const order: Array<bigint> = []
      const fibers = yield* Effect.forEach([30n, 10n, 20n], (id) =>
        Effect.fork(Effect.tap(client.callRemote(Slow, { id }), (r) => Effect.sync(() => order.push(r.id)))))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.joinAll(fibers)
      expect(order).toEqual([10n, 20n, 30n])
    }).pipe(Effect.scoped))

  it.scopedLive("connection loss fails all 1000 outstanding calls at once, and later calls", () =>
    Effect.gen(function*() {
      // A peer that never answers, so every call stays outstanding.
      const silent = yield* ampPair({ server: Responders.make(Responders.respond(Slow, () => Effect.never)) })
      const calls = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => BigInt(i)),
        (id) => Effect.fork(silent.client.callRemote(Slow, { id })),
        { concurrency: "unbounded" }
      )
      yield* Effect.sleep("10 millis")
      yield* silent.serverEnd.control.fail("cable cut")
      const errors = yield* Effect.forEach(calls, (f) => Effect.flip(Fiber.join(f)))
      expect(errors.length).toBe(1000)
      for (const e of errors) expect(e).toMatchObject({ _tag: "ConnectionLost", reason: "reset" })
      const later = yield* Effect.flip(silent.client.callRemote(Sum, { a: 1n, b: 1n }))
      expect(later._tag).toBe("ConnectionLost")
    }))

  it.scoped("a box that is neither command, answer nor error ends the connection (NoEmptyBoxes)", () =>
    Effect.gen(function*() {
      const { server: s, clientEnd } = yield* ampPair({ server })
      yield* clientEnd.transport.write(BoxCodec.encodeBox(AmpBox.make({ hello: "world" })))
      expect(yield* s.ended).toMatchObject({ _tag: "NoEmptyBoxes", keys: ["hello"] })
    }))

  it.scoped("an answer for a tag never asked ends the connection; a forgotten one does not", () =>
    Effect.gen(function*() {
      const { client, serverEnd } = yield* ampPair({ server })
      yield* serverEnd.transport.write(BoxCodec.encodeBox(AmpBox.make({ _answer: "ff", total: "1" })))
      expect((yield* client.ended)._tag).toBe("MalformedAmpBox")
    }))

  it.scopedLive("the peer's malformed answer fails the call with MalformedAmpBox", () =>
    Effect.gen(function*() {
      const { client, serverEnd } = yield* ampPair({ server: Responders.make(Responders.respond(Sum, () => Effect.never)) })
      const fiber = yield* Effect.fork(client.callRemote(Sum, { a: 1n, b: 2n }))
      yield* Effect.sleep("5 millis")
      yield* serverEnd.transport.write(BoxCodec.encodeBox(AmpBox.make({ _answer: "1", total: "three" })))
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toMatchObject({ _tag: "MalformedAmpBox", command: "Sum" })
    }))

  it.scopedLive("protocol switch: both sides hand the connection over with the bytes that followed", () =>
    Effect.gen(function*() {
      const SwitchToEcho = ProtocolSwitch.make("SwitchToEcho")
      const echo = ProtocolSwitch.respond(SwitchToEcho, () =>
        Effect.succeed((raw) => raw.incoming.pipe(Stream.runForEach((bytes) => raw.write(bytes)), Effect.ignore)))
      const { client } = yield* ampPair({ server: Responders.make(echo) })
      const { connection } = yield* client.switchProtocol(SwitchToEcho, {})
      const refused = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 1n }))
      expect(refused._tag).toBe("ProtocolSwitched")
      yield* connection.write(new TextEncoder().encode("hello, raw world"))
      const back = yield* connection.incoming.pipe(
        Stream.mapConcat((b) => [...b]),
        Stream.take(16),
        Stream.runCollect
      )
      expect(new TextDecoder().decode(new Uint8Array(Chunk.toArray(back)))).toBe("hello, raw world")
    }))

  it.scoped("a refused switch unlocks the sender again", () =>
    Effect.gen(function*() {
      const SwitchRefused = ProtocolSwitch.make("SwitchRefused", { errors: { REFUSED: Mapped } })
      const refuse = ProtocolSwitch.respond(SwitchRefused, () => Effect.fail(new Mapped({ description: "no" })))
      const { client } = yield* ampPair({ server: Responders.make(refuse, Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))) })
      const error = yield* Effect.flip(client.switchProtocol(SwitchRefused, {}))
      expect(error).toBeInstanceOf(Mapped)
      expect(yield* client.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
    }))

  it.scopedLive("while our switch waits for its answer, nothing else is sent: a call fails with ProtocolSwitched", () =>
    Effect.gen(function*() {
      const SlowSwitch = ProtocolSwitch.make("SlowSwitch", { errors: { REFUSED: Mapped } })
      const gate = yield* Deferred.make<void>()
      const slow = ProtocolSwitch.respond(SlowSwitch, () => Effect.zipRight(Deferred.await(gate), Effect.fail(new Mapped({ description: "no" }))))
      const { client } = yield* ampPair({ server: Responders.make(slow, Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))) })
      const switching = yield* Effect.fork(Effect.flip(client.switchProtocol(SlowSwitch, {})))
      yield* Effect.sleep("20 millis")
      const during = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 1n }))
      expect(during._tag).toBe("ProtocolSwitched")
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(switching)).toBeInstanceOf(Mapped)
      expect(yield* client.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
    }))

  it.scoped("StartTLS over a transport without TLS fails with a typed error", () =>
    Effect.gen(function*() {
      const { client } = yield* ampPair({ server })
      const error = yield* Effect.flip(client.startTls())
      expect(error._tag).toBe("UnhandledCommand")
      expect(yield* client.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
    }))

  it.scopedLive("bounded inbound concurrency: extra commands wait, none are lost", () =>
    Effect.gen(function*() {
      let running = 0
      let peak = 0
      const Work = Command.make("Work", { arguments: { id: Argument.Integer }, response: { id: Argument.Integer } })
      const work = Responders.respond(Work, ({ id }) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            running++
            peak = Math.max(peak, running)
          }),
          () => Effect.as(Effect.sleep("1 millis"), { id }),
          () => Effect.sync(() => running--)
        ))
      const { client } = yield* ampPair({ server: Responders.make(work), dispatcher: { maxConcurrentCommands: 4 } })
      const results = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => BigInt(i)),
        (id) => client.callRemote(Work, { id }),
        { concurrency: "unbounded" }
      )
      expect(results.length).toBe(100)
      expect(peak).toBe(4)
    }))

  it.scoped("a connection made in an uninterruptible region (an acquire) still closes with a responder running", () =>
    Effect.gen(function*() {
      const Hang = Command.make("Hang")
      const scope = yield* Scope.make()
      // Layers and acquireRelease build connections uninterruptibly; their responders must not inherit that.
      const { client } = yield* Effect.uninterruptible(
        Scope.extend(ampPair({ server: Responders.make(Responders.respond(Hang, () => Effect.never)) }), scope)
      )
      const call = yield* Effect.fork(Effect.flip(client.callRemote(Hang, {})))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      const closed = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      expect(closed.unsafePoll()).not.toBeNull()
      expect((yield* Fiber.join(call))._tag).toBe("ConnectionLost")
    }))

  it.scopedLive("a transport whose startTls throws (a bug) fails the StartTLS call instead of leaving it waiting", () =>
    Effect.gen(function*() {
      const [clientEnd, serverEnd] = yield* MemoryTransport.makePair()
      const broken: Transport = Object.assign(Object.create(Object.getPrototypeOf(clientEnd.transport)), clientEnd.transport, {
        startTls: () => {
          throw new Error("startTls exploded")
        },
        canStartTls: true
      })
      const client = yield* BoxDispatcher.make(yield* BinaryBoxProtocol.make(broken), Responders.make())
      const server = Responders.make(StartTls.respond(() => Effect.succeed({})))
      yield* BoxDispatcher.make(yield* BinaryBoxProtocol.make(serverEnd.transport), server)
      const error = yield* Effect.flip(client.startTls().pipe(Effect.timeout("5 seconds")))
      expect(error).toMatchObject({ _tag: "ConnectionLost", reason: "error" })
      expect(error.message).toContain("startTls exploded")
    }))

  it.scopedLive("closing a connection's scope interrupts its running responders", () =>
    Effect.gen(function*() {
      const Hang = Command.make("Hang")
      const started = yield* Ref.make(0)
      const interrupted = yield* Ref.make(0)
      const scope = yield* Scope.make()
      const hang = Responders.respond(Hang, () =>
        Effect.zipRight(
          Ref.update(started, (n) => n + 1),
          Effect.onInterrupt(Effect.never, () => Ref.update(interrupted, (n) => n + 1))
        ))
      const { client } = yield* Scope.extend(ampPair({ server: Responders.make(hang) }), scope)
      yield* Effect.forEach([1, 2, 3], () => Effect.fork(client.callRemote(Hang, {})))
      for (let i = 0; i < 200 && (yield* Ref.get(started)) < 3; i++) yield* Effect.sleep("5 millis")
      expect(yield* Ref.get(started), "started").toBe(3)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Ref.get(interrupted), "interrupted").toBe(3)
    }))
})

/**
 * Descriptor passing over real UNIX sockets, our client against our server:
 * ordinals, several per box and per write, pipelining, the caller's copy
 * closed at once, an ordinal that never arrived, the unclaimed cap, and
 * nothing left open afterwards.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as Responders from "../../src/Responders.js"
import * as StartTls from "../../src/StartTls.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as UnixDescriptorTransport from "../../src/node/UnixDescriptorTransport.js"

const ReadFd = Command.make("ReadFd", { arguments: { fd: Argument.Descriptor }, response: { text: Argument.Unicode } })
const ReadThree = Command.make("ReadThree", {
  arguments: { a: Argument.Descriptor, b: Argument.Descriptor, c: Argument.Descriptor },
  response: { text: Argument.Unicode }
})
const Nobody = Command.make("Nobody", { arguments: { fd: Argument.Descriptor } })
const GiveFd = Command.make("GiveFd", { arguments: { text: Argument.Unicode }, response: { fd: Argument.Descriptor } })

const readAll = (fd: number): string => {
  try {
    return fs.readFileSync(fd, "utf8")
  } finally {
    fs.closeSync(fd)
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "amp-fd-"))
const fileWith = (text: string): number => {
  const p = path.join(tmp, `f${Math.random().toString(36).slice(2)}`)
  fs.writeFileSync(p, text)
  const fd = fs.openSync(p, "r")
  fs.unlinkSync(p)
  return fd
}
const openFds = (): number => fs.readdirSync("/proc/self/fd").length

/** Descriptors the server gave away, closed at the end. */
const given: Array<number> = []

const responders = Responders.layer(
  Responders.respond(ReadFd, ({ fd }) => Effect.sync(() => ({ text: readAll(fd) }))),
  Responders.respond(ReadThree, ({ a, b, c }) => Effect.sync(() => ({ text: readAll(a) + readAll(b) + readAll(c) }))),
  Responders.respond(GiveFd, ({ text }) =>
    Effect.gen(function*() {
      // The answer is encoded after the responder returns: its descriptor must stay open until then.
      const fd = fileWith(text)
      given.push(fd)
      return yield* Effect.succeed({ fd })
    }))
)

const certs = path.join(import.meta.dirname, "..", "certs")
const serverTls = {
  cert: fs.readFileSync(path.join(certs, "server.pem"), "utf8"),
  key: fs.readFileSync(path.join(certs, "server.key"), "utf8")
}

const socketPath = () => path.join(tmp, `s${Math.random().toString(36).slice(2)}.sock`)

const withPair = <A, E>(
  f: (amp: Effect.Effect.Success<ReturnType<typeof NodeAmp.connect>>) => Effect.Effect<A, E>,
  serverOptions: { readonly maxUnclaimed?: number } = {}
) =>
  Effect.gen(function*() {
    const where = socketPath()
    yield* NodeAmp.serve({ _tag: "unix", path: where }, { descriptors: serverOptions })
    const amp = yield* NodeAmp.connect({ _tag: "unix", path: where }, { descriptors: true })
    return yield* f(amp)
  }).pipe(Effect.provide(responders), Effect.scoped)

describe("Argument.Descriptor over UNIX sockets", () => {
  it("the addon is built here", () => {
    expect(UnixDescriptorTransport.unavailableReason()).toBeUndefined()
    expect(UnixDescriptorTransport.available()).toBe(true)
  })

  it.live("a file opened by the client is read by the server; the client closed its own at once", () =>
    withPair((amp) =>
      Effect.gen(function*() {
        const fd = fileWith("hello")
        const call = yield* Effect.fork(amp.callRemote(ReadFd, { fd }))
        yield* Effect.yieldNow() // the box is encoded; it leaves at the end of the turn
        fs.closeSync(fd)
        // The number is free again: a file opened now may take it. Had the transport kept the
        // number rather than a duplicate, the server would read this one.
        const other = fileWith("wrong file")
        expect(yield* Effect.fromFiber(call)).toEqual({ text: "hello" })
        fs.closeSync(other)
      })))

  it.live("three descriptors in one box, and descriptors in answers", () =>
    withPair((amp) =>
      Effect.gen(function*() {
        const [a, b, c] = [fileWith("one "), fileWith("two "), fileWith("three")]
        const r = yield* amp.callRemote(ReadThree, { a, b, c })
        for (const fd of [a, b, c]) fs.closeSync(fd)
        expect(r.text).toBe("one two three")
        const given = yield* amp.callRemote(GiveFd, { text: "from the server" })
        expect(readAll(given.fd)).toBe("from the server")
      })))

  it.live("2000 pipelined calls, each with its own descriptor, none lost or misordered, nothing left open", () =>
    withPair((amp) =>
      Effect.gen(function*() {
        yield* amp.callRemote(ReadFd, { fd: fileWith("warm-up") })
        const before = openFds()
        const n = 2000
        const results = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) =>
            Effect.suspend(() => {
              const fd = fileWith(`#${i}`)
              return Effect.ensuring(amp.callRemote(ReadFd, { fd }), Effect.sync(() => fs.closeSync(fd)))
            }),
          { concurrency: "unbounded" }
        )
        expect(results.map((r) => r.text)).toEqual(Array.from({ length: n }, (_, i) => `#${i}`))
        expect(openFds()).toBeLessThanOrEqual(before + 2)
      })), 60_000)

  it.live("an ordinal that never arrived: UNKNOWN that says so, and the connection closes", () =>
    withPair((amp) =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(amp.callRemoteString("ReadFd", { fd: "7" }))
        expect(e).toMatchObject({ _tag: "UnknownRemoteError" })
        expect((e as { description: string }).description).toMatch(/ordinal 7 names a descriptor that never arrived \(0 received/)
        const ended = yield* amp.ended
        expect(ended._tag).toBe("ConnectionLost")
      })))

  it.live("descriptors nobody claims: past the cap the server closes the connection, and closes them all", () =>
    withPair((amp) =>
      Effect.gen(function*() {
        yield* amp.callRemote(ReadFd, { fd: fileWith("warm-up") })
        const before = openFds()
        // Nobody has no responder on the server: each box's descriptor stays unclaimed there.
        for (let i = 0; i < 20; i++) {
          const fd = fileWith("x")
          yield* Effect.ignore(amp.callRemote(Nobody, { fd }))
          fs.closeSync(fd)
        }
        const ended = yield* amp.ended
        expect(ended._tag).toBe("ConnectionLost")
        // Server side: the 9 unclaimed were closed with the connection (both ends live in this process).
        yield* Effect.sleep("100 millis")
        expect(openFds()).toBeLessThanOrEqual(before)
      }), { maxUnclaimed: 8 }))

  it.live("a value that is not a descriptor is refused before anything is sent", () =>
    withPair((amp) =>
      Effect.gen(function*() {
        // Two descriptors staged, then the third field fails: the two are taken back (and closed).
        yield* amp.callRemote(ReadFd, { fd: fileWith("warm-up") })
        const before = openFds()
        const [a, b] = [fileWith("a"), fileWith("b")]
        const e = yield* Effect.flip(amp.callRemote(ReadThree, { a, b, c: -1 }))
        fs.closeSync(a)
        fs.closeSync(b)
        expect(openFds()).toBe(before) // no copy left staged for the peer
        expect(e).toMatchObject({ _tag: "InvalidSignature" })
        const bad = yield* Effect.flip(amp.callRemote(ReadFd, { fd: 987654 }))
        expect(String((bad as Error).message)).toMatch(/cannot duplicate descriptor 987654.*EBADF/)
        // The ordinals are still in step: the next one goes through.
        expect(yield* amp.callRemote(ReadFd, { fd: fileWith("still fine") })).toEqual({ text: "still fine" })
      })))

  it.live("without the descriptors option, Descriptor fails with a message that says what is needed", () =>
    Effect.gen(function*() {
      const where = socketPath()
      yield* NodeAmp.serve({ _tag: "unix", path: where })
      const amp = yield* NodeAmp.connect({ _tag: "unix", path: where })
      const e = yield* Effect.flip(amp.callRemote(ReadFd, { fd: 0 }))
      expect(String((e as Error).message)).toMatch(/does not carry descriptors/)
    }).pipe(Effect.provide(responders), Effect.scoped))

  it.live("after StartTLS, descriptor arguments fail clearly, and plain calls go on", () =>
    Effect.gen(function*() {
      const where = socketPath()
      yield* NodeAmp.serve({ _tag: "unix", path: where }, { descriptors: true }).pipe(
        Effect.provide(Responders.layer(
          Responders.respond(ReadFd, ({ fd }) => Effect.sync(() => ({ text: readAll(fd) }))),
          StartTls.respond(() => Effect.succeed(serverTls))
        ))
      )
      const amp = yield* NodeAmp.connect({ _tag: "unix", path: where }, { descriptors: true })
      expect(yield* amp.callRemote(ReadFd, { fd: fileWith("before TLS") })).toEqual({ text: "before TLS" })
      yield* amp.startTls()
      const fd = fileWith("after TLS")
      const e = yield* Effect.flip(amp.callRemote(ReadFd, { fd }))
      fs.closeSync(fd)
      expect(e).toMatchObject({ _tag: "InvalidSignature" })
      expect(String((e as Error).message)).toMatch(/cannot be sent after StartTLS/)
      // A descriptor ordinal sent by hand over TLS: the server refuses it too (UNKNOWN).
      const refused = yield* Effect.flip(amp.callRemoteString("ReadFd", { fd: "1" }))
      expect((refused as { description: string }).description).toMatch(/do not pass after StartTLS/)
    }).pipe(Effect.scoped))
})

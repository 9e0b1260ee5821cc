/**
 * Descriptor passing against Twisted over UNIX sockets, both ways and in
 * both roles (test/interop/peers/descriptor_peer.py): a file Twisted opened
 * is read by us, a pipe we made is written by Twisted, three descriptors in
 * one box, and 2000 pipelined descriptors under backpressure, none lost or
 * out of order.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as UnixDescriptorTransport from "../../src/node/UnixDescriptorTransport.js"
import { startPeer } from "../support/twisted.js"

const PEER = path.join(import.meta.dirname, "peers", "descriptor_peer.py")
const N = 2000

const OpenFile = Command.make("OpenFile", { arguments: { text: Argument.Unicode }, response: { fd: Argument.Descriptor } })
const WriteTo = Command.make("WriteTo", { arguments: { fd: Argument.Descriptor, text: Argument.Unicode } })
const ReadFd = Command.make("ReadFd", { arguments: { fd: Argument.Descriptor }, response: { text: Argument.Unicode } })
const ReadThree = Command.make("ReadThree", {
  arguments: { a: Argument.Descriptor, b: Argument.Descriptor, c: Argument.Descriptor },
  response: { text: Argument.Unicode }
})
const MakePipe = Command.make("MakePipe", { response: { fd: Argument.Descriptor } })
const ReadPipe = Command.make("ReadPipe", { response: { text: Argument.Unicode } })

const readAll = (fd: number): string => {
  try {
    return fs.readFileSync(fd, "utf8")
  } finally {
    fs.closeSync(fd)
  }
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "amp-fd-interop-"))
const pipeWith = (text: string) =>
  Effect.map(UnixDescriptorTransport.pipe(), ([r, w]) => {
    fs.writeSync(w, text)
    fs.closeSync(w)
    return r
  })

describe("Descriptor interop with Twisted over UNIX sockets", () => {
  it.live("our client, Twisted's server: its file read here, our pipe written there, three in a box, 2000 pipelined", () =>
    Effect.gen(function*() {
      const where = path.join(tmp, "twisted.sock")
      yield* startPeer(PEER, ["server", where])
      const amp = yield* NodeAmp.connect({ _tag: "unix", path: where }, { descriptors: true })

      const opened = yield* amp.callRemote(OpenFile, { text: "opened by twisted" })
      expect(readAll(opened.fd)).toBe("opened by twisted")

      const [r, w] = yield* UnixDescriptorTransport.pipe()
      yield* amp.callRemote(WriteTo, { fd: w, text: "written by twisted" })
      fs.closeSync(w)
      expect(readAll(r)).toBe("written by twisted")

      const three = yield* Effect.all([pipeWith("one "), pipeWith("two "), pipeWith("three")])
      const joined = yield* amp.callRemote(ReadThree, { a: three[0], b: three[1], c: three[2] })
      three.forEach((fd) => fs.closeSync(fd))
      expect(joined.text).toBe("one two three")

      const results = yield* Effect.forEach(
        Array.from({ length: N }, (_, i) => i),
        (i) =>
          Effect.flatMap(pipeWith(`#${i}`), (fd) =>
            Effect.ensuring(amp.callRemote(ReadFd, { fd }), Effect.sync(() => fs.closeSync(fd)))),
        { concurrency: "unbounded" }
      )
      expect(results.map((x) => x.text)).toEqual(Array.from({ length: N }, (_, i) => `#${i}`))
    }).pipe(Effect.scoped), 120_000)

  it.live("Twisted's client, our server: its file read here, our pipe written there, three in a box, 2000 pipelined", () =>
    Effect.gen(function*() {
      const where = path.join(tmp, "ours.sock")
      let readEnd: number | undefined
      const kept: Array<number> = []
      const responders = Responders.layer(
        Responders.respond(ReadFd, ({ fd }) => Effect.sync(() => ({ text: readAll(fd) }))),
        Responders.respond(ReadThree, ({ a, b, c }) => Effect.sync(() => ({ text: readAll(a) + readAll(b) + readAll(c) }))),
        Responders.respond(MakePipe, () =>
          Effect.orDie(Effect.map(UnixDescriptorTransport.pipe(), ([r, w]) => {
            readEnd = r
            kept.push(w) // stays open until the answer is encoded (it is duplicated then)
            return { fd: w }
          }))),
        Responders.respond(ReadPipe, () =>
          Effect.sync(() => {
            for (const w of kept.splice(0)) fs.closeSync(w)
            return { text: readAll(readEnd!) }
          }))
      )
      // Few commands at once: Twisted's 2000 calls back up into its own buffers and the socket.
      yield* NodeAmp.serve({ _tag: "unix", path: where }, { descriptors: true, dispatcher: { maxConcurrentCommands: 4 } }).pipe(
        Effect.provide(responders)
      )
      const peer = yield* startPeer(PEER, ["client", where, String(N)])
      const code = yield* peer.exited
      expect(peer.stdoutLines).toEqual(["ok file", "ok pipe", "ok three", "ok burst"])
      expect(code).toBe(0)
    }).pipe(Effect.scoped), 120_000)
})

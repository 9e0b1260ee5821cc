/**
 * The default StartTLS responder (Twisted's `_defaultStartTLSResponder`): a
 * server with no StartTLS responder of its own still answers StartTLS on a
 * socket, with a throwaway self-signed certificate; not on a pipe or in
 * memory, and not when the option turns it off. Against Twisted: see
 * test/interop/DefaultStartTls.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Demo from "../../src/cli/Demo.js"
import * as Responders from "../../src/Responders.js"
import * as StartTls from "../../src/StartTls.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as AmpTest from "../../src/testing/AmpTest.js"

const certs = path.join(import.meta.dirname, "..", "certs")
const pem = (name: string) => fs.readFileSync(path.join(certs, name), "utf8")
const demoOnly = Responders.layer(...Demo.responders)
const portOf = (address: { readonly _tag: string }) => (address as unknown as { port: number }).port

describe("the default StartTLS responder", () => {
  it.scopedLive("a server without a StartTLS responder answers with a self-signed certificate; both sides then run TLS 1.3", () =>
    Effect.gen(function*() {
      let serverSide: Array<string | undefined> = []
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }, {
        onConnection: (amp) => Effect.sync(() => void (serverSide = [amp.info().tls?.protocol]))
      }).pipe(Effect.provide(demoOnly))
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const session = yield* amp.startTls()
      expect(session.authorized).toBe(false)
      expect(session.protocol).toBe("TLSv1.3")
      expect(session.peerCertificate?.subject.CN).toBe("effect-amp")
      expect(yield* amp.callRemote(Demo.Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
      expect(amp.info().tls?.protocol).toBe("TLSv1.3")
      expect(serverSide).toEqual([undefined]) // the hook saw the connection before TLS
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("every connection of the process gets the same certificate (made once)", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }).pipe(Effect.provide(demoOnly))
      const fingerprints: Array<string | undefined> = []
      for (let i = 0; i < 2; i++) {
        const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
        fingerprints.push((yield* amp.startTls()).peerCertificate?.fingerprint256)
      }
      expect(fingerprints[0]).toBeDefined()
      expect(fingerprints[1]).toBe(fingerprints[0])
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("defaultStartTls: false answers UNHANDLED, and the connection goes on in plaintext", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }, {
        dispatcher: { defaultStartTls: false }
      }).pipe(Effect.provide(demoOnly))
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const error = yield* Effect.flip(amp.startTls())
      expect(error._tag).toBe("UnhandledCommand")
      expect(yield* amp.callRemote(Demo.Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
      expect(amp.info().tls).toBeUndefined()
    }).pipe(Effect.provide(Responders.none)))

  it.scopedLive("a StartTLS responder of our own wins over the default", () =>
    Effect.gen(function*() {
      const own = Responders.layer(...Demo.responders, StartTls.respond(() => Effect.succeed({ cert: pem("server.pem"), key: pem("server.key") })))
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }).pipe(Effect.provide(own))
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const session = yield* amp.startTls({ ca: pem("ca.pem"), servername: "localhost" })
      expect(session.authorized).toBe(true)
      expect(session.peerCertificate?.subject.CN).toBe("effect-amp test server")
    }).pipe(Effect.provide(Responders.none)))

  it.scoped("in memory, where TLS cannot start, StartTLS stays UNHANDLED and the connection goes on", () =>
    Effect.gen(function*() {
      const { client } = yield* AmpTest.pair(Responders.make(...Demo.responders))
      const error = yield* Effect.flip(client.startTls())
      expect(error._tag).toBe("UnhandledCommand")
      expect(yield* client.callRemote(Demo.Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
    }))
})

/**
 * StartTLS without certificates, as Twisted does it: a side with no StartTLS
 * responder of its own answers with a throwaway self-signed certificate and
 * runs TLS (encrypted, not authenticated). Against Twisted, both ways.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import { startServe } from "../support/hostile.js"
import { startPeer } from "../support/twisted.js"
import * as C from "./commands.js"

const PEER = path.join(import.meta.dirname, "peers", "amp_peer.py")
const DEMO = path.join(import.meta.dirname, "..", "support", "twisted_demo.py")

/** Twisted's client: StartTLS with no certificate, then Sum(2, 3); its one JSON line. */
const twistedStartTls = (target: string) =>
  Effect.gen(function*() {
    const peer = yield* startPeer(PEER, ["--connect", target, "--script", "starttls-plain"])
    const line = yield* peer.nextLine.pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("no answer from Twisted") }))
    return JSON.parse(line) as unknown
  })

describe("the default StartTLS responder", () => {
  it.scopedLive("a Twisted client with no certificate gets TLS 1.3 from our server, which has no StartTLS responder", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      const { port } = server.address as { port: number }
      expect(yield* twistedStartTls(`tcp:127.0.0.1:${port}`)).toEqual({ total: 5, tls: "TLSv1.3", peer: "effect-amp" })
    }).pipe(Effect.provide(Responders.layer(Responders.respond(C.Sum, ({ a, b }) => Effect.succeed({ total: a + b }))))))

  it.scopedLive("so does `effect-amp serve` started without --tls-cert", () =>
    Effect.gen(function*() {
      const served = yield* Effect.promise(() => startServe())
      expect(yield* twistedStartTls(`tcp:127.0.0.1:${served.port}`)).toEqual({ total: 5, tls: "TLSv1.3", peer: "effect-amp" })
    }))

  it.scopedLive("our client with no certificate gets TLS from Twisted's default responder (a server with none of its own)", () =>
    Effect.gen(function*() {
      const peer = yield* startPeer(DEMO)
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: peer.port })
      const session = yield* amp.startTls()
      expect(session.authorized).toBe(false)
      expect(session.peerCertificate?.subject.CN).toBe("TEMPORARY CERTIFICATE")
      expect(yield* amp.callRemote(C.Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
    }).pipe(Effect.provide(Responders.none)))
})
